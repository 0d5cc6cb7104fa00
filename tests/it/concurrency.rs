//! Exactly once under concurrency: several `aggregate` processes over one store and destination,
//! started together, staggered, and one killed with SIGKILL while it holds a claim (a later run
//! must take its claims over); then an upgrade over a first-version ledger. The truth is counted
//! while seeding; the sinks are read back independently.

use crate::common;
use ci_test_metrics::context::Context;
use ci_test_metrics::store::Store;
use ci_test_metrics::upload::{self, Source};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Per (job, branch class): builds, tests, and the sum of test durations.
type Truth = BTreeMap<(String, String), (u64, u64, f64)>;

const JOBS: [&str; 2] = ["conc/a", "conc/b"];

/// Uploads builds `from..to` with the real upload code (result file, context.json, arrival
/// marker), each at its own minute so a sink check can tell them apart.
async fn seed(store: &Store, work: &Path, from: u64, to: u64, truth: &mut Truth) {
    let base = time::OffsetDateTime::now_utc() - time::Duration::hours(6);
    for i in from..to {
        let job = JOBS[(i % 2) as usize];
        let (branch, class) = if i % 5 == 0 {
            ("PR-7", "pr")
        } else {
            ("master", "master")
        };
        let tests = 3 + i % 4;
        let dir = work.join(i.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let mut sum = 0.0;
        let cases: String = (0..tests)
            .map(|t| {
                let secs = (t + 1) as f64 * 0.25;
                sum += secs;
                format!(r#"<testcase classname="c" name="t{t}" time="{secs}"/>"#)
            })
            .collect();
        let path = dir.join("unit.xml");
        std::fs::write(&path, format!("<testsuite name=\"s\">{cases}</testsuite>")).unwrap();
        let at = base + time::Duration::minutes(i as i64);
        let context = Context::new(job, branch, i + 1, at);
        let sources = vec![Source {
            path,
            name: "unit.xml".into(),
        }];
        upload::upload(store, context, sources, 2, false)
            .await
            .expect("upload");
        let entry = truth.entry((job.into(), class.into())).or_default();
        entry.0 += 1;
        entry.1 += tests;
        entry.2 += sum;
    }
}

fn aggregate(store: &str, sink: &str, extra: &[&str], servers: Option<(&str, &str)>) -> Child {
    let mut cmd = common::bin();
    if let Some((s3, cw)) = servers {
        cmd.env("AWS_ENDPOINT_URL_S3", s3)
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", cw);
    }
    cmd.args([
        "aggregate",
        "--settle",
        "0",
        "--lease",
        "3s",
        "--concurrency",
        "4",
    ])
    .args(["--format", "json", "--sink", sink, "--namespace"])
    .arg(namespace())
    .args(["--store", store])
    // Publish the history tables at every run, so the runs race on the parts too.
    .args(["--seal", "now"])
    .args(extra)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn namespace() -> String {
    format!("CTMConc{}", std::process::id())
}

/// Waits for every run; each must exit 0 (or be the killed one).
fn wait_all(children: Vec<Child>) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "aggregate exited {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Starts `n` runs, `apart` from each other.
fn start(n: usize, apart: Duration, run: impl Fn() -> Child) -> Vec<Child> {
    (0..n)
        .map(|_| {
            let child = run();
            std::thread::sleep(apart);
            child
        })
        .collect()
}

/// The builds a run (by its pid) is in the middle of: its claims that are neither given back nor
/// followed by a done marker (a finished build keeps its claim; the marker supersedes it).
async fn claims_held_by(store: &Store, pid: u32) -> Vec<String> {
    let owner_suffix = format!("-{pid}");
    // One listing of claims and done markers; only unfinished claims are read.
    let objects = store.list("_ci-test-metrics/dest/").await.unwrap();
    let keys: BTreeSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    let mut held = Vec::new();
    for key in keys.iter().filter(|k| k.contains("/claims/")) {
        if keys.contains(key.replace("/claims/", "/done/").as_str()) {
            continue;
        }
        let Ok(body) = store.get(key).await else {
            continue;
        };
        let Ok(claim) = serde_json::from_slice::<serde_json::Value>(&body) else {
            continue;
        };
        if claim["owner"]
            .as_str()
            .is_some_and(|o| o.ends_with(&owner_suffix))
            && claim["state"] != "released"
        {
            held.push(key.to_string());
        }
    }
    held
}

/// Kills one run with SIGKILL while it is in the middle of a build, and waits for it. Returns the
/// claims of the builds it left unfinished, which a later run must take over.
fn kill_while_claiming(
    mut child: Child,
    store: &Store,
    rt: &tokio::runtime::Handle,
) -> Vec<String> {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.block_on(claims_held_by(store, pid)).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run to be killed ended before it claimed a build"
        );
        assert!(
            Instant::now() < deadline,
            "the run to be killed claimed nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let held = rt.block_on(claims_held_by(store, pid));
    assert!(
        !held.is_empty(),
        "the kill landed between builds; nothing was left unfinished"
    );
    held
}

/// Each claim the killed run left unfinished now has another owner: a later run took it over.
async fn assert_taken_over(store: &Store, held: &[String], killed: &str) {
    for key in held {
        let claim: serde_json::Value =
            serde_json::from_slice(&store.get(key).await.unwrap()).unwrap();
        assert!(
            !claim["owner"]
                .as_str()
                .unwrap_or_default()
                .ends_with(killed),
            "{key} is still the killed run's: {claim}"
        );
    }
}

/// Builds per (job, class) in EMF lines: (Builds, Tests, TestDuration sum).
fn emf_truth(path: &Path) -> Truth {
    let mut got = Truth::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("EMF lines are JSON");
        let key = (
            v["Job"].as_str().unwrap_or_default().to_string(),
            v["BranchClass"].as_str().unwrap_or_default().to_string(),
        );
        let entry = got.entry(key).or_default();
        entry.0 += v["Builds"].as_f64().unwrap_or(0.0) as u64;
        entry.1 += v["Tests"].as_f64().unwrap_or(0.0) as u64;
        entry.2 += emf_values_sum(&v["TestDuration"]);
    }
    got
}

/// A TestDuration value in an EMF line: a number, an array of numbers, or Values/Counts.
fn emf_values_sum(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::Number(n) => n.as_f64().unwrap(),
        serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_f64()).sum(),
        serde_json::Value::Object(o) => {
            let values = o["Values"].as_array().unwrap();
            let counts = o["Counts"].as_array().unwrap();
            values
                .iter()
                .zip(counts)
                .map(|(v, c)| v.as_f64().unwrap() * c.as_f64().unwrap())
                .sum()
        }
        _ => 0.0,
    }
}

