//! The report's data model: what `analyze` finds and the renderers print, serialised to the
//! JSON schema of `docs/analyze.md` ([`SCHEMA_VERSION`]) — the report, its jobs and total-time
//! changes, regressions with their commit ranges and causes, new, removed and flaky tests,
//! drifts, the builds they name, the analysis options and the charts' data.
//!
//! It owns the types only (and how a build or a chart is made from a series); the steps that fill
//! them (the `report`, `attribution` and `total` modules) import it, never the other way round.

use super::changepoint::{self, Segments};
use super::series::{JobSeries, TestId};
use crate::context::Context;
use serde::Serialize;

/// The schema version of the JSON report (see `docs/analyze.md`).
/// 3 added `flaky_failures` and `breakages` (failure flakiness; `flaky_tests` stays the tests
/// with erratic durations or failures that keep them from being attributed) and
/// `options.flaky_window`.
pub const SCHEMA_VERSION: u32 = 3;

/// Thresholds of the analysis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Options {
    /// Fewest builds on each side of a change.
    pub min_segment: usize,
    /// Significance level of a split (Bonferroni-adjusted within its series).
    pub alpha: f64,
    /// Smallest relative slowdown reported (0.2 = 20%).
    pub min_shift: f64,
    /// Smallest slowdown reported, in seconds per build.
    pub min_seconds: f64,
    /// Share of builds on each side that must sit on their side of the midpoint.
    pub persistence: f64,
    /// Failure share from which a test is flaky.
    pub flaky_failure_rate: f64,
    /// Share of outlying durations from which a test is flaky.
    pub flaky_outliers: f64,
    /// Latest builds of a series looked at for failure flakiness and breakages.
    pub flaky_window: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            min_segment: 5,
            alpha: 0.001,
            min_shift: 0.2,
            min_seconds: 0.05,
            persistence: 0.6,
            flaky_failure_rate: 0.05,
            flaky_outliers: 0.1,
            flaky_window: super::flaky::Thresholds::default().window,
        }
    }
}

impl Options {
    pub(super) fn changepoint(&self) -> changepoint::Params {
        changepoint::Params {
            min_segment: self.min_segment,
            alpha: self.alpha,
            ..changepoint::Params::default()
        }
    }
}

/// One build, as a report names it (from its `context.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildRef {
    pub build: u64,
    pub branch: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
    pub commit: Option<String>,
    pub pr: Option<u64>,
    /// The Jenkins user behind a pull request (`CHANGE_AUTHOR`), else the commit's author.
    pub author: Option<String>,
    pub build_url: Option<String>,
    /// The repository the build's context names (browsable form).
    pub repo_url: Option<String>,
}

impl BuildRef {
    pub fn new(c: &Context) -> BuildRef {
        BuildRef {
            build: c.build,
            branch: c.branch.clone(),
            timestamp: c
                .timestamp
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            commit: c.commit.clone(),
            pr: c.pr,
            author: c.who(),
            build_url: c.build_url.clone(),
            repo_url: c.repo_url.clone(),
        }
    }
}

/// `x` without a negative zero (−0.0 prints as `-0.000` and serialises as `-0.0`).
pub fn unsigned_zero(x: f64) -> f64 {
    x + 0.0
}

/// What kind of cause a regression is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An existing test got slower at a change point.
    Shift,
    /// A test that appeared and stayed; it adds its median.
    NewTest,
}

/// One cause of a slower job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    /// 1 is the biggest cause.
    pub rank: usize,
    pub job: String,
    /// The branch whose series it is in.
    pub branch: String,
    pub kind: Kind,
    pub test: TestId,
    /// Median seconds before the change (null for a new test).
    pub median_before: Option<f64>,
    pub median_after: f64,
    /// Seconds added to every build of the job (median after − median before).
    pub seconds_added: f64,
    /// (after − before) / before (null for a new test).
    pub relative_change: Option<f64>,
    /// Bonferroni-adjusted rank-sum p-value of the change (null for a new test).
    pub p_value: Option<f64>,
    /// Builds with a duration in the segments before and after the change.
    pub builds_before: usize,
    pub builds_after: usize,
    /// Whether the latest builds are still at the slower level.
    pub ongoing: bool,
    /// The first build after the change.
    pub first_build: BuildRef,
    /// Last good and first bad build, their commits, the range, links and authors.
    pub range: CommitRange,
}

