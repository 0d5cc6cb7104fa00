//! Integration tests: the uploader inside a CI stage. Bounded time against a silent endpoint,
//! refused store URLs, broken result files and exit codes, one-line AWS errors, and the IAM
//! examples checked against the calls the code makes.

use super::*;

/// A TCP listener on 127.0.0.1 that accepts connections and never answers; its address.
fn silent_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        // Keep every connection open, read nothing, answer nothing.
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
    });
    format!("http://{addr}")
}

/// Against an endpoint that accepts and never answers, the upload ends at its deadline with
/// exit 4 (or 0 and one warning line with --soft-fail), each failed attempt logged, no colour.
#[test]
fn a_silent_endpoint_never_stalls_the_build() {
    let endpoint = silent_endpoint();
    let started = std::time::Instant::now();
    let out = run(upload(PR_BUILD)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env_remove("NO_COLOR")
        .args(["--store", "s3://ctm-silent", "--timeout", "3", "-C"])
        .arg(fixtures())
        .arg("nosetests_train.xml"));
    // A generous bound: the point is that it ends, not how fast.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert!(err.contains("did not finish within 3 s"), "{err}");
    assert!(err.contains("attempt 1 of 5 failed: timeout"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI codes when stderr is not a terminal"
    );

    // --soft-fail: exit 0 with one warning line; the limit from the variable.
    let started = std::time::Instant::now();
    let out = run(upload(PR_BUILD)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("CI_TEST_METRICS_UPLOAD_TIMEOUT", "3")
        .args(["--store", "s3://ctm-silent", "--soft-fail", "-C"])
        .arg(fixtures())
        .arg("nosetests_train.xml"));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    let warning: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warning.len(), 1, "{err}");
    assert!(warning[0].contains("--soft-fail"), "{err}");
    assert!(warning[0].contains("did not finish within 3 s"), "{err}");
}

/// Store URLs that look like a URL but are not a valid one are refused with the corrected
/// form, and so is a store inside the reserved prefix, from the flag or the variables.
#[test]
fn mistyped_and_reserved_stores_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(fixtures().join("nosetests_train.xml"), work.join("r.xml")).unwrap();
    let local = dir.path().join("store");
    let reserved_dir = format!("{}/_ci-test-metrics", local.display());
    /// The --store flag, the variables, and what the message contains.
    type Row<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
    let table: &[Row] = &[
        (Some("s3:/my-bucket"), &[], "did you mean s3://my-bucket?"),
        (Some("S3://my-bucket"), &[], "did you mean s3://my-bucket?"),
        (Some("s3:my-bucket"), &[], "did you mean s3://my-bucket?"),
        (Some("file:/tmp/x"), &[], "did you mean file:///tmp/x?"),
        (Some("gs://my-bucket"), &[], "s3://BUCKET[/PREFIX]"),
        (
            Some("s3://my-bucket/_ci-test-metrics"),
            &[],
            "s3://my-bucket",
        ),
        (
            Some("s3://my-bucket/p/_ci-test-metrics/x"),
            &[],
            "s3://my-bucket/p",
        ),
        (
            None,
            &[(
                "MXNET_CI_UNITTEST_ARTIFACT_BUCKET",
                "my-bucket/_ci-test-metrics",
            )],
            "s3://my-bucket",
        ),
        (
            None,
            &[("CI_TEST_METRICS_STORE", "s3://b/_CI-Test-Metrics")],
            "s3://b",
        ),
        (
            None,
            &[("CI_TEST_METRICS_STORE", reserved_dir.as_str())],
            "_ci-test-metrics",
        ),
    ];
    for (flag, vars, want) in table {
        for command in ["upload", "aggregate"] {
            let mut cmd = upload(PR_BUILD);
            if command == "aggregate" {
                cmd = common::bin();
                cmd.args(["aggregate", "--dry-run", "--settle", "0"]);
            }
            cmd.current_dir(&work).envs(vars.iter().copied());
            if let Some(flag) = flag {
                cmd.args(["--store", flag]);
            }
            if command == "upload" {
                cmd.arg("r.xml");
            }
            let out = run(&mut cmd);
            assert_eq!(out.status.code(), Some(1), "{command} {flag:?} {vars:?}");
            let err = stderr(&out);
            assert!(err.contains(want), "{command} {flag:?} {vars:?}: {err}");
        }
    }
    // `--store .` run from inside a reserved directory is inside it too.
    let inside = local.join("_ci-test-metrics/summaries");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::copy(work.join("r.xml"), inside.join("r.xml")).unwrap();
    let out = run(upload(PR_BUILD)
        .current_dir(&inside)
        .args(["--store", ".", "r.xml"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let fix = format!("use the store itself: {}", local.display());
    assert!(err.contains(&fix), "{err} should contain {fix:?}");
    assert_eq!(tree(&local), ["_ci-test-metrics/summaries/r.xml"]);
    std::fs::remove_dir_all(&local).unwrap();

    // Nothing was written anywhere: not `./s3:/…` in the working directory, not the store.
    let mut left: Vec<String> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["r.xml"]);
    assert!(!local.exists());
}

/// A broken result file is uploaded and recorded; it warns and exits 0 by default, exits 2 with
/// --strict (after everything was written), and --soft-fail still wins.
#[test]
fn broken_junit_warns_by_default_and_fails_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let context = "mxnet-validation/unix-cpu/PR-16336/7/context.json";
    // (extra flags, exit code)
    let table: &[(&[&str], i32)] = &[
        (&[], 0),
        (&["--strict"], 2),
        (&["--strict", "--soft-fail"], 0),
    ];
    for (i, (flags, code)) in table.iter().enumerate() {
        let store = dir.path().join(format!("store{i}"));
        let out = run(upload(PR_BUILD)
            .arg("--store")
            .arg(&store)
            .args(*flags)
            .arg("-C")
            .arg(fixtures())
            .args(["truncated.xml", "nosetests_train.xml"]));
        assert_eq!(out.status.code(), Some(*code), "{flags:?}");
        let err = stderr(&out);
        assert!(err.contains("truncated.xml"), "{flags:?}: {err}");
        if flags.is_empty() {
            assert!(err.contains("--strict exits 2"), "{err}");
        }
        let ctx = std::fs::read(store.join(context)).expect("context.json is written");
        let ctx = Context::from_json(context, &ctx).unwrap();
        let broken = ctx
            .files
            .iter()
            .find(|f| f.name == "truncated.xml")
            .unwrap();
        assert!(broken.error.is_some());
    }
}

