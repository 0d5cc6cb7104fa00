//! GitLab CI/CD: its predefined variables, for branch, tag and merge request pipelines.
//!
//! | field           | variable                                                                 |
//! |-----------------|--------------------------------------------------------------------------|
//! | `job`           | `CI_PROJECT_PATH`/`CI_JOB_NAME` (`group/project/unit tests`; a `/` in the job's name, as in `rspec 1/3`, is `%2F`) |
//! | `branch` (raw)  | merge requests: `PR-<CI_MERGE_REQUEST_IID>` (external pull requests: `PR-<CI_EXTERNAL_PULL_REQUEST_IID>`); else `CI_COMMIT_BRANCH`, else `CI_COMMIT_TAG`, else `CI_COMMIT_REF_NAME` |
//! | `build`         | `CI_JOB_ID` (unique in the instance, only grows; a retried job has a new one) |
//! | `build_url`     | `CI_JOB_URL`                                                             |
//! | `commit`        | merge requests: `CI_MERGE_REQUEST_SOURCE_BRANCH_SHA` (merged results pipelines), else `CI_COMMIT_SHA` |
//! | `author`        | `CI_COMMIT_AUTHOR` (`Name <email>`)                                      |
//! | `user`          | merge requests: `GITLAB_USER_LOGIN`                                      |
//! | `repo_url`      | `CI_PROJECT_URL`                                                         |
//! | `source_branch` | `CI_MERGE_REQUEST_SOURCE_BRANCH_NAME`                                    |
//! | `target_branch` | `CI_MERGE_REQUEST_TARGET_BRANCH_NAME`                                    |
//! | `pr`            | `CI_MERGE_REQUEST_IID`                                                   |
//! | `node`          | `CI_RUNNER_DESCRIPTION`                                                  |
//!
//! A project has one pipeline definition, so the project and the job's name tell every job
//! apart (a `parallel: matrix:` job's name carries its values). The build is the job's ID, not
//! the pipeline's, because GitLab says nothing about a retry but its new job ID. Detected by
//! `GITLAB_CI=true`.

use super::ci::{job_segment, pr_branch, CiValues, Found, Names, Provider, Vars};

pub static PROVIDER: Provider = Provider {
    name: "gitlab",
    title: "GitLab CI",
    detect: |v| v.is("GITLAB_CI", "true").then_some("GITLAB_CI"),
    read,
    names: Names {
        job: "CI_PROJECT_PATH and CI_JOB_NAME",
        branch:
            "CI_COMMIT_BRANCH (or CI_COMMIT_REF_NAME, or run inside a git checkout on a branch)",
        build: "CI_JOB_ID",
        commit: "CI_COMMIT_SHA",
    },
};

fn read(v: &Vars) -> CiValues {
    let pr = v.first(&["CI_MERGE_REQUEST_IID", "CI_EXTERNAL_PULL_REQUEST_IID"]);
    let is_pr = pr.is_some();
    let job = match (v.get("CI_PROJECT_PATH"), v.get("CI_JOB_NAME")) {
        (Some(project), Some(job)) => Some(Found::new(
            format!("{project}/{}", job_segment(&job)),
            "CI_PROJECT_PATH/CI_JOB_NAME",
        )),
        _ => None,
    };
    let when_pr = |names: &[&str]| if is_pr { v.first(names) } else { None };
    CiValues {
        job,
        branch: pr
            .as_ref()
            .map(pr_branch)
            .or_else(|| v.first(&["CI_COMMIT_BRANCH", "CI_COMMIT_TAG", "CI_COMMIT_REF_NAME"])),
        build: v.found("CI_JOB_ID").map(Ok),
        build_url: v.found("CI_JOB_URL"),
        commit: when_pr(&[
            "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA",
            "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_SHA",
        ])
        .or_else(|| v.found("CI_COMMIT_SHA")),
        author: v.found("CI_COMMIT_AUTHOR"),
        user: when_pr(&["GITLAB_USER_LOGIN"]),
        repo_url: v.found("CI_PROJECT_URL"),
        source_branch: when_pr(&[
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
            "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_NAME",
        ]),
        target_branch: when_pr(&[
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
            "CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_NAME",
        ]),
        pr,
        node: v.found("CI_RUNNER_DESCRIPTION"),
    }
}

#[cfg(test)]
mod tests {
    use crate::context::testing::{check, set, with, Want};

