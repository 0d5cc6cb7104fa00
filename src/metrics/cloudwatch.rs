//! The CloudWatch sink: PutMetricData through aws-sdk-cloudwatch.
//!
//! - The client comes from the shared [`crate::aws::load`] configuration, so
//!   `AWS_ENDPOINT_URL_CLOUDWATCH`, `AWS_REGION` and the credential variables apply.
//! - Datums are validated first ([`super::validate`]); nothing is sent when one is invalid or
//!   outside CloudWatch's timestamp window.
//! - [`batches`] packs datums into the fewest requests the limits allow: ≤ 1,000 datums and
//!   ≤ 1 MB each, the size estimated conservatively ([`estimated_size`]). The SDK gzips
//!   PutMetricData bodies of 10 KiB and more by itself (the operation's request-compression trait).
//! - Throttling, 5xx answers and connections that never carried the request are retried with
//!   exponential backoff ([`retryable`], [`backoff`]); the SDK's own retries are off so one policy
//!   decides. Timeouts and unreadable answers are not retried: CloudWatch may have taken the
//!   request, and sending it again would count a build twice.

use super::{validate_all, Datum, MetricsError, PublishReport, Value};
use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, Statistic};
use std::ops::Range;
use std::time::Duration;
use time::OffsetDateTime;

/// Datums per PutMetricData request CloudWatch accepts.
pub const MAX_DATUMS_PER_REQUEST: usize = 1000;
/// Payload budget per request: 1 MB minus room for the envelope (namespace, framing).
pub const MAX_REQUEST_BYTES: usize = 1_000_000 - 4_096;
/// Attempts per request, the first included.
const MAX_ATTEMPTS: u32 = 6;

/// A conservative estimate of one datum's encoded size in a request. The SDK speaks Smithy RPC v2
/// CBOR: a double takes 9 bytes, a string a 1-3 byte header plus its bytes, a dimension 18 bytes
/// of keys and headers, and the fixed fields (name, unit, timestamp keys) about 80 bytes. The
/// estimate rounds each of these up (12 bytes a number, 24 a dimension, 160 fixed), so the
/// integration test can check it is above the real body and not far from it.
pub fn estimated_size(d: &Datum) -> usize {
    let dims: usize = d
        .dimensions
        .iter()
        .map(|(n, v)| 24 + n.len() + v.len())
        .sum();
    let numbers = match &d.value {
        Value::Scalar(_) => 1,
        Value::Distribution { values, counts } => values.len() + counts.len(),
    };
    160 + d.name.len() + dims + 12 * numbers
}

/// Whether datums fit one PutMetricData request (for callers that keep builds whole per request).
pub fn fits_one_request(datums: &[Datum]) -> bool {
    datums.len() <= MAX_DATUMS_PER_REQUEST
        && datums.iter().map(estimated_size).sum::<usize>() <= MAX_REQUEST_BYTES
}

/// Splits datums, in order, into the fewest consecutive requests within the count and size limits.
pub fn batches(datums: &[Datum]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, d) in datums.iter().enumerate() {
        let size = estimated_size(d);
        if i > start && (i - start == MAX_DATUMS_PER_REQUEST || bytes + size > MAX_REQUEST_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < datums.len() {
        out.push(start..datums.len());
    }
    out
}

/// How a failed request ended, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The server answered with this HTTP status and error code.
    Answered { status: u16, code: Option<&'a str> },
    /// The request never reached the server (connection refused, DNS).
    NotSent,
    /// It may have reached the server: a timeout, or an answer that could not be read.
    MaybeSent,
    /// It could not even be built.
    Invalid,
}

/// Whether a failed PutMetricData may be sent again: throttling, 429, 5xx, or never sent.
pub fn retryable(outcome: Outcome<'_>) -> bool {
    const THROTTLING: [&str; 5] = [
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    ];
    match outcome {
        Outcome::Answered { status, code } => {
            status == 429
                || (500..600).contains(&status)
                || code.is_some_and(|c| THROTTLING.contains(&c) || c == "InternalServiceFault")
        }
        Outcome::NotSent => true,
        Outcome::MaybeSent | Outcome::Invalid => false,
    }
}

/// The pause before retry `attempt` (1-based): 200 ms doubling up to 10 s, scaled by
/// `jitter` in [0.5, 1.0].
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = 0.2 * 2f64.powi(attempt.saturating_sub(1).min(16) as i32);
    Duration::from_secs_f64(base.min(10.0) * jitter.clamp(0.5, 1.0))
}

