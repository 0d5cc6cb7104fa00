//! The event-driven edge end to end, in ministack: `examples/lambda/deploy.sh` deploys
//! `template.yaml` (bucket with its notification, queues, function, role, mapping, log group);
//! `ci-test-metrics upload` writes builds into ministack's own S3 (SeaweedFS has no
//! notifications); S3 notifies SQS; the event source mapping invokes the `bootstrap` binary; the
//! EMF lines are read back from the function's log group (ministack does not turn them into
//! metrics). A scheduled `aggregate` runs against the same bucket and destination at the same time.

use crate::common;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the Lambda test needs from `scripts/test.sh`: ministack's endpoint, the function's zip
/// and the aws CLI. Skipped without them, except under CI.
struct Env {
    endpoint: String,
    zip: String,
    aws: String,
}

fn env() -> Option<Env> {
    let get = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    match (
        get("CTM_TEST_MINISTACK_ENDPOINT"),
        get("CTM_TEST_LAMBDA_ZIP"),
        get("CTM_TEST_AWS_CLI"),
    ) {
        (Some(endpoint), Some(zip), Some(aws)) => {
            assert!(
                endpoint.starts_with("http://127.0.0.1:"),
                "{endpoint}: tests only talk to 127.0.0.1"
            );
            Some(Env { endpoint, zip, aws })
        }
        _ if std::env::var_os("CI").is_some() => panic!(
            "CTM_TEST_MINISTACK_ENDPOINT, CTM_TEST_LAMBDA_ZIP and CTM_TEST_AWS_CLI must be set: \
             run the tests with scripts/test.sh"
        ),
        _ => {
            eprintln!(
                "skipped: run scripts/test.sh to start ministack and build the function's zip"
            );
            None
        }
    }
}

/// A command with the tests' AWS hygiene, pointed at ministack.
fn with_ministack(cmd: &mut Command, env: &Env) {
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "ctm-admin")
        .env("AWS_SECRET_ACCESS_KEY", "ctm-admin-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &env.endpoint)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_ENDPOINT_URL_CLOUDWATCH");
}

/// Runs the aws CLI against ministack; its stdout as JSON (Null when empty).
fn aws(env: &Env, args: &[&str]) -> Value {
    let mut cmd = Command::new(&env.aws);
    with_ministack(&mut cmd, env);
    let out = cmd
        .args(["--endpoint-url", &env.endpoint, "--output", "json"])
        .args(args)
        .output()
        .expect("run the aws CLI");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("aws CLI JSON")
    }
}

/// One build the test uploads: its id, its stages' result files, and what it holds.
struct Build {
    job: &'static str,
    branch: &'static str,
    number: u64,
    /// RFC 3339 build time: unique per build, so (Job, Timestamp) names one build in EMF.
    timestamp: String,
    millis: i64,
    /// One directory per stage; each stage uploads its files, then context.json again.
    stages: Vec<PathBuf>,
    durations: Vec<f64>,
    broken: bool,
}

const JOBS: [&str; 3] = ["lam/unit-cpu", "lam/unit gpu", "lam/windows"];
const BRANCHES: [&str; 4] = ["master", "PR-12", "feature/x-y", "release-1.x"];

