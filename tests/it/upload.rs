//! Integration tests: upload. The binary is run as Jenkins would run it, against a local
//! directory and against SeaweedFS with a write-only identity.

use crate::common;
use aws_sdk_s3::config::Credentials;
use ci_test_metrics::context::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every variable the uploader reads, so the caller's environment (maybe a real Jenkins) never leaks in.
const JENKINS_VARS: &[&str] = &[
    "JOB_NAME",
    "BRANCH_NAME",
    "BUILD_NUMBER",
    "BUILD_URL",
    "GIT_COMMIT",
    "CHANGE_AUTHOR",
    "CHANGE_BRANCH",
    "CHANGE_TARGET",
    "CHANGE_ID",
    "NODE_NAME",
];

/// A pull-request build of a multibranch job, as Jenkins sets it.
const PR_BUILD: &[(&str, &str)] = &[
    ("JOB_NAME", "mxnet-validation/unix-cpu/PR-16336"),
    ("BRANCH_NAME", "PR-16336"),
    ("BUILD_NUMBER", "7"),
    (
        "BUILD_URL",
        "http://jenkins.example/job/mxnet-validation/job/unix-cpu/job/PR-16336/7/",
    ),
    ("GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567"),
    ("CHANGE_AUTHOR", "alice"),
    ("CHANGE_BRANCH", "feature/faster-conv"),
    ("CHANGE_TARGET", "master"),
    ("CHANGE_ID", "16336"),
    ("NODE_NAME", "mxnetlinux-cpu_1"),
];

fn fixtures() -> PathBuf {
    common::repo().join("tests/fixtures/upload")
}

/// `ci-test-metrics upload` with a clean environment plus `vars`.
fn upload(vars: &[(&str, &str)]) -> Command {
    let mut cmd = common::bin();
    cmd.arg("upload");
    for var in JENKINS_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(vars.iter().copied());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run the binary");
    eprintln!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `root`, relative, with `/` separators, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

fn check_pr_context(ctx: &Context, names: &[&str]) {
    assert_eq!(ctx.schema_version, ci_test_metrics::context::SCHEMA_VERSION);
    assert_eq!(ctx.job, "mxnet-validation/unix-cpu");
    assert_eq!(ctx.branch, "PR-16336");
    assert_eq!(ctx.build, 7);
    assert_eq!(
        ctx.commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(ctx.user.as_deref(), Some("alice"));
    assert_eq!(ctx.source_branch.as_deref(), Some("feature/faster-conv"));
    assert_eq!(ctx.target_branch.as_deref(), Some("master"));
    assert_eq!(ctx.pr, Some(16336));
    assert_eq!(ctx.node.as_deref(), Some("mxnetlinux-cpu_1"));
    assert!(ctx.build_url.as_deref().unwrap().ends_with("/PR-16336/7/"));
    assert_eq!(ctx.timestamp.offset(), time::UtcOffset::UTC);
    let got: Vec<&str> = ctx.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(got, names);
    for f in &ctx.files {
        let body = std::fs::read(fixtures().join(&f.name)).unwrap();
        assert_eq!(f.bytes, body.len() as u64, "{}", f.name);
        let sha = ci_test_metrics::upload::manifest_entry(&f.name, &body).sha256;
        assert_eq!(f.sha256, sha, "{}", f.name);
        assert_ne!(
            f.tests.is_some(),
            f.error.is_some(),
            "{}: tests or error",
            f.name
        );
    }
    let truncated = ctx.files.iter().find(|f| f.name == "truncated.xml");
    if let Some(f) = truncated {
        assert!(f.error.is_some(), "a broken file is noted in the manifest");
    }
    if let Some(n) = ctx
        .files
        .iter()
        .find(|f| f.name == "nosetests_unittest.xml")
        .and_then(|f| f.tests)
    {
        assert_eq!(n, 3);
    }
}

#[test]
fn jenkins_build_to_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = run(upload(PR_BUILD)
        .arg("--store")
        .arg(&store)
        .arg("--working-dir")
        .arg(fixtures())
        .args(["nosetests_*.xml", "*.xml", "truncated.xml"]));
    assert_eq!(out.status.code(), Some(0));
    let prefix = "mxnet-validation/unix-cpu/PR-16336/7/";
    let names = [
        "nosetests_train.xml",
        "nosetests_unittest.xml",
        "truncated.xml",
    ];
    let mut want: Vec<String> = names.iter().map(|n| format!("{prefix}{n}")).collect();
    want.insert(0, format!("{prefix}context.json"));
    assert_eq!(tree(&store), want);
    for n in names {
        assert_eq!(
            std::fs::read(store.join(prefix).join(n)).unwrap(),
            std::fs::read(fixtures().join(n)).unwrap(),
            "{n} is stored byte for byte"
        );
    }
    let json = std::fs::read(store.join(prefix).join("context.json")).unwrap();
    check_pr_context(&Context::from_json("context.json", &json).unwrap(), &names);
    assert!(
        stderr(&out).contains("truncated.xml"),
        "the broken file is warned about"
    );
}

#[test]
fn branch_names_are_encoded_and_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let vars = [
        ("JOB_NAME", "mxnet-validation/unix-cpu/feature%2Ffoo"),
        ("BRANCH_NAME", "feature/foo"),
        ("BUILD_NUMBER", "3"),
    ];
    let out = run(upload(&vars)
        .arg("--store")
        .arg(format!("file://{}", store.display()))
        .args([
            "--commit",
            "c0ffee",
            "--timestamp",
            "2026-01-31T13:00:00+01:00",
            "--format",
            "json",
        ])
        .arg("-C")
        .arg(fixtures())
        .arg("nosetests_train.xml"));
    assert_eq!(out.status.code(), Some(0));
    let key = "mxnet-validation/unix-cpu/feature%2Ffoo/3/context.json";
    let ctx = Context::from_json(key, &std::fs::read(store.join(key)).unwrap()).unwrap();
    assert_eq!(ctx.branch, "feature/foo", "the context keeps the raw name");
    assert_eq!(ctx.commit.as_deref(), Some("c0ffee"));
    assert_eq!(ctx.timestamp.to_string(), "2026-01-31 12:00:00.0 +00:00:00");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["keys"].as_array().unwrap().last().unwrap(), key);
}

