//! Integration tests: dashboards and alarms. Jobs are published through the CloudWatch sink to
//! ministack, discovered with `--discover`, deployed, read back with GetDashboard (identical
//! body, valid by our own validator since ministack accepts anything) and redeployed (nothing
//! changes); alarms are deployed twice and read back with DescribeAlarms. Offline tests cover
//! rendering hundreds of jobs and exit codes.

use crate::common;
use crate::metrics::{build, recent, sdk_config, unique_namespace};
use ci_test_metrics::dashboard::validate::{validate_json, MAX_METRICS, MAX_WIDGETS};
use ci_test_metrics::metrics::cloudwatch::CloudWatchSink;
use ci_test_metrics::metrics::encode::{encode_build, EncodeOptions};
use std::process::Output;

fn run(args: &[&str], endpoint: Option<&str>) -> Output {
    let mut cmd = common::bin();
    cmd.args(args);
    if let Some(e) = endpoint {
        cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", e);
    }
    cmd.output().expect("run ci-test-metrics")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

/// Publishes one build for each (job, class) so ListMetrics finds them.
async fn publish_jobs(endpoint: &str, ns: &str, jobs: &[(&str, &str)]) {
    let conf = sdk_config(endpoint).await;
    let mut sink = CloudWatchSink::from_conf(&conf, ns);
    let mut datums = Vec::new();
    for (job, class) in jobs {
        datums.extend(encode_build(
            &build(job, class, 20, recent()),
            &EncodeOptions {
                per_suite: true,
                per_test_top: Some(2),
            },
        ));
    }
    sink.publish(&datums).await.expect("publish");
}

#[tokio::test]
async fn discover_deploy_read_back_and_redeploy() {
    let Some(endpoint) = common::cloudwatch_endpoint() else {
        return;
    };
    let ns = unique_namespace("dashboard");
    publish_jobs(
        &endpoint,
        &ns,
        &[
            ("team/unit-cpu", "master"),
            ("team/unit-gpu", "master"),
            ("team/lint", "pr"),
        ],
    )
    .await;
    let name = unique_namespace("dash").replace('/', "-");
    let e = Some(endpoint.as_str());

    // Discovery finds the master jobs only (per-suite and per-test metrics do not add jobs).
    let body = ok(run(
        &["dashboard", "render", "--discover", "--namespace", &ns],
        e,
    ));
    assert!(body.contains("### team/unit-cpu") && body.contains("### team/unit-gpu"));
    assert!(!body.contains("### team/lint"));
    validate_json(&body).expect("rendered body is valid");
    let all = ok(run(
        &[
            "dashboard",
            "render",
            "--discover",
            "--namespace",
            &ns,
            "--branch-class",
            "all",
        ],
        e,
    ));
    assert!(all.contains("### team/lint (one line per branch class)"));

    let deploy = [
        "dashboard",
        "deploy",
        "--name",
        &name,
        "--discover",
        "--namespace",
        &ns,
    ];
    let first = ok(run(&deploy, e));
    assert_eq!(
        first.trim(),
        // 7 overview widgets and 6 per job.
        format!("{name}: created (2 jobs, 19 widgets)")
    );

    // GetDashboard returns exactly what render prints, and it is valid.
    common::aws_env();
    let conf = sdk_config(&endpoint).await;
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let got = cw
        .get_dashboard()
        .dashboard_name(&name)
        .send()
        .await
        .expect("GetDashboard");
    let stored = got.dashboard_body().unwrap();
    assert_eq!(stored, body.trim_end());
    validate_json(stored).expect("stored body is valid");

    // Redeploying (and a dry run) changes nothing.
    let again = ok(run(&deploy, e));
    assert_eq!(
        again.trim(),
        format!("{name}: unchanged (2 jobs, 19 widgets)")
    );
    let mut dry = deploy.to_vec();
    dry.push("--dry-run");
    assert!(ok(run(&dry, e)).contains(": unchanged"));
    let same = cw
        .get_dashboard()
        .dashboard_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(same.dashboard_body(), Some(stored));

    // A different class is an update; a dry run says so and writes nothing.
    let mut pr = dry.clone();
    pr.extend(["--branch-class", "all"]);
    assert!(ok(run(&pr, e)).contains(": would update"));
    let still = cw
        .get_dashboard()
        .dashboard_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(still.dashboard_body(), Some(stored));
}

#[tokio::test]
async fn alarms_deploy_twice_gives_the_same_alarms() {
    let Some(endpoint) = common::cloudwatch_endpoint() else {
        return;
    };
    let ns = unique_namespace("alarms");
    publish_jobs(&endpoint, &ns, &[("svc/a", "master"), ("svc/b", "master")]).await;
    let prefix = unique_namespace("alarm").replace('/', "-");
    let e = Some(endpoint.as_str());
    let args = [
        "alarms",
        "deploy",
        "--discover",
        "--namespace",
        &ns,
        "--prefix",
        &prefix,
        "--sns-topic",
        "arn:aws:sns:us-east-1:000000000000:ci-slow",
    ];

    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let planned: serde_json::Value = serde_json::from_str(&ok(run(&dry, e))).unwrap();
    assert_eq!(planned.as_array().unwrap().len(), 4);
    assert_eq!(planned[0]["action"], "would create");
    assert_eq!(
        planned[1]["alarm"]["band_expression"],
        "ANOMALY_DETECTION_BAND(m1, 2)"
    );

    let describe = || async {
        let conf = sdk_config(&endpoint).await;
        let cw = aws_sdk_cloudwatch::Client::new(&conf);
        let out = cw
            .describe_alarms()
            .alarm_name_prefix(&prefix)
            .send()
            .await
            .expect("DescribeAlarms");
        let mut alarms: Vec<(String, String, String, Vec<String>)> = out
            .metric_alarms()
            .iter()
            .map(|a| {
                (
                    a.alarm_name().unwrap_or("").to_string(),
                    a.alarm_description().unwrap_or("").to_string(),
                    a.comparison_operator()
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_default(),
                    a.alarm_actions().to_vec(),
                )
            })
            .collect();
        alarms.sort();
        alarms
    };
    assert!(describe().await.is_empty(), "dry run created alarms");

    let first = ok(run(&args, e));
    assert_eq!(first.matches(": created").count(), 4, "{first}");
    let before = describe().await;
    let names: Vec<&str> = before.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(
        names,
        vec![
            format!("{prefix}/svc/a/master/TestDuration"),
            format!("{prefix}/svc/a/master/TotalTestTime"),
            format!("{prefix}/svc/b/master/TestDuration"),
            format!("{prefix}/svc/b/master/TotalTestTime"),
        ]
    );
    assert!(before
        .iter()
        .all(|a| a.2 == "GreaterThanUpperThreshold" && a.3.len() == 1 && a.1.contains("[ctm:")));

    let second = ok(run(&args, e));
    assert_eq!(second.matches(": unchanged").count(), 4, "{second}");
    assert_eq!(describe().await, before);

    // A changed option updates them in place: still four alarms.
    let mut wider = args.to_vec();
    wider.extend(["--band", "3"]);
    assert_eq!(ok(run(&wider, e)).matches(": updated").count(), 4);
    assert_eq!(describe().await.len(), 4);
}

#[test]
fn hundreds_of_jobs_split_into_valid_dashboards() {
    let jobs: Vec<String> = (0..640)
        .map(|i| format!("org/team-{}/job-{i}", i % 9))
        .collect();
    let list = jobs.join(",");
    let out = ok(run(
        &[
            "dashboard",
            "render",
            "--jobs",
            &list,
            "--name",
            "big",
            "--jobs-per-dashboard",
            "500",
            "--region",
            "eu-central-1",
        ],
        None,
    ));
    let all: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&out).unwrap();
    // 6 widgets per job and 7 overview widgets: 82 jobs a dashboard → 8 dashboards.
    let names: Vec<&String> = all.keys().collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(all.contains_key("big-1") && all.contains_key("big-8"));
    let mut seen = 0;
    for body in all.values() {
        let body = validate_json(&body.to_string()).expect("valid");
        assert!(body.widgets.len() <= MAX_WIDGETS);
        let rows: usize = body.widgets.iter().map(|w| w.metric_count()).sum();
        assert!(rows <= MAX_METRICS);
        seen += body.widgets.len();
    }
    assert_eq!(seen, 8 * 7 + 640 * 6);
}

