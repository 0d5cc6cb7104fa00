//! `ci-test-metrics analyze`: find the tests, and the builds, that made a job slower.

use crate::analyze::{self, load, render, Options, Selection};
use crate::error::exit;
use crate::metrics::{Datum, Sink, Unit, Value};
use crate::store::Store;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// Markdown, for a PR comment or an email.
    Md,
    /// JSON with a stable schema (`schema_version`; see docs/analyze.md).
    Json,
    /// A self-contained HTML page with SVG trend charts; opens offline.
    Html,
}

/// Find the tests and the changes that made a job's unit tests slower.
///
/// Reads the per-build summaries that `aggregate` keeps under `_ci-test-metrics/summaries/` (and
/// parses raw JUnit XML for complete builds that have no summary yet), builds one duration series
/// per test ordered by build time, and looks for sustained shifts with a rank-based change-point
/// test. A shift is reported only when it is significant (--alpha), big enough (--min-shift and
/// --min-seconds), lasts (at least --min-builds builds on each side) and is sharp; single spikes,
/// noise, slow drifts and flaky tests are told apart and listed separately.
///
/// Each regression names the job and test, the median duration before and after, the seconds it
/// adds to every build, its p-value, and the first build after the change with its number, time,
/// commit, PR, author and URL. New tests that stay count as causes (they add their median).
/// Regressions are ranked by seconds added per build: the first line is the biggest cause.
///
/// Examples:
///
///   ci-test-metrics analyze --store s3://ci-results/unittests/
///
///   ci-test-metrics analyze --store ./results --job 'mxnet-validation/*' --last 300
///
///   ci-test-metrics analyze --store s3://bucket --format html --out slowdowns.html
///
///   ci-test-metrics analyze --store s3://bucket --format md --out comment.md --publish
///
/// Exit codes: 0 ok (with or without regressions), 1 usage error, 3 no builds matched,
/// 4 the store or the sink failed.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The store: `s3://BUCKET[/PREFIX]` or a local directory.
    /// [default: s3://$MXNET_CI_UNITTEST_ARTIFACT_BUCKET, else $CI_TEST_METRICS_STORE]
    #[arg(long)]
    pub store: Option<String>,
    /// Only this job (Jenkins full name without the branch), or a glob such as `mxnet-validation/*`.
    #[arg(long)]
    pub job: Option<String>,
    /// Which branches to analyse, as in `aggregate --branches`: class names (master, release, pr,
    /// branch) or globs on the branch name, comma-separated; `!` excludes; `all` for everything.
    #[arg(long, default_value = "master", value_name = "RULES")]
    pub branches: String,
    /// Branch class rules CLASS=GLOB|GLOB, as in `aggregate --branch-class` (for builds read from
    /// raw XML; summaries keep the class the aggregator gave them).
    #[arg(long = "branch-class", value_name = "CLASS=GLOBS")]
    pub branch_class: Vec<String>,
    /// Only the latest N builds of each job.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the report here instead of standard output.
    #[arg(long, value_name = "PATH")]
    pub out: Option<std::path::PathBuf>,
    /// Significance level of a change point (Bonferroni-adjusted within each test's series).
    #[arg(long, default_value_t = Options::default().alpha)]
    pub alpha: f64,
    /// Smallest relative slowdown to report (0.2 = 20%).
    #[arg(long, default_value_t = Options::default().min_shift)]
    pub min_shift: f64,
    /// Smallest slowdown to report, in seconds per build.
    #[arg(long, default_value_t = Options::default().min_seconds)]
    pub min_seconds: f64,
    /// Fewest builds on each side of a change point (a change must last this long to be seen).
    #[arg(long, default_value_t = Options::default().min_segment)]
    pub min_builds: usize,
    /// Publish a `RegressionsDetected` metric per job (dimensions Job, BranchClass).
    #[arg(long)]
    pub publish: bool,
    /// Where --publish sends the metric: `cloudwatch`, `emf:PATH` or `stdout`.
    #[arg(long, default_value = "cloudwatch", env = "CI_TEST_METRICS_SINK")]
    pub sink: String,
    /// CloudWatch namespace for --publish.
    #[arg(
        long,
        default_value = "CITestMetrics",
        env = "CI_TEST_METRICS_NAMESPACE"
    )]
    pub namespace: String,
}

impl Args {
    fn options(&self) -> crate::Result<Options> {
        let o = Options {
            alpha: self.alpha,
            min_shift: self.min_shift,
            min_seconds: self.min_seconds,
            min_segment: self.min_builds,
            ..Options::default()
        };
        if !(o.alpha > 0.0 && o.alpha < 1.0) {
            return Err(crate::Error::Usage(
                "--alpha must be between 0 and 1".into(),
            ));
        }
        if !(o.min_shift >= 0.0 && o.min_seconds >= 0.0) {
            return Err(crate::Error::Usage(
                "--min-shift and --min-seconds must be ≥ 0".into(),
            ));
        }
        if o.min_segment < 2 {
            return Err(crate::Error::Usage(
                "--min-builds must be at least 2".into(),
            ));
        }
        Ok(o)
    }