/// The commits a regression came in with (made and linked by the `attribution` module).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommitRange {
    /// The last build before the change (null when the change is at the first build analysed).
    pub last_good: Option<BuildRef>,
    pub first_bad: BuildRef,
    /// `GOOD..BAD` (short hashes) when both commits are known; `BAD` alone when only it is.
    pub range: Option<String>,
    /// The repository, when known (`--repo-url`, else the build's context).
    pub repo_url: Option<String>,
    /// The range on the repository's web site (GitHub, GitLab, Bitbucket forms).
    pub compare_url: Option<String>,
    /// The first bad commit on the repository's web site.
    pub commit_url: Option<String>,
    /// Who to ask: the first bad build's author, then (with `--git-dir`) every author in the range.
    pub authors: Vec<String>,
    /// Commits in the range, when git history was at hand (`--git-dir`).
    pub commits: Option<usize>,
}

/// A test that appeared in the analysed window and stayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTest {
    pub job: String,
    pub test: TestId,
    pub median: f64,
    pub first_build: BuildRef,
}

/// A test that stopped running.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedTest {
    pub job: String,
    pub test: TestId,
    pub median: f64,
    /// The last build it ran in.
    pub last_build: BuildRef,
    /// The first build without it.
    pub first_build_without: BuildRef,
}

/// A test whose durations or results are too erratic to attribute a change to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlakyTest {
    pub job: String,
    pub test: TestId,
    /// Failed or errored runs / runs.
    pub failure_rate: f64,
    /// Durations outside half to twice their segment's median / durations.
    pub outlier_rate: f64,
    pub median: f64,
}

/// A test whose results come and go with no commit to blame (failure flakiness; see the
/// `flakiness` module), in the latest `options.flaky_window` builds of its series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlakyFailure {
    pub job: String,
    pub branch: String,
    pub test: TestId,
    /// Why, every one that holds: `within_build` (failed, then passed on a retry), `same_commit`
    /// (passed and failed on one commit), `intermittent` (short failure episodes).
    pub reasons: Vec<String>,
    /// Builds in the window that ran it (passed, failed or flaky) and of those, failed ones.
    pub runs: usize,
    pub failures: usize,
    /// failures / runs.
    pub failure_rate: f64,
    /// Changes between passing and failing in consecutive runs / (runs − 1).
    pub flip_rate: f64,
    /// The builds where it was flaky, oldest first.
    pub flaky_builds: Vec<BuildRef>,
    pub first_flaky: BuildRef,
    pub last_flaky: BuildRef,
    /// Where it started being flaky, when that stands out: so many clean runs before the first
    /// flaky build that, at the rate seen after it, such a stretch has a chance under 0.1%.
    pub started: Option<CommitRange>,
}

/// A test that started failing at a build and failed in every run since.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakage {
    pub job: String,
    pub branch: String,
    pub test: TestId,
    /// Failed runs in a row, up to the latest.
    pub failing_runs: usize,
    /// The last build that ran it and passed (or was flaky), the first failing one, and the
    /// commits between them.
    pub range: CommitRange,
}

/// A slowdown spread over many builds, with no single build to blame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub job: String,
    pub test: TestId,
    pub median_first: f64,
    pub median_last: f64,
    pub seconds_added: f64,
    pub from_build: BuildRef,
    pub to_build: BuildRef,
}

/// One job's overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobReport {
    pub job: String,
    /// The branch analysed (each branch is its own series) and its class.
    pub branch: String,
    pub branch_class: String,
    pub builds: usize,
    pub first_build: BuildRef,
    pub last_build: BuildRef,
    /// Tests that ran in the last build.
    pub tests: usize,
    /// Median total test time of the builds after the last total-time change point (or all).
    pub total_time_median: f64,
    pub total_time_changes: Vec<TotalChange>,
    pub regressions: usize,
    pub seconds_added: f64,
}

