//! Integration tests: the stages under another CI's variables, end to end. Two builds of a
//! GitHub Actions job (a push to master and a pull request) are uploaded to a local store,
//! aggregated into an EMF file, and the PR gate runs on the pull request; a re-run of the pull
//! request is a build of its own and sends nothing twice.

use crate::common::{self, run};
use ci_test_metrics::context::Context;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Every CI variable the stages read, so the caller's environment (maybe a real CI) never leaks.
const CI_VARS: &[&str] = &[
    "JENKINS_URL",
    "GITHUB_ACTIONS",
    "GITHUB_REPOSITORY",
    "GITHUB_WORKFLOW",
    "GITHUB_JOB",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_NUMBER",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_SERVER_URL",
    "GITHUB_SHA",
    "GITHUB_REF",
    "GITHUB_REF_NAME",
    "GITHUB_HEAD_REF",
    "GITHUB_BASE_REF",
    "GITHUB_EVENT_NAME",
    "GITHUB_EVENT_PATH",
    "GITHUB_ACTOR",
    "GITHUB_STEP_SUMMARY",
    "RUNNER_NAME",
    "GITLAB_CI",
    "BUILDKITE",
];

const JOB: &str = "octo-org/octo-repo/CI/unit";
const MASTER_SHA: &str = "1111111111111111111111111111111111111111";
const PR_HEAD: &str = "2222222222222222222222222222222222222222";

/// The binary with a GitHub Actions job's variables, for run `run` (attempt `attempt`).
fn github(run: &str, attempt: &str) -> Command {
    let mut cmd = common::bin();
    for var in CI_VARS {
        cmd.env_remove(var);
    }
    cmd.envs([
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "octo-org/octo-repo"),
        ("GITHUB_WORKFLOW", "CI"),
        ("GITHUB_JOB", "unit"),
        ("GITHUB_RUN_ID", "90001"),
        ("GITHUB_RUN_NUMBER", run),
        ("GITHUB_RUN_ATTEMPT", attempt),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_ACTOR", "octocat"),
        ("RUNNER_NAME", "GitHub Actions 3"),
    ]);
    cmd
}

fn push(run: &str) -> Command {
    let mut cmd = github(run, "1");
    cmd.envs([
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_REF", "refs/heads/master"),
        ("GITHUB_REF_NAME", "master"),
        ("GITHUB_SHA", MASTER_SHA),
    ]);
    cmd
}

fn pull_request(run: &str, attempt: &str, event: &Path) -> Command {
    let mut cmd = github(run, attempt);
    cmd.envs([
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_REF", "refs/pull/7/merge"),
        ("GITHUB_REF_NAME", "7/merge"),
        ("GITHUB_SHA", "3333333333333333333333333333333333333333"),
        ("GITHUB_HEAD_REF", "faster"),
        ("GITHUB_BASE_REF", "master"),
    ]);
    cmd.env("GITHUB_EVENT_PATH", event);
    cmd
}

fn upload(mut cmd: Command, store: &Path, timestamp: &str) {
    let out = run(cmd
        .arg("upload")
        .arg("--store")
        .arg(store)
        .args(["--timestamp", timestamp, "-C"])
        .arg(common::repo().join("tests/fixtures/upload"))
        .arg("nosetests_*.xml"));
    assert_eq!(out.status.code(), Some(0));
}

fn context(store: &Path, branch: &str, build: u64) -> Context {
    let key = store
        .join(JOB)
        .join(branch)
        .join(build.to_string())
        .join("context.json");
    Context::from_json("context.json", &std::fs::read(&key).unwrap()).unwrap()
}

/// Runs aggregate (JSON report); returns the builds it published.
fn aggregate(store: &Path, emf: &Path) -> Vec<String> {
    let out = run(common::bin()
        .args(["aggregate", "--format", "json", "--settle", "0", "--store"])
        .arg(store)
        .arg("--sink")
        .arg(format!("emf:{}", emf.display())));
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    json["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{}/{}/{}",
                b["job"].as_str().unwrap(),
                b["branch"].as_str().unwrap(),
                b["build"]
            )
        })
        .collect()
}

/// The `Builds` datums in the EMF file, per branch class.
fn builds_sent(emf: &Path, class: &str) -> f64 {
    std::fs::read_to_string(emf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["Job"] == JOB && l["BranchClass"] == class)
        .filter_map(|l| l["Builds"].as_f64())
        .sum()
}

