//! Lambda benchmark, in ministack: builds per second through the whole event path (S3
//! notification → SQS → event source mapping → `bootstrap` → done marker) at concurrency 1 and 4,
//! and the peak RSS of the function's process for one build of FILES × TESTS tests.
//!
//!     scripts/test.sh --run cargo run --release --example bench_lambda [-- BUILDS FILES TESTS BIG_TESTS]
//!     # default 40 builds × 5 files × 200 tests; the RSS build is 5 files × 2,000 tests
//!
//! The function is deployed with `examples/lambda/deploy.sh` from `CTM_LAMBDA_ZIP` (default: the
//! release zip `scripts/package-lambda.sh` builds; `scripts/test.sh` exports a debug one as
//! `CTM_TEST_LAMBDA_ZIP`, which this uses only when asked to with `CTM_LAMBDA_ZIP`).
//!
//! - Throughput: the event source mapping is disabled, BUILDS builds are uploaded (their
//!   notifications wait in the queue), the mapping is enabled, and the time until every build has
//!   its `done` marker is measured. Concurrency 4 is `MaximumConcurrency=4`; concurrency 1 is
//!   `MaximumConcurrency=2` (the least SQS allows) with the function's reserved concurrency set to
//!   1, which ministack also respects.
//! - Peak RSS: VmHWM of the function's `bootstrap` process (found by its
//!   `AWS_LAMBDA_FUNCTION_NAME`) in a fresh stack, after its first invocation (S3's test event) and
//!   after the big build.

