//! `ci-test-metrics analyze`: find the tests, and the builds, that made a job slower.

use crate::analyze::gate::{self, GateOptions};
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
    /// The currently flaky tests (failure flakiness), one `classname.name` a line, sorted, for
    /// a test runner's exclude list (quarantine).
    List,
}

/// Find the tests and the changes that made a job's unit tests slower.
///
/// Reads the history tables that `aggregate` keeps under `_ci-test-metrics/` (published parts and
/// staged builds; see docs/history.md), and parses raw JUnit XML for complete builds not
/// aggregated yet. It reads one job and branch at a time, and of the tables only the row groups of
/// the builds it keeps (--last), so memory follows one series, not the history. It builds one
/// duration series per test ordered by build time, and looks for sustained shifts with a rank-based change-point
/// test. A shift is reported only when it is significant (--alpha), big enough (--min-shift and
/// --min-seconds), lasts (at least --min-builds builds on each side) and is sharp; single spikes,
/// noise, slow drifts and flaky tests are told apart and listed separately.
///
/// Each regression names the job and test, the median duration before and after, the seconds it
/// adds to every build, its p-value, the last good and first bad build with their commits, the
/// commit range between them (linked on GitHub, GitLab or Bitbucket when the repository is known:
/// GIT_URL at upload, or --repo-url) and its authors (all of the range's with --git-dir). New
/// tests that stay count too (they add their median). Regressions that came in with the same
/// commit, in one job or several, are grouped into one cause. Each branch is its own series: pull
/// requests are never pooled.
///
/// Pull-request gate: with --baseline (or --pr-gate inside a Jenkins PR build, which reads
/// BRANCH_NAME, CHANGE_TARGET and JOB_NAME), the PR's latest builds (--pr-builds, default 3) are
/// compared per test with the baseline branch's last --baseline-builds runs: a one-sided t-test
/// on log durations, honest with 1 to 3 PR builds, adjusted by Benjamini–Hochberg (--fdr) over
/// all tests. A test is slower when significant and at least --min-shift and --min-seconds
/// slower. It prints a Markdown comment to post; --fail-on-regression then exits 5 when any
/// test is slower. A test that fails in the PR is "known flaky" when it is flaky in the
/// baseline's last --flaky-window builds (it never fails the gate), a "new failure" when it never
/// failed (nor was retried) there; --fail-on-new-failure then exits 6.
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
///   ci-test-metrics analyze --store s3://bucket --branches pr --repo-url git@github.com:org/repo.git
///
///   # The PR gate, in a Jenkins PR build (or: --branch PR-123 --baseline master --job JOB):
///   ci-test-metrics analyze --store s3://bucket --pr-gate --out comment.md --fail-on-regression
///
/// Flaky tests: a test whose results come and go in the last --flaky-window builds (retried
/// then passed, passed and failed on one commit, or short failure episodes) is listed under
/// "Flaky tests", one that fails in every run since a build under "Breakages";
/// --format list prints the flaky tests' names, one a line, for a quarantine list.
///
///   ci-test-metrics analyze --store s3://bucket --job 'mxnet-validation/unix-cpu' --format list
///
/// Exit codes: 0 ok (with or without regressions), 1 usage error, 3 no builds matched,
/// 4 the store or the sink failed, 5 --fail-on-regression and the PR makes a test slower,
/// 6 --fail-on-new-failure and a test fails in the PR that never failed in the baseline's
/// window (5 wins when both hold).
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
    /// raw XML; aggregated builds keep the class the aggregator gave them).
    #[arg(long = "branch-class", value_name = "CLASS=GLOBS")]
    pub branch_class: Vec<String>,
    /// Only the latest N builds of each job and branch.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Test cells (a test in a build: its duration and outcome, 9 bytes) held in memory at once. A series (a job on a branch) with
    /// more tests x builds is read in several passes, each over a group of its tests: more
    /// reading, the same report, memory bounded whatever the history.
    #[arg(long, value_name = "N", default_value_t = crate::analyze::load::MAX_CELLS, value_parser = clap::value_parser!(usize))]
    pub max_series_cells: usize,
    /// Repository URL for commit and compare links (https, `git@host:org/repo.git` or ssh),
    /// instead of the GIT_URL recorded at upload.
    #[arg(long, value_name = "URL")]
    pub repo_url: Option<String>,
    /// A git checkout of the repository: adds every author and the commit count of each range.
    #[arg(long, value_name = "DIR")]
    pub git_dir: Option<std::path::PathBuf>,

    /// The pull request's branch to gate, e.g. PR-123 [default with --pr-gate: $BRANCH_NAME].
    #[arg(long, value_name = "BRANCH", help_heading = "Pull-request gate")]
    pub branch: Option<String>,
    /// Compare --branch with this branch's recent builds, e.g. master [default with --pr-gate:
    /// $CHANGE_TARGET]. Switches to the gate.
    #[arg(long, value_name = "BRANCH", help_heading = "Pull-request gate")]
    pub baseline: Option<String>,
    /// The gate from Jenkins' variables: BRANCH_NAME, CHANGE_TARGET and JOB_NAME (the job, unless
    /// --job is given).
    #[arg(long, help_heading = "Pull-request gate")]
    pub pr_gate: bool,
    /// Baseline builds to compare with (the latest).
    #[arg(long, default_value_t = GateOptions::default().baseline_builds, help_heading = "Pull-request gate")]
    pub baseline_builds: usize,
    /// PR builds to use (the latest).
    #[arg(long, default_value_t = GateOptions::default().pr_builds, help_heading = "Pull-request gate")]
    pub pr_builds: usize,
    /// False discovery rate over all tests compared (Benjamini–Hochberg).
    #[arg(long, default_value_t = GateOptions::default().fdr, help_heading = "Pull-request gate")]
    pub fdr: f64,
    /// Exit 5 when the PR makes any test slower beyond --min-shift, --min-seconds and --fdr.
    #[arg(long, help_heading = "Pull-request gate")]
    pub fail_on_regression: bool,
    /// Exit 6 when a test fails in the PR that never failed (nor was retried) in the baseline's
    /// last --flaky-window builds. Known-flaky failures never fail the gate.
    #[arg(long, help_heading = "Pull-request gate")]
    pub fail_on_new_failure: bool,
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
    /// Latest builds of each series looked at for flaky tests and breakages (and, with the
    /// gate, of the baseline for known-flaky tests).
    #[arg(long, value_name = "N", default_value_t = Options::default().flaky_window)]
    pub flaky_window: usize,
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
            flaky_window: self.flaky_window,
            ..Options::default()
        };
        if o.flaky_window < 10 {
            return Err(crate::Error::Usage(
                "--flaky-window must be at least 10".into(),
            ));
        }
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
        // One branch named: that branch, whatever its class.
        let filter = if self.branch.is_some() {
            "all"
        } else {
            &self.branches
        };
        let branches = crate::aggregate::branches::BranchRules::new(&self.branch_class, filter)
            .map_err(crate::Error::Usage)?;
        Ok(Selection {
            job,
            branches,
            last: self.last,
        })
    }
}

