//! Buildkite: the agent's environment variables, for branch and pull-request builds.
//!
//! | field           | variable                                                                 |
//! |-----------------|--------------------------------------------------------------------------|
//! | `job`           | `BUILDKITE_ORGANIZATION_SLUG`/`BUILDKITE_PIPELINE_SLUG`/`BUILDKITE_STEP_KEY` (else `BUILDKITE_LABEL`), plus `-<BUILDKITE_PARALLEL_JOB>` for a parallel job |
//! | `branch` (raw)  | pull requests: `PR-<BUILDKITE_PULL_REQUEST>`; else `BUILDKITE_BRANCH`    |
//! | `build`         | `BUILDKITE_BUILD_NUMBER` × 100 + `BUILDKITE_RETRY_COUNT` + 1 (build 42 → 4201, its first retry 4202) |
//! | `build_url`     | `BUILDKITE_BUILD_URL`#`BUILDKITE_JOB_ID`                                 |
//! | `commit`        | `BUILDKITE_COMMIT` (not `HEAD`; for pull requests Buildkite builds the head) |
//! | `author`        | `BUILDKITE_BUILD_AUTHOR`, `BUILDKITE_BUILD_AUTHOR_EMAIL`                 |
//! | `user`          | pull requests: `BUILDKITE_BUILD_CREATOR`                                 |
//! | `repo_url`      | `BUILDKITE_REPO`                                                         |
//! | `source_branch` | pull requests: `BUILDKITE_BRANCH`                                        |
//! | `target_branch` | `BUILDKITE_PULL_REQUEST_BASE_BRANCH`                                     |
//! | `pr`            | `BUILDKITE_PULL_REQUEST` (`false` outside pull requests)                 |
//! | `node`          | `BUILDKITE_AGENT_NAME`                                                   |
//!
//! A Buildkite pipeline belongs to one organisation and builds one repository, so the two slugs
//! name the repository and the pipeline; the step's key (stable when its label changes) names the
//! job. Detected by `BUILDKITE=true`.

use super::ci::{
    attempt_build, author, job_segment, pr_branch, CiValues, Found, Names, Provider, Vars,
};

pub static PROVIDER: Provider = Provider {
    name: "buildkite",
    title: "Buildkite",
    detect: |v| v.is("BUILDKITE", "true").then_some("BUILDKITE"),
    read,
    names: Names {
        job: "BUILDKITE_ORGANIZATION_SLUG, BUILDKITE_PIPELINE_SLUG and BUILDKITE_STEP_KEY or BUILDKITE_LABEL",
        branch: "BUILDKITE_BRANCH (or run inside a git checkout on a branch)",
        build: "BUILDKITE_BUILD_NUMBER",
        commit: "BUILDKITE_COMMIT",
    },
};

fn read(v: &Vars) -> CiValues {
    let pr = v
        .found("BUILDKITE_PULL_REQUEST")
        .filter(|f| f.value != "false");
    let is_pr = pr.is_some();
    let step = v.first(&["BUILDKITE_STEP_KEY", "BUILDKITE_LABEL"]);
    let job = match (
        v.get("BUILDKITE_ORGANIZATION_SLUG"),
        v.get("BUILDKITE_PIPELINE_SLUG"),
        step,
    ) {
        (Some(org), Some(pipeline), Some(step)) => {
            let mut job = format!("{org}/{pipeline}/{}", job_segment(&step.value));
            let mut var = format!(
                "BUILDKITE_ORGANIZATION_SLUG/BUILDKITE_PIPELINE_SLUG/{}",
                step.var
            );
            if let Some(n) = v.get("BUILDKITE_PARALLEL_JOB") {
                job.push_str(&format!("-{n}"));
                var.push_str("-BUILDKITE_PARALLEL_JOB");
            }
            Some(Found::new(job, var))
        }
        _ => None,
    };
    let build_url = v
        .found("BUILDKITE_BUILD_URL")
        .map(|f| match v.get("BUILDKITE_JOB_ID") {
            Some(id) => Found::new(
                format!("{}#{id}", f.value),
                "BUILDKITE_BUILD_URL#BUILDKITE_JOB_ID",
            ),
            None => f,
        });
    let when_pr = |name: &str| if is_pr { v.found(name) } else { None };
    CiValues {
        job,
        branch: pr
            .as_ref()
            .map(pr_branch)
            .or_else(|| v.found("BUILDKITE_BRANCH")),
        build: attempt_build(
            v.found("BUILDKITE_BUILD_NUMBER"),
            v.found("BUILDKITE_RETRY_COUNT"),
            0,
        ),
        build_url,
        // A build started by hand without a commit says HEAD: git tells which one.
        commit: v.found("BUILDKITE_COMMIT").filter(|f| f.value != "HEAD"),
        author: author(v, "BUILDKITE_BUILD_AUTHOR", "BUILDKITE_BUILD_AUTHOR_EMAIL"),
        user: when_pr("BUILDKITE_BUILD_CREATOR"),
        repo_url: v.found("BUILDKITE_REPO"),
        source_branch: when_pr("BUILDKITE_BRANCH"),
        target_branch: when_pr("BUILDKITE_PULL_REQUEST_BASE_BRANCH"),
        pr,
        node: v.found("BUILDKITE_AGENT_NAME"),
    }
}

