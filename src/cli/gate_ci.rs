//! `analyze --pr-gate` in any CI: the pull request's branch (`PR-<n>`), its target branch and the
//! job come from the CI's variables ([`crate::context::ci`], as `upload` reads them), and on
//! GitHub Actions the gate's Markdown is also appended to `$GITHUB_STEP_SUMMARY`.
//!
//! Flags (`--branch`, `--baseline`, `--job`) still win. Outside a pull request the gate names the
//! CI and what to pass instead.

use super::analyze::{self, Format};
use crate::context::ci;

/// `analyze --help` for `--pr-gate`.
pub const PR_GATE_HELP: &str =
    "The gate from the CI's variables (Jenkins, GitHub Actions, GitLab CI, \
     Buildkite): the pull request's branch PR-<n>, its target branch as the baseline, and the job \
     (unless --branch, --baseline or --job say otherwise). On GitHub Actions the Markdown is also \
     appended to $GITHUB_STEP_SUMMARY.";

/// `analyze --help` for `--branch`.
pub const BRANCH_HELP: &str = "The pull request's branch to gate, e.g. PR-123 [default with \
     --pr-gate: PR-<n> from the CI's variables: $BRANCH_NAME, GitHub's pull request number, \
     $CI_MERGE_REQUEST_IID, $BUILDKITE_PULL_REQUEST]";

/// `analyze --help` for `--baseline`.
pub const BASELINE_HELP: &str = "Compare --branch with this branch's recent builds, e.g. master \
     [default with --pr-gate: the pull request's target: $CHANGE_TARGET, $GITHUB_BASE_REF, \
     $CI_MERGE_REQUEST_TARGET_BRANCH_NAME, $BUILDKITE_PULL_REQUEST_BASE_BRANCH]. Switches to the \
     gate";

/// `analyze --help`, after the flags: the gate in each CI.
pub const PR_GATE_EXAMPLES: &str = "\
The PR gate in each CI (docs/upload.md shows how to post it as a comment):
  # Jenkins, GitHub Actions (pull_request), GitLab CI (merge request pipelines), Buildkite:
  ci-test-metrics analyze --store s3://bucket --pr-gate --out gate.md --fail-on-regression
  gh pr comment \"$PR_NUMBER\" --body-file gate.md                # GitHub
  glab mr note \"$CI_MERGE_REQUEST_IID\" --message \"$(cat gate.md)\"   # GitLab
  buildkite-agent annotate --style warning --context gate < gate.md # Buildkite";

/// Where GitHub Actions shows a step's Markdown on the run's page.
pub const STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";