    fn selection(&self) -> crate::Result<Selection> {
        let job = match &self.job {
            Some(j) => Some(glob::Pattern::new(j).map_err(|e| {
                crate::Error::Usage(format!("--job {j:?} is not a valid pattern: {e}"))
            })?),
            None => None,
        };
        if self.last == Some(0) {
            return Err(crate::Error::Usage("--last must be at least 1".into()));
        }
        let branches =
            crate::aggregate::branches::BranchRules::new(&self.branch_class, &self.branches)
                .map_err(crate::Error::Usage)?;
        Ok(Selection {
            job,
            branches,
            last: self.last,
        })
    }
}

pub async fn run(args: Args) -> crate::Result<u8> {
    let options = args.options()?;
    let selection = args.selection()?;
    let url = super::store_url(args.store.as_deref(), |n| std::env::var(n).ok())?;
    let store = Store::open(&url).await?;
    let loaded = load::load(&store, &selection).await?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if let Err(e) = load::ensure_some(&loaded, &store, &selection) {
        eprintln!("{e}");
        return Ok(exit::EMPTY);
    }
    tracing::info!(
        builds = loaded.summaries.len(),
        from_xml = loaded.from_xml,
        "loaded"
    );
    let jobs = analyze::series::build(&loaded.summaries);
    drop(loaded);
    let report = analyze::analyze(&jobs, &options);
    let text = match args.format {
        Format::Table => render::table(&report),
        Format::Md => render::markdown(&report),
        Format::Json => render::json(&report),
        Format::Html => render::html(&report),
    };
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|source| crate::Error::Io {
            context: format!("writing {}", path.display()),
            source,
        })?,
        None => print!("{text}"),
    }
    if args.publish {
        let datums = regression_datums(&report, &args.branches, time::OffsetDateTime::now_utc());
        let mut sink = Sink::open(&args.sink, &args.namespace).await?;
        sink.publish(&datums).await?;
    }
    Ok(exit::OK)
}

/// One `RegressionsDetected` datum per job: the number of regressions still in effect.
pub fn regression_datums(
    report: &analyze::Report,
    branches: &str,
    now: time::OffsetDateTime,
) -> Vec<Datum> {
    report
        .jobs
        .iter()
        .map(|j| Datum {
            name: "RegressionsDetected".into(),
            unit: Unit::Count,
            dimensions: vec![
                ("Job".into(), j.job.clone()),
                ("BranchClass".into(), branches.to_string()),
            ],
            timestamp: now,
            value: Value::Scalar(
                report
                    .regressions
                    .iter()
                    .filter(|r| r.job == j.job && r.ongoing)
                    .count() as f64,
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["analyze", "--store", "/tmp/none"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parses").args
    }

    #[test]
    fn flags_are_checked() {
        let cases: [(&[&str], bool); 6] = [
            (&[], true),
            (&["--alpha", "0"], false),
            (&["--min-builds", "1"], false),
            (&["--last", "0"], false),
            (&["--job", "a/[b"], false),
            (
                &["--job", "mxnet-*", "--last", "10", "--format", "html"],
                true,
            ),
        ];
        for (extra, ok) in cases {
            let a = args(extra);
            let result = a.options().and_then(|_| a.selection());
            assert_eq!(result.is_ok(), ok, "{extra:?}");
        }
        assert_eq!(args(&[]).branches, "master");
    }

    #[test]
    fn one_datum_per_job_counting_ongoing_regressions() {
        let (summaries, _) = analyze::synth::generate(&analyze::synth::Config::default());
        let report = analyze::analyze(&analyze::series::build(&summaries), &Options::default());
        let now = time::macros::datetime!(2026-06-01 00:00 UTC);
        let datums = regression_datums(&report, "master", now);
        assert_eq!(datums.len(), report.jobs.len());
        for (d, j) in datums.iter().zip(&report.jobs) {
            assert_eq!(d.name, "RegressionsDetected");
            assert_eq!(d.unit, Unit::Count);
            assert_eq!(
                d.dimensions,
                [
                    ("Job".into(), j.job.clone()),
                    ("BranchClass".into(), "master".into())
                ]
            );
            let want = report
                .regressions
                .iter()
                .filter(|r| r.job == j.job && r.ongoing)
                .count();
            assert_eq!(d.value, Value::Scalar(want as f64));
        }
        assert!(datums.iter().any(|d| d.value != Value::Scalar(0.0)));
    }
}
