//! Jenkins: the variables of a (multibranch) pipeline build and of the git plugin.
//!
//! | field           | variable                                                       |
//! |-----------------|----------------------------------------------------------------|
//! | `job`           | `JOB_NAME`, without its last segment when `BRANCH_NAME` is set |
//! | `branch` (raw)  | `BRANCH_NAME`, else `GIT_BRANCH` without `origin/`             |
//! | `build`         | `BUILD_NUMBER` (a replay or restart is a new number)           |
//! | `build_url`     | `BUILD_URL`                                                    |
//! | `commit`        | `GIT_COMMIT`                                                   |
//! | `author`        | `CHANGE_AUTHOR_DISPLAY_NAME`, `CHANGE_AUTHOR_EMAIL`            |
//! | `user`          | `CHANGE_AUTHOR` (pull requests only)                           |
//! | `repo_url`      | `GIT_URL`, else `GIT_URL_1`                                    |
//! | `source_branch` | `CHANGE_BRANCH`, else `BRANCH_NAME`                            |
//! | `target_branch` | `CHANGE_TARGET`                                                |
//! | `pr`            | `CHANGE_ID`                                                    |
//! | `node`          | `NODE_NAME`                                                    |
//!
//! Detected by `JENKINS_URL` or `JOB_NAME`; read too when no CI is detected.

use super::ci::{author, CiValues, Found, Names, Provider, Vars};

pub static PROVIDER: Provider = Provider {
    name: "jenkins",
    title: "Jenkins",
    detect: |v| {
        ["JENKINS_URL", "JOB_NAME"]
            .into_iter()
            .find(|n| v.get(n).is_some())
    },
    read,
    names: Names {
        job: "JOB_NAME",
        branch: "BRANCH_NAME (or GIT_BRANCH, or run inside a git checkout on a branch)",
        build: "BUILD_NUMBER",
        commit: "GIT_COMMIT",
    },
};

/// Jenkins' job name without the branch leaf: a multibranch project's branch job
/// (`mxnet-validation/unix-cpu/PR-16336`, with `BRANCH_NAME` set) is `mxnet-validation/unix-cpu`.
pub fn job_without_branch(job_name: &str, branch_name_set: bool) -> String {
    match job_name.rsplit_once('/') {
        Some((parent, _)) if branch_name_set => parent.to_string(),
        _ => job_name.to_string(),
    }
}

fn read(v: &Vars) -> CiValues {
    let branch_name = v.found("BRANCH_NAME");
    let job = v.found("JOB_NAME").map(|f| Found {
        value: job_without_branch(&f.value, branch_name.is_some()),
        var: f.var,
    });
    // Non-multibranch jobs: the git plugin's GIT_BRANCH is `origin/master`.
    let git_branch = v.found("GIT_BRANCH").map(|f| {
        let b = f.value.strip_prefix("refs/heads/").unwrap_or(&f.value);
        let b = b.strip_prefix("origin/").unwrap_or(b);
        Found::new(b, f.var.clone())
    });
    let author = author(v, "CHANGE_AUTHOR_DISPLAY_NAME", "CHANGE_AUTHOR_EMAIL").map(|a| Found {
        var: "CHANGE_AUTHOR_DISPLAY_NAME".into(),
        ..a
    });
    CiValues {
        job,
        branch: branch_name.or(git_branch),
        build: v.found("BUILD_NUMBER").map(Ok),
        build_url: v.found("BUILD_URL"),
        commit: v.found("GIT_COMMIT"),
        author,
        user: v.found("CHANGE_AUTHOR"),
        repo_url: v.first(&["GIT_URL", "GIT_URL_1"]),
        source_branch: v.first(&["CHANGE_BRANCH", "BRANCH_NAME"]),
        target_branch: v.found("CHANGE_TARGET"),
        pr: v.found("CHANGE_ID"),
        node: v.found("NODE_NAME"),
    }
}

#[cfg(test)]
mod tests {
    use crate::context::testing::{check, env, Want, NOW};
    use crate::context::{Context, Overrides};

    /// A multibranch pull-request build, as Jenkins' branch-api and git plugin set it.
    pub const PR_BUILD: &[(&str, &str)] = &[
        ("JENKINS_URL", "http://jenkins/"),
        ("JOB_NAME", "mxnet-validation/unix-cpu/PR-16336"),
        ("BRANCH_NAME", "PR-16336"),
        ("BUILD_NUMBER", "7"),
        ("BUILD_URL", "http://jenkins/job/x/7/"),
        ("GIT_COMMIT", "abc123"),
        ("GIT_URL", "https://github.com/apache/mxnet.git"),
        ("CHANGE_AUTHOR", "alice"),
        ("CHANGE_AUTHOR_DISPLAY_NAME", "Alice A"),
        ("CHANGE_AUTHOR_EMAIL", "alice@example.com"),
        ("CHANGE_BRANCH", "feature/foo"),
        ("CHANGE_TARGET", "master"),
        ("CHANGE_ID", "16336"),
        ("NODE_NAME", "linux-cpu-1"),
    ];

    #[test]
    fn pull_request() {
        check(
            PR_BUILD,
            &Want {
                job: ("mxnet-validation/unix-cpu", "jenkins:JOB_NAME"),
                branch: ("PR-16336", "jenkins:BRANCH_NAME"),
                build: (7, "jenkins:BUILD_NUMBER"),
                build_url: Some(("http://jenkins/job/x/7/", "jenkins:BUILD_URL")),
                commit: Some(("abc123", "jenkins:GIT_COMMIT")),
                author: Some((
                    "Alice A <alice@example.com>",
                    "jenkins:CHANGE_AUTHOR_DISPLAY_NAME",
                )),
                user: Some(("alice", "jenkins:CHANGE_AUTHOR")),
                repo_url: Some(("https://github.com/apache/mxnet", "jenkins:GIT_URL")),
                source_branch: Some(("feature/foo", "jenkins:CHANGE_BRANCH")),
                target_branch: Some(("master", "jenkins:CHANGE_TARGET")),
                pr: Some((16336, "jenkins:CHANGE_ID")),
                node: Some(("linux-cpu-1", "jenkins:NODE_NAME")),
            },
        );
    }

    #[test]
    fn branch_build() {
        let vars = [
            ("JOB_NAME", "mxnet-validation/unix-cpu/feature%2Ffoo"),
            ("BRANCH_NAME", "feature/foo"),
            ("BUILD_NUMBER", "12"),
            ("CHANGE_ID", ""),
        ];
        check(
            &vars,
            &Want {
                job: ("mxnet-validation/unix-cpu", "jenkins:JOB_NAME"),
                branch: ("feature/foo", "jenkins:BRANCH_NAME"),
                build: (12, "jenkins:BUILD_NUMBER"),
                source_branch: Some(("feature/foo", "jenkins:BRANCH_NAME")),
                ..Want::default()
            },
        );
        // A freestyle job keeps JOB_NAME whole; GIT_BRANCH gives the branch.
        let vars = [
            ("JOB_NAME", "folder/freestyle"),
            ("BUILD_NUMBER", "3"),
            ("GIT_BRANCH", "origin/release/1.x"),
        ];
        let c = Context::from_env(env(&vars), &Overrides::default(), NOW).unwrap();
        assert_eq!(
            (c.job.as_str(), c.branch.as_str()),
            ("folder/freestyle", "release/1.x")
        );
    }
}