fn outcome<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Outcome<'_> {
    match err {
        SdkError::ServiceError(e) => Outcome::Answered {
            status: e.raw().status().as_u16(),
            code: e.err().code(),
        },
        // Connection refused, reset before an answer, DNS: the SDK reports I/O dispatch failures.
        SdkError::DispatchFailure(d) if d.is_io() && !d.is_timeout() => Outcome::NotSent,
        SdkError::ConstructionFailure(_) => Outcome::Invalid,
        _ => Outcome::MaybeSent,
    }
}

/// A CloudWatch client from a shared configuration, with the SDK's retries off (ours decide).
pub fn client(conf: &aws_config::SdkConfig) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(conf)
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

/// Publishes datums with PutMetricData.
#[derive(Debug)]
pub struct CloudWatchSink {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl CloudWatchSink {
    /// A sink on the shared configuration from the environment.
    pub async fn new(namespace: &str) -> CloudWatchSink {
        CloudWatchSink::from_conf(&crate::aws::load().await, namespace)
    }

    /// A sink on a given configuration (tests pass their endpoint here).
    pub fn from_conf(conf: &aws_config::SdkConfig, namespace: &str) -> CloudWatchSink {
        CloudWatchSink::from_client(client(conf), namespace)
    }

    /// A sink on a ready client; turn the SDK's retries off on it, as [`client`] does, or both
    /// layers retry.
    pub fn from_client(client: aws_sdk_cloudwatch::Client, namespace: &str) -> CloudWatchSink {
        CloudWatchSink {
            client,
            namespace: namespace.to_string(),
        }
    }

    /// Validates every datum, then sends them in the fewest requests; stops at the first request
    /// that fails for good (earlier requests stay sent; the error says how many).
    pub async fn publish(&mut self, datums: &[Datum]) -> Result<PublishReport, MetricsError> {
        if let Some((d, verdict)) = validate_all(datums, OffsetDateTime::now_utc())?
            .into_iter()
            .next()
        {
            return Err(MetricsError::OutOfWindow {
                name: d.name.clone(),
                timestamp: d.timestamp,
                verdict,
            });
        }
        let mut report = PublishReport::default();
        for range in batches(datums) {
            let data: Vec<MetricDatum> = datums[range.clone()].iter().map(to_sdk).collect();
            self.send(data)
                .await
                .map_err(|message| MetricsError::Publish {
                    sink: "cloudwatch".into(),
                    message: format!(
                        "{message} ({} of {} datums were sent before)",
                        report.datums,
                        datums.len()
                    ),
                })?;
            report.requests += 1;
            report.datums += range.len();
        }
        Ok(report)
    }

    async fn send(&self, data: Vec<MetricDatum>) -> Result<(), String> {
        let mut attempt = 1;
        loop {
            let result = self
                .client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(data.clone()))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if attempt < MAX_ATTEMPTS && retryable(outcome(&e)) => {
                    let pause = backoff(attempt, jitter());
                    tracing::warn!(
                        "PutMetricData attempt {attempt} failed, retrying in {pause:?}: {}",
                        crate::aws::describe(&e)
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(format!(
                        "PutMetricData failed after {attempt} attempt(s): {}",
                        crate::aws::describe(&e)
                    ))
                }
            }
        }
    }

    /// Whether a `Builds` datum for (job, branch class) arrived in the minute of `timestamp`.
    pub async fn contains_build(
        &mut self,
        job: &str,
        branch_class: &str,
        timestamp: OffsetDateTime,
    ) -> Result<bool, MetricsError> {
        let minute = timestamp.unix_timestamp() - timestamp.unix_timestamp().rem_euclid(60);
        let result = self
            .client
            .get_metric_statistics()
            .namespace(&self.namespace)
            .metric_name("Builds")
            .dimensions(dimension("Job", job))
            .dimensions(dimension("BranchClass", branch_class))
            .start_time(DateTime::from_secs(minute))
            .end_time(DateTime::from_secs(minute + 60))
            .period(60)
            .statistics(Statistic::SampleCount)
            .send()
            .await
            .map_err(|e| MetricsError::Publish {
                sink: "cloudwatch".into(),
                message: format!("GetMetricStatistics: {}", crate::aws::describe(&e)),
            })?;
        Ok(result
            .datapoints()
            .iter()
            .any(|p| p.sample_count().unwrap_or(0.0) > 0.0))
    }
}

fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    0.5 + (nanos % 1000) as f64 / 2000.0
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// Our datum as the SDK's.
fn to_sdk(d: &Datum) -> MetricDatum {
    let ts = d.timestamp;
    let builder = MetricDatum::builder()
        .metric_name(&d.name)
        .unit(StandardUnit::from(d.unit.as_str()))
        .timestamp(DateTime::from_secs_and_nanos(
            ts.unix_timestamp(),
            ts.nanosecond(),
        ))
        .set_dimensions(Some(
            d.dimensions.iter().map(|(n, v)| dimension(n, v)).collect(),
        ));
    match &d.value {
        Value::Scalar(v) => builder.value(*v),
        Value::Distribution { values, counts } => builder
            .set_values(Some(values.clone()))
            .set_counts(Some(counts.clone())),
    }
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Unit;

    fn datum(values: usize) -> Datum {
        Datum {
            name: "TestDuration".into(),
            unit: Unit::Seconds,
            dimensions: vec![
                ("Job".into(), "j".repeat(40)),
                ("BranchClass".into(), "master".into()),
            ],
            timestamp: OffsetDateTime::UNIX_EPOCH,
            value: if values == 0 {
                Value::Scalar(1.0)
            } else {
                Value::Distribution {
                    values: vec![1.0; values],
                    counts: vec![1.0; values],
                }
            },
        }
    }

    fn sizes(b: &[Range<usize>]) -> Vec<usize> {
        b.iter().map(|r| r.len()).collect()
    }

    #[test]
    fn batching_table() {
        // Scalars: the 1,000-datum limit decides.
        assert!(batches(&[]).is_empty());
        assert_eq!(sizes(&batches(&vec![datum(0); 1])), vec![1]);
        assert_eq!(sizes(&batches(&vec![datum(0); 1000])), vec![1000]);
        assert_eq!(sizes(&batches(&vec![datum(0); 2001])), vec![1000, 1000, 1]);
        // Full distributions: the size limit decides (about 3.8 kB each).
        let full = datum(150);
        let per = MAX_REQUEST_BYTES / estimated_size(&full);
        assert!(per < 1000 && per > 100, "{per}");
        let b = batches(&vec![full.clone(); 1000]);
        assert_eq!(b.len(), 1000usize.div_ceil(per));
        assert!(b.iter().all(|r| r.len() <= per));
        // Every request stays within both limits, and the ranges cover everything in order.
        let mixed: Vec<Datum> = (0..3000)
            .map(|i| datum(if i % 3 == 0 { 150 } else { 0 }))
            .collect();
        let b = batches(&mixed);
        let mut next = 0;
        for r in &b {
            assert_eq!(r.start, next);
            next = r.end;
            assert!(r.len() <= MAX_DATUMS_PER_REQUEST);
            let bytes: usize = mixed[r.clone()].iter().map(estimated_size).sum();
            assert!(bytes <= MAX_REQUEST_BYTES);
        }
        assert_eq!(next, mixed.len());
    }

    #[test]
    fn fits_one_request_table() {
        assert!(fits_one_request(&[]));
        assert!(fits_one_request(&vec![datum(0); 1000]));
        assert!(!fits_one_request(&vec![datum(0); 1001]));
        let per = MAX_REQUEST_BYTES / estimated_size(&datum(150));
        assert!(fits_one_request(&vec![datum(150); per]));
        assert!(!fits_one_request(&vec![datum(150); per + 1]));
        // The real CBOR body is checked against the estimate in tests/it/metrics.rs.
        assert_eq!(
            estimated_size(&datum(0)),
            160 + 12 + (24 + 3 + 40) + (24 + 11 + 6) + 12
        );
    }

    #[test]
    fn retry_table() {
        let answered = |status, code| Outcome::Answered { status, code };
        for (outcome, want) in [
            (answered(400, Some("Throttling")), true),
            (answered(400, Some("ThrottlingException")), true),
            (answered(429, None), true),
            (answered(500, Some("InternalServiceFault")), true),
            (answered(503, None), true),
            (answered(400, Some("InvalidParameterValue")), false),
            (answered(403, Some("AccessDenied")), false),
            (answered(413, None), false),
            (Outcome::NotSent, true),
            (Outcome::MaybeSent, false),
            (Outcome::Invalid, false),
        ] {
            assert_eq!(retryable(outcome), want, "{outcome:?}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(2, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(3, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(30, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(1, 7.0), Duration::from_millis(200));
    }
}