/// Runs `analyze`; with `--pr-gate`, from the CI's variables (read through `var`).
pub async fn run(
    mut args: analyze::Args,
    var: &dyn Fn(&str) -> Option<String>,
) -> crate::Result<u8> {
    if !args.pr_gate {
        return analyze::run(args).await;
    }
    let provider = fill(&mut args, var)?;
    let summary = var(STEP_SUMMARY).filter(|s| !s.is_empty());
    let summary = match (provider.map(|p| p.name), summary) {
        (Some("github"), Some(path)) if args.format != Format::Json => path,
        _ => return analyze::run(args).await,
    };
    // The gate writes its report to a file of ours; then it goes where it was asked and to the
    // step summary.
    let wanted = args.out.take();
    let report = std::env::temp_dir().join(format!(
        "ci-test-metrics-gate-{}-{}.md",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    args.out = Some(report.clone());
    let code = analyze::run(args).await;
    let text = std::fs::read_to_string(&report).ok();
    let _ = std::fs::remove_file(&report);
    let code = code?;
    if let Some(text) = text {
        match &wanted {
            Some(path) => std::fs::write(path, &text).map_err(|source| crate::Error::Io {
                context: format!("writing {}", path.display()),
                source,
            })?,
            None => print!("{text}"),
        }
        append(&summary, &text)?;
    }
    Ok(code)
}

/// Appends the report to the step summary file.
fn append(path: &str, text: &str) -> crate::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{text}\n").as_bytes()))
        .map_err(|source| crate::Error::Io {
            context: format!("appending the gate to {STEP_SUMMARY}={path}"),
            source,
        })
}

/// Fills the gate's branch, baseline and job from the CI's variables where no flag gave them.
/// Returns the CI read.
pub fn fill(
    args: &mut analyze::Args,
    var: &dyn Fn(&str) -> Option<String>,
) -> crate::Result<Option<&'static ci::Provider>> {
    let (provider, found) = ci::read(var, None).map_err(|e| crate::Error::Usage(e.to_string()))?;
    let Some(provider) = provider else {
        return Ok(None);
    };
    let target = found.target_branch.map(|f| f.value);
    if args.baseline.is_none() && target.is_none() && provider.name != "jenkins" {
        // (Jenkins' own message, naming CHANGE_TARGET, comes from `analyze`.)
        return Err(crate::Error::Usage(format!(
            "--pr-gate: {}'s variables name no pull request (this is a branch build): run the \
             gate in pull-request builds only, or pass --branch PR-N and --baseline BRANCH",
            provider.title
        )));
    }
    if target.is_some() {
        args.branch = args.branch.take().or(found.branch.map(|f| f.value));
    }
    args.baseline = args.baseline.take().or(target);
    args.job = args.job.take().or(found.job.map(|f| f.value));
    Ok(Some(provider))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: analyze::Args,
    }

    fn args(extra: &[&str]) -> analyze::Args {
        let mut argv = vec!["analyze", "--store", "/tmp/x", "--pr-gate"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).args
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    type Target = (Option<String>, Option<String>, Option<String>);

    fn target(a: &analyze::Args) -> Target {
        (a.branch.clone(), a.baseline.clone(), a.job.clone())
    }

    fn some(b: &str, base: &str, job: &str) -> Target {
        (Some(b.into()), Some(base.into()), Some(job.into()))
    }

    #[test]
    fn each_ci_gives_the_gate_its_pull_request() {
        let cases: [(&[(&str, &str)], Target); 4] = [
            (
                &[
                    ("GITHUB_ACTIONS", "true"),
                    ("GITHUB_EVENT_NAME", "pull_request"),
                    ("GITHUB_REF", "refs/pull/7/merge"),
                    ("GITHUB_BASE_REF", "main"),
                    ("GITHUB_REPOSITORY", "o/r"),
                    ("GITHUB_WORKFLOW", "CI"),
                    ("GITHUB_JOB", "test"),
                ],
                some("PR-7", "main", "o/r/CI/test"),
            ),
            (
                &[
                    ("GITLAB_CI", "true"),
                    ("CI_MERGE_REQUEST_IID", "3"),
                    ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
                    ("CI_PROJECT_PATH", "g/p"),
                    ("CI_JOB_NAME", "unit"),
                ],
                some("PR-3", "main", "g/p/unit"),
            ),
            (
                &[
                    ("BUILDKITE", "true"),
                    ("BUILDKITE_PULL_REQUEST", "12"),
                    ("BUILDKITE_PULL_REQUEST_BASE_BRANCH", "master"),
                    ("BUILDKITE_ORGANIZATION_SLUG", "acme"),
                    ("BUILDKITE_PIPELINE_SLUG", "app"),
                    ("BUILDKITE_STEP_KEY", "unit"),
                ],
                some("PR-12", "master", "acme/app/unit"),
            ),
            (
                &[
                    ("BRANCH_NAME", "PR-7"),
                    ("CHANGE_TARGET", "main"),
                    ("JOB_NAME", "folder/job/PR-7"),
                ],
                some("PR-7", "main", "folder/job"),
            ),
        ];
        for (vars, want) in cases {
            let get = |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            };
            let mut a = args(&[]);
            fill(&mut a, &get).unwrap();
            assert_eq!(target(&a), want, "{vars:?}");
        }
        // Flags win.
        let mut a = args(&["--baseline", "release", "--job", "j"]);
        let get = env(&[
            ("GITLAB_CI", "true"),
            ("CI_MERGE_REQUEST_IID", "3"),
            ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
        ]);
        fill(&mut a, &get).unwrap();
        assert_eq!(target(&a), some("PR-3", "release", "j"));
    }

    #[test]
    fn a_branch_build_is_not_gated() {
        let get = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REF_NAME", "main"),
        ]);
        let e = fill(&mut args(&[]), &get).unwrap_err().to_string();
        assert!(
            e.contains("GitHub Actions") && e.contains("--branch") && e.contains("--baseline"),
            "{e}"
        );
    }
}
