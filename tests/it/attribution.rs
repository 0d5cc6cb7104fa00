//! Integration tests: attribution on a real Jenkins set-up. `upload` inside a real git
//! repository learns the commit, author and branch from git when Jenkins does not set them (a
//! scripted pipeline has no `GIT_COMMIT`, a master build no `CHANGE_AUTHOR`).

use crate::common;
use ci_test_metrics::context::Context;
use std::path::Path;
use std::process::{Command, Output};

/// Jenkins variables that must not leak in from the caller's environment.
const JENKINS_VARS: &[&str] = &[
    "JOB_NAME",
    "BRANCH_NAME",
    "BUILD_NUMBER",
    "BUILD_URL",
    "GIT_COMMIT",
    "GIT_BRANCH",
    "GIT_URL",
    "GIT_URL_1",
    "CHANGE_AUTHOR",
    "CHANGE_AUTHOR_DISPLAY_NAME",
    "CHANGE_AUTHOR_EMAIL",
    "CHANGE_BRANCH",
    "CHANGE_TARGET",
    "CHANGE_ID",
    "NODE_NAME",
    "GIT_DIR",
    "GIT_WORK_TREE",
];

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Dana Developer",
            "-c",
            "user.email=dana@example.com",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_COMMITTER_DATE", "2026-11-20T10:11:12+02:00")
        .env("GIT_AUTHOR_DATE", "2026-11-20T10:11:12+02:00")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A scripted pipeline's upload: only JOB_NAME and BUILD_NUMBER, run in `dir`.
fn scripted_upload(dir: &Path, store: &Path, extra: &[(&str, &str)]) -> Output {
    let mut cmd = common::bin();
    for v in JENKINS_VARS {
        cmd.env_remove(v);
    }
    cmd.env("JOB_NAME", "mxnet-validation/unix-cpu")
        .env("BUILD_NUMBER", "41")
        .envs(extra.iter().copied())
        .current_dir(dir)
        .args(["upload", "--store"])
        .arg(store)
        .arg("nosetests_*.xml");
    common::run(&mut cmd)
}

fn fixture(dir: &Path) {
    let src = common::repo().join("tests/fixtures/upload/nosetests_unittest.xml");
    std::fs::copy(src, dir.join("nosetests_unittest.xml")).unwrap();
}

#[test]
fn upload_in_a_git_checkout_takes_commit_author_and_branch_from_git() {
    let repo = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["symbolic-ref", "HEAD", "refs/heads/master"]);
    git(
        repo.path(),
        &["remote", "add", "origin", "git@github.com:apache/mxnet.git"],
    );
    std::fs::write(repo.path().join("README"), "x").unwrap();
    git(repo.path(), &["add", "README"]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    fixture(repo.path());

    let out = scripted_upload(repo.path(), store.path(), &[]);
    assert_eq!(out.status.code(), Some(0));
    let key = store
        .path()
        .join("mxnet-validation/unix-cpu/master/41/context.json");
    let ctx = Context::from_json("context.json", &std::fs::read(&key).unwrap()).unwrap();
    assert_eq!(ctx.branch, "master");
    assert_eq!(ctx.commit.as_deref(), Some(head.as_str()));
    let author = ctx.author.clone().expect("author from git");
    assert_eq!(author.name, "Dana Developer");
    assert_eq!(author.email.as_deref(), Some("dana@example.com"));
    assert_eq!(ctx.commit_time.as_deref(), Some("2026-11-20T08:11:12Z"));
    assert_eq!(
        ctx.repo_url.as_deref(),
        Some("https://github.com/apache/mxnet")
    );
    assert_eq!(ctx.user, None, "no CHANGE_AUTHOR on a master build");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    assert_eq!(json["sources"]["commit"], "git");
    assert_eq!(json["sources"]["author"], "git");
    assert_eq!(json["sources"]["branch"], "git");
    assert_eq!(json["sources"]["build"], "jenkins:BUILD_NUMBER");
    assert_eq!(json["schema_version"], 2);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("no commit"));

    // Jenkins' variables still win, and say so.
    let out = scripted_upload(
        repo.path(),
        store.path(),
        &[
            ("GIT_BRANCH", "origin/release/1.x"),
            ("GIT_COMMIT", "feedbeef"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let key = store
        .path()
        .join("mxnet-validation/unix-cpu/release%2F1.x/41/context.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    assert_eq!(json["commit"], "feedbeef");
    assert_eq!(json["sources"]["commit"], "jenkins:GIT_COMMIT");
    assert_eq!(json["sources"]["branch"], "jenkins:GIT_BRANCH");
    assert_eq!(
        json["author"],
        serde_json::Value::Null,
        "HEAD's author is not feedbeef's"
    );
}

#[test]
fn upload_outside_a_repository_warns_once_about_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let out = scripted_upload(
        dir.path(),
        store.path(),
        &[
            ("BRANCH_NAME", "master"),
            ("JOB_NAME", "mxnet-validation/unix-cpu/master"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "no git repository is not an error"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("no commit").count(), 1, "{stderr}");
    assert!(
        stderr.contains("GIT_COMMIT") && stderr.contains("--commit"),
        "{stderr}"
    );
    let key = store
        .path()
        .join("mxnet-validation/unix-cpu/master/41/context.json");
    let ctx = Context::from_json("k", &std::fs::read(&key).unwrap()).unwrap();
    assert_eq!((ctx.commit, ctx.author), (None, None));
}

/// `analyze --git-dir`: a range's authors and commit count come from git history.
#[test]
fn git_history_names_every_author_of_a_range() {
    use ci_test_metrics::analyze::model::{BuildRef, CommitRange};
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    let mut commits = Vec::new();
    for (i, who) in ["Ann <ann@x.org>", "Bob <bob@x.org>", "Cy <cy@x.org>"]
        .iter()
        .enumerate()
    {
        std::fs::write(repo.path().join("f"), i.to_string()).unwrap();
        git(repo.path(), &["add", "f"]);
        git(
            repo.path(),
            &["commit", "-q", "-m", &format!("c{i}"), "--author", who],
        );
        commits.push(git(repo.path(), &["rev-parse", "HEAD"]));
    }
    let build = |n: u64, commit: &str, author: &str| BuildRef {
        build: n,
        branch: "master".into(),
        timestamp: format!("2026-11-2{n}T00:00:00Z"),
        commit: Some(commit.into()),
        pr: None,
        author: Some(author.into()),
        build_url: None,
        repo_url: None,
    };
    let mut range = CommitRange::new(
        Some(build(1, &commits[0], "Ann")),
        build(2, &commits[2], "Cy"),
        Some("git@github.com:o/r.git"),
    );
    range.add_history(&ci_test_metrics::git::Git::new(repo.path()));
    assert_eq!(range.commits, Some(2));
    assert_eq!(range.authors, ["Cy", "Bob <bob@x.org>"], "{range:?}");
    assert!(range
        .compare_url
        .unwrap()
        .starts_with("https://github.com/o/r/compare/"));
    // Commits unknown to the checkout: nothing added, no error.
    let mut other = CommitRange::new(None, build(3, "abcdef", "Z"), None);
    other.add_history(&ci_test_metrics::git::Git::new(repo.path()));
    assert_eq!(
        (other.commits, other.authors),
        (None, vec!["Z".to_string()])
    );
}
