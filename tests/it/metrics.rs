//! Integration tests: the CloudWatch sink against ministack. Encoded datums are published and
//! read back with GetMetricStatistics (SampleCount, Sum, p90) and GetMetricData; request counts
//! are checked against the batching limits.

use crate::common;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, Statistic};
use ci_test_metrics::context::Context;
use ci_test_metrics::junit::Status;
use ci_test_metrics::metrics::cloudwatch::CloudWatchSink;
use ci_test_metrics::metrics::encode::{encode_build, EncodeOptions};
use ci_test_metrics::metrics::{Datum, Sink, Unit, Value};
use ci_test_metrics::summary::{BuildSummary, CaseSummary, FileSummary};
use time::OffsetDateTime;

pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    common::aws_env();
    ci_test_metrics::aws::loader()
        .endpoint_url(endpoint)
        .load()
        .await
}

pub fn unique_namespace(test: &str) -> String {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000_000;
    format!("CTM-Test/{test}/{}-{nanos}", std::process::id())
}

/// A build of `job` with `n` tests taking 0.01 s, 0.02 s, ... n × 0.01 s; every tenth fails.
pub fn build(job: &str, class: &str, n: usize, at: OffsetDateTime) -> BuildSummary {
    let cases = (1..=n)
        .map(|i| CaseSummary {
            suite: "s".into(),
            classname: "pkg.T".into(),
            name: format!("t{i}"),
            time: Some(i as f64 * 0.01),
            status: if i % 10 == 0 {
                Status::Failed
            } else {
                Status::Passed
            },
            attempts: 1,
        })
        .collect();
    BuildSummary {
        schema_version: 1,
        context: Context::new(job, "master", 1, at),
        branch_class: class.into(),
        published: true,
        files: vec![FileSummary {
            name: "unit.xml".into(),
            error: None,
            partial: false,
            cases,
        }],
    }
}

/// A time a few minutes ago, 10 s into its minute, so one 60 s period holds it.
pub fn recent() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let secs = t.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(secs - secs.rem_euclid(60) + 10).unwrap()
}

fn dims(job: &str, class: &str) -> Vec<Dimension> {
    vec![
        Dimension::builder().name("Job").value(job).build(),
        Dimension::builder()
            .name("BranchClass")
            .value(class)
            .build(),
    ]
}

#[tokio::test]
async fn publish_and_read_back_counts_sums_and_p90() {
    let Some(endpoint) = common::cloudwatch_endpoint() else {
        return;
    };
    let conf = sdk_config(&endpoint).await;
    let ns = unique_namespace("readback");
    let at = recent();
    let summary = build("team/unit-cpu", "master", 1000, at);
    let datums = encode_build(&summary, &EncodeOptions::default());
    // 1000 distinct durations → 7 distributions (150 × 6 + 100), plus 8 scalars.
    assert_eq!(
        datums.iter().filter(|d| d.name == "TestDuration").count(),
        7
    );

    let mut sink = Sink::CloudWatch(CloudWatchSink::from_conf(&conf, &ns));
    let report = sink.publish(&datums).await.expect("publish");
    assert_eq!(report.requests, 1);
    assert_eq!(report.datums, datums.len());

    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let stats = cw
        .get_metric_statistics()
        .namespace(&ns)
        .metric_name("TestDuration")
        .set_dimensions(Some(dims("team/unit-cpu", "master")))
        .start_time(DateTime::from_secs(at.unix_timestamp() - 10))
        .end_time(DateTime::from_secs(at.unix_timestamp() + 50))
        .period(60)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Sum)
        .statistics(Statistic::Maximum)
        .extended_statistics("p90")
        .send()
        .await
        .expect("GetMetricStatistics");
    let points = stats.datapoints();
    assert_eq!(points.len(), 1, "{points:?}");
    let p = &points[0];
    assert_eq!(p.sample_count(), Some(1000.0));
    let sum = p.sum().unwrap();
    assert!((sum - 5005.0).abs() < 1e-6, "sum {sum}");
    assert_eq!(p.maximum(), Some(10.0));
    let p90 = p.extended_statistics().unwrap()["p90"];
    // The 900th of 1000 values is 9.00 s; servers interpolate or approximate within 1 %.
    assert!((p90 - 9.0).abs() <= 0.09, "p90 {p90}");
    eprintln!("read back: SampleCount 1000, Sum {sum}, p90 {p90}");

    // Counts through GetMetricData.
    let query = |id: &str, metric: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace(&ns)
                            .metric_name(metric)
                            .set_dimensions(Some(dims("team/unit-cpu", "master")))
                            .build(),
                    )
                    .period(60)
                    .stat("Sum")
                    .build(),
            )
            .build()
    };
    let data = cw
        .get_metric_data()
        .metric_data_queries(query("tests", "Tests"))
        .metric_data_queries(query("failures", "Failures"))
        .metric_data_queries(query("builds", "Builds"))
        .metric_data_queries(query("total", "TotalTestTime"))
        .start_time(DateTime::from_secs(at.unix_timestamp() - 10))
        .end_time(DateTime::from_secs(at.unix_timestamp() + 50))
        .send()
        .await
        .expect("GetMetricData");
    let value = |id: &str| -> f64 {
        data.metric_data_results()
            .iter()
            .find(|r| r.id() == Some(id))
            .map(|r| r.values().iter().sum())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(value("tests"), 1000.0);
    assert_eq!(value("failures"), 100.0);
    assert_eq!(value("builds"), 1.0);
    assert!((value("total") - 5005.0).abs() < 1e-6);

    // The recovery probe sees this build, and not one of another class.
    assert!(sink
        .contains_build("team/unit-cpu", "master", at)
        .await
        .unwrap());
    assert!(!sink
        .contains_build("team/unit-cpu", "pr", at)
        .await
        .unwrap());
}

