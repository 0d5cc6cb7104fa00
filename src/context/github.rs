//! GitHub Actions: its default variables and the webhook event at `GITHUB_EVENT_PATH`.
//!
//! | field           | variable                                                                  |
//! |-----------------|---------------------------------------------------------------------------|
//! | `job`           | `GITHUB_REPOSITORY`/`GITHUB_WORKFLOW`/`GITHUB_JOB` (`org/repo/CI/test`; a `/` in the workflow's name is `%2F`) |
//! | `branch` (raw)  | pull requests: `PR-<n>`; else `GITHUB_REF_NAME`                           |
//! | `build`         | `GITHUB_RUN_NUMBER` × 100 + `GITHUB_RUN_ATTEMPT` (run 42 → 4201, its re-run 4202) |
//! | `build_url`     | `GITHUB_SERVER_URL`/`GITHUB_REPOSITORY`/actions/runs/`GITHUB_RUN_ID`/attempts/`GITHUB_RUN_ATTEMPT` |
//! | `commit`        | pull requests: the event's `pull_request.head.sha`; else `GITHUB_SHA`     |
//! | `author`        | pushes: the event's `head_commit.author` (when it is `GITHUB_SHA`)        |
//! | `user`          | pull requests: the event's `pull_request.user.login`, else `GITHUB_ACTOR` |
//! | `repo_url`      | `GITHUB_SERVER_URL`/`GITHUB_REPOSITORY`                                   |
//! | `source_branch` | pull requests: `GITHUB_HEAD_REF`                                          |
//! | `target_branch` | pull requests: `GITHUB_BASE_REF`                                          |
//! | `pr`            | the event's `pull_request.number`, else `N` of `GITHUB_REF=refs/pull/N/merge` |
//! | `node`          | `RUNNER_NAME`                                                             |
//!
//! A pull request is a `pull_request` or `pull_request_target` event (`GITHUB_EVENT_NAME`), or
//! a `refs/pull/…` ref. Its `GITHUB_SHA` is the merge commit GitHub made for the run, which no
//! one wrote and no later build shares; the pull request's head is the commit its author pushed,
//! what reviews, flakiness across builds and the gate's report talk about. Detected by
//! `GITHUB_ACTIONS=true`.

use super::ci::{attempt_build, job_segment, pr_branch, CiValues, Found, Names, Provider, Vars};
use serde_json::Value;

pub static PROVIDER: Provider = Provider {
    name: "github",
    title: "GitHub Actions",
    detect: |v| v.is("GITHUB_ACTIONS", "true").then_some("GITHUB_ACTIONS"),
    read,
    names: Names {
        job: "GITHUB_REPOSITORY, GITHUB_WORKFLOW and GITHUB_JOB",
        branch: "GITHUB_REF_NAME (or run inside a git checkout on a branch)",
        build: "GITHUB_RUN_NUMBER",
        commit: "GITHUB_SHA",
    },
};

const EVENT: &str = "GITHUB_EVENT_PATH";

/// The event payload, when `GITHUB_EVENT_PATH` names a readable JSON file; a warning otherwise.
fn event(v: &Vars) -> Option<Value> {
    let path = v.get(EVENT)?;
    let parsed = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|body| serde_json::from_slice(&body).map_err(|e| e.to_string()));
    match parsed {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(
                "{EVENT}={path}: cannot read the event ({e}); a pull request's commit is then \
                 GITHUB_SHA (the merge commit): pass --commit to name its head"
            );
            None
        }
    }
}