#[test]
fn exit_codes() {
    let code = |args: &[&str]| run(args, None).status.code();
    let code_at = |args: &[&str], endpoint: &str| run(args, Some(endpoint)).status.code();
    assert_eq!(code(&["dashboard", "render"]), Some(3), "no jobs");
    assert_eq!(
        code(&[
            "dashboard",
            "render",
            "--jobs",
            "a",
            "--template",
            "/nonexistent.json"
        ]),
        Some(1)
    );
    assert_eq!(
        code(&["dashboard", "render", "--jobs", "a", "--name", "bad name"]),
        Some(1)
    );
    assert_eq!(
        code(&["dashboard", "render", "--template", "overview"]),
        Some(0)
    );
    assert_eq!(code(&["dashboard", "templates"]), Some(0));
    // An alarms dry run shows the alarms even when CloudWatch cannot be reached.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{closed}");
    let o = run(
        &["alarms", "deploy", "--jobs", "a", "--dry-run"],
        Some(&closed),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown.as_array().map(Vec::len), Some(2));
    // Without --dry-run the same failure is a publish error.
    assert_eq!(
        code_at(&["alarms", "deploy", "--jobs", "a"], &closed),
        Some(4)
    );
    assert_eq!(
        code_at(
            &["alarms", "deploy", "--jobs", "a", "--branch-class", "all"],
            &closed
        ),
        Some(1)
    );
    // A template file with a mistake is refused before anything is printed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    std::fs::write(
        &path,
        r#"{"template": "t", "version": 1, "description": "",
            "per_job": [{"type": "metric", "width": 6, "height": 6, "properties": {
              "view": "timeSeries", "region": "${region}",
              "metrics": [[{"expression": "ANOMALY_DETECTION_BAND(m1, 2)", "id": "ad1", "label": "x"}]]}}]}"#,
    )
    .unwrap();
    let o = run(
        &[
            "dashboard",
            "render",
            "--jobs",
            "a",
            "--template",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("undefined id \"m1\""));
}

