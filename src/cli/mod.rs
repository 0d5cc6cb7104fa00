//! Command-line flags and one `run` per subcommand. `main` only parses, sets up logging, runs and
//! maps errors to exit codes; everything a command does is here and in the library.

pub mod aggregate;
pub mod analyze;
pub mod dashboard;
pub mod gate_ci;
pub mod parse;
pub mod upload;

use clap::{Parser, Subcommand};

/// Turn CI JUnit results into per-job CloudWatch metrics and dashboards, and find what made tests slower.
///
/// Stages: `upload` (in every CI build: Jenkins, GitHub Actions, GitLab CI, Buildkite) →
/// `aggregate` (on a schedule) → `dashboard` / `analyze`.
/// Everything works without an AWS account: a directory is a store and an EMF file is a sink.
///
/// Exit codes: 0 ok, 1 usage or configuration error, 2 some input could not be read or parsed
/// (the rest was still processed; `parse` for any broken file; `upload` for an unreadable file,
/// and for a broken one only with --strict: by default it is uploaded, recorded and warned
/// about, so it does not fail a CI stage; see each command's --help), 3 nothing matched,
/// 4 something could not be published or recorded (`upload`: also a timeout).
///
/// Logs go to stderr, without colour when stderr is not a terminal or NO_COLOR is set; AWS errors
/// are one line with the error code and a hint, the whole chain with -v.
#[derive(Debug, Parser)]
#[command(
    name = "ci-test-metrics",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Parse(parse::Args),
    Upload(Box<upload::Args>),
    Aggregate(aggregate::Args),
    Dashboard(dashboard::Args),
    Alarms(dashboard::AlarmsArgs),
    // `--pr-gate` reads every CI's variables (see gate_ci.rs): say so in analyze's help.
    #[command(mut_arg("pr_gate", |a| a.help(gate_ci::PR_GATE_HELP)))]
    #[command(mut_arg("branch", |a| a.help(gate_ci::BRANCH_HELP)))]
    #[command(mut_arg("baseline", |a| a.help(gate_ci::BASELINE_HELP)))]
    #[command(after_long_help = gate_ci::PR_GATE_EXAMPLES)]
    Analyze(analyze::Args),
}

/// Runs the chosen command; returns the exit code.
pub async fn run(command: Command) -> crate::Result<u8> {
    match command {
        Command::Parse(a) => parse::run(a),
        Command::Upload(a) => upload::run(*a).await,
        Command::Aggregate(a) => aggregate::run(a).await,
        Command::Dashboard(a) => dashboard::run(a).await,
        Command::Alarms(a) => dashboard::run_alarms(a).await,
        Command::Analyze(a) => gate_ci::run(a, &|n| std::env::var(n).ok()).await,
    }
}

/// Whether logs may use ANSI colours: only on a terminal, and never when `NO_COLOR` is set to
/// a non-empty value (<https://no-color.org>).
pub fn use_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The store URL: the flag, else `s3://$MXNET_CI_UNITTEST_ARTIFACT_BUCKET`, else
/// `$CI_TEST_METRICS_STORE`.
pub fn store_url(
    flag: Option<&str>,
    var: impl Fn(&str) -> Option<String>,
) -> Result<String, crate::Error> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(url) = flag.filter(|v| !v.is_empty()) {
        return Ok(url.to_string());
    }
    if let Some(bucket) = var("MXNET_CI_UNITTEST_ARTIFACT_BUCKET") {
        return Ok(if bucket.starts_with("s3://") {
            bucket
        } else {
            format!("s3://{bucket}")
        });
    }
    var("CI_TEST_METRICS_STORE").ok_or_else(|| {
        crate::Error::Usage(
            "no store: pass --store s3://BUCKET or --store DIR, or set \
             MXNET_CI_UNITTEST_ARTIFACT_BUCKET or CI_TEST_METRICS_STORE"
                .into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        let table = [
            (true, None, true),
            (true, Some(""), true),
            (true, Some("1"), false),
            (false, None, false),
            (false, Some(""), false),
        ];
        for (tty, no_color, want) in table {
            assert_eq!(
                use_colour(tty, no_color.map(OsStr::new)),
                want,
                "{tty} {no_color:?}"
            );
        }
    }

    #[test]
    fn default_store() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = &[
            ("MXNET_CI_UNITTEST_ARTIFACT_BUCKET", "ci-bucket"),
            ("CI_TEST_METRICS_STORE", "/tmp/s"),
        ];
        assert_eq!(store_url(Some("./d"), env(both)).unwrap(), "./d");
        assert_eq!(store_url(None, env(both)).unwrap(), "s3://ci-bucket");
        assert_eq!(
            store_url(
                None,
                env(&[("MXNET_CI_UNITTEST_ARTIFACT_BUCKET", "s3://b/p")])
            )
            .unwrap(),
            "s3://b/p"
        );
        assert_eq!(
            store_url(
                None,
                env(&[
                    ("MXNET_CI_UNITTEST_ARTIFACT_BUCKET", ""),
                    ("CI_TEST_METRICS_STORE", "/tmp/s")
                ])
            )
            .unwrap(),
            "/tmp/s"
        );
        let err = store_url(None, env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("--store") && err.contains("MXNET_CI_UNITTEST_ARTIFACT_BUCKET"),
            "{err}"
        );
    }
}
