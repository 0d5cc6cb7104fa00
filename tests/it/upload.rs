//! Integration tests: upload. The binary is run as Jenkins would run it, against a local
//! directory and against SeaweedFS with a write-only identity.

use crate::common::{self, run};
use aws_sdk_s3::config::Credentials;
use ci_test_metrics::context::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod safety;

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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `root` but the arrivals index, relative, with `/` separators, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut all = tree_all(root);
    all.retain(|k| !k.starts_with(ci_test_metrics::layout::ARRIVALS_PREFIX));
    all
}

/// The builds named in a local store's arrivals index.
fn arrivals(root: &Path) -> Vec<String> {
    tree_all(root)
        .iter()
        .filter_map(|k| ci_test_metrics::arrivals::parse(k))
        .map(|(_, id)| id.to_string())
        .collect()
}

/// Every file under `root`, relative, with `/` separators, sorted.
fn tree_all(root: &Path) -> Vec<String> {
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
    assert_eq!(
        arrivals(&store),
        ["mxnet-validation/unix-cpu/PR-16336/7"],
        "one arrival marker, after context.json"
    );
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
    let xml = std::fs::read_to_string(fixtures().join("nosetests_unittest.xml")).unwrap();
    for sub in ["pkg/a", "pkg/b", "pkg/100%"] {
        std::fs::create_dir_all(work.join(sub)).unwrap();
        // Each package's tests are its own (the same test in two files is a retry).
        let xml = xml.replace("classname=\"", &format!("classname=\"{sub}."));
        std::fs::write(work.join(sub).join("junit.xml"), xml).unwrap();
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
            path.starts_with("store/mxnet-validation/unix-cpu/")
                || path.starts_with("store/_ci-test-metrics-arrivals/")
                || path.starts_with("files/"),
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
    let conf = ci_test_metrics::aws::loader()
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
    let (arrival, keys): (Vec<&str>, Vec<&str>) = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .partition(|k| k.starts_with(ci_test_metrics::layout::ARRIVALS_PREFIX));
    assert_eq!(
        arrival.len(),
        1,
        "the PutObject-only identity writes the arrival marker"
    );
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
    assert!(
        keys[0].starts_with("team-a/_ci-test-metrics-arrivals/"),
        "the arrival marker lies under the store's prefix: {keys:?}"
    );
    assert_eq!(
        keys[1..],
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