    /// What every job has, as GitLab's predefined-variables reference lists them.
    const COMMON: &[(&str, &str)] = &[
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        ("CI_SERVER_URL", "https://gitlab.example.com"),
        ("CI_PROJECT_PATH", "gitlab-org/gitlab-foss"),
        (
            "CI_PROJECT_URL",
            "https://gitlab.example.com/gitlab-org/gitlab-foss",
        ),
        ("CI_JOB_NAME", "rspec 1/3"),
        ("CI_JOB_STAGE", "test"),
        ("CI_JOB_ID", "50"),
        (
            "CI_JOB_URL",
            "https://gitlab.example.com/gitlab-org/gitlab-foss/-/jobs/50",
        ),
        ("CI_PIPELINE_ID", "1000"),
        ("CI_PIPELINE_IID", "12"),
        ("CI_COMMIT_AUTHOR", "Ann Dev <ann@example.com>"),
        ("CI_RUNNER_DESCRIPTION", "shared-runner-1"),
        ("GITLAB_USER_LOGIN", "ann"),
    ];

    fn vars<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        with(COMMON, extra)
    }

    const JOB: (&str, &str) = (
        "gitlab-org/gitlab-foss/rspec 1%2F3",
        "gitlab:CI_PROJECT_PATH/CI_JOB_NAME",
    );

    fn want_common<'a>() -> Want<'a> {
        Want {
            job: JOB,
            build: (50, "gitlab:CI_JOB_ID"),
            build_url: Some((
                "https://gitlab.example.com/gitlab-org/gitlab-foss/-/jobs/50",
                "gitlab:CI_JOB_URL",
            )),
            author: Some(("Ann Dev <ann@example.com>", "gitlab:CI_COMMIT_AUTHOR")),
            repo_url: Some((
                "https://gitlab.example.com/gitlab-org/gitlab-foss",
                "gitlab:CI_PROJECT_URL",
            )),
            node: Some(("shared-runner-1", "gitlab:CI_RUNNER_DESCRIPTION")),
            ..Want::default()
        }
    }

    #[test]
    fn branch_pipeline() {
        let v = vars(&[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_COMMIT_SHA", "1ecfd275763eff1d6b4844ea3168962458c9f27a"),
            ("CI_DEFAULT_BRANCH", "main"),
        ]);
        check(
            &v,
            &Want {
                branch: ("main", "gitlab:CI_COMMIT_BRANCH"),
                commit: Some((
                    "1ecfd275763eff1d6b4844ea3168962458c9f27a",
                    "gitlab:CI_COMMIT_SHA",
                )),
                source_branch: Some(("main", "")),
                ..want_common()
            },
        );
    }

    #[test]
    fn merge_request_pipeline() {
        let mut v = vars(&[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_COMMIT_REF_NAME", "feature/faster"),
            // A merged results pipeline: CI_COMMIT_SHA is the merge GitLab made.
            ("CI_COMMIT_SHA", "2222222222222222222222222222222222222222"),
            ("CI_MERGE_REQUEST_IID", "3"),
            ("CI_MERGE_REQUEST_ID", "9123"),
            ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature/faster"),
            (
                "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA",
                "1111111111111111111111111111111111111111",
            ),
            ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
            (
                "CI_MERGE_REQUEST_TARGET_BRANCH_SHA",
                "3333333333333333333333333333333333333333",
            ),
        ]);
        let want = Want {
            branch: ("PR-3", "gitlab:CI_MERGE_REQUEST_IID"),
            commit: Some((
                "1111111111111111111111111111111111111111",
                "gitlab:CI_MERGE_REQUEST_SOURCE_BRANCH_SHA",
            )),
            user: Some(("ann", "gitlab:GITLAB_USER_LOGIN")),
            source_branch: Some((
                "feature/faster",
                "gitlab:CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
            )),
            target_branch: Some(("main", "gitlab:CI_MERGE_REQUEST_TARGET_BRANCH_NAME")),
            pr: Some((3, "gitlab:CI_MERGE_REQUEST_IID")),
            ..want_common()
        };
        check(&v, &want);
        // A plain merge request pipeline sets the head SHA empty: CI_COMMIT_SHA is the head.
        set(&mut v, "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", "");
        check(
            &v,
            &Want {
                commit: Some((
                    "2222222222222222222222222222222222222222",
                    "gitlab:CI_COMMIT_SHA",
                )),
                ..want
            },
        );
    }
}