/// A string (or number) at `path` in the event, with where it came from.
fn at(event: Option<&Value>, path: &str) -> Option<Found> {
    let mut value = event?;
    for key in path.split('.') {
        value = value.get(key)?;
    }
    let text = match value {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(Found::new(text, format!("{EVENT}:{path}")))
}

fn read(v: &Vars) -> CiValues {
    let event = event(v);
    let event = event.as_ref();
    let ref_pr = v.get("GITHUB_REF").and_then(|r| {
        let n = r.strip_prefix("refs/pull/")?.split('/').next()?.to_string();
        Some(Found::new(n, "GITHUB_REF"))
    });
    let pr_event = matches!(
        v.get("GITHUB_EVENT_NAME").as_deref(),
        Some("pull_request" | "pull_request_target")
    );
    let pr = if pr_event {
        at(event, "pull_request.number").or(ref_pr)
    } else {
        ref_pr
    };
    let is_pr = pr.is_some();
    let server = v
        .get("GITHUB_SERVER_URL")
        .unwrap_or_else(|| "https://github.com".into());
    let repo = v.get("GITHUB_REPOSITORY");
    let job = match (&repo, v.get("GITHUB_WORKFLOW"), v.get("GITHUB_JOB")) {
        (Some(repo), Some(workflow), Some(job)) => Some(Found::new(
            format!("{repo}/{}/{}", job_segment(&workflow), job_segment(&job)),
            "GITHUB_REPOSITORY/GITHUB_WORKFLOW/GITHUB_JOB",
        )),
        _ => None,
    };
    let attempt = v.get("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into());
    let build_url = match (&repo, v.get("GITHUB_RUN_ID")) {
        (Some(repo), Some(run)) => Some(Found::new(
            format!("{server}/{repo}/actions/runs/{run}/attempts/{attempt}"),
            "GITHUB_SERVER_URL/GITHUB_REPOSITORY/GITHUB_RUN_ID/GITHUB_RUN_ATTEMPT",
        )),
        _ => None,
    };
    let commit = if is_pr {
        at(event, "pull_request.head.sha").or_else(|| {
            let sha = v.found("GITHUB_SHA");
            if sha.is_some() {
                tracing::warn!(
                    "a pull request without its head commit in {EVENT}: the commit is \
                     GITHUB_SHA, the merge commit GitHub made; pass --commit to name the head"
                );
            }
            sha
        })
    } else {
        v.found("GITHUB_SHA")
    };
    // The pushed commit's author, when the event is about that commit.
    let author = (!is_pr && at(event, "head_commit.id").map(|f| f.value) == v.get("GITHUB_SHA"))
        .then(|| {
            let name = at(event, "head_commit.author.name");
            let email = at(event, "head_commit.author.email");
            let text = match (&name, &email) {
                (Some(n), Some(e)) => format!("{} <{}>", n.value, e.value),
                (Some(n), None) => n.value.clone(),
                (None, Some(e)) => format!("<{}>", e.value),
                (None, None) => return None,
            };
            Some(Found::new(text, format!("{EVENT}:head_commit.author")))
        })
        .flatten();
    CiValues {
        job,
        branch: pr
            .as_ref()
            .map(pr_branch)
            .or_else(|| v.found("GITHUB_REF_NAME")),
        build: attempt_build(
            v.found("GITHUB_RUN_NUMBER"),
            v.found("GITHUB_RUN_ATTEMPT"),
            1,
        ),
        build_url,
        commit,
        author,
        user: if is_pr {
            at(event, "pull_request.user.login").or_else(|| v.found("GITHUB_ACTOR"))
        } else {
            None
        },
        repo_url: repo.map(|r| {
            Found::new(
                format!("{server}/{r}"),
                "GITHUB_SERVER_URL/GITHUB_REPOSITORY",
            )
        }),
        source_branch: if is_pr {
            v.found("GITHUB_HEAD_REF")
        } else {
            None
        },
        target_branch: if is_pr {
            v.found("GITHUB_BASE_REF")
        } else {
            None
        },
        pr,
        node: v.found("RUNNER_NAME"),
    }
}

#[cfg(test)]
mod tests {
    use crate::context::testing::{check, set, with, Want};

    /// The variables every job of a run has, as GitHub's documentation lists them.
    const COMMON: &[(&str, &str)] = &[
        ("CI", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "octo-org/octo-repo"),
        ("GITHUB_REPOSITORY_OWNER", "octo-org"),
        ("GITHUB_WORKFLOW", "CI / unit"),
        ("GITHUB_JOB", "test"),
        ("GITHUB_RUN_ID", "1658821493"),
        ("GITHUB_RUN_NUMBER", "42"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_ACTOR", "octocat"),
        ("RUNNER_NAME", "GitHub Actions 2"),
        ("RUNNER_OS", "Linux"),
    ];

    fn vars<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        with(COMMON, extra)
    }

    fn event(dir: &tempfile::TempDir, json: &str) -> String {
        let path = dir.path().join("event.json");
        std::fs::write(&path, json).unwrap();
        path.to_string_lossy().into_owned()
    }

    const JOB: (&str, &str) = (
        "octo-org/octo-repo/CI %2F unit/test",
        "github:GITHUB_REPOSITORY/GITHUB_WORKFLOW/GITHUB_JOB",
    );
    const REPO: Option<(&str, &str)> = Some((
        "https://github.com/octo-org/octo-repo",
        "github:GITHUB_SERVER_URL/GITHUB_REPOSITORY",
    ));
    const URL_SOURCE: &str =
        "github:GITHUB_SERVER_URL/GITHUB_REPOSITORY/GITHUB_RUN_ID/GITHUB_RUN_ATTEMPT";

    #[test]
    fn push_to_a_branch() {
        let dir = tempfile::tempdir().unwrap();
        let path = event(
            &dir,
            r#"{"ref":"refs/heads/main","head_commit":{"id":"ffac537e6cbbf934b08745a378932722df287a53",
                "author":{"name":"Mona Lisa","email":"mona@example.com","username":"octocat"}}}"#,
        );
        let v = vars(&[
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_EVENT_PATH", &path),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_REF_TYPE", "branch"),
            ("GITHUB_SHA", "ffac537e6cbbf934b08745a378932722df287a53"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_HEAD_REF", ""),
            ("GITHUB_BASE_REF", ""),
        ]);
        check(
            &v,
            &Want {
                job: JOB,
                branch: ("main", "github:GITHUB_REF_NAME"),
                build: (4201, "github:GITHUB_RUN_NUMBER*100+GITHUB_RUN_ATTEMPT"),
                build_url: Some((
                    "https://github.com/octo-org/octo-repo/actions/runs/1658821493/attempts/1",
                    URL_SOURCE,
                )),
                commit: Some((
                    "ffac537e6cbbf934b08745a378932722df287a53",
                    "github:GITHUB_SHA",
                )),
                author: Some((
                    "Mona Lisa <mona@example.com>",
                    "github:GITHUB_EVENT_PATH:head_commit.author",
                )),
                repo_url: REPO,
                source_branch: Some(("main", "")),
                node: Some(("GitHub Actions 2", "github:RUNNER_NAME")),
                ..Want::default()
            },
        );
    }

    #[test]
    fn pull_request_uses_the_head_commit_and_maps_to_pr_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = event(
            &dir,
            r#"{"action":"synchronize","number":7,"pull_request":{"number":7,
                "head":{"sha":"8a9c1e1b6fa4c0e3a1d2b3c4d5e6f708192a3b4c","ref":"faster-parser"},
                "base":{"ref":"main"},"user":{"login":"hubot"}}}"#,
        );
        let v = vars(&[
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", &path),
            ("GITHUB_REF", "refs/pull/7/merge"),
            ("GITHUB_REF_NAME", "7/merge"),
            ("GITHUB_REF_TYPE", "branch"),
            // The merge commit GitHub made: not the one recorded.
            ("GITHUB_SHA", "0000000000000000000000000000000000000001"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_HEAD_REF", "faster-parser"),
            ("GITHUB_BASE_REF", "main"),
        ]);
        let want = Want {
            job: JOB,
            branch: ("PR-7", "github:GITHUB_EVENT_PATH:pull_request.number"),
            build: (4202, "github:GITHUB_RUN_NUMBER*100+GITHUB_RUN_ATTEMPT"),
            build_url: Some((
                "https://github.com/octo-org/octo-repo/actions/runs/1658821493/attempts/2",
                URL_SOURCE,
            )),
            commit: Some((
                "8a9c1e1b6fa4c0e3a1d2b3c4d5e6f708192a3b4c",
                "github:GITHUB_EVENT_PATH:pull_request.head.sha",
            )),
            user: Some(("hubot", "github:GITHUB_EVENT_PATH:pull_request.user.login")),
            repo_url: REPO,
            source_branch: Some(("faster-parser", "github:GITHUB_HEAD_REF")),
            target_branch: Some(("main", "github:GITHUB_BASE_REF")),
            pr: Some((7, "github:GITHUB_EVENT_PATH:pull_request.number")),
            node: Some(("GitHub Actions 2", "github:RUNNER_NAME")),
            ..Want::default()
        };
        check(&v, &want);

        // Without a readable event: the number from GITHUB_REF, the merge commit (warned).
        let mut v = v;
        set(&mut v, "GITHUB_EVENT_PATH", "/nonexistent/event.json");
        check(
            &v,
            &Want {
                branch: ("PR-7", "github:GITHUB_REF"),
                commit: Some((
                    "0000000000000000000000000000000000000001",
                    "github:GITHUB_SHA",
                )),
                user: Some(("octocat", "github:GITHUB_ACTOR")),
                pr: Some((7, "github:GITHUB_REF")),
                ..want
            },
        );
    }
}