fn assert_truth(got: &Truth, want: &Truth) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (key, (builds, tests, secs)) in want {
        let (b, t, s) = got[key];
        assert_eq!((b, t), (*builds, *tests), "{key:?}: builds and tests");
        assert!(
            (s - secs).abs() < 1e-6 * secs.max(1.0),
            "{key:?}: TestDuration {s} vs {secs}"
        );
    }
}

/// Every build has exactly one `done` marker for the destination.
async fn assert_one_done_each(store: &Store, want: &Truth) {
    let listed = store.list("_ci-test-metrics/dest/").await.unwrap();
    let done: Vec<&str> = listed
        .iter()
        .map(|o| o.key.as_str())
        .filter(|k| k.contains("/done/"))
        .collect();
    let builds: u64 = want.values().map(|v| v.0).sum();
    assert_eq!(done.len() as u64, builds, "one done marker per build");
    let dests: std::collections::BTreeSet<&str> =
        done.iter().map(|k| k.split('/').nth(2).unwrap()).collect();
    assert_eq!(dests.len(), 1, "one destination: {dests:?}");
}

#[test]
fn four_runs_on_a_local_store_and_an_emf_file_publish_each_build_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let emf = dir.path().join("m.emf");
    let sink = format!("emf:{}", emf.display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime
        .block_on(Store::open(root.to_str().unwrap()))
        .unwrap();
    let mut truth = Truth::new();
    let store_url = root.to_str().unwrap().to_string();
    let run = || aggregate(&store_url, &sink, &[], None);

    // All at once on the first 100: each is its destination's first run, a full sweep.
    runtime.block_on(seed(&store, dir.path(), 0, 100, &mut truth));
    wait_all(start(4, Duration::ZERO, run));
    // Staggered on the next 50: from the arrivals index, updating one cursor.
    runtime.block_on(seed(&store, dir.path(), 100, 150, &mut truth));
    wait_all(start(4, Duration::from_millis(150), run));
    // One of four killed mid-run on the last 50, then a rerun once its leases ran out.
    runtime.block_on(seed(&store, dir.path(), 150, 200, &mut truth));
    let mut runs = start(4, Duration::ZERO, run);
    let victim = runs.remove(0);
    let killed = format!("-{}", victim.id());
    let held = kill_while_claiming(victim, &store, runtime.handle());
    wait_all(runs);
    std::thread::sleep(Duration::from_millis(3100));
    wait_all(vec![aggregate(&store_url, &sink, &["--full"], None)]);
    runtime.block_on(assert_taken_over(&store, &held, &killed));

    assert_truth(&emf_truth(&emf), &truth);
    runtime.block_on(assert_one_done_each(&store, &truth));
    // The history tables hold each build once, as DuckDB reads them.
    assert_truth(
        &crate::history::table_truth(&root.join("_ci-test-metrics/tables")),
        &truth,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn four_runs_on_seaweedfs_and_cloudwatch_publish_each_build_once() {
    let (Some(s3), Some(cw_url)) = (common::s3_endpoint(), common::cloudwatch_endpoint()) else {
        return;
    };
    common::aws_env();
    let bucket = common::unique_bucket("conc");
    common::create_bucket(&s3, &bucket).await;
    // The same value for every test that sets it, as in `common::aws_env`.
    unsafe { std::env::set_var("AWS_ENDPOINT_URL_S3", &s3) };
    let store = Store::open(&format!("s3://{bucket}")).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = format!("s3://{bucket}");
    let servers = Some((s3.as_str(), cw_url.as_str()));
    let run = || aggregate(&url, "cloudwatch", &[], servers);
    let mut truth = Truth::new();

    seed(&store, work.path(), 0, 100, &mut truth).await;
    tokio::task::block_in_place(|| wait_all(start(4, Duration::ZERO, run)));
    seed(&store, work.path(), 100, 200, &mut truth).await;
    tokio::task::block_in_place(|| {
        let mut runs = start(4, Duration::from_millis(200), run);
        let victim = runs.remove(1);
        let killed = format!("-{}", victim.id());
        let rt = tokio::runtime::Handle::current();
        let held = kill_while_claiming(victim, &store, &rt);
        wait_all(runs);
        std::thread::sleep(Duration::from_millis(3100));
        wait_all(vec![aggregate(&url, "cloudwatch", &["--full"], servers)]);
        rt.block_on(assert_taken_over(&store, &held, &killed));
    });

    let conf = ci_test_metrics::aws::loader()
        .endpoint_url(&cw_url)
        .load()
        .await;
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let mut got = Truth::new();
    for (job, class) in truth.keys() {
        let sum = |metric: &'static str| {
            let cw = cw.clone();
            let (job, class) = (job.clone(), class.clone());
            async move { metric_sum(&cw, &namespace(), &job, &class, metric).await }
        };
        got.insert(
            (job.clone(), class.clone()),
            (
                sum("Builds").await as u64,
                sum("Tests").await as u64,
                sum("TestDuration").await,
            ),
        );
    }
    assert_truth(&got, &truth);
    assert_one_done_each(&store, &truth).await;
    // The history tables, downloaded with the aws CLI and read by DuckDB: each build once.
    let tables = work.path().join("tables");
    let aws = std::env::var("CTM_TEST_AWS_CLI").expect("CTM_TEST_AWS_CLI (set by scripts/test.sh)");
    let synced = std::process::Command::new(aws)
        .args(["--endpoint-url", &s3, "s3", "sync", "--only-show-errors"])
        .arg(format!("s3://{bucket}/_ci-test-metrics/tables/"))
        .arg(&tables)
        .status()
        .unwrap();
    assert!(synced.success());
    assert_truth(&crate::history::table_truth(&tables), &truth);
}

/// The Sum of a metric for (job, class) over the seeded window, read back with the SDK.
async fn metric_sum(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    job: &str,
    class: &str,
    metric: &str,
) -> f64 {
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let now = std::time::SystemTime::now();
    let out = cw
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(metric)
        .dimensions(Dimension::builder().name("Job").value(job).build())
        .dimensions(
            Dimension::builder()
                .name("BranchClass")
                .value(class)
                .build(),
        )
        .start_time((now - Duration::from_secs(8 * 3600)).into())
        .end_time((now + Duration::from_secs(600)).into())
        .period(24 * 3600)
        .statistics(Statistic::Sum)
        .send()
        .await
        .expect("GetMetricStatistics");
    out.datapoints().iter().filter_map(|p| p.sum()).sum()
}

#[test]
fn an_upgrade_over_a_first_version_ledger_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime
        .block_on(Store::open(root.to_str().unwrap()))
        .unwrap();
    runtime.block_on(seed(&store, dir.path(), 0, 40, &mut Truth::new()));
    // The first version recorded builds 1..=20 (and wrote intents, marked complete).
    for i in 0..20u64 {
        let job = JOBS[(i % 2) as usize];
        let branch = if i % 5 == 0 { "PR-7" } else { "master" };
        let key = format!("_ci-test-metrics/ledger/done/{job}/{branch}/{}", i + 1);
        let body = r#"{"run":"old-1","at":"2026-11-30T00:00:00Z","published":true,"datums":9}"#;
        runtime
            .block_on(store.put(&key, bytes::Bytes::from_static(body.as_bytes())))
            .unwrap();
    }
    let mut rest = Truth::new();
    for i in 20..40u64 {
        let job = JOBS[(i % 2) as usize];
        let class = if i % 5 == 0 { "pr" } else { "master" };
        let tests = 3 + i % 4;
        let entry = rest.entry((job.into(), class.into())).or_default();
        entry.0 += 1;
        entry.1 += tests;
        entry.2 += (1..=tests).map(|t| t as f64 * 0.25).sum::<f64>();
    }
    let url = root.to_str().unwrap().to_string();
    // The upgraded aggregator, into two destinations: each gets only what the old one did not send.
    for name in ["a.emf", "b.emf"] {
        let emf = dir.path().join(name);
        wait_all(vec![aggregate(
            &url,
            &format!("emf:{}", emf.display()),
            &[],
            None,
        )]);
        assert_truth(&emf_truth(&emf), &rest);
        // And a second, full run sends nothing more.
        wait_all(vec![aggregate(
            &url,
            &format!("emf:{}", emf.display()),
            &["--full"],
            None,
        )]);
        assert_truth(&emf_truth(&emf), &rest);
    }
    // --republish sends a recorded build again, on purpose.
    let emf = dir.path().join("a.emf");
    let out = aggregate(
        &url,
        &format!("emf:{}", emf.display()),
        &["--republish", "conc/b/master/2"],
        None,
    )
    .wait_with_output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = ("conc/b".to_string(), "master".to_string());
    assert_eq!(emf_truth(&emf)[&key].0, rest[&key].0 + 1);
}