#[tokio::test]
async fn request_count_is_the_minimum_the_limits_allow() {
    let Some(endpoint) = common::cloudwatch_endpoint() else {
        return;
    };
    let conf = sdk_config(&endpoint).await;
    let ns = unique_namespace("requests");
    let at = recent();
    // 2,500 scalars: the 1,000-datum limit → 3 requests (bodies above 10 KiB go gzipped).
    let scalars: Vec<Datum> = (0..2500)
        .map(|i| Datum {
            name: "Builds".into(),
            unit: Unit::Count,
            dimensions: vec![
                ("Job".into(), format!("bulk-{}", i % 50)),
                ("BranchClass".into(), "pr".into()),
            ],
            timestamp: at,
            value: Value::Scalar(1.0),
        })
        .collect();
    let mut sink = Sink::CloudWatch(CloudWatchSink::from_conf(&conf, &ns));
    let report = sink.publish(&scalars).await.expect("publish");
    assert_eq!((report.datums, report.requests), (2500, 3));

    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let stats = cw
        .get_metric_statistics()
        .namespace(&ns)
        .metric_name("Builds")
        .set_dimensions(Some(dims("bulk-7", "pr")))
        .start_time(DateTime::from_secs(at.unix_timestamp() - 10))
        .end_time(DateTime::from_secs(at.unix_timestamp() + 50))
        .period(60)
        .statistics(Statistic::Sum)
        .send()
        .await
        .expect("GetMetricStatistics");
    assert_eq!(stats.datapoints()[0].sum(), Some(50.0));

    // Invalid and too-old datums are refused before anything is sent.
    let mut old = scalars[0].clone();
    old.timestamp = at - time::Duration::days(20);
    let err = sink.publish(&[old]).await.unwrap_err();
    assert!(err.to_string().contains("2-week"), "{err}");
}

/// Records the size of every request body the SDK sends.
#[derive(Debug, Clone, Default)]
struct BodySizes(std::sync::Arc<std::sync::Mutex<Vec<u64>>>);

impl aws_sdk_cloudwatch::config::Intercept for BodySizes {
    fn name(&self) -> &'static str {
        "BodySizes"
    }
    fn read_before_transmit(
        &self,
        context: &aws_sdk_cloudwatch::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_cloudwatch::config::RuntimeComponents,
        _: &mut aws_sdk_cloudwatch::config::ConfigBag,
    ) -> Result<(), aws_sdk_cloudwatch::error::BoxError> {
        let len = context.request().body().content_length().unwrap_or(0);
        self.0.lock().unwrap().push(len);
        Ok(())
    }
}

