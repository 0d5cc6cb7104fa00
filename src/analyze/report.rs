//! From series to findings: which change points are regressions, which tests are new, removed,
//! flaky or drifting, what each costs per build, and which build introduced it. Ranked by the
//! seconds each adds to every build of its job.
//!
//! A change point found by [`changepoint::detect`] becomes a regression only when all hold:
//! - it is a slowdown of at least `min_seconds` and `min_shift` (relative) between the medians of
//!   the segments either side;
//! - it persists: at least `persistence` of the values after it are above the midpoint of the two
//!   medians, and as many before it below (a spike or a flaky test fails this);
//! - it is sharp: near the change, a step on top of a linear trend fits the log durations
//!   significantly better than the trend alone (a slow drift fails this, and is reported as a
//!   drift instead);
//! - the test is not flaky: it fails or errors in at least `flaky_failure_rate` of its runs, or at
//!   least `flaky_outliers` of its durations lie outside half to twice their segment's median.

use super::attribution::{self, Cause, CommitRange};
use super::changepoint::{self, median, Change};
use super::series::{JobSeries, TestId, TestSeries};
use super::total::job_overview;
pub use super::total::{Explanation, TotalChange};
use crate::context::Context;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

/// The schema version of the JSON report (see `docs/analyze.md`).
pub const SCHEMA_VERSION: u32 = 2;

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
    pub flaky_tests: Vec<FlakyTest>,
    pub drifts: Vec<Drift>,
    /// Series for the charts; not part of the JSON.
    #[serde(skip)]
    pub charts: Charts,
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

/// Everything found in one test.
#[derive(Debug, Default)]
struct Findings {
    regressions: Vec<(Regression, Chart)>,
    new_test: Option<NewTest>,
    removed: Option<RemovedTest>,
    flaky: Option<FlakyTest>,
    drift: Option<Drift>,
}

/// Analyses every job and ranks the causes.
pub fn analyze(jobs: &[JobSeries], options: &Options) -> Report {
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        generated_at: time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        options: *options,
        branch_classes: vec![],
        jobs: vec![],
        causes: vec![],
        regressions: vec![],
        new_tests: vec![],
        removed_tests: vec![],
        flaky_tests: vec![],
        drifts: vec![],
        charts: Charts::default(),
    };
    let mut ranked: Vec<(Regression, Chart)> = Vec::new();
    for job in jobs.iter().filter(|j| !j.builds.is_empty()) {
        let findings = analyze_tests(job, options);
        let mut job_regressions = Vec::new();
        for f in findings {
            job_regressions.extend(f.regressions);
            report.new_tests.extend(f.new_test);
            report.removed_tests.extend(f.removed);
            report.flaky_tests.extend(f.flaky);
            report.drifts.extend(f.drift);
        }
        let (job_report, chart) = job_overview(job, &job_regressions, options);
        report.jobs.push(job_report);
        report.charts.jobs.push(chart);
        ranked.extend(job_regressions);
    }
    ranked.sort_by(|(a, _), (b, _)| {
        b.seconds_added
            .total_cmp(&a.seconds_added)
            .then(
                a.p_value
                    .unwrap_or(0.0)
                    .total_cmp(&b.p_value.unwrap_or(0.0)),
            )
            .then_with(|| (&a.job, &a.test).cmp(&(&b.job, &b.test)))
    });
    for (i, (mut r, chart)) in ranked.into_iter().enumerate() {
        r.rank = i + 1;
        report.regressions.push(r);
        report.charts.regressions.push(chart);
    }
    report.causes = attribution::causes(&report.regressions);
    for j in jobs {
        if !report.branch_classes.contains(&j.branch_class) {
            report.branch_classes.push(j.branch_class.clone());
        }
    }
    report.branch_classes.sort();
    let by_cost = |a: &f64, b: &f64| b.total_cmp(a);
    report
        .new_tests
        .sort_by(|a, b| by_cost(&a.median, &b.median));
    report
        .removed_tests
        .sort_by(|a, b| by_cost(&a.median, &b.median));
    report
        .flaky_tests
        .sort_by(|a, b| by_cost(&a.median, &b.median));
    report
        .drifts
        .sort_by(|a, b| by_cost(&a.seconds_added, &b.seconds_added));
    report
}