/// A change point in a job's total test time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TotalChange {
    pub median_before: f64,
    pub median_after: f64,
    /// Positive: slower.
    pub seconds_added: f64,
    pub p_value: f64,
    /// Where the shift begins: the first build of the earliest regression that explains it, else
    /// the build the change-point test split at.
    pub first_build: BuildRef,
    /// The build the change-point test split the total at.
    pub detected_at: u64,
    /// Regressions of this job that begin near this change (within `min_segment` builds, or
    /// between it and the next one), in the order they begin.
    pub explained_by: Vec<Explanation>,
    /// Sum of their seconds added per build.
    pub explained_seconds: f64,
    /// True when no regression explains the shift.
    pub unexplained: bool,
}

/// A regression that is part of a total-time change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub test: TestId,
    pub kind: Kind,
    pub first_build: u64,
    pub seconds_added: f64,
}

/// The whole report; serialises to the documented JSON schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub generated_at: String,
    pub options: Options,
    /// The branch classes analysed (`master`, `pr`, …), each branch a series of its own.
    pub branch_classes: Vec<String>,
    pub jobs: Vec<JobReport>,
    /// Regressions grouped by the commit they came in with, biggest first.
    pub causes: Vec<Cause>,
    pub regressions: Vec<Regression>,
    pub new_tests: Vec<NewTest>,
    pub removed_tests: Vec<RemovedTest>,
    /// Tests too erratic (durations or failures) to attribute a slowdown to ("erratic durations"
    /// in the other formats).
    pub flaky_tests: Vec<FlakyTest>,
    /// Tests flaky in their results (failure flakiness), most flaky builds first.
    pub flaky_failures: Vec<FlakyFailure>,
    /// Tests failing since a build, most failing runs first.
    pub breakages: Vec<Breakage>,
    pub drifts: Vec<Drift>,
    /// Series for the charts; not part of the JSON.
    #[serde(skip)]
    pub charts: Charts,
}

/// Regressions that came in with the same commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    /// 1 is the biggest.
    pub rank: usize,
    /// The first bad commit (null when the builds name none: then a cause is one job's build).
    pub commit: Option<String>,
    /// The narrowest of the regressions' ranges.
    pub range: CommitRange,
    /// Every job (and branch) the commit slowed, `job` or `job [branch]` when not master-like.
    pub jobs: Vec<String>,
    /// Ranks of the regressions it explains.
    pub regressions: Vec<usize>,
    /// Sum of the regressions' seconds added per build (over all its jobs).
    pub seconds_added: f64,
}

/// The data behind the HTML report's charts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Charts {
    /// Per job (same order as `Report::jobs`).
    pub jobs: Vec<Chart>,
    /// Per regression (same order as `Report::regressions`).
    pub regressions: Vec<Chart>,
}

/// One trend chart: values by build, and the change points to mark.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chart {
    pub builds: Vec<u64>,
    /// Each build's date, `YYYY-MM-DD`.
    pub dates: Vec<String>,
    /// NaN where there is no value.
    pub values: Vec<f64>,
    pub changes: Vec<ChartChange>,
}

/// A change point on a chart, in build indexes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartChange {
    /// First build of the segment before (`before` is NaN, and no line is drawn, for a new test).
    pub from: usize,
    /// First build after the change.
    pub at: usize,
    /// Last build of the segment after.
    pub to: usize,
    pub before: f64,
    pub after: f64,
}

impl ChartChange {
    /// The change at `c` between segments `s` and `s + 1` of known values at build indexes `at`.
    pub(super) fn new(seg: &Segments, s: usize, at: &[usize]) -> ChartChange {
        let after = seg.range(s + 1, at.len());
        ChartChange {
            from: at[seg.starts[s]],
            at: at[after.start],
            to: at[after.end - 1],
            before: seg.medians[s],
            after: seg.medians[s + 1],
        }
    }
}

impl Chart {
    /// A chart of `values` over a series' builds, with no change marked yet.
    pub(super) fn of(job: &JobSeries, values: Vec<f64>) -> Chart {
        Chart {
            builds: job.builds.iter().map(|b| b.build).collect(),
            dates: job
                .builds
                .iter()
                .map(|b| {
                    let d = b.timestamp.date();
                    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
                })
                .collect(),
            values,
            changes: vec![],
        }
    }
}