#[tokio::test]
async fn real_request_bodies_stay_under_1_mb_and_near_it() {
    let Some(endpoint) = common::cloudwatch_endpoint() else {
        return;
    };
    let conf = sdk_config(&endpoint).await;
    let ns = unique_namespace("sizes");
    let at = recent();
    // 1,000 full distributions (150 values each): the size limit decides, not the count.
    let datums: Vec<Datum> = (0..1000)
        .map(|i| Datum {
            name: "TestDuration".into(),
            unit: Unit::Seconds,
            dimensions: vec![
                ("Job".into(), format!("sizes/job-{}", i % 10)),
                ("BranchClass".into(), "master".into()),
            ],
            timestamp: at,
            value: Value::Distribution {
                values: (0..150)
                    .map(|v| 0.001 * (v + 1) as f64 + i as f64)
                    .collect(),
                counts: (0..150).map(|c| (c % 7 + 1) as f64).collect(),
            },
        })
        .collect();
    let sizes = BodySizes::default();
    // Uncompressed, so the recorded length is the payload CloudWatch's 1 MB limit speaks of.
    let client = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&conf)
            .retry_config(aws_sdk_cloudwatch::config::retry::RetryConfig::disabled())
            .disable_request_compression(true)
            .interceptor(sizes.clone())
            .build(),
    );
    let mut sink = CloudWatchSink::from_client(client, &ns);
    let expected = ci_test_metrics::metrics::cloudwatch::batches(&datums).len();
    let report = sink.publish(&datums).await.expect("publish");
    let sizes = sizes.0.lock().unwrap().clone();
    assert_eq!(report.requests, expected);
    assert_eq!(sizes.len(), expected, "{sizes:?}");
    let total: u64 = sizes.iter().sum();
    for (i, s) in sizes.iter().enumerate() {
        assert!(*s > 0 && *s <= 1_000_000, "request {i}: {s} bytes");
        // All but the last request are well filled: the estimate is not wasteful.
        if i + 1 < sizes.len() {
            assert!(*s >= 650_000, "request {i}: only {s} bytes");
        }
    }
    // Never more than one request above the theoretical minimum for this payload.
    assert!(
        sizes.len() as u64 <= total.div_ceil(1_000_000) + 1,
        "{sizes:?}"
    );
    eprintln!(
        "1,000 distributions: {} requests, bodies {sizes:?}",
        sizes.len()
    );

    // Everything arrived: 10 jobs × 100 datums × 600 samples.
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let stats = cw
        .get_metric_statistics()
        .namespace(&ns)
        .metric_name("TestDuration")
        .set_dimensions(Some(dims("sizes/job-3", "master")))
        .start_time(DateTime::from_secs(at.unix_timestamp() - 10))
        .end_time(DateTime::from_secs(at.unix_timestamp() + 50))
        .period(60)
        .statistics(Statistic::SampleCount)
        .send()
        .await
        .expect("GetMetricStatistics");
    let per_datum: f64 = (0..150).map(|c| (c % 7 + 1) as f64).sum();
    assert_eq!(
        stats.datapoints()[0].sample_count(),
        Some(100.0 * per_datum)
    );
}

/// A connection that never carries the request is retried with backoff, then reported; no
/// server is needed (a closed local port), so this runs everywhere.
#[tokio::test]
async fn refused_connections_are_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // The listener is dropped here: the port is closed.
    let conf = sdk_config(&format!("http://127.0.0.1:{port}")).await;
    let mut sink = Sink::CloudWatch(CloudWatchSink::from_conf(&conf, "CTM-Test/refused"));
    let datum = Datum {
        name: "Builds".into(),
        unit: Unit::Count,
        dimensions: vec![("Job".into(), "j".into())],
        timestamp: recent(),
        value: Value::Scalar(1.0),
    };
    let err = sink.publish(&[datum]).await.unwrap_err().to_string();
    assert!(err.contains("after 6 attempt(s)"), "{err}");
    assert!(err.contains("0 of 1 datums were sent before"), "{err}");
}
