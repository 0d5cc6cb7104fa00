//! Integration tests: aggregation over a local store (EMF sink) and over SeaweedFS + ministack.

use crate::common;
use serde_json::Value;
use std::path::{Path, PathBuf};

use common::aggregate;

/// The one destination ledger in a local store (`_ci-test-metrics/dest/ID/`).
fn dest_dir(store: &Path) -> PathBuf {
    let dests: Vec<PathBuf> = std::fs::read_dir(store.join("_ci-test-metrics/dest"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(dests.len(), 1, "one destination: {dests:?}");
    dests[0].clone()
}

fn emf_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every EMF line is JSON"))
        .collect()
}

/// Sum of one metric over EMF lines: scalars add up, distributions add value × count.
fn emf_sum(lines: &[Value], metric: &str) -> (f64, f64) {
    let (mut sum, mut samples) = (0.0, 0.0);
    for line in lines {
        match &line[metric] {
            Value::Number(n) => {
                sum += n.as_f64().unwrap();
                samples += 1.0;
            }
            Value::Array(values) => {
                for v in values {
                    sum += v.as_f64().unwrap();
                    samples += 1.0;
                }
            }
            Value::Object(dist) => {
                let values = dist["Values"].as_array().unwrap();
                let counts = dist["Counts"].as_array().unwrap();
                for (v, c) in values.iter().zip(counts) {
                    sum += v.as_f64().unwrap() * c.as_f64().unwrap();
                    samples += c.as_f64().unwrap();
                }
            }
            _ => {}
        }
    }
    (sum, samples)
}

#[test]
fn sample_store_is_aggregated_once() {
    let (dir, store) = common::sample_store();
    let emf = dir.path().join("metrics.emf");
    let sink = format!("emf:{}", emf.display());
    let (out, first) = aggregate(&store, &["--sink", &sink]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let builds = first["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 107, "108 sample builds, one still uploading");
    assert_eq!(first["incomplete"].as_array().unwrap().len(), 1);
    let tests: u64 = builds.iter().map(|b| b["tests"].as_u64().unwrap()).sum();
    let truncated = builds
        .iter()
        .find(|b| b["parse_errors"].as_u64() == Some(1))
        .expect("the truncated file is reported");
    assert_eq!(truncated["job"], "mxnet-validation/windows-cpu");
    assert!(truncated["problems"][0]
        .as_str()
        .unwrap()
        .contains("pytest_operator.xml"));

    // Every build's Builds datum is in the EMF file, and the test counts add up.
    let lines = emf_lines(&emf);
    assert_eq!(emf_sum(&lines, "Builds").0, 107.0);
    assert_eq!(emf_sum(&lines, "Tests").0, tests as f64);
    let timed: f64 = builds
        .iter()
        .map(|b| b["total_time"].as_f64().unwrap())
        .sum();
    let (duration_sum, _) = emf_sum(&lines, "TestDuration");
    assert!(
        (duration_sum - timed).abs() < 0.01 * timed,
        "TestDuration sums to {duration_sum}, cases to {timed}"
    );
    assert_eq!(emf_sum(&lines, "ParseErrors").0, 1.0);

    // A rerun publishes nothing and writes nothing to the EMF file.
    let before = std::fs::read(&emf).unwrap();
    let (out, second) = aggregate(&store, &["--sink", &sink]);
    assert!(out.status.success());
    assert_eq!(second["builds"].as_array().unwrap().len(), 0);
    assert_eq!(
        second["discovery"], "arrivals",
        "the first run left a cursor"
    );
    assert_eq!(std::fs::read(&emf).unwrap(), before);
    // So does a full sweep, which sees every build recorded.
    let (out, third) = aggregate(&store, &["--sink", &sink, "--full"]);
    assert!(out.status.success());
    assert_eq!(third["builds"].as_array().unwrap().len(), 0);
    assert_eq!(third["already_done"], 107);
    assert_eq!(std::fs::read(&emf).unwrap(), before);

    // Every build went into the history tables (its days are long over), once.
    assert_eq!(first["tables"]["builds"], 107);
    assert_eq!(second["tables"]["builds"], 0);
    assert_eq!(third["tables"]["builds"], 0);
    let builds = table_builds(&store);
    assert_eq!(builds.len(), 107);
    let one = builds
        .iter()
        .find(|b| {
            b.context.job == "mxnet-validation/unix-cpu"
                && b.context.branch == "master"
                && b.context.build == 1
        })
        .expect("unix-cpu master 1 in the builds table");
    assert_eq!(one.branch_class, "master");
}

/// Every build a local store's `test_runs` parts list (from their footers).
fn table_builds(store: &Path) -> Vec<ci_test_metrics::table::schema::BuildRow> {
    use ci_test_metrics::table::decode;
    use parquet::file::reader::FileReader;
    let mut out = Vec::new();
    let root = store.join("_ci-test-metrics/tables/test_runs");
    for day in std::fs::read_dir(root).unwrap().flatten() {
        for part in std::fs::read_dir(day.path()).unwrap().flatten() {
            let bytes = std::fs::read(part.path()).unwrap();
            let file = decode::open(decode::Ranges::whole(bytes.into())).unwrap();
            out.extend(decode::builds_of(file.metadata()).unwrap());
        }
    }
    out
}

#[test]
fn dry_run_records_nothing_and_prices_the_run() {
    let (dir, store) = common::sample_store();
    let emf = dir.path().join("metrics.emf");
    let (out, json) = aggregate(
        &store,
        &["--sink", &format!("emf:{}", emf.display()), "--dry-run"],
    );
    assert!(out.status.success());
    assert_eq!(json["builds"].as_array().unwrap().len(), 107);
    assert!(json["datums"].as_u64().unwrap() > 107 * 8);
    assert!(json["requests"].as_u64().unwrap() >= 1);
    // Job × BranchClass pairs, times the metric names: a few hundred at most, never per test.
    let metrics = json["distinct_metrics"].as_u64().unwrap();
    assert!((9..=200).contains(&metrics), "{metrics} distinct metrics");
    assert!(json["estimated_monthly_cost_usd"].as_f64().unwrap() > 0.0);
    assert!(!emf.exists(), "a dry run publishes nothing");
    assert!(
        !store.join("_ci-test-metrics").exists(),
        "a dry run records nothing"
    );
}

#[test]
fn branch_filter_publishes_only_master_but_keeps_all_in_the_history() {
    let (dir, store) = common::sample_store();
    let emf = dir.path().join("metrics.emf");
    let (out, json) = aggregate(
        &store,
        &[
            "--sink",
            &format!("emf:{}", emf.display()),
            "--branches",
            "master",
        ],
    );
    assert!(out.status.success());
    let builds = json["builds"].as_array().unwrap();
    let published: Vec<&Value> = builds.iter().filter(|b| b["published"] == true).collect();
    assert_eq!(published.len(), 30 * 3);
    assert!(published.iter().all(|b| b["branch_class"] == "master"));
    assert_eq!(emf_sum(&emf_lines(&emf), "Builds").0, 90.0);
    // Unpublished builds are in the history too, so analysis can use them.
    let builds = table_builds(&store);
    let pr = builds
        .iter()
        .find(|b| {
            b.context.job == "mxnet-validation/unix-gpu"
                && b.context.branch == "PR-16336"
                && b.context.build == 2
        })
        .expect("an unpublished PR build in the history");
    assert!(!pr.published);
    assert_eq!(builds.len(), 107);
}

#[test]
fn an_interrupted_run_is_recovered_without_duplicates() {
    let (dir, store) = common::sample_store();
    let emf = dir.path().join("metrics.emf");
    let sink = format!("emf:{}", emf.display());
    // Short leases, so the claims of a "dead" run expire within the test.
    let (out, _) = aggregate(&store, &["--sink", &sink, "--lease", "1s"]);
    assert!(out.status.success());
    // Simulate a run killed after the sink accepted its metrics but before it recorded the
    // builds: the claims say `publishing`, the `done` markers are missing.
    let dest = dest_dir(&store);
    std::fs::remove_dir_all(dest.join("done/mxnet-validation/unix-gpu")).unwrap();
    let claim =
        std::fs::read_to_string(dest.join("claims/mxnet-validation/unix-gpu/master/1")).unwrap();
    assert!(claim.contains("\"state\":\"publishing\""), "{claim}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let before = emf_sum(&emf_lines(&emf), "Builds").0;
    let (out, json) = aggregate(&store, &["--sink", &sink, "--full"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json["recovered"].as_array().unwrap().len(),
        30 + 3 + 2,
        "unix-gpu: 30 master, 3 + 2 PR builds"
    );
    assert_eq!(
        emf_sum(&emf_lines(&emf), "Builds").0,
        before,
        "nothing was sent twice"
    );
    // And the ledger is whole again.
    let (_, third) = aggregate(&store, &["--sink", &sink, "--full"]);
    assert_eq!(third["builds"].as_array().unwrap().len(), 0);
}

#[test]
fn bad_builds_are_reported_and_the_others_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let good = format!(
        r#"{{"schema_version":1,"job":"j","branch":"master","build":1,"timestamp":"{now}"}}"#
    );
    let sha_mismatch = good.replace("\"build\":1", "\"build\":5").replace(
        "}",
        r#","files":[{"name":"a.xml","bytes":3,"sha256":"00ff"}]}"#,
    );
    // (build prefix, context.json, result files as (name, body))
    type Build<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let builds: &[Build] = &[
        (
            "j/master/1",
            &good,
            &[(
                "a.xml",
                r#"<testsuite name="s"><testcase classname="c" name="t" time="1.5"/></testsuite>"#,
            )],
        ),
        // context.json with wrong types: reported, and the build still counted with its key's values.
        (
            "j/master/2",
            r#"{"schema_version":"one","job":7,"build":"x"}"#,
            &[(
                "a.xml",
                r#"<testsuite><testcase name="t" time="2"/></testsuite>"#,
            )],
        ),
        // no result files at all
        (
            "j/master/3",
            &good.replace("\"build\":1", "\"build\":3"),
            &[],
        ),
        // binary garbage
        (
            "j/master/4",
            &good.replace("\"build\":1", "\"build\":4"),
            &[("bin.xml", "\u{0}\u{1}\u{2}PK\u{3}\u{4}")],
        ),
        // a result file that is not what the manifest recorded (a later stage overwrote it)
        (
            "j/master/5",
            &sha_mismatch,
            &[(
                "a.xml",
                r#"<testsuite><testcase name="t" time="2"/></testsuite>"#,
            )],
        ),
        // written by a newer version
        (
            "j/master/6",
            &good
                .replace("\"build\":1", "\"build\":6")
                .replace("\"schema_version\":1", "\"schema_version\":99"),
            &[(
                "a.xml",
                r#"<testsuite><testcase name="t" time="2"/></testsuite>"#,
            )],
        ),
    ];
    for (prefix, context, files) in builds {
        let d = store.join(prefix);
        std::fs::create_dir_all(&d).unwrap();
        for (name, body) in *files {
            std::fs::write(d.join(name), body).unwrap();
        }
        std::fs::write(d.join("context.json"), context).unwrap();
    }
    let emf = dir.path().join("m.emf");
    let (out, json) = aggregate(&store, &["--sink", &format!("emf:{}", emf.display())]);
    assert!(
        out.status.success(),
        "bad data is reported, not fatal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let builds = json["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 6);
    let by_build = |n: u64| builds.iter().find(|b| b["build"] == n).unwrap();
    assert_eq!(by_build(1)["tests"], 1);
    assert!(by_build(1)["problems"].as_array().unwrap().is_empty());
    assert!(by_build(2)["problems"][0]
        .as_str()
        .unwrap()
        .contains("j/master/2/context.json"));
    assert_eq!(by_build(2)["tests"], 1);
    assert!(by_build(3)["problems"][0]
        .as_str()
        .unwrap()
        .contains("no result files"));
    assert_eq!(by_build(4)["parse_errors"], 1);
    assert!(by_build(4)["problems"][0]
        .as_str()
        .unwrap()
        .contains("j/master/4/bin.xml"));
    let problem = |n: u64| by_build(n)["problems"][0].as_str().unwrap().to_string();
    assert!(problem(5).contains("SHA-256"), "{}", problem(5));
    assert_eq!(by_build(5)["parse_errors"], 1);
    assert_eq!(by_build(5)["tests"], 1, "its cases still count");
    assert!(problem(6).contains("schema version 99"), "{}", problem(6));
    assert_eq!(by_build(6)["parse_errors"], 0);
    // The binary file, the unusable context.json and the changed file.
    assert_eq!(emf_sum(&emf_lines(&emf), "ParseErrors").0, 3.0);
    assert_eq!(by_build(2)["parse_errors"], 1);
}

#[test]
fn usage_errors_exit_1_with_a_hint() {
    let out = common::bin()
        .args(["aggregate", "--branch-class", "oops"])
        .arg("--store")
        .arg("/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CLASS=GLOB"));
    let out = common::bin().args(["aggregate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--store"));
    // An S3 store has no default sink: a trial run must not publish by surprise.
    let out = common::bin()
        .args(["aggregate", "--store", "s3://some-bucket"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--sink cloudwatch") && stderr.contains("--dry-run"),
        "{stderr}"
    );
    // EMF on stdout and a JSON report cannot share stdout.
    let out = common::bin()
        .args([
            "aggregate",
            "--sink",
            "stdout",
            "--format",
            "json",
            "--store",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdout"));
    // --republish needs builds or --since.
    let out = common::bin()
        .args(["aggregate", "--republish", "--store", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// Writes `n` small builds of one job into a local store, timestamped within the last hour.
fn small_history(store: &Path, job: &str, n: u64, tests: usize) {
    let now = time::OffsetDateTime::now_utc();
    for b in 1..=n {
        let dir = store.join(job).join("master").join(b.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let cases: String = (0..tests)
            .map(|t| format!(r#"<testcase classname="c" name="t{t}" time="0.{t:03}"/>"#))
            .collect();
        std::fs::write(
            dir.join("r.xml"),
            format!("<testsuite name=\"s\">{cases}</testsuite>"),
        )
        .unwrap();
        let at = (now - time::Duration::minutes(60) + time::Duration::seconds(b as i64))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        std::fs::write(
            dir.join("context.json"),
            format!(r#"{{"schema_version":1,"job":"{job}","branch":"master","build":{b},"timestamp":"{at}"}}"#),
        )
        .unwrap();
    }
}

#[test]
fn a_killed_run_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    small_history(&store, "kill/job", 300, 400);
    let emf = dir.path().join("m.emf");
    let sink = format!("emf:{}", emf.display());
    // Kill the first run part-way (wherever it is), then let a second run finish the work.
    let mut child = common::bin()
        .args([
            "aggregate",
            "--settle",
            "0",
            "--concurrency",
            "2",
            "--lease",
            "2s",
            "--sink",
            &sink,
            "--store",
        ])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as it has recorded its first build: mid-run, whatever the machine's speed.
    let recorded = || {
        let dests = std::fs::read_dir(store.join("_ci-test-metrics/dest"));
        let Some(dest) = dests.ok().and_then(|mut d| d.next()).and_then(|e| e.ok()) else {
            return false;
        };
        std::fs::read_dir(dest.path().join("done/kill/job/master"))
            .map(|d| {
                d.flatten()
                    .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !recorded() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    // The builds it held stay claimed until its lease (2 s) runs out.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (out, json) = aggregate(&store, &["--sink", &sink]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done_before = json["already_done"].as_u64().unwrap();
    assert!(
        (1..300).contains(&done_before),
        "the first run was killed mid-way ({done_before} of 300 recorded)"
    );
    eprintln!(
        "killed run recorded {done_before} builds; the rerun took {}",
        json["builds"].as_array().unwrap().len()
    );
    // Whatever the moment of the kill: each build's Builds datum is in the file exactly once.
    assert_eq!(emf_sum(&emf_lines(&emf), "Builds").0, 300.0);
    assert_eq!(emf_sum(&emf_lines(&emf), "Tests").0, 300.0 * 400.0);
}

/// Runs the binary with the local servers' endpoints.
fn with_servers(cmd: &mut std::process::Command, s3: &str, cw: &str) {
    cmd.env("AWS_ENDPOINT_URL_S3", s3)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", cw);
}

/// The start of a 6-hour period that began at least an hour ago, aligned to the epoch as
/// CloudWatch aligns periods. Builds timed inside it come back as one datapoint whatever the
/// time of day (two builds 10 minutes apart can otherwise straddle 12:00 UTC and come back as
/// two).
fn stats_period() -> time::OffsetDateTime {
    const PERIOD: i64 = 6 * 3600;
    let start =
        (time::OffsetDateTime::now_utc().unix_timestamp() - 3600).div_euclid(PERIOD) * PERIOD;
    time::OffsetDateTime::from_unix_timestamp(start).unwrap()
}

/// The statistics of `metric` over the 6 hours from `period` (see [`stats_period`]).
async fn statistics(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    job: &str,
    metric: &str,
    period: time::OffsetDateTime,
) -> Option<aws_sdk_cloudwatch::types::Datapoint> {
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let start = std::time::SystemTime::from(period);
    let out = cw
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(metric)
        .dimensions(Dimension::builder().name("Job").value(job).build())
        .dimensions(
            Dimension::builder()
                .name("BranchClass")
                .value("master")
                .build(),
        )
        .start_time(start.into())
        .end_time((start + std::time::Duration::from_secs(6 * 3600)).into())
        .period(6 * 3600)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Sum)
        .extended_statistics("p90")
        .send()
        .await
        .expect("GetMetricStatistics");
    out.datapoints().first().cloned()
}

#[tokio::test]
async fn upload_then_aggregate_to_cloudwatch_and_read_back() {
    let (Some(s3), Some(cw_url)) = (common::s3_endpoint(), common::cloudwatch_endpoint()) else {
        return;
    };
    common::aws_env();
    let bucket = common::unique_bucket("agg");
    common::create_bucket(&s3, &bucket).await;
    let namespace = format!("CTMTest{}", std::process::id());
    let job = "it/cw-job";
    let work = tempfile::tempdir().unwrap();
    let period = stats_period();
    // Two builds of ten tests each: 0.1 … 1.0 s and 1.1 … 2.0 s (already 3 significant digits).
    for build in 1..=2u64 {
        let dir = work.path().join(build.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let cases: String = (1..=10)
            .map(|i| {
                format!(
                    r#"<testcase classname="c" name="t{i}" time="{:.1}"/>"#,
                    (build - 1) as f64 + i as f64 / 10.0
                )
            })
            .collect();
        std::fs::write(
            dir.join("unit.xml"),
            format!("<testsuite name=\"s\">{cases}</testsuite>"),
        )
        .unwrap();
        let at = (period + time::Duration::minutes(10 * build as i64))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        // Uploaded with the write-only identity, as a Jenkins agent would.
        let mut upload = common::bin();
        with_servers(&mut upload, &s3, &cw_url);
        let out = upload
            .env(
                "AWS_ACCESS_KEY_ID",
                std::env::var("CTM_TEST_UPLOADER_KEY").unwrap_or("ctm-uploader".into()),
            )
            .env(
                "AWS_SECRET_ACCESS_KEY",
                std::env::var("CTM_TEST_UPLOADER_SECRET").unwrap_or("ctm-uploader-secret".into()),
            )
            .args([
                "upload",
                "--store",
                &format!("s3://{bucket}"),
                "--job",
                job,
                "--branch",
                "master",
            ])
            .args([
                "--build",
                &build.to_string(),
                "--commit",
                "abc123",
                "--user",
                "alice",
                "--timestamp",
                &at,
            ])
            .arg("--working-dir")
            .arg(&dir)
            .arg("*.xml")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "upload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let run = |extra: &[&str]| {
        let mut cmd = common::bin();
        with_servers(&mut cmd, &s3, &cw_url);
        let out = cmd
            .args([
                "aggregate",
                "--format",
                "json",
                "--settle",
                "0",
                "--sink",
                "cloudwatch",
                "--lease",
                "1s",
            ])
            .args(["--namespace", &namespace])
            .args(extra)
            .args(["--store", &format!("s3://{bucket}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aggregate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = run(&[]);
    assert_eq!(first["builds"].as_array().unwrap().len(), 2);
    assert_eq!(first["requests"], 2, "one PutMetricData request per build");
    assert_eq!(first["destination"], format!("cloudwatch-{namespace}"));

    let conf = ci_test_metrics::aws::loader()
        .endpoint_url(&cw_url)
        .load()
        .await;
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let check = |p: Option<aws_sdk_cloudwatch::types::Datapoint>| {
        let p = p.expect("TestDuration datapoint");
        assert_eq!(p.sample_count(), Some(20.0));
        assert!((p.sum().unwrap() - 21.0).abs() < 1e-9, "sum {:?}", p.sum());
        // 90th percentile of 0.1 … 2.0, interpolated between ranks 18 and 19 (as ministack does).
        let p90 = p
            .extended_statistics()
            .and_then(|e| e.get("p90"))
            .copied()
            .expect("p90");
        assert!((p90 - 1.81).abs() < 1e-9, "p90 {p90}");
    };
    check(statistics(&cw, &namespace, job, "TestDuration", period).await);
    let builds = statistics(&cw, &namespace, job, "Builds", period)
        .await
        .unwrap();
    assert_eq!(builds.sum(), Some(2.0));

    // A rerun publishes nothing.
    let second = run(&[]);
    assert_eq!(second["discovery"], "arrivals");
    assert_eq!(second["builds"].as_array().unwrap().len(), 0);
    check(statistics(&cw, &namespace, job, "TestDuration", period).await);

    // A run that sent build 2 but died before recording it: CloudWatch is asked, nothing is resent.
    let s3c = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(
            &ci_test_metrics::aws::loader()
                .endpoint_url(&s3)
                .load()
                .await,
        )
        .force_path_style(true)
        .build(),
    );
    let done = format!("_ci-test-metrics/dest/cloudwatch-{namespace}/done/{job}/master/2");
    s3c.delete_object()
        .bucket(&bucket)
        .key(&done)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await; // the claim's lease
    let third = run(&["--full"]);
    assert_eq!(third["recovered"].as_array().unwrap().len(), 1);
    check(statistics(&cw, &namespace, job, "TestDuration", period).await);
    assert_eq!(
        statistics(&cw, &namespace, job, "Builds", period)
            .await
            .unwrap()
            .sum(),
        Some(2.0)
    );
}

#[test]
fn fresh_uploads_settle_and_late_stages_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    small_history(&store, "stages/job", 2, 3);
    let emf = dir.path().join("m.emf");
    let sink = format!("emf:{}", emf.display());
    // Just uploaded: with the default settle time nothing is taken yet.
    let out = common::bin()
        .args(["aggregate", "--format", "json", "--sink", &sink, "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["builds"].as_array().unwrap().len(), 0);
    assert_eq!(json["settling"].as_array().unwrap().len(), 2);
    // Taken once settled (here: no settle time)…
    let (_, json) = aggregate(&store, &["--sink", &sink]);
    assert_eq!(json["builds"].as_array().unwrap().len(), 2);
    // …then a late parallel stage uploads into build 1: reported, not silently dropped.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(
        store.join("stages/job/master/1/stage2.xml"),
        r#"<testsuite><testcase name="x" time="1"/></testsuite>"#,
    )
    .unwrap();
    // Written by hand, so it is in no arrivals index: the full sweep finds it, once.
    let (_, json) = aggregate(&store, &["--sink", &sink, "--full"]);
    assert_eq!(
        json["late_files"],
        serde_json::json!(["stages/job/master/1/stage2.xml"])
    );
    let (_, json) = aggregate(&store, &["--sink", &sink, "--full"]);
    assert_eq!(json["late_files"], serde_json::json!([]), "reported once");
}