/// 100 builds: every 9th written by two stages a second apart, build 50 with a broken file only.
fn make_builds(dir: &Path) -> Vec<Build> {
    let now = time::OffsetDateTime::now_utc()
        .replace_millisecond(0)
        .unwrap();
    (0..100u64)
        .map(|i| {
            let at = now - time::Duration::minutes(3 * i as i64 + 1);
            let broken = i == 50;
            let n_stages = if i % 9 == 0 { 2 } else { 1 };
            let mut durations = Vec::new();
            let stages = (0..n_stages)
                .map(|s| {
                    let d = dir.join(format!("b{i}-s{s}"));
                    std::fs::create_dir_all(&d).unwrap();
                    if broken {
                        std::fs::write(d.join("broken.xml"), "\u{0}\u{1}\u{2}PK\u{3}\u{4}")
                            .unwrap();
                    } else {
                        let cases: String = (0..(3 + (i % 5)))
                            .map(|k| {
                                // 0.25 … 4.5 s: 3 significant digits at most, which the
                                // encoder's rounding keeps as they are.
                                let t = 0.25 * ((i % 7) + k + 1) as f64 + s as f64;
                                durations.push(t);
                                format!(r#"<testcase classname="c{s}" name="t{k}" time="{t}"/>"#)
                            })
                            .collect();
                        let suite = format!(r#"<testsuite name="s{s}">{cases}</testsuite>"#);
                        std::fs::write(d.join(format!("stage{s}.xml")), suite).unwrap();
                    }
                    d
                })
                .collect();
            Build {
                job: JOBS[(i % 3) as usize],
                branch: BRANCHES[(i % 4) as usize],
                number: 1000 + i,
                timestamp: at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap(),
                millis: (at.unix_timestamp_nanos() / 1_000_000) as i64,
                stages,
                durations,
                broken,
            }
        })
        .collect()
}

fn upload(env: &Env, store: &str, build: &Build, stage: &Path) {
    let mut cmd = common::bin();
    with_ministack(&mut cmd, env);
    let out = cmd
        .args([
            "upload",
            "--store",
            store,
            "--job",
            build.job,
            "--branch",
            build.branch,
        ])
        .args([
            "--build",
            &build.number.to_string(),
            "--timestamp",
            &build.timestamp,
        ])
        .args(["--commit", "abc123", "--user", "alice"])
        .arg("--working-dir")
        .arg(stage)
        .arg("*.xml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upload {}: {}",
        build.number,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `Builds` line: which build (job, timestamp), and when it was logged (ms, ministack's clock).
#[derive(Debug, Clone)]
struct Line {
    job: String,
    timestamp: i64,
    logged: i64,
    doc: Value,
}

/// Every event in the function's log group: (timestamp in ms, message).
fn log_events(env: &Env, group: &str) -> Vec<(i64, String)> {
    let out = aws(
        env,
        &["logs", "filter-log-events", "--log-group-name", group],
    );
    out["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["timestamp"].as_i64().unwrap_or(0),
                e["message"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Every EMF document in the function's log group.
fn lambda_emf(env: &Env, group: &str) -> Vec<Line> {
    log_events(env, group)
        .into_iter()
        .filter_map(|(logged, message)| {
            let doc: Value = serde_json::from_str(message.trim()).ok()?;
            doc.get("_aws")?;
            Some(Line {
                job: doc["Job"].as_str()?.to_string(),
                timestamp: doc["_aws"]["Timestamp"].as_i64()?,
                logged,
                doc,
            })
        })
        .collect()
}

/// The function's other log lines.
fn lambda_log_text(env: &Env, group: &str) -> Vec<String> {
    log_events(env, group)
        .into_iter()
        .map(|(_, message)| message)
        .filter(|m| !m.trim_start().starts_with('{'))
        .collect()
}

/// Every EMF document in the scheduled aggregate's file.
fn file_emf(path: &Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let doc: Value = serde_json::from_str(l).ok()?;
            Some(Line {
                job: doc["Job"].as_str()?.to_string(),
                timestamp: doc["_aws"]["Timestamp"].as_i64()?,
                logged: 0,
                doc,
            })
        })
        .collect()
}

/// `Builds` per (job, build time), over both sources.
fn builds_seen(lines: &[&Line]) -> BTreeMap<(String, i64), f64> {
    let mut seen = BTreeMap::new();
    for l in lines {
        if let Some(n) = l.doc["Builds"].as_f64() {
            *seen.entry((l.job.clone(), l.timestamp)).or_insert(0.0) += n;
        }
    }
    seen
}

/// SQS through the SDK: the queues are polled every second or two, and each aws CLI call costs
/// about a second of CPU on a machine the other tests share.
struct Sqs {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_sqs::Client,
}

impl Sqs {
    fn new(env: &Env) -> Sqs {
        common::aws_env();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conf = rt.block_on(
            ci_test_metrics::aws::loader()
                .endpoint_url(&env.endpoint)
                .load(),
        );
        Sqs {
            rt,
            client: aws_sdk_sqs::Client::new(&conf),
        }
    }

    /// Messages in the queue, visible or in flight.
    fn depth(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .rt
            .block_on(
                self.client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(A::All)
                    .send(),
            )
            .unwrap_or_else(|e| {
                panic!(
                    "GetQueueAttributes {url}: {}",
                    ci_test_metrics::aws::describe(&e)
                )
            });
        let attrs = out.attributes.unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|k| {
            attrs
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }
}

fn millis_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn every_uploaded_build_is_counted_once_through_s3_sqs_and_lambda() {
    let Some(env) = env() else { return };
    let env = Arc::new(env);
    let work = tempfile::tempdir().unwrap();
    let bucket = common::unique_bucket("lam");
    let stack = format!("ctm-it-{}", std::process::id());
    let namespace = format!("CTMLambda{}", std::process::id());
    let settle = 4;

    // 1. Deploy the template with deploy.sh, as a user would.
    let started = Instant::now();
    let mut deploy = Command::new("bash");
    with_ministack(&mut deploy, &env);
    let out = deploy
        .arg(common::repo().join("examples/lambda/deploy.sh"))
        .args([&stack, &bucket])
        .args([
            &format!("SettleSeconds={settle}"),
            "Prefix=ci/",
            "MaximumConcurrency=4",
            &format!("Namespace={namespace}"),
        ])
        .env("CTM_LAMBDA_ZIP", &env.zip)
        .env("AWS", &env.aws)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for key in [
        "FunctionName",
        "QueueUrl",
        "LogGroupName",
        "DeadLetterQueueUrl",
    ] {
        assert!(
            outputs.contains_key(key),
            "deploy.sh printed no {key}: {outputs:?}"
        );
    }
    let group = outputs["LogGroupName"].clone();
    let queue = outputs["QueueUrl"].clone();
    eprintln!(
        "deployed {stack} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store = format!("s3://{bucket}/ci/");

    // 2. A scheduled aggregate for the same destination (the function's stdout EMF goes to
    //    CloudWatch, so its ledger is cloudwatch-NAMESPACE), every 2 s while the uploads run.
    let emf_file = work.path().join("scheduled.emf");
    let stop = Arc::new(AtomicBool::new(false));
    let schedule = {
        let (env, stop, store, emf_file, namespace) = (
            env.clone(),
            stop.clone(),
            store.clone(),
            emf_file.clone(),
            namespace.clone(),
        );
        std::thread::spawn(move || {
            let mut runs = 0;
            loop {
                let mut cmd = common::bin();
                with_ministack(&mut cmd, &env);
                let out = cmd
                    .args(["aggregate", "--store", &store, "--namespace", &namespace])
                    .arg("--sink")
                    .arg(format!("emf:{}", emf_file.display()))
                    .args(["--destination", &format!("cloudwatch-{namespace}")])
                    .args(["--settle", &format!("{settle}s"), "--format", "json"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "scheduled aggregate: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                runs += 1;
                if stop.load(Ordering::Relaxed) {
                    return runs;
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        })
    };

    // 3. Upload 100 builds, four at a time; two-stage builds upload their second stage 1 s later.
    let builds = Arc::new(make_builds(work.path()));
    let last_upload: Arc<std::sync::Mutex<BTreeMap<(String, i64), i64>>> = Default::default();
    let upload_started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (env, builds, store, last_upload) = (
                env.clone(),
                builds.clone(),
                store.clone(),
                last_upload.clone(),
            );
            std::thread::spawn(move || {
                for b in builds.iter().skip(w).step_by(4) {
                    for (s, stage) in b.stages.iter().enumerate() {
                        if s > 0 {
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        upload(&env, &store, b, stage);
                    }
                    last_upload
                        .lock()
                        .unwrap()
                        .insert((b.job.to_string(), b.millis), millis_now());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    eprintln!(
        "uploaded {} builds ({} stages) in {:.1} s",
        builds.len(),
        builds.iter().map(|b| b.stages.len()).sum::<usize>(),
        upload_started.elapsed().as_secs_f64()
    );

    // 4. Wait until every build is counted somewhere and the queue is empty.
    let expected: BTreeSet<(String, i64)> = builds
        .iter()
        .map(|b| (b.job.to_string(), b.millis))
        .collect();
    // The queue is polled through the SDK; the logs (aws CLI) are read once it is empty.
    let sqs = Sqs::new(&env);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let missing = if sqs.depth(&queue) == 0 {
            let lambda = lambda_emf(&env, &group);
            let file = file_emf(&emf_file);
            let all: Vec<&Line> = lambda.iter().chain(file.iter()).collect();
            let seen = builds_seen(&all);
            expected.iter().filter(|k| !seen.contains_key(*k)).count()
        } else {
            usize::MAX
        };
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "builds never counted (or messages left in the queue); the function's log:\n{}",
            lambda_log_text(&env, &group).join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    stop.store(true, Ordering::Relaxed);
    let runs = schedule.join().unwrap();

    // 5. A message delivered again (SQS is at-least-once) publishes nothing twice.
    // Build 1010: a space in its job (`+` in the key) and a `/` in its branch (`%252F`).
    let again = builds.iter().find(|b| b.number == 1010).unwrap();
    let key = format!(
        "ci/{}/{}/{}/context.json",
        again.job.replace(' ', "+"),
        again.branch.replace('/', "%252F"),
        again.number
    );
    let body = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "EXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "redelivery",
        "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": format!("arn:aws:s3:::{bucket}")},
        "object": {"key": key, "size": 1}}}]});
    let again_id = format!(
        "{}/{}/{}",
        again.job,
        again.branch.replace('/', "%2F"),
        again.number
    );
    let answered = |text: &[String]| {
        text.iter()
            .filter(|l| {
                l.contains(&format!("build={again_id}"))
                    && l.contains("already done for this destination")
            })
            .count()
    };
    let before = answered(&lambda_log_text(&env, &group));
    aws(
        &env,
        &[
            "sqs",
            "send-message",
            "--queue-url",
            &queue,
            "--message-body",
            &body.to_string(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if sqs.depth(&queue) == 0 && answered(&lambda_log_text(&env, &group)) > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the redelivered message for {again_id} was not answered; log:\n{}",
            lambda_log_text(&env, &group).join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // Let anything still in flight land before counting.
    std::thread::sleep(Duration::from_secs(settle + 2));

    // 6. Every build counted exactly once over the function and the scheduled run.
    let lambda = lambda_emf(&env, &group);
    let file = file_emf(&emf_file);
    let all: Vec<&Line> = lambda.iter().chain(file.iter()).collect();
    let seen = builds_seen(&all);
    let wrong: Vec<_> = seen
        .iter()
        .filter(|(k, n)| !expected.contains(*k) || **n != 1.0)
        .collect();
    assert!(
        wrong.is_empty(),
        "builds not counted exactly once: {wrong:?}"
    );
    assert_eq!(seen.len(), expected.len());
    let by_lambda = builds_seen(&lambda.iter().collect::<Vec<_>>()).len();
    let by_schedule = builds_seen(&file.iter().collect::<Vec<_>>()).len();
    assert!(by_lambda > 0, "the function published nothing");

    // TestDuration and Tests per job equal what was uploaded, both stages of each build included.
    for job in JOBS {
        let want: Vec<f64> = builds
            .iter()
            .filter(|b| b.job == job)
            .flat_map(|b| b.durations.clone())
            .collect();
        let lines: Vec<&&Line> = all.iter().filter(|l| l.job == job).collect();
        let sum: f64 = lines
            .iter()
            .filter_map(|l| l.doc["TestDuration"]["Sum"].as_f64())
            .sum();
        let count: f64 = lines
            .iter()
            .filter_map(|l| l.doc["TestDuration"]["Count"].as_f64())
            .sum();
        let tests: f64 = lines.iter().filter_map(|l| l.doc["Tests"].as_f64()).sum();
        let want_sum: f64 = want.iter().sum();
        assert!(
            (sum - want_sum).abs() < 1e-6,
            "{job}: TestDuration sum {sum}, uploaded {want_sum}"
        );
        assert_eq!(count, want.len() as f64, "{job}: TestDuration samples");
        assert_eq!(tests, want.len() as f64, "{job}: Tests");
    }

    // The broken build: counted, with ParseErrors 1, and recorded with its reason.
    let broken = builds.iter().find(|b| b.broken).unwrap();
    let parse_errors: f64 = all
        .iter()
        .filter(|l| l.job == broken.job && l.timestamp == broken.millis)
        .filter_map(|l| l.doc["ParseErrors"].as_f64())
        .sum();
    assert_eq!(parse_errors, 1.0, "the broken build's ParseErrors");
    let broken_id = format!(
        "{}/{}/{}",
        broken.job,
        broken.branch.replace('/', "%2F"),
        broken.number
    );
    let done_prefix = format!("ci/_ci-test-metrics/dest/cloudwatch-{namespace}/done/");
    let done_key = format!("{done_prefix}{broken_id}");
    let marker = work.path().join("done.json");
    aws(
        &env,
        &[
            "s3api",
            "get-object",
            "--bucket",
            &bucket,
            "--key",
            &done_key,
            marker.to_str().unwrap(),
        ],
    );
    let marker: Value = serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    let problems = marker["problems"].to_string();
    assert!(
        problems.contains("broken.xml"),
        "the done marker records why: {marker}"
    );

    // One done marker per build for the destination, and nothing in the dead-letter queue.
    let listed = aws(
        &env,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            &bucket,
            "--prefix",
            &done_prefix,
        ],
    );
    let markers = listed["Contents"].as_array().map_or(0, |c| c.len());
    assert_eq!(markers, builds.len(), "done markers");
    assert_eq!(sqs.depth(&outputs["DeadLetterQueueUrl"]), 0, "dead letters");

    // Lag: last upload of a build → its Builds line in the function's log (not asserted).
    let uploads = last_upload.lock().unwrap();
    let mut lags: Vec<f64> = lambda
        .iter()
        .filter(|l| l.doc["Builds"].is_number())
        .filter_map(|l| {
            uploads
                .get(&(l.job.clone(), l.timestamp))
                .map(|u| (l.logged - u) as f64 / 1000.0)
        })
        .collect();
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick = |q: f64| {
        lags.get(((lags.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    // Straight to stderr, past the test harness's capture, so it shows for a passing test too.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "lambda end to end: counted once each: {} builds, {by_lambda} by the function, \
         {by_schedule} by the scheduled aggregate ({runs} runs); lag last upload → Builds line \
         (settle {settle} s): min {:.1} s, median {:.1} s, p90 {:.1} s, max {:.1} s",
        seen.len(),
        pick(0.0),
        pick(0.5),
        pick(0.9),
        pick(1.0)
    );
}
