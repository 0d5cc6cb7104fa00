//! Shared test helpers: the binary, the local servers started by `scripts/test.sh`, safe AWS env.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built `ci-test-metrics` binary, with network hygiene set: no instance-metadata probe,
/// static test credentials, and no endpoint from the caller's environment.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ci-test-metrics"));
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "ctm-admin")
        .env("AWS_SECRET_ACCESS_KEY", "ctm-admin-secret")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_ENDPOINT_URL_CLOUDWATCH")
        .env_remove("MXNET_CI_UNITTEST_ARTIFACT_BUCKET")
        .env_remove("CI_TEST_METRICS_STORE")
        .env("NO_COLOR", "1");
    // Run on a Jenkins agent, the tests must not pick up that build's identity.
    for var in [
        "JOB_NAME",
        "BRANCH_NAME",
        "BUILD_NUMBER",
        "BUILD_URL",
        "NODE_NAME",
        "GIT_COMMIT",
        "GIT_BRANCH",
        "GIT_URL",
        "CHANGE_ID",
        "CHANGE_BRANCH",
        "CHANGE_TARGET",
        "CHANGE_AUTHOR",
        "CHANGE_AUTHOR_DISPLAY_NAME",
        "CHANGE_AUTHOR_EMAIL",
        // Nor another CI's: none is detected unless a test says so.
        "JENKINS_URL",
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
        "GITLAB_CI",
        "BUILDKITE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs the command and logs its exit code, stdout and stderr (shown when a test fails).
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run the binary");
    eprintln!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sets the same hygiene for SDK clients built inside the test process.
pub fn aws_env() {
    // Tests run in threads; these values are the same for every test, so concurrent sets agree.
    unsafe {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", "ctm-admin");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "ctm-admin-secret");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
}

/// A local server's endpoint from `scripts/test.sh`. Without it the test is skipped with a note,
/// except under CI (`CI` set), where a missing server fails the test.
fn endpoint(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if url.starts_with("http://127.0.0.1:") => Some(url),
        Ok(url) => panic!("{var}={url}: tests only talk to 127.0.0.1"),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: run the tests with scripts/test.sh, which starts {what}")
        }
        Err(_) => {
            eprintln!("skipped: {var} is not set (run scripts/test.sh to start {what})");
            None
        }
    }
}

/// A tool of the test virtualenv (`$CTM_TEST_VENV/bin/NAME`, set by `scripts/test.sh`). Without
/// it the test is skipped with a note, except under CI, where it fails.
pub fn venv_tool(name: &str) -> Option<PathBuf> {
    match std::env::var_os("CTM_TEST_VENV") {
        Some(venv) => {
            let tool = PathBuf::from(venv).join("bin").join(name);
            assert!(
                tool.is_file(),
                "{} is missing: scripts/test.sh installs it from scripts/requirements.txt",
                tool.display()
            );
            Some(tool)
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("CTM_TEST_VENV is not set: run the tests with scripts/test.sh, which installs {name}")
        }
        None => {
            eprintln!("skipped: CTM_TEST_VENV is not set (run scripts/test.sh to install {name})");
            None
        }
    }
}

/// SeaweedFS's S3 endpoint.
pub fn s3_endpoint() -> Option<String> {
    endpoint("CTM_TEST_S3_ENDPOINT", "SeaweedFS")
}

/// ministack's CloudWatch endpoint.
pub fn cloudwatch_endpoint() -> Option<String> {
    endpoint("CTM_TEST_CLOUDWATCH_ENDPOINT", "ministack")
}

/// A fresh, unique bucket name for one test.
pub fn unique_bucket(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 1_000_000_000;
    format!(
        "ctm-{}-{}-{}-{}",
        test.replace('_', "-"),
        std::process::id(),
        t,
        n
    )
}

/// Creates a bucket with the admin identity through the SDK.
pub async fn create_bucket(endpoint: &str, bucket: &str) {
    aws_env();
    let conf = ci_test_metrics::aws::loader()
        .endpoint_url(endpoint)
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared JUnit corpus beside the repository, if present.
pub fn corpus() -> PathBuf {
    repo().join("../shared/corpus/junit")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the shipped sample store, without any ledger.
pub fn sample_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    copy_dir(&repo().join("examples/sample-store"), &store);
    let _ = std::fs::remove_dir_all(store.join("_ci-test-metrics"));
    (dir, store)
}

/// Runs `aggregate --format json --settle 0` on a local store; its output and JSON report.
pub fn aggregate(store: &Path, extra: &[&str]) -> (Output, Value) {
    let out = bin()
        .args(["aggregate", "--format", "json", "--settle", "0", "--store"])
        .arg(store)
        .args(extra)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "aggregate printed no JSON ({e}); status {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}