/// The rendered default template is reviewed as a fixture: a template change shows up as a diff.
#[test]
fn default_template_matches_its_fixtures() {
    let fixtures = common::repo().join("tests/fixtures/dashboard");
    for (file, args) in [
        (
            "default-master-two-jobs.json",
            vec![
                "--jobs",
                "mxnet/unix-cpu,mxnet/unix-gpu",
                "--branch-class",
                "master",
            ],
        ),
        (
            "default-all-one-job.json",
            vec!["--jobs", "mxnet/unix-cpu", "--branch-class", "all"],
        ),
    ] {
        let mut full = vec!["dashboard", "render", "--region", "us-west-2"];
        full.extend(args);
        let got = ok(run(&full, None));
        let want = std::fs::read_to_string(fixtures.join(file)).unwrap();
        assert_eq!(
            got, want,
            "{file} differs; re-render it if the change is intended"
        );
        validate_json(&want).expect("fixture is valid");
    }
}

/// The IAM example grants exactly the CloudWatch calls the dashboard and alarms code makes.
#[test]
fn iam_policy_matches_the_calls() {
    let source = std::fs::read_to_string(common::repo().join("src/dashboard/deploy.rs")).unwrap();
    let calls: std::collections::BTreeSet<String> = [
        ("list_metrics", "ListMetrics"),
        ("get_dashboard", "GetDashboard"),
        ("put_dashboard", "PutDashboard"),
        ("describe_alarms", "DescribeAlarms"),
        ("put_metric_alarm", "PutMetricAlarm"),
        ("delete_dashboards", "DeleteDashboards"),
        ("delete_alarms", "DeleteAlarms"),
        ("list_dashboards", "ListDashboards"),
    ]
    .iter()
    .filter(|(method, _)| source.contains(&format!(".{method}()")))
    .map(|(_, action)| format!("cloudwatch:{action}"))
    .collect();
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("examples/iam/dashboard-policy.json"))
            .unwrap(),
    )
    .unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        match &statement["Action"] {
            serde_json::Value::String(a) => {
                granted.insert(a.clone());
            }
            serde_json::Value::Array(list) => {
                granted.extend(list.iter().map(|a| a.as_str().unwrap().to_string()))
            }
            other => panic!("Action {other}"),
        }
    }
    assert_eq!(granted, calls);
}
