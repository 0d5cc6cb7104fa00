//! Aggregation benchmark: a generated history of BUILDS builds × FILES files × TESTS tests,
//! aggregated from a local-directory store and, when `AWS_ENDPOINT_URL_S3` is set (run it under
//! `scripts/test.sh --run`), from SeaweedFS. Prints builds/s, testcases/s, peak RSS and the number
//! of publish requests. Metrics go to an EMF file in a temp directory.
//!
//!     cargo run --release --example bench_aggregate [-- BUILDS FILES TESTS]     # default 1000 5 2000
//!     scripts/test.sh --run cargo run --release --example bench_aggregate -- 200 5 2000
//!
//! Peak RSS is the process's high-water mark (VmHWM), so the local run's figure is read before
//! the S3 run starts.

#[path = "support/s3.rs"]
mod support;
use bytes::Bytes;
use ci_test_metrics::aggregate::ledger::Destination;
use ci_test_metrics::aggregate::{self, branches::BranchRules, Mode, OldBuilds, Options};
use ci_test_metrics::metrics::{encode::EncodeOptions, Sink};
use ci_test_metrics::store::Store;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;
use support::create_bucket;

fn main() {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    // Under scripts/test.sh --run, use its SeaweedFS.
    if let Ok(endpoint) = std::env::var("CTM_TEST_S3_ENDPOINT") {
        std::env::set_var("AWS_ENDPOINT_URL_S3", endpoint);
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (builds, files, tests) = (
        *args.first().unwrap_or(&1000),
        *args.get(1).unwrap_or(&5),
        *args.get(2).unwrap_or(&2000),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("store");

    let started = Instant::now();
    let bytes = generate(&root, builds, files, tests);
    println!(
        "generated {builds} builds × {files} files × {tests} tests = {} testcases, {:.0} MB, in {:.1}s",
        builds * files * tests,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    // Flush the generated files first, so their writeback does not run during the measurement.
    let _ = std::process::Command::new("sync").status();
    let local = runtime
        .block_on(Store::open(root.to_str().expect("utf-8 path")))
        .expect("local store");
    runtime.block_on(bench(
        "local directory",
        &local,
        dir.path(),
        builds * files * tests,
    ));

    if std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() {
        let bucket = format!("ctm-bench-{}", std::process::id());
        runtime.block_on(async {
            create_bucket(&bucket).await;
            let s3 = Store::open(&format!("s3://{bucket}"))
                .await
                .expect("s3 store");
            let started = Instant::now();
            copy(&root, &s3).await;
            println!(
                "uploaded to SeaweedFS in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            bench("SeaweedFS", &s3, dir.path(), builds * files * tests).await;
        });
    } else {
        println!("SeaweedFS: skipped (run under scripts/test.sh --run to include it)");
    }
}

async fn bench(what: &str, store: &Store, tmp: &Path, testcases: usize) {
    let emf = tmp.join(format!("{}.emf", what.replace(' ', "-")));
    let mut sink = Sink::open(&format!("emf:{}", emf.display()), "Bench")
        .await
        .expect("sink");
    let opts = Options {
        rules: BranchRules::new::<&str>(&[], "all").expect("rules"),
        since: None,
        settle: std::time::Duration::ZERO,
        concurrency: std::env::var("CONCURRENCY")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(8),
        dry_run: false,
        encode: EncodeOptions::default(),
        old_builds: OldBuilds::Publish,
        max_file_bytes: u64::MAX,
        run_id: "bench".into(),
        now: time::OffsetDateTime::now_utc(),
        destination: Destination::for_sink("emf:bench", "Bench", false),
        lease: std::time::Duration::from_secs(900),
        lookback: std::time::Duration::from_secs(300),
        mode: Mode::Full,
        republish: false,
        tables: Default::default(),
    };
    // A dry run first, for the number of PutMetricData requests CloudWatch would get.
    let dry = Options {
        dry_run: true,
        ..opts.clone()
    };
    let requests = aggregate::run(store, None, &dry, &())
        .await
        .expect("dry run")
        .requests;
    let started = Instant::now();
    let cpu = cpu_seconds();
    let outcome = aggregate::run(store, Some(&mut sink), &opts, &())
        .await
        .expect("aggregate");
    let secs = started.elapsed().as_secs_f64();
    let (user, sys) = cpu_seconds();
    let (user, sys) = (user - cpu.0, sys - cpu.1);
    let parsed: usize = outcome.builds.iter().map(|b| b.tests).sum();
    assert_eq!(parsed, testcases, "every testcase was parsed");
    println!(
        "{what}: {} builds in {secs:.2}s = {:.0} builds/s, {:.2} M testcases/s; CPU {user:.2}s user + {sys:.2}s system; {} datums = {requests} PutMetricData requests for CloudWatch ({} EMF lines written); failures {}; peak RSS {} MB",
        outcome.builds.len(),
        outcome.builds.len() as f64 / secs,
        parsed as f64 / secs / 1e6,
        outcome.datums,
        outcome.requests,
        outcome.failures.len(),
        peak_rss_mb()
    );
}

/// A pytest-like history: recent timestamps, one master branch per job, ten jobs.
fn generate(root: &Path, builds: usize, files: usize, tests: usize) -> usize {
    let now = time::OffsetDateTime::now_utc();
    let mut total = 0;
    for b in 0..builds {
        let job = format!("bench/job-{}", b % 10);
        let dir = root
            .join(&job)
            .join("master")
            .join((b / 10 + 1).to_string());
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..files {
            let mut xml = String::with_capacity(tests * 140);
            let _ = writeln!(xml, "<?xml version=\"1.0\" encoding=\"utf-8\"?><testsuites><testsuite name=\"pytest\" tests=\"{tests}\">");
            for t in 0..tests {
                let time = 0.001 * ((t * 7919 + b * 31 + f) % 5000) as f64;
                let _ = writeln!(
                    xml,
                    r#"<testcase classname="tests.unit.test_module_{f}" name="test_case_{t}[param]" time="{time:.3}" />"#
                );
            }
            xml.push_str("</testsuite></testsuites>\n");
            total += xml.len();
            std::fs::write(dir.join(format!("results-{f}.xml")), xml).expect("write");
        }
        let at = (now - time::Duration::hours(1))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time");
        let context = format!(
            r#"{{"schema_version":1,"job":"{job}","branch":"master","build":{},"timestamp":"{at}"}}"#,
            b / 10 + 1
        );
        std::fs::write(dir.join("context.json"), context).expect("write");
    }
    total
}

/// Copies a local store into another store, a few objects at a time.
async fn copy(root: &Path, to: &Store) {
    use futures::StreamExt;
    let from = Store::open(root.to_str().expect("utf-8"))
        .await
        .expect("local");
    // The builds only: not the ledger and summaries the local run wrote.
    let keys: Vec<_> = from
        .list("")
        .await
        .expect("list")
        .into_iter()
        .filter(|o| !o.key.starts_with(ci_test_metrics::layout::RESERVED_PREFIX))
        .collect();
    futures::stream::iter(keys)
        .for_each_concurrent(16, |o| {
            let (from, to) = (&from, to);
            async move {
                let body: Bytes = from.get(&o.key).await.expect("get");
                to.put(&o.key, body).await.expect("put");
            }
        })
        .await;
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// This process's CPU time so far, user and system, in seconds (from `/proc/self/stat`).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime, fields 14 and 15 of the line (counted from 1), in ticks of 1/100 s.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) / 100.0, ticks(12) / 100.0)
}