use ci_test_metrics::context::Context;
use ci_test_metrics::store::Store;
use ci_test_metrics::upload;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Env {
    endpoint: String,
    aws: String,
    zip: String,
    repo: PathBuf,
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let arg = |i: usize, d: usize| *args.get(i).unwrap_or(&d);
    let (builds, files, tests, big) = (arg(0, 40), arg(1, 5), arg(2, 200), arg(3, 2000));
    let Ok(endpoint) = std::env::var("CTM_TEST_MINISTACK_ENDPOINT") else {
        eprintln!("CTM_TEST_MINISTACK_ENDPOINT is not set: run it under scripts/test.sh --run");
        std::process::exit(2);
    };
    assert!(endpoint.starts_with("http://127.0.0.1:"), "only 127.0.0.1");
    // Network hygiene, and the library's S3 client talks to ministack.
    for (k, v) in [
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ACCESS_KEY_ID", "ctm-admin"),
        ("AWS_SECRET_ACCESS_KEY", "ctm-admin-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ] {
        std::env::set_var(k, v);
    }
    std::env::remove_var("AWS_ENDPOINT_URL_S3");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let zip = std::env::var("CTM_LAMBDA_ZIP").unwrap_or_else(|_| {
        let out = Command::new(repo.join("scripts/package-lambda.sh"))
            .output()
            .expect("scripts/package-lambda.sh");
        assert!(out.status.success(), "package-lambda.sh failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    });
    let env = Env {
        endpoint,
        aws: std::env::var("CTM_TEST_AWS_CLI").unwrap_or_else(|_| "aws".into()),
        zip,
        repo,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let work = tempfile::tempdir().expect("temp dir");
    println!("function zip: {}", env.zip);

    let mut rows = Vec::new();
    for (label, max, reserved) in [("1", 2, true), ("4", 4, false)] {
        let (secs, n) = runtime.block_on(throughput(
            &env,
            work.path(),
            label,
            max,
            reserved,
            builds,
            files,
            tests,
        ));
        rows.push((label, n, secs));
    }
    let (baseline, peak, took) = runtime.block_on(peak_rss(&env, work.path(), files, big));

    println!();
    println!("| concurrency | builds ({files} files × {tests} tests) | seconds | builds/s |");
    println!("|---|---|---|---|");
    for (label, n, secs) in &rows {
        println!("| {label} | {n} | {secs:.1} | {:.2} |", *n as f64 / secs);
    }
    println!();
    println!("| peak RSS of the function's process | MB |");
    println!("|---|---|");
    println!(
        "| after init and S3's test event | {:.1} |",
        baseline as f64 / 1024.0
    );
    println!(
        "| after one build of {files} × {big} tests (done {:.1} s after its upload) | {:.1} |",
        took,
        peak as f64 / 1024.0
    );
}

fn aws(env: &Env, args: &[&str]) -> serde_json::Value {
    let out = Command::new(&env.aws)
        .args(["--endpoint-url", &env.endpoint, "--output", "json"])
        .args(args)
        .output()
        .expect("aws CLI");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Deploys a stack; returns its outputs.
fn deploy(env: &Env, stack: &str, bucket: &str, extra: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new("bash")
        .arg(env.repo.join("examples/lambda/deploy.sh"))
        .args([stack, bucket, "SettleSeconds=0", "Namespace=CTMBench"])
        .args(extra)
        .env("CTM_LAMBDA_ZIP", &env.zip)
        .env("AWS", &env.aws)
        .output()
        .expect("deploy.sh");
    assert!(
        out.status.success(),
        "deploy.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// Writes one build's result files into a directory.
fn write_build(dir: &Path, files: usize, tests: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..files {
        let mut xml = format!(r#"<testsuite name="s{f}" tests="{tests}">"#);
        for t in 0..tests {
            xml.push_str(&format!(
                r#"<testcase classname="pkg.mod{f}.Class{}" name="test_{t}" time="{}.{:03}"/>"#,
                t % 50,
                t % 3,
                (t * 37) % 1000
            ));
        }
        xml.push_str("</testsuite>");
        std::fs::write(dir.join(format!("unit_{f}.xml")), xml).unwrap();
    }
}

async fn upload_build(store: &Store, dir: &Path, job: &str, n: u64) {
    let context = Context::new(job, "master", n, time::OffsetDateTime::now_utc());
    let sources = upload::find_files(dir, &["*.xml".to_string()]).expect("files");
    upload::upload(store, context, sources, 8, false)
        .await
        .expect("upload");
}

async fn done_count(store: &Store) -> usize {
    store
        .list("_ci-test-metrics/dest/cloudwatch-CTMBench/done/")
        .await
        .map(|l| l.len())
        .unwrap_or(0)
}

fn log_contains(env: &Env, group: &str, needle: &str) -> bool {
    aws(
        env,
        &["logs", "filter-log-events", "--log-group-name", group],
    )["events"]
        .as_array()
        .is_some_and(|e| {
            e.iter()
                .any(|e| e["message"].as_str().is_some_and(|m| m.contains(needle)))
        })
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[allow(clippy::too_many_arguments)]
async fn throughput(
    env: &Env,
    work: &Path,
    label: &str,
    max: usize,
    reserved: bool,
    builds: usize,
    files: usize,
    tests: usize,
) -> (f64, usize) {
    let stack = format!("bench-lam-{}-c{label}", std::process::id());
    let bucket = format!("bench-lam-{}-c{label}", std::process::id());
    let out = deploy(
        env,
        &stack,
        &bucket,
        &[&format!("MaximumConcurrency={max}")],
    );
    let function = &out["FunctionName"];
    let group = &out["LogGroupName"];
    if reserved {
        aws(
            env,
            &[
                "lambda",
                "put-function-concurrency",
                "--function-name",
                function,
                "--reserved-concurrent-executions",
                "1",
            ],
        );
    }
    // The first invocation (S3's test event) starts an environment; then stop the mapping.
    wait_for("the test event", Duration::from_secs(60), || {
        log_contains(env, group, "s3:TestEvent acknowledged")
    });
    let uuid = aws(
        env,
        &[
            "lambda",
            "list-event-source-mappings",
            "--function-name",
            function,
        ],
    )["EventSourceMappings"][0]["UUID"]
        .as_str()
        .expect("mapping")
        .to_string();
    set_mapping(env, &uuid, false);

    let dir = work.join(format!("c{label}"));
    write_build(&dir, files, tests);
    let store = Store::open(&format!("s3://{bucket}")).await.expect("store");
    futures::future::join_all(
        (0..builds).map(|n| upload_build(&store, &dir, "bench/unit", n as u64 + 1)),
    )
    .await;

    let started = Instant::now();
    set_mapping(env, &uuid, true);
    let deadline = Instant::now() + Duration::from_secs(600);
    while done_count(&store).await < builds {
        assert!(
            Instant::now() < deadline,
            "concurrency {label}: builds not done in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("concurrency {label}: {builds} builds in {secs:.1} s");
    (secs, builds)
}

/// Enables or disables an event source mapping.
fn set_mapping(env: &Env, uuid: &str, enabled: bool) {
    let flag = if enabled { "--enabled" } else { "--no-enabled" };
    aws(
        env,
        &[
            "lambda",
            "update-event-source-mapping",
            "--uuid",
            uuid,
            flag,
        ],
    );
}

/// VmHWM (kB) of the process running `function`.
fn vm_hwm(function: &str) -> Option<u64> {
    let needle = format!("AWS_LAMBDA_FUNCTION_NAME={function}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let found = environ.split(|b| *b == 0).any(|v| v == needle.as_bytes());
            if !found {
                return None;
            }
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
}

async fn peak_rss(env: &Env, work: &Path, files: usize, tests: usize) -> (u64, u64, f64) {
    let stack = format!("bench-lam-{}-rss", std::process::id());
    let bucket = stack.clone();
    let out = deploy(env, &stack, &bucket, &[]);
    let function = out["FunctionName"].clone();
    let group = &out["LogGroupName"];
    wait_for("the test event", Duration::from_secs(60), || {
        log_contains(env, group, "s3:TestEvent acknowledged")
    });
    let baseline = vm_hwm(&function).expect("the function's process");
    let dir = work.join("big");
    write_build(&dir, files, tests);
    let store = Store::open(&format!("s3://{bucket}")).await.expect("store");
    let started = Instant::now();
    upload_build(&store, &dir, "bench/big", 1).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while done_count(&store).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the big build was not done in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let peak = vm_hwm(&function).expect("the function's process");
    (baseline, peak, took)
}