/// The gate's branch, baseline and job, from flags or Jenkins' variables.
fn gate_target(
    args: &Args,
    var: impl Fn(&str) -> Option<String>,
) -> crate::Result<Option<(String, String, Option<String>)>> {
    if !args.pr_gate && args.baseline.is_none() {
        return Ok(None);
    }
    let var = |n: &str| var(n).filter(|v| !v.is_empty());
    let from_env = |flag: &Option<String>, name: &str, what: &str| {
        flag.clone()
            .or_else(|| if args.pr_gate { var(name) } else { None })
            .ok_or_else(|| {
                crate::Error::Usage(format!(
                    "the gate needs the {what}: pass --{} or set {name} (with --pr-gate)",
                    if what == "baseline" {
                        "baseline"
                    } else {
                        "branch"
                    }
                ))
            })
    };
    let branch = from_env(&args.branch, "BRANCH_NAME", "pull request's branch")?;
    let baseline = from_env(&args.baseline, "CHANGE_TARGET", "baseline")?;
    let job = args.job.clone().or_else(|| {
        args.pr_gate
            .then(|| var("JOB_NAME"))
            .flatten()
            .map(|j| crate::context::job_without_branch(&j, var("BRANCH_NAME").is_some()))
    });
    Ok(Some((branch, baseline, job)))
}