#[cfg(test)]
mod tests {
    use crate::context::testing::{check, set, with, Want};

    /// What every job has, as Buildkite's environment-variable reference lists them.
    const COMMON: &[(&str, &str)] = &[
        ("CI", "true"),
        ("BUILDKITE", "true"),
        ("BUILDKITE_ORGANIZATION_SLUG", "acme-inc"),
        ("BUILDKITE_PIPELINE_SLUG", "my-app"),
        ("BUILDKITE_STEP_KEY", "unit-tests"),
        ("BUILDKITE_LABEL", ":rspec: Unit tests"),
        ("BUILDKITE_BUILD_NUMBER", "1514"),
        ("BUILDKITE_BUILD_ID", "4735ba57-80d0-46e2-8fa0-b28223a86586"),
        ("BUILDKITE_JOB_ID", "e44f9784-e20e-4b93-a21d-f41fd5869db9"),
        (
            "BUILDKITE_BUILD_URL",
            "https://buildkite.com/acme-inc/my-app/builds/1514",
        ),
        (
            "BUILDKITE_COMMIT",
            "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
        ),
        ("BUILDKITE_REPO", "git@github.com:acme-inc/my-app.git"),
        ("BUILDKITE_BUILD_AUTHOR", "Keith Pitt"),
        ("BUILDKITE_BUILD_AUTHOR_EMAIL", "keith@buildkite.com"),
        ("BUILDKITE_BUILD_CREATOR", "Keith Pitt"),
        ("BUILDKITE_AGENT_NAME", "my-agent-1"),
        ("BUILDKITE_RETRY_COUNT", "0"),
    ];

    fn vars<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        with(COMMON, extra)
    }

    fn want_common<'a>() -> Want<'a> {
        Want {
            job: (
                "acme-inc/my-app/unit-tests",
                "buildkite:BUILDKITE_ORGANIZATION_SLUG/BUILDKITE_PIPELINE_SLUG/BUILDKITE_STEP_KEY",
            ),
            build: (151401, "buildkite:BUILDKITE_BUILD_NUMBER*100+BUILDKITE_RETRY_COUNT"),
            build_url: Some((
                "https://buildkite.com/acme-inc/my-app/builds/1514#e44f9784-e20e-4b93-a21d-f41fd5869db9",
                "buildkite:BUILDKITE_BUILD_URL#BUILDKITE_JOB_ID",
            )),
            commit: Some(("83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d", "buildkite:BUILDKITE_COMMIT")),
            author: Some(("Keith Pitt <keith@buildkite.com>", "buildkite:BUILDKITE_BUILD_AUTHOR")),
            repo_url: Some(("https://github.com/acme-inc/my-app", "buildkite:BUILDKITE_REPO")),
            node: Some(("my-agent-1", "buildkite:BUILDKITE_AGENT_NAME")),
            ..Want::default()
        }
    }

    #[test]
    fn branch_build() {
        let v = vars(&[
            ("BUILDKITE_BRANCH", "main"),
            ("BUILDKITE_PULL_REQUEST", "false"),
            ("BUILDKITE_PULL_REQUEST_BASE_BRANCH", ""),
        ]);
        check(
            &v,
            &Want {
                branch: ("main", "buildkite:BUILDKITE_BRANCH"),
                source_branch: Some(("main", "")),
                ..want_common()
            },
        );
    }

    #[test]
    fn pull_request_build_and_its_retry() {
        let mut v = vars(&[
            ("BUILDKITE_BRANCH", "faster-build"),
            ("BUILDKITE_PULL_REQUEST", "123"),
            ("BUILDKITE_PULL_REQUEST_BASE_BRANCH", "main"),
            (
                "BUILDKITE_PULL_REQUEST_REPO",
                "git://github.com/acme-inc/my-app.git",
            ),
            ("BUILDKITE_PARALLEL_JOB", "2"),
            ("BUILDKITE_PARALLEL_JOB_COUNT", "4"),
        ]);
        let want = Want {
            job: (
                "acme-inc/my-app/unit-tests-2",
                "buildkite:BUILDKITE_ORGANIZATION_SLUG/BUILDKITE_PIPELINE_SLUG/BUILDKITE_STEP_KEY-BUILDKITE_PARALLEL_JOB",
            ),
            branch: ("PR-123", "buildkite:BUILDKITE_PULL_REQUEST"),
            user: Some(("Keith Pitt", "buildkite:BUILDKITE_BUILD_CREATOR")),
            source_branch: Some(("faster-build", "buildkite:BUILDKITE_BRANCH")),
            target_branch: Some(("main", "buildkite:BUILDKITE_PULL_REQUEST_BASE_BRANCH")),
            pr: Some((123, "buildkite:BUILDKITE_PULL_REQUEST")),
            ..want_common()
        };
        check(&v, &want);
        // Its first retry: a build of its own.
        set(&mut v, "BUILDKITE_RETRY_COUNT", "1");
        check(
            &v,
            &Want {
                build: (
                    151402,
                    "buildkite:BUILDKITE_BUILD_NUMBER*100+BUILDKITE_RETRY_COUNT",
                ),
                ..want
            },
        );
    }
}