/// Store errors from a real S3 are one line with the error code and a hint, never a debug dump
/// and never the secret; the whole chain only with -v.
#[tokio::test]
async fn store_errors_are_one_line_with_a_hint() {
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let bucket = common::unique_bucket("upload-errors");
    common::create_bucket(&endpoint, &bucket).await;
    let (key, secret) = uploader_creds();
    let wrong_secret = "not-the-right-secret-0123456789";
    // (key, secret, bucket, the error line contains)
    let missing = format!("{bucket}-missing");
    let table: &[(&str, &str, &str, &[&str])] = &[
        (
            &key,
            wrong_secret,
            &bucket,
            &["SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY"],
        ),
        (
            "ctm-nobody",
            wrong_secret,
            &bucket,
            &["InvalidAccessKeyId", "AWS_ACCESS_KEY_ID"],
        ),
        // SeaweedFS answers a write-only identity's PutObject to a missing bucket with 403.
        (
            &key,
            &secret,
            &missing,
            &["AccessDenied", "s3:PutObject on arn:aws:s3:::"],
        ),
    ];
    for (id, secret, bucket, want) in table {
        for verbose in [false, true] {
            let mut cmd = upload(PR_BUILD);
            cmd.env("AWS_ENDPOINT_URL", &endpoint)
                .env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret)
                .env("AWS_MAX_ATTEMPTS", "1")
                .env("MXNET_CI_UNITTEST_ARTIFACT_BUCKET", bucket)
                .arg("-C")
                .arg(fixtures())
                .arg("nosetests_train.xml");
            if verbose {
                cmd.arg("-v");
            }
            let out = run(&mut cmd);
            assert_eq!(out.status.code(), Some(4), "{id} {bucket}");
            let err = stderr(&out);
            assert!(!err.contains(secret), "the secret is never printed");
            let line = err
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or_else(|| panic!("an error line: {err}"));
            for w in *want {
                assert!(line.contains(w), "{line:?} should contain {w:?}");
            }
            assert!(line.len() < 600, "{line}");
            assert!(!line.contains("Error {"), "no debug dump: {line}");
            assert_eq!(
                err.contains("unhandled error"),
                verbose,
                "the chain only with -v: {err}"
            );
        }
    }

    // Reads: the write-only identity is told the missing permission; a missing bucket (SeaweedFS
    // creates one on an admin's PutObject, so list it) is told to check the bucket variables.
    let table: &[(&str, &str, &str, &[&str])] = &[
        (
            &key,
            &secret,
            &bucket,
            &[&format!("s3:ListBucket on arn:aws:s3:::{bucket}")],
        ),
        (
            "ctm-admin",
            "ctm-admin-secret",
            &format!("{missing}-never"),
            &["NoSuchBucket", "MXNET_CI_UNITTEST_ARTIFACT_BUCKET"],
        ),
    ];
    for (id, secret, bucket, want) in table {
        let out = run(common::bin()
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_MAX_ATTEMPTS", "1")
            .args(["aggregate", "--dry-run", "--settle", "0", "--store"])
            .arg(format!("s3://{bucket}")));
        assert_ne!(out.status.code(), Some(0));
        let err = stderr(&out);
        for w in *want {
            assert!(err.contains(w), "{err} should contain {w:?}");
        }
        assert!(!err.contains("Error {"), "no debug dump: {err}");
    }
}