pub async fn run(args: Args) -> crate::Result<u8> {
    let options = args.options()?;
    let url = super::store_url(args.store.as_deref(), |n| std::env::var(n).ok())?;
    if let Some((branch, baseline, job)) = gate_target(&args, |n| std::env::var(n).ok())? {
        return run_gate(&args, &url, &branch, &baseline, job).await;
    }
    let selection = args.selection()?;
    let store = Store::open(&url).await?;
    let mut plan = load::plan(&store, &selection).await?;
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    if let Some(b) = &args.branch {
        plan.series.retain(|s| &s.branch == b);
    }
    if let Err(e) = load::ensure_some(&plan, &store, &selection) {
        eprintln!("{e}");
        return Ok(exit::EMPTY);
    }
    tracing::info!(
        series = plan.series.len(),
        builds = plan.builds(),
        from_xml = plan.from_xml,
        "planned"
    );
    // One series in memory at a time; a long one in passes over groups of its tests.
    let mut analysis = analyze::report::Analysis::new(&options);
    let (mut reading, mut analysing) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for series in &plan.series {
        let passes = series.passes(args.max_series_cells);
        let mut found = analyze::report::JobFindings::default();
        let mut last = None;
        for pass in 0..passes {
            let started = std::time::Instant::now();
            let (group, warnings) =
                load::read_series(&store, series, &selection.branches, (pass, passes)).await?;
            reading += started.elapsed();
            if pass == 0 {
                for w in &warnings {
                    tracing::warn!("{w}");
                }
            }
            let started = std::time::Instant::now();
            analysis.add_tests(&group, &mut found);
            analysing += started.elapsed();
            // The job's overview needs its builds and totals, not the group's tests.
            let mut group = group;
            group.tests = Vec::new();
            last = Some(group);
        }
        if let Some(group) = last {
            analysis.finish_job(&group, found);
        }
    }
    tracing::info!(
        reading_s = reading.as_secs_f64(),
        analysing_s = analysing.as_secs_f64(),
        "series read and analysed"
    );
    let mut report = analysis.finish();
    let git = args.git_dir.as_ref().map(crate::git::Git::new);
    if args.repo_url.is_some() || git.is_some() {
        for r in &mut report.regressions {
            if args.repo_url.is_some() {
                r.range.link(args.repo_url.as_deref());
            }
            if let Some(git) = &git {
                r.range.add_history(git);
            }
        }
        report.causes = analyze::attribution::causes(&report.regressions);
    }
    let text = match args.format {
        Format::Table => render::table(&report),
        Format::Md => render::markdown(&report),
        Format::Json => render::json(&report),
        Format::Html => render::html(&report),
        Format::List => render::flaky::list(&report),
    };
    write_out(&args.out, &text)?;
    if args.publish {
        let datums = regression_datums(&report, &args.branches, time::OffsetDateTime::now_utc());
        let mut sink = Sink::open(&args.sink, &args.namespace).await?;
        sink.publish(&datums).await?;
    }
    Ok(exit::OK)
}