#[test]
fn usage_errors_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();

    // Outside Jenkins without --job / --build: the message names the flag and the variable.
    let out = run(upload(&[]).args(["--store", store, "--branch", "main", "x.xml"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--job") && stderr(&out).contains("JOB_NAME"));
    let out =
        run(upload(&[("JOB_NAME", "j")]).args(["--store", store, "--branch", "main", "x.xml"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--build") && stderr(&out).contains("BUILD_NUMBER"));

    // No match: exit 3, unless --allow-empty, which records the build with an empty manifest.
    let out = run(upload(PR_BUILD)
        .args(["--store", store, "-C"])
        .arg(fixtures())
        .arg("none*.xml"));
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("none*.xml"));
    assert!(!Path::new(store).exists(), "nothing written");
    let out = run(upload(PR_BUILD)
        .args(["--store", store, "--allow-empty", "-C"])
        .arg(fixtures())
        .arg("none*.xml"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        tree(Path::new(store)),
        ["mxnet-validation/unix-cpu/PR-16336/7/context.json"]
    );

    // --soft-fail never fails the build.
    let out = run(upload(PR_BUILD).args(["--store", store, "--soft-fail", "none*.xml"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("warning"));

    // No store configured.
    let out = run(upload(PR_BUILD).arg("x.xml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("MXNET_CI_UNITTEST_ARTIFACT_BUCKET"));

    // --dry-run writes nothing.
    let dry = dir.path().join("dry");
    let out = run(upload(PR_BUILD)
        .arg("--store")
        .arg(&dry)
        .arg("--dry-run")
        .arg("-C")
        .arg(fixtures())
        .arg("*.xml"));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("would upload 3 file(s)"));
    assert!(!dry.exists());
}

/// A monorepo's `**/junit.xml`: every file keeps its relative path as one encoded key segment,
/// the manifest names the stored names, and the aggregator reads the build without a problem.
#[test]
fn monorepo_paths_coexist_and_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let xml = std::fs::read(fixtures().join("nosetests_unittest.xml")).unwrap();
    for sub in ["pkg/a", "pkg/b", "pkg/100%"] {
        std::fs::create_dir_all(work.join(sub)).unwrap();
        std::fs::write(work.join(sub).join("junit.xml"), &xml).unwrap();
    }
    let store = dir.path().join("store");
    let out = run(upload(PR_BUILD)
        .arg("--store")
        .arg(&store)
        .arg("-C")
        .arg(&work)
        // The same files twice, through a second pattern: still counted once.
        .args(["**/junit.xml", "pkg/*/junit.xml"]));
    assert_eq!(out.status.code(), Some(0));
    let prefix = "mxnet-validation/unix-cpu/PR-16336/7/";
    let names = [
        "pkg%2F100%25%2Fjunit.xml",
        "pkg%2Fa%2Fjunit.xml",
        "pkg%2Fb%2Fjunit.xml",
    ];
    let mut want: Vec<String> = names.iter().map(|n| format!("{prefix}{n}")).collect();
    want.insert(0, format!("{prefix}context.json"));
    assert_eq!(tree(&store), want);
    let json = std::fs::read(store.join(prefix).join("context.json")).unwrap();
    let ctx = Context::from_json("context.json", &json).unwrap();
    let manifest: Vec<&str> = ctx.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(manifest, names, "the manifest names the stored names");
    assert!(ctx.files.iter().all(|f| f.tests == Some(3)));

    // Two different files that would share a name are still refused, and nothing is written.
    let refused = dir.path().join("refused");
    let out = run(upload(PR_BUILD)
        .arg("--store")
        .arg(&refused)
        .arg("-C")
        .arg(&work)
        .args(["pkg/a/*.xml", "pkg/b/*.xml"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("junit.xml"), "{}", stderr(&out));
    assert!(!refused.exists());

    // The aggregator finds every file the manifest names.
    let emf = dir.path().join("metrics.emf");
    let out = run(common::bin()
        .args(["aggregate", "--settle", "0", "--store"])
        .arg(&store)
        .arg("--sink")
        .arg(format!("emf:{}", emf.display())));
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("missing"), "{}", stderr(&out));
    let emf = std::fs::read_to_string(&emf).unwrap();
    assert!(emf.contains("\"Tests\":9"), "three files of 3 tests: {emf}");
}

/// Crafted job, branch and file names never land outside their place, and never under the
/// reserved prefix.
#[test]
fn crafted_names_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    let store = outside.join("store");
    let files = outside.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("r.xml"), "<testsuite/>").unwrap();
    let long = "x".repeat(2000);
    let bad_jobs = [
        "../x",
        "../../x",
        "a/../../x",
        "/abs",
        "/tmp/x",
        "a\\..\\..\\x",
        "a\u{1}b",
        "a\nb",
        long.as_str(),
        "_ci-test-metrics",
        "_ci-test-metrics/summaries/x",
        "_CI-TEST-METRICS/x",
        "a//b",
        ".",
    ];
    for job in bad_jobs {
        let out = run(upload(PR_BUILD)
            .arg("--store")
            .arg(&store)
            .args(["--job", job])
            .arg("-C")
            .arg(&files)
            .arg("r.xml"));
        assert_eq!(out.status.code(), Some(1), "job {job:?} must be refused");
        assert!(stderr(&out).contains("invalid job"), "{job:?}");
    }
    let bad_branches = ["a\u{7}b", "a\tb", long.as_str()];
    for branch in bad_branches {
        let out = run(upload(PR_BUILD)
            .arg("--store")
            .arg(&store)
            .args(["--branch", branch])
            .arg("-C")
            .arg(&files)
            .arg("r.xml"));
        assert_eq!(
            out.status.code(),
            Some(1),
            "branch {branch:?} must be refused"
        );
    }
    assert!(!store.exists(), "nothing was written for refused names");

    // Branches are encoded, so `..` and `/` stay inside one segment.
    for (branch, segment) in [
        ("../../../x", "..%2F..%2F..%2Fx"),
        ("..", "%2E."),
        ("/abs", "%2Fabs"),
        ("a\\b", "a%5Cb"),
    ] {
        let out = run(upload(PR_BUILD)
            .arg("--store")
            .arg(&store)
            .args(["--branch", branch])
            .arg("-C")
            .arg(&files)
            .arg("r.xml"));
        assert_eq!(out.status.code(), Some(0), "branch {branch:?}");
        assert!(
            store
                .join("mxnet-validation/unix-cpu")
                .join(segment)
                .join("7/r.xml")
                .is_file(),
            "{branch:?}"
        );
    }

    // File names: only base names are used, and bad ones are refused.
    for name in [
        "context.json",
        "a\u{1}.xml",
        "b\\c.xml",
        &"f".repeat(300)[..255],
    ] {
        let path = files.join(name);
        if std::fs::write(&path, "<testsuite/>").is_err() {
            continue;
        }
        let out = run(upload(PR_BUILD)
            .arg("--store")
            .arg(&store)
            .arg("-C")
            .arg(&files)
            .arg(glob::Pattern::escape(name)));
        let ok = name.len() == 255 && !name.contains('\\');
        if ok {
            // 255 bytes is allowed.
            assert_eq!(out.status.code(), Some(0), "{name:?}");
        } else {
            assert_eq!(out.status.code(), Some(1), "file {name:?} must be refused");
        }
        std::fs::remove_file(&path).unwrap();
    }
    // A pattern climbing out of the working dir still stores only the base name.
    let out = run(upload(PR_BUILD)
        .arg("--store")
        .arg(&store)
        .arg("-C")
        .arg(files.join(".."))
        .arg("files/../files/r.xml"));
    assert_eq!(out.status.code(), Some(0));

    // Everything written is under the store, and nothing under the reserved prefix.
    let all = tree(&outside);
    for path in &all {
        assert!(
            path.starts_with("store/mxnet-validation/unix-cpu/") || path.starts_with("files/"),
            "{path}"
        );
    }
    assert!(!store.join("_ci-test-metrics").exists());
}

fn uploader_creds() -> (String, String) {
    (
        std::env::var("CTM_TEST_UPLOADER_KEY").unwrap_or_else(|_| "ctm-uploader".into()),
        std::env::var("CTM_TEST_UPLOADER_SECRET").unwrap_or_else(|_| "ctm-uploader-secret".into()),
    )
}

/// An S3 client for SeaweedFS with the given static credentials.
async fn s3_client(endpoint: &str, key: &str, secret: &str) -> aws_sdk_s3::Client {
    common::aws_env();
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    )
}

#[tokio::test]
async fn write_only_credentials_suffice() {
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let bucket = common::unique_bucket("upload-wo");
    common::create_bucket(&endpoint, &bucket).await;
    let (key, secret) = uploader_creds();
    let out = run(upload(PR_BUILD)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .env("MXNET_CI_UNITTEST_ARTIFACT_BUCKET", &bucket)
        .arg("-C")
        .arg(fixtures())
        .args(["*.xml", "--concurrency", "2"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !stderr(&out).contains(&secret),
        "credentials are never printed"
    );

    // Read back with the admin identity.
    let admin = s3_client(&endpoint, "ctm-admin", "ctm-admin-secret").await;
    let listed = admin
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let prefix = "mxnet-validation/unix-cpu/PR-16336/7/";
    let names = [
        "nosetests_train.xml",
        "nosetests_unittest.xml",
        "truncated.xml",
    ];
    let mut want: Vec<String> = names.iter().map(|n| format!("{prefix}{n}")).collect();
    want.insert(0, format!("{prefix}context.json"));
    assert_eq!(keys, want);
    for n in names {
        let got = admin
            .get_object()
            .bucket(&bucket)
            .key(format!("{prefix}{n}"))
            .send()
            .await
            .unwrap();
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(
            body.as_ref(),
            std::fs::read(fixtures().join(n)).unwrap().as_slice(),
            "{n}"
        );
    }
    let got = admin
        .get_object()
        .bucket(&bucket)
        .key(format!("{prefix}context.json"))
        .send()
        .await
        .unwrap();
    let json = got.body.collect().await.unwrap().into_bytes();
    check_pr_context(&Context::from_json("context.json", &json).unwrap(), &names);

    // The same through the Store API, with a prefix in the URL.
    let url = format!("s3://{bucket}/team-a");
    let out = run(upload(PR_BUILD)
        .env("AWS_ENDPOINT_URL_S3", &endpoint)
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .args(["--store", &url, "-C"])
        .arg(fixtures())
        .arg("nosetests_train.xml"));
    assert_eq!(out.status.code(), Some(0));
    let listed = admin
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("team-a/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        [
            format!("team-a/{prefix}context.json"),
            format!("team-a/{prefix}nosetests_train.xml")
        ]
    );
}

/// The S3 store keeps the contract the aggregator relies on: put, get (NotFound for a missing
/// key), and list across pages, in key order, relative to the store's prefix.
#[tokio::test]
async fn s3_store_contract() {
    use ci_test_metrics::store::{Store, StoreError};
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let bucket = common::unique_bucket("upload-store");
    common::create_bucket(&endpoint, &bucket).await;
    common::aws_env();
    // Every test in this process points at the same server, so concurrent sets agree.
    unsafe { std::env::set_var("AWS_ENDPOINT_URL_S3", &endpoint) };
    let store = Store::open(&format!("s3://{bucket}/p")).await.unwrap();
    assert_eq!(store.describe(), format!("s3://{bucket}/p/"));
    // More than one ListObjectsV2 page (1000 keys).
    let keys: Vec<String> = (0..1005).map(|i| format!("j/b/{i}/r.xml")).collect();
    use futures::StreamExt;
    let puts: Vec<_> = futures::stream::iter(keys.iter())
        .map(|k| store.put(k, bytes::Bytes::from(k.clone())))
        .buffer_unordered(32)
        .collect()
        .await;
    for r in puts {
        r.unwrap();
    }
    store
        .put(
            "_ci-test-metrics/ledger.json",
            bytes::Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    let listed = store.list("j/").await.unwrap();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(
        listed.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        want
    );
    assert_eq!(listed[0].size, listed[0].key.len() as u64);
    assert!(listed[0].last_modified.is_some());
    assert_eq!(store.list("").await.unwrap().len(), 1006);
    assert_eq!(store.list("j/b/100").await.unwrap().len(), 6); // 100, 1000..=1004
    assert_eq!(
        store.get("j/b/7/r.xml").await.unwrap().as_ref(),
        b"j/b/7/r.xml"
    );
    let missing = store.get("j/b/7/nope.xml").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    let bad = store.put("../x", bytes::Bytes::new()).await;
    assert!(matches!(bad, Err(StoreError::InvalidKey { .. })), "{bad:?}");
    let nobucket = Store::open(&format!("s3://{bucket}-missing"))
        .await
        .unwrap();
    assert!(nobucket.get("x").await.is_err());
}

#[tokio::test]
async fn write_only_credentials_cannot_read_or_list() {
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let bucket = common::unique_bucket("upload-ro");
    common::create_bucket(&endpoint, &bucket).await;
    let admin = s3_client(&endpoint, "ctm-admin", "ctm-admin-secret").await;
    admin
        .put_object()
        .bucket(&bucket)
        .key("j/b/1/r.xml")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();

    let (key, secret) = uploader_creds();
    let uploader = s3_client(&endpoint, &key, &secret).await;
    // Writing works…
    uploader
        .put_object()
        .bucket(&bucket)
        .key("j/b/2/r.xml")
        .body(b"y".to_vec().into())
        .send()
        .await
        .unwrap();
    // …reading, heading and listing do not.
    let get = uploader
        .get_object()
        .bucket(&bucket)
        .key("j/b/1/r.xml")
        .send()
        .await;
    let err = get.expect_err("GetObject must be denied");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{err:?}"
    );
    let head = uploader
        .head_object()
        .bucket(&bucket)
        .key("j/b/1/r.xml")
        .send()
        .await;
    assert!(head.is_err(), "HeadObject must be denied");
    let list = uploader.list_objects_v2().bucket(&bucket).send().await;
    let err = list.expect_err("ListObjectsV2 must be denied");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{err:?}"
    );
}

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
