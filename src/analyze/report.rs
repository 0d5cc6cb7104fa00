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

use super::attribution;
use super::changepoint::{self, median, Segments};
use super::flakiness;
use super::model::{
    BuildRef, Chart, ChartChange, Charts, CommitRange, Drift, FlakyTest, Kind, NewTest, Options,
    Regression, RemovedTest, Report, SCHEMA_VERSION,
};
use super::series::{JobSeries, TestSeries};
use super::total::job_overview;
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

/// Everything found in one test.
#[derive(Debug, Default)]
struct Findings {
    failures: Option<flakiness::Finding>,
    regressions: Vec<(Regression, Chart)>,
    new_test: Option<NewTest>,
    removed: Option<RemovedTest>,
    flaky: Option<FlakyTest>,
    drift: Option<Drift>,
}

/// Analyses every job and ranks the causes.
pub fn analyze(jobs: &[JobSeries], options: &Options) -> Report {
    let mut analysis = Analysis::new(options);
    for job in jobs {
        analysis.add(job);
    }
    analysis.finish()
}

/// What a job's groups of tests found, until its overview.
#[derive(Debug, Default)]
pub struct JobFindings {
    regressions: Vec<(Regression, Chart)>,
    tests_in_last_build: usize,
}

/// A report built one series at a time, so only the series being analysed is in memory.
pub struct Analysis {
    report: Report,
    ranked: Vec<(Regression, Chart)>,
}

impl Analysis {
    pub fn new(options: &Options) -> Analysis {
        Analysis {
            report: Report {
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
                flaky_failures: vec![],
                breakages: vec![],
                drifts: vec![],
                charts: Charts::default(),
            },
            ranked: Vec::new(),
        }
    }

    /// Analyses one job's series on one branch.
    pub fn add(&mut self, job: &JobSeries) {
        let mut found = JobFindings::default();
        self.add_tests(job, &mut found);
        self.finish_job(job, found);
    }

    /// Analyses some of a job's tests: a series read in several passes, each holding a group
    /// of its tests (so memory follows the group, not the job), gives each group here, then
    /// calls [`Analysis::finish_job`] once.
    pub fn add_tests(&mut self, group: &JobSeries, found: &mut JobFindings) {
        let report = &mut self.report;
        if group.builds.is_empty() {
            return;
        }
        let n = group.builds.len();
        found.tests_in_last_build += group.tests.iter().filter(|t| t.last_seen == n - 1).count();
        for f in analyze_tests(group, &report.options) {
            found.regressions.extend(f.regressions);
            report.new_tests.extend(f.new_test);
            report.removed_tests.extend(f.removed);
            report.flaky_tests.extend(f.flaky);
            report.drifts.extend(f.drift);
            match f.failures {
                Some(flakiness::Finding::Flaky(t)) => report.flaky_failures.push(*t),
                Some(flakiness::Finding::Breakage(b)) => report.breakages.push(*b),
                None => {}
            }
        }
    }

    /// The job's overview, from what its groups found (`job`: any of its groups; the builds and
    /// totals are the same in each).
    pub fn finish_job(&mut self, job: &JobSeries, found: JobFindings) {
        let report = &mut self.report;
        if !report.branch_classes.contains(&job.branch_class) {
            report.branch_classes.push(job.branch_class.clone());
        }
        if job.builds.is_empty() {
            return;
        }
        let (job_report, chart) = job_overview(
            job,
            &found.regressions,
            found.tests_in_last_build,
            &report.options,
        );
        report.jobs.push(job_report);
        report.charts.jobs.push(chart);
        self.ranked.extend(found.regressions);
    }

    /// Ranks what was found.
    pub fn finish(self) -> Report {
        let Analysis {
            mut report,
            mut ranked,
        } = self;
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
        report.branch_classes.sort();
        // Costliest first; ties by job and test, whatever order the tests were analysed in.
        macro_rules! by_cost {
            ($list:expr, $cost:ident) => {
                $list.sort_by(|a, b| {
                    b.$cost
                        .total_cmp(&a.$cost)
                        .then_with(|| (&a.job, &a.test).cmp(&(&b.job, &b.test)))
                })
            };
        }
        by_cost!(report.new_tests, median);
        by_cost!(report.removed_tests, median);
        by_cost!(report.flaky_tests, median);
        by_cost!(report.drifts, seconds_added);
        flakiness::sort(&mut report.flaky_failures, &mut report.breakages);
        report
    }
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

fn analyze_test(job: &JobSeries, t: &TestSeries, o: &Options) -> Findings {
    let n = job.builds.len();
    let mut out = Findings {
        failures: flakiness::find(job, t, o),
        ..Findings::default()
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::series::{self, TestId};
    use crate::junit::Status;
    use crate::summary::{BuildSummary, CaseSummary, FileSummary};
    use crate::test_synth::Rng;

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
        assert_eq!(v["schema_version"], 3);
        for key in [
            "generated_at",
            "options",
            "jobs",
            "regressions",
            "new_tests",
            "removed_tests",
            "flaky_tests",
            "flaky_failures",
            "breakages",
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