fn write_out(out: &Option<std::path::PathBuf>, text: &str) -> crate::Result<()> {
    match out {
        Some(path) => std::fs::write(path, text).map_err(|source| crate::Error::Io {
            context: format!("writing {}", path.display()),
            source,
        }),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

impl Args {
    fn gate_options(&self) -> crate::Result<GateOptions> {
        let o = GateOptions {
            baseline_builds: self.baseline_builds,
            pr_builds: self.pr_builds,
            fdr: self.fdr,
            min_shift: self.min_shift,
            min_seconds: self.min_seconds,
            flaky_window: self.flaky_window,
            ..GateOptions::default()
        };
        if !(o.fdr > 0.0 && o.fdr < 1.0) {
            return Err(crate::Error::Usage("--fdr must be between 0 and 1".into()));
        }
        if o.baseline_builds < o.min_baseline_runs || o.pr_builds == 0 {
            return Err(crate::Error::Usage(format!(
                "--baseline-builds must be at least {} and --pr-builds at least 1",
                o.min_baseline_runs
            )));
        }
        if matches!(self.format, Format::Html | Format::List) {
            return Err(crate::Error::Usage(
                "the gate writes md (also for --format table) or json, not html or list".into(),
            ));
        }
        Ok(o)
    }
}

async fn run_gate(
    args: &Args,
    url: &str,
    branch: &str,
    baseline: &str,
    job: Option<String>,
) -> crate::Result<u8> {
    let o = args.gate_options()?;
    let job = match &job {
        Some(j) => Some(
            glob::Pattern::new(&glob::Pattern::escape(j))
                .map_err(|e| crate::Error::Usage(format!("job {j:?}: {e}")))?,
        ),
        None => None,
    }
    .or(args.selection()?.job);
    let selection = Selection {
        job,
        branches: crate::aggregate::branches::BranchRules::new(&args.branch_class, "all")
            .map_err(crate::Error::Usage)?,
        last: None,
    };
    let store = Store::open(url).await?;
    let mut plan = load::plan(&store, &selection).await?;
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    plan.series
        .retain(|s| s.branch == branch || s.branch == baseline);
    if !plan.series.iter().any(|s| s.branch == branch) {
        eprintln!(
            "no builds of {branch} in {} (job {}): run `ci-test-metrics aggregate` first, or check --branch/--job",
            store.describe(),
            selection.job.as_ref().map_or("*", |p| p.as_str())
        );
        return Ok(exit::EMPTY);
    }
    // The gate looks at the last --baseline-builds and --pr-builds builds with cases: read no more.
    let mut series = Vec::new();
    for mut s in plan.series {
        s.keep_last_with_cases(if s.branch == branch {
            o.pr_builds
        } else {
            // Known-flaky tests need the longer window.
            o.baseline_builds.max(o.flaky_window)
        });
        let (job, warnings) = load::read_series(&store, &s, &selection.branches, (0, 1)).await?;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        series.push(job);
    }
    let pr: Vec<_> = series.iter().filter(|s| s.branch == branch).collect();
    let base: Vec<_> = series.iter().filter(|s| s.branch == baseline).collect();
    let report = gate::gate(branch, baseline, &pr, &base, &o);
    let text = match args.format {
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&report).expect("gate report serialises")
        ),
        _ => gate::markdown(&report),
    };
    write_out(&args.out, &text)?;
    if report.slower > 0 {
        eprintln!(
            "{} test(s) slower on {branch} than on {baseline} beyond the thresholds",
            report.slower
        );
    }
    let new_failures = report.failures.new_failures.len();
    if new_failures > 0 {
        eprintln!("{new_failures} test(s) fail on {branch} that never failed in the last {} {baseline} builds", o.flaky_window);
    }
    Ok(if args.fail_on_regression && report.slower > 0 {
        exit::REGRESSION
    } else if args.fail_on_new_failure && new_failures > 0 {
        exit::NEW_FAILURE
    } else {
        exit::OK
    })
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
    fn gate_target_from_flags_or_jenkins() {
        let jenkins = |n: &str| {
            [
                ("BRANCH_NAME", "PR-7"),
                ("CHANGE_TARGET", "main"),
                ("JOB_NAME", "folder/job/PR-7"),
            ]
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.to_string())
        };
        let none = |_: &str| None;
        let t = |extra: &[&str], env: &dyn Fn(&str) -> Option<String>| {
            gate_target(&args(extra), env).map_err(|e| e.to_string())
        };
        assert_eq!(t(&[], &jenkins), Ok(None), "no gate unless asked");
        assert_eq!(
            t(&["--pr-gate"], &jenkins),
            Ok(Some((
                "PR-7".into(),
                "main".into(),
                Some("folder/job".into())
            )))
        );
        assert_eq!(
            t(&["--branch", "PR-1", "--baseline", "master"], &none),
            Ok(Some(("PR-1".into(), "master".into(), None)))
        );
        let e = t(&["--pr-gate"], &none).unwrap_err();
        assert!(e.contains("BRANCH_NAME") && e.contains("--branch"), "{e}");
        let e = t(&["--pr-gate", "--branch", "PR-1"], &none).unwrap_err();
        assert!(
            e.contains("CHANGE_TARGET") && e.contains("--baseline"),
            "{e}"
        );
        assert!(args(&["--baseline", "m", "--format", "html"])
            .gate_options()
            .is_err());
        assert!(args(&["--fdr", "0"]).gate_options().is_err());
    }

    #[test]
    fn one_datum_per_job_counting_ongoing_regressions() {
        use crate::test_synth as synth;
        let (summaries, _) = synth::generate(&synth::Config::default());
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