#[test]
fn github_push_and_pull_request_upload_aggregate_and_gate() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let emf = dir.path().join("out/metrics.emf");
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        format!(
            r#"{{"number":7,"pull_request":{{"number":7,"head":{{"sha":"{PR_HEAD}","ref":"faster"}},
                "base":{{"ref":"master"}},"user":{{"login":"hubot"}}}}}}"#
        ),
    )
    .unwrap();

    upload(push("41"), &store, "2026-11-28T10:00:00Z");
    upload(
        pull_request("42", "1", &event),
        &store,
        "2026-11-28T11:00:00Z",
    );

    let master = context(&store, "master", 4101);
    assert_eq!(master.commit.as_deref(), Some(MASTER_SHA));
    assert_eq!((master.pr, master.target_branch.as_deref()), (None, None));
    let pr = context(&store, "PR-7", 4201);
    assert_eq!(
        pr.commit.as_deref(),
        Some(PR_HEAD),
        "the head, not the merge commit"
    );
    assert_eq!(pr.pr, Some(7));
    assert_eq!(pr.target_branch.as_deref(), Some("master"));
    assert_eq!(pr.source_branch.as_deref(), Some("faster"));
    assert_eq!(pr.user.as_deref(), Some("hubot"));
    assert_eq!(
        pr.build_url.as_deref(),
        Some("https://github.com/octo-org/octo-repo/actions/runs/90001/attempts/1")
    );
    assert_eq!(
        pr.sources
            .get("commit")
            .cloned()
            .map(String::from)
            .as_deref(),
        Some("github:GITHUB_EVENT_PATH:pull_request.head.sha")
    );

    let mut published = aggregate(&store, &emf);
    published.sort();
    assert_eq!(
        published,
        [format!("{JOB}/PR-7/4201"), format!("{JOB}/master/4101")]
    );
    assert_eq!(builds_sent(&emf, "master"), 1.0);
    assert_eq!(builds_sent(&emf, "pr"), 1.0);

    // The gate on the pull request, from GitHub's variables; the Markdown also goes to the
    // step summary.
    let summary = dir.path().join("step-summary.md");
    std::fs::write(&summary, "# earlier step\n").unwrap();
    let out = run(pull_request("42", "1", &event)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["analyze", "--pr-gate", "--store"])
        .arg(&store));
    assert_eq!(out.status.code(), Some(0));
    let markdown = String::from_utf8(out.stdout).unwrap();
    assert!(
        markdown.contains("PR-7") && markdown.contains("master"),
        "{markdown}"
    );
    let written = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(written, format!("# earlier step\n{markdown}\n"));

    // A re-run of the pull request is a build of its own: it is sent once, and nothing of the
    // first attempt is sent again.
    upload(
        pull_request("42", "2", &event),
        &store,
        "2026-11-28T12:00:00Z",
    );
    assert_eq!(
        context(&store, "PR-7", 4202).commit.as_deref(),
        Some(PR_HEAD)
    );
    assert_eq!(aggregate(&store, &emf), [format!("{JOB}/PR-7/4202")]);
    assert_eq!(builds_sent(&emf, "pr"), 2.0);
    assert_eq!(builds_sent(&emf, "master"), 1.0);
    assert!(aggregate(&store, &emf).is_empty(), "nothing is sent twice");

    // On a push, the gate says what to do instead.
    let out = run(push("43")
        .args(["analyze", "--pr-gate", "--store"])
        .arg(&store));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GitHub Actions") && err.contains("--baseline"),
        "{err}"
    );
}

#[test]
fn two_cis_at_once_warn_once_naming_the_one_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = run(push("5")
        .env("JENKINS_URL", "http://jenkins.example/")
        .args(["upload", "--dry-run", "--format", "json", "--store"])
        .arg(&store)
        .args(["--job", "j", "--branch", "b", "--build", "1", "-C"])
        .arg(common::repo().join("tests/fixtures/upload"))
        .arg("nosetests_*.xml"));
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("several CIs")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("Jenkins (JENKINS_URL)")
            && warnings[0].contains("GitHub Actions (GITHUB_ACTIONS)")
            && warnings[0].contains("using Jenkins")
            && warnings[0].contains("--ci github"),
        "{err}"
    );
    // --ci github chooses, without a warning.
    let out = run(push("5")
        .env("JENKINS_URL", "http://jenkins.example/")
        .args([
            "upload",
            "--ci",
            "github",
            "--dry-run",
            "--format",
            "json",
            "--store",
        ])
        .arg(&store)
        .args(["-C"])
        .arg(common::repo().join("tests/fixtures/upload"))
        .arg("nosetests_*.xml"));
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("several CIs"));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["context"]["job"], JOB);
    assert_eq!(json["context"]["build"], 501);
    assert_eq!(json["context"]["sources"]["commit"], "github:GITHUB_SHA");
}