/// Analyses a job's tests on the available cores (std threads; the work per test is independent).
fn analyze_tests(job: &JobSeries, options: &Options) -> Vec<Findings> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if threads < 2 || job.tests.len() < 256 {
        return job
            .tests
            .iter()
            .map(|t| analyze_test(job, t, options))
            .collect();
    }
    let chunk = job.tests.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = job
            .tests
            .chunks(chunk)
            .map(|tests| {
                scope.spawn(move || {
                    tests
                        .iter()
                        .map(|t| analyze_test(job, t, options))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Segment medians and lengths between change points of `x`.
pub(super) struct Segments {
    /// Start index of each segment (the first is 0).
    pub(super) starts: Vec<usize>,
    pub(super) medians: Vec<f64>,
}

impl Segments {
    pub(super) fn new(x: &[f64], changes: &[Change]) -> Segments {
        let starts: Vec<usize> = std::iter::once(0)
            .chain(changes.iter().map(|c| c.index))
            .collect();
        let medians = (0..starts.len())
            .map(|s| median(&x[starts[s]..Segments::end(&starts, s, x.len())]))
            .collect();
        Segments { starts, medians }
    }
    fn end(starts: &[usize], s: usize, n: usize) -> usize {
        starts.get(s + 1).copied().unwrap_or(n)
    }
    fn range(&self, s: usize, n: usize) -> std::ops::Range<usize> {
        self.starts[s]..Segments::end(&self.starts, s, n)
    }
}

fn analyze_test(job: &JobSeries, t: &TestSeries, o: &Options) -> Findings {
    let n = job.builds.len();
    let mut out = Findings::default();
    let (x, at) = t.known();
    if t.runs == 0 {
        return out;
    }
    let whole_median = median(&x);
    let absent_at_end = n - 1 - t.last_seen;
    let present_share = t.runs as f64 / (t.last_seen - t.first_seen + 1) as f64;
    if absent_at_end >= o.min_segment.max(1) && t.runs >= o.min_segment && !whole_median.is_nan() {
        out.removed = Some(RemovedTest {
            job: job.job.clone(),
            test: t.id.clone(),
            median: whole_median,
            last_build: BuildRef::new(&job.builds[t.last_seen]),
            first_build_without: BuildRef::new(&job.builds[t.last_seen + 1]),
        });
    } else if t.first_seen > 0 && t.runs >= o.min_segment && present_share >= 0.8 {
        // Appeared and stayed: its median (of its first builds, before any later change) is a cost.
        let head = median(&x[..x.len().min(2 * o.min_segment)]);
        if !head.is_nan() {
            let first = BuildRef::new(&job.builds[t.first_seen]);
            out.new_test = Some(NewTest {
                job: job.job.clone(),
                test: t.id.clone(),
                median: head,
                first_build: first.clone(),
            });
            if head >= o.min_seconds && absent_at_end == 0 {
                let chart = Chart {
                    changes: vec![ChartChange {
                        from: t.first_seen,
                        at: t.first_seen,
                        to: t.last_seen,
                        before: f64::NAN,
                        after: head,
                    }],
                    ..Chart::of(job, t.values.clone())
                };
                let range = CommitRange::new(
                    t.first_seen
                        .checked_sub(1)
                        .map(|i| BuildRef::new(&job.builds[i])),
                    first.clone(),
                    None,
                );
                out.regressions.push((
                    Regression {
                        rank: 0,
                        job: job.job.clone(),
                        branch: job.branch.clone(),
                        kind: Kind::NewTest,
                        test: t.id.clone(),
                        median_before: None,
                        median_after: head,
                        seconds_added: head,
                        relative_change: None,
                        p_value: None,
                        builds_before: 0,
                        builds_after: x.len(),
                        ongoing: true,
                        first_build: first,
                        range,
                    },
                    chart,
                ));
            }
        }
    }
    if x.len() < 2 * o.min_segment {
        return out;
    }
    let changes = changepoint::detect(&x, &o.changepoint());
    let seg = Segments::new(&x, &changes);
    let outliers = (0..seg.starts.len())
        .flat_map(|s| {
            let m = seg.medians[s];
            x[seg.range(s, x.len())]
                .iter()
                .map(move |v| !(m / 2.0..=m * 2.0).contains(v))
        })
        .filter(|&o| o)
        .count() as f64
        / x.len() as f64;
    let failure_rate = t.failures as f64 / t.runs as f64;
    if (t.failures >= 2 && failure_rate >= o.flaky_failure_rate) || outliers >= o.flaky_outliers {
        out.flaky = Some(FlakyTest {
            job: job.job.clone(),
            test: t.id.clone(),
            failure_rate,
            outlier_rate: outliers,
            median: whole_median,
        });
        return out;
    }
    let last_median = *seg.medians.last().unwrap_or(&f64::NAN);
    let mut chart = Chart::default();
    let mut found = Vec::new();
    for (s, c) in changes.iter().enumerate() {
        let (before, after) = (&x[seg.range(s, x.len())], &x[seg.range(s + 1, x.len())]);
        let (mb, ma) = (seg.medians[s], seg.medians[s + 1]);
        let delta = ma - mb;
        if !is_slowdown(mb, ma, o) || !persists(before, after, o) || !is_sharp(before, after) {
            continue;
        }
        chart.changes.push(ChartChange::new(&seg, s, &at));
        let first_bad = BuildRef::new(&job.builds[at[c.index]]);
        // The last good build: the latest before the change with a value.
        let last_good = c
            .index
            .checked_sub(1)
            .map(|i| BuildRef::new(&job.builds[at[i]]));
        found.push(Regression {
            rank: 0,
            job: job.job.clone(),
            branch: job.branch.clone(),
            kind: Kind::Shift,
            test: t.id.clone(),
            median_before: Some(mb),
            median_after: ma,
            seconds_added: delta,
            relative_change: Some(if mb > 0.0 { delta / mb } else { f64::INFINITY })
                .filter(|r| r.is_finite()),
            p_value: Some(c.p_value),
            builds_before: before.len(),
            builds_after: after.len(),
            ongoing: last_median >= mb + delta / 2.0,
            range: CommitRange::new(last_good, first_bad.clone(), None),
            first_build: first_bad,
        });
    }
    if found.is_empty() {
        let first = seg.medians[0];
        if seg.medians.len() > 1 && is_slowdown(first, last_median, o) {
            out.drift = Some(Drift {
                job: job.job.clone(),
                test: t.id.clone(),
                median_first: first,
                median_last: last_median,
                seconds_added: last_median - first,
                from_build: BuildRef::new(&job.builds[at[changes[0].index]]),
                to_build: BuildRef::new(&job.builds[at[changes[changes.len() - 1].index]]),
            });
        }
        return out;
    }
    chart = Chart {
        changes: chart.changes,
        ..Chart::of(job, t.values.clone())
    };
    out.regressions
        .extend(found.into_iter().map(|r| (r, chart.clone())));
    out
}

/// A slowdown by at least the minimum seconds and share.
fn is_slowdown(before: f64, after: f64, o: &Options) -> bool {
    let delta = after - before;
    delta >= o.min_seconds && (before <= 0.0 || delta / before >= o.min_shift)
}

/// Enough builds on each side sit on their side of the midpoint.
fn persists(before: &[f64], after: &[f64], o: &Options) -> bool {
    let mid = (median(before) + median(after)) / 2.0;
    let share = |s: &[f64], f: &dyn Fn(f64) -> bool| {
        s.iter().filter(|v| f(**v)).count() as f64 / s.len() as f64
    };
    share(before, &|v| v < mid) >= o.persistence && share(after, &|v| v > mid) >= o.persistence
}

/// Builds either side of a change that the sharpness test looks at.
const SHARP_WINDOW: usize = 30;

/// The change is a step, not part of a slow drift: within [`SHARP_WINDOW`] builds either side,
/// a step added to a linear trend explains the log durations significantly better (F-test,
/// p < 0.01) than the trend alone, and the step is upwards. Each side's log values are clipped
/// to its median ± 0.5 first, so a spike does not hide a step.
fn is_sharp(before: &[f64], after: &[f64]) -> bool {
    let b = &before[before.len().saturating_sub(SHARP_WINDOW)..];
    let a = &after[..after.len().min(SHARP_WINDOW)];
    let clipped = |side: &[f64]| {
        let m = median(side).max(1e-9).ln();
        side.iter()
            .map(move |v| v.max(1e-9).ln().clamp(m - 0.5, m + 0.5))
            .collect::<Vec<_>>()
    };
    let y: Vec<f64> = clipped(b).into_iter().chain(clipped(a)).collect();
    let step: Vec<f64> = (0..y.len())
        .map(|i| f64::from(u8::from(i >= b.len())))
        .collect();
    let n = y.len();
    if n < 6 {
        return true;
    }
    let (ry, rs) = (detrend(&y), detrend(&step));
    let cross: f64 = ry.iter().zip(&rs).map(|(a, b)| a * b).sum();
    let rs2: f64 = rs.iter().map(|v| v * v).sum();
    let trend_sse: f64 = ry.iter().map(|v| v * v).sum();
    if rs2 <= 0.0 || cross <= 0.0 {
        return false;
    }
    let reduction = cross * cross / rs2;
    let step_sse = (trend_sse - reduction).max(0.0);
    if step_sse <= 1e-12 * trend_sse.max(1e-300) {
        return true;
    }
    let f = reduction / (step_sse / (n - 3) as f64);
    FisherSnedecor::new(1.0, (n - 3) as f64).map_or(true, |d| d.sf(f) < 0.01)
}

/// Residuals of `v` after a least-squares line over its index.
fn detrend(v: &[f64]) -> Vec<f64> {
    let n = v.len() as f64;
    let mean_t = (n - 1.0) / 2.0;
    let mean_v = v.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in v.iter().enumerate() {
        let dt = i as f64 - mean_t;
        sxy += dt * (y - mean_v);
        sxx += dt * dt;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    v.iter()
        .enumerate()
        .map(|(i, y)| y - mean_v - slope * (i as f64 - mean_t))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::series;
    use crate::analyze::synth::Rng;
    use crate::junit::Status;
    use crate::summary::{BuildSummary, CaseSummary, FileSummary};

    /// What a test does in build `b` of `N`: its duration and status, or `None` when absent.
    type Behaviour = fn(usize, &mut Rng) -> Option<(f64, Status)>;
    const N: usize = 80;

    fn noisy(base: f64, rng: &mut Rng) -> f64 {
        base * (0.1 * rng.normal()).exp()
    }

    const TESTS: &[(&str, Behaviour)] = &[
        ("steady", |_, r| Some((noisy(2.0, r), Status::Passed))),
        ("small_step", |b, r| {
            Some((noisy(if b >= 50 { 3.0 } else { 2.0 }, r), Status::Passed))
        }),
        ("big_step", |b, r| {
            Some((noisy(if b >= 30 { 9.0 } else { 3.0 }, r), Status::Passed))
        }),
        ("spike", |b, r| {
            Some((noisy(if b == 40 { 60.0 } else { 2.0 }, r), Status::Passed))
        }),
        ("tiny_step", |b, r| {
            Some((
                noisy(if b >= 40 { 0.004 } else { 0.002 }, r),
                Status::Passed,
            ))
        }),
        ("flaky", |b, r| {
            let slow = b % 4 == 0 && b > 35;
            let status = if b % 9 == 0 {
                Status::Failed
            } else {
                Status::Passed
            };
            Some((noisy(if slow { 12.0 } else { 2.0 }, r), status))
        }),
        ("new_slow", |b, r| {
            (b >= 60).then(|| (noisy(5.0, r), Status::Passed))
        }),
        ("removed", |b, r| {
            (b < 70).then(|| (noisy(1.0, r), Status::Passed))
        }),
    ];

    fn history() -> Vec<BuildSummary> {
        let mut rng = Rng::new(42);
        let start = time::macros::datetime!(2026-03-01 00:00 UTC);
        (0..N)
            .map(|b| {
                let cases = TESTS
                    .iter()
                    .filter_map(|(name, f)| {
                        f(b, &mut rng).map(|(time, status)| CaseSummary {
                            suite: "suite".into(),
                            classname: "pkg.Class".into(),
                            name: name.to_string(),
                            time: Some(time),
                            status,
                            attempts: 1,
                        })
                    })
                    .collect();
                BuildSummary {
                    schema_version: 1,
                    context: crate::context::Context {
                        build_url: Some(format!("https://ci.invalid/job/{b}/")),
                        commit: Some(format!("c{b:04}")),
                        user: Some(format!("user{b}")),
                        pr: Some(9000 + b as u64),
                        ..crate::context::Context::new(
                            "job",
                            "master",
                            500 + b as u64,
                            start + time::Duration::hours(b as i64),
                        )
                    },
                    branch_class: "master".into(),
                    published: true,
                    files: vec![FileSummary {
                        name: "r.xml".into(),
                        error: None,
                        partial: false,
                        cases,
                    }],
                }
            })
            .collect()
    }

    #[test]
    fn regressions_are_steps_and_new_tests_ranked_by_seconds_added() {
        let report = analyze(&series::build(&history()), &Options::default());
        let got: Vec<(&str, Kind, u64)> = report
            .regressions
            .iter()
            .map(|r| (r.test.name.as_str(), r.kind, r.first_build.build))
            .collect();
        assert_eq!(
            got,
            [
                ("big_step", Kind::Shift, 530),
                ("new_slow", Kind::NewTest, 560),
                ("small_step", Kind::Shift, 550),
            ]
        );
        assert_eq!(
            report
                .regressions
                .iter()
                .map(|r| r.rank)
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let big = &report.regressions[0];
        assert_eq!(big.first_build.commit.as_deref(), Some("c0030"));
        assert_eq!(big.first_build.author.as_deref(), Some("user30"));
        assert_eq!(big.first_build.pr, Some(9030));
        assert!((big.median_before.unwrap() - 3.0).abs() < 0.3, "{big:?}");
        assert!((big.seconds_added - 6.0).abs() < 0.6, "{big:?}");
        assert!(big.p_value.unwrap() < 1e-6 && big.ongoing);
    }

    #[test]
    fn decoys_are_listed_as_what_they_are() {
        let report = analyze(&series::build(&history()), &Options::default());
        let names = |v: Vec<&TestId>| v.into_iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let cases: [(&str, Vec<String>, Vec<&str>); 3] = [
            (
                "flaky",
                names(report.flaky_tests.iter().map(|t| &t.test).collect()),
                vec!["flaky"],
            ),
            (
                "new",
                names(report.new_tests.iter().map(|t| &t.test).collect()),
                vec!["new_slow"],
            ),
            (
                "removed",
                names(report.removed_tests.iter().map(|t| &t.test).collect()),
                vec!["removed"],
            ),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(report.removed_tests[0].first_build_without.build, 570);
        assert!(report.drifts.is_empty(), "{:?}", report.drifts);
        let job = &report.jobs[0];
        assert_eq!((job.builds, job.regressions), (N, 3));
        assert!(
            job.total_time_changes
                .iter()
                .any(|c| c.first_build.build == 530 && c.seconds_added > 0.0),
            "{:?}",
            job.total_time_changes
        );
    }

    #[test]
    fn json_has_the_documented_fields() {
        let report = analyze(&series::build(&history()), &Options::default());
        let v: serde_json::Value =
            serde_json::from_str(&crate::analyze::render::json(&report)).unwrap();
        assert_eq!(v["schema_version"], 2);
        for key in [
            "generated_at",
            "options",
            "jobs",
            "regressions",
            "new_tests",
            "removed_tests",
            "flaky_tests",
            "drifts",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        let r = &v["regressions"][0];
        for key in [
            "rank",
            "job",
            "kind",
            "test",
            "median_before",
            "median_after",
            "seconds_added",
            "relative_change",
            "p_value",
            "builds_before",
            "builds_after",
            "ongoing",
            "first_build",
        ] {
            assert!(r.get(key).is_some(), "regression.{key}");
        }
        assert_eq!(r["kind"], "shift");
        assert_eq!(r["test"]["classname"], "pkg.Class");
        for key in [
            "build",
            "branch",
            "timestamp",
            "commit",
            "pr",
            "author",
            "build_url",
        ] {
            assert!(r["first_build"].get(key).is_some(), "first_build.{key}");
        }
        assert_eq!(r["first_build"]["timestamp"], "2026-03-02T06:00:00Z");
        assert!(v["jobs"][0]["total_time_changes"].is_array());
    }
}