/// Allowed (and denied) actions of an IAM policy example, with their resources.
fn policy_actions(file: &str, effect: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let path = common::repo().join("examples/iam").join(file);
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let as_list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().into()).collect(),
            other => panic!("{file}: {other}"),
        }
    };
    let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
    for statement in policy["Statement"].as_array().unwrap() {
        if statement["Effect"] != effect {
            continue;
        }
        for action in as_list(&statement["Action"]) {
            out.entry(action)
                .or_default()
                .extend(as_list(&statement["Resource"]));
        }
    }
    out
}

/// The SDK calls a source file makes, as IAM actions.
fn calls(file: &str, table: &[(&str, &str)]) -> std::collections::BTreeSet<String> {
    let source = std::fs::read_to_string(common::repo().join(file)).unwrap();
    table
        .iter()
        .filter(|(method, _)| source.contains(&format!(".{method}()")))
        .map(|(_, action)| action.to_string())
        .collect()
}

/// The uploader's and the aggregator's IAM examples grant exactly what the code calls, with the
/// resources the key layout needs, and nothing under the reserved prefix for the uploader.
#[test]
fn iam_policies_match_the_calls() {
    let s3 = calls(
        "src/store/s3.rs",
        &[
            ("put_object", "s3:PutObject"),
            ("get_object", "s3:GetObject"),
            ("head_object", "s3:GetObject"),
            ("list_objects_v2", "s3:ListBucket"),
            ("delete_object", "s3:DeleteObject"),
            ("copy_object", "s3:PutObject"),
            ("create_multipart_upload", "s3:PutObject"),
        ],
    );
    let cloudwatch = calls(
        "src/metrics/cloudwatch.rs",
        &[
            ("put_metric_data", "cloudwatch:PutMetricData"),
            ("get_metric_statistics", "cloudwatch:GetMetricStatistics"),
            ("get_metric_data", "cloudwatch:GetMetricData"),
            ("list_metrics", "cloudwatch:ListMetrics"),
        ],
    );
    let bucket = "arn:aws:s3:::mxnet-ci-unittest-artifact-repository";

    // The aggregator: every S3 and CloudWatch call, PutObject only under the reserved prefix.
    let aggregator = policy_actions("aggregator-policy.json", "Allow");
    let granted: std::collections::BTreeSet<String> = aggregator.keys().cloned().collect();
    let needed: std::collections::BTreeSet<String> = s3.union(&cloudwatch).cloned().collect();
    assert_eq!(granted, needed);
    assert_eq!(
        aggregator["s3:PutObject"],
        [format!("{bucket}/_ci-test-metrics/*")]
    );
    assert_eq!(aggregator["s3:GetObject"], [format!("{bucket}/*")]);
    assert_eq!(aggregator["s3:ListBucket"], [bucket.to_string()]);

    // The uploader: PutObject only (the upload path never reads or lists), denied under the
    // reserved prefix; arrival markers elsewhere in the bucket are covered by BUCKET/*.
    let upload = std::fs::read_to_string(common::repo().join("src/upload.rs")).unwrap();
    for read in ["store.get(", "store.list(", ".get_stream("] {
        assert!(!upload.contains(read), "the upload path calls {read}");
    }
    let uploader = policy_actions("uploader-policy.json", "Allow");
    assert_eq!(
        uploader.into_iter().collect::<Vec<_>>(),
        [("s3:PutObject".to_string(), vec![format!("{bucket}/*")])]
    );
    let denied = policy_actions("uploader-policy.json", "Deny");
    assert_eq!(
        denied["s3:PutObject"],
        [format!("{bucket}/_ci-test-metrics/*")]
    );
}

/// `upload` and `parse` exit as their help says, for a good file, a broken one and a missing one.
#[test]
fn upload_and_parse_exit_codes_match_the_help() {
    let help = |args: &[&str]| {
        let out = common::bin().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&["--help"]);
    assert!(
        top.contains("2 some input could not be read or parsed"),
        "{top}"
    );
    assert!(top.contains("only with --strict"), "{top}");
    let upload_help = help(&["upload", "--help"]);
    for want in [
        "--strict",
        "--timeout",
        "CI_TEST_METRICS_UPLOAD_TIMEOUT",
        "4 the store refused",
    ] {
        assert!(upload_help.contains(want), "upload --help lacks {want:?}");
    }
    assert!(help(&["parse", "--help"]).contains("2 when any file failed"));

    let good = fixtures().join("nosetests_train.xml");
    let broken = fixtures().join("truncated.xml");
    let missing = fixtures().join("no-such-file.xml");
    // (files, exit code): parse always exits 2 when a file fails, and still prints the others.
    let table = [
        (vec![&good], 0),
        (vec![&good, &broken], 2),
        (vec![&missing, &good], 2),
    ];
    for (files, code) in table {
        let out = run(common::bin().arg("parse").args(&files));
        assert_eq!(out.status.code(), Some(code), "parse {files:?}");
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(printed.contains("nosetests_train.xml"), "{printed}");
    }
    let out = run(common::bin().arg("parse"));
    assert_eq!(out.status.code(), Some(1), "no file is a usage error");
}
