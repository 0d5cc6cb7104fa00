//! The report's failure-flakiness section: each test's outcomes over the latest
//! `Options::flaky_window` builds of its series go through [`super::flaky::classify`]; a flaky
//! test becomes a [`FlakyFailure`] (its flaky builds, rates, first and last seen, and the commit
//! where it started when one stands out), a breakage a [`Breakage`] with its commit range.

use super::flaky::{self, Outcome, Reason, Run, Thresholds, Verdict};
use super::model::{Breakage, BuildRef, CommitRange, FlakyFailure, Options};
use super::series::{JobSeries, TestSeries};

/// What one test's outcomes say.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    Flaky(Box<FlakyFailure>),
    Breakage(Box<Breakage>),
}

/// The thresholds the report uses: the defaults, over `options.flaky_window` builds.
pub fn thresholds(options: &Options) -> Thresholds {
    Thresholds {
        window: options.flaky_window.max(1),
        ..Thresholds::default()
    }
}

/// The classifier's view of one test: its outcome and commit per build.
pub fn runs<'a>(job: &'a JobSeries, t: &TestSeries) -> Vec<Run<'a>> {
    job.builds
        .iter()
        .zip(&t.outcomes)
        .map(|(b, &outcome)| Run {
            outcome,
            commit: b.commit.as_deref(),
        })
        .collect()
}

/// Classifies one test of a series.
pub fn find(job: &JobSeries, t: &TestSeries, o: &Options) -> Option<Finding> {
    if !t
        .outcomes
        .iter()
        .any(|o| *o == Outcome::Failed || *o == Outcome::Flaky)
    {
        return None;
    }
    let runs = runs(job, t);
    let c = flaky::classify(&runs, &thresholds(o));
    let build = |i: usize| BuildRef::new(&job.builds[i]);
    match c.verdict {
        Verdict::Neither => None,
        Verdict::Breakage {
            from,
            runs: failing,
        } => {
            // The last build before it that ran the test without failing.
            let last_good = (0..from)
                .rev()
                .find(|&i| matches!(runs[i].outcome, Outcome::Passed | Outcome::Flaky));
            Some(Finding::Breakage(Box::new(Breakage {
                job: job.job.clone(),
                branch: job.branch.clone(),
                test: t.id.clone(),
                failing_runs: failing,
                range: CommitRange::new(last_good.map(build), build(from), None),
            })))
        }
        Verdict::Flaky(reasons) => {
            let (&first, &last) = (c.flaky_builds.first()?, c.flaky_builds.last()?);
            let started = started_at(&runs, &c.flaky_builds, o)
                .map(|(good, bad)| CommitRange::new(good.map(build), build(bad), None));
            Some(Finding::Flaky(Box::new(FlakyFailure {
                job: job.job.clone(),
                branch: job.branch.clone(),
                test: t.id.clone(),
                reasons: reasons.iter().map(reason_name).map(String::from).collect(),
                runs: c.runs,
                failures: c.failures,
                failure_rate: c.failure_rate.unwrap_or(0.0),
                flip_rate: c.flip_rate.unwrap_or(0.0),
                flaky_builds: c.flaky_builds.iter().map(|&i| build(i)).collect(),
                first_flaky: build(first),
                last_flaky: build(last),
                started,
            })))
        }
    }
}

fn reason_name(r: &Reason) -> &'static str {
    match r {
        Reason::WithinBuild(_) => "within_build",
        Reason::SameCommit(_) => "same_commit",
        Reason::Intermittent { .. } => "intermittent",
    }
}

/// The build where the flakiness started, and the last run before it, when that stands out:
/// the runs in the window before the first flaky build are so many that, at the share of flaky
/// runs seen after it (the first one left out: counting it would overstate the rate), so long a
/// clean stretch has a chance under [`STARTED_P`].
/// How unlikely a clean stretch must be to name where flakiness started: with hundreds of flaky
/// tests, 1% would name a start for a few that always were flaky.
pub const STARTED_P: f64 = 0.001;

fn started_at(
    runs: &[Run<'_>],
    flaky_builds: &[usize],
    o: &Options,
) -> Option<(Option<usize>, usize)> {
    let first = *flaky_builds.first()?;
    let start = runs.len().saturating_sub(o.flaky_window.max(1));
    let ran =
        |i: &usize| runs[*i].outcome != Outcome::NotRun && runs[*i].outcome != Outcome::Skipped;
    let before = (start..first).filter(ran).count();
    let since = (first..runs.len()).filter(ran).count();
    let rate = (flaky_builds.len() - 1) as f64 / since.saturating_sub(1).max(1) as f64;
    if rate <= 0.0 || rate >= 1.0 || (1.0 - rate).powi(before as i32) >= STARTED_P {
        return None;
    }
    Some(((start..first).rev().find(ran), first))
}

/// Sorts the section: most flaky builds (most failing runs) first, ties by job, branch and test,
/// whatever order the tests were analysed in.
pub fn sort(flaky: &mut [FlakyFailure], breakages: &mut [Breakage]) {
    flaky.sort_by(|a, b| {
        b.flaky_builds
            .len()
            .cmp(&a.flaky_builds.len())
            .then_with(|| (&a.job, &a.branch, &a.test).cmp(&(&b.job, &b.branch, &b.test)))
    });
    breakages.sort_by(|a, b| {
        b.failing_runs
            .cmp(&a.failing_runs)
            .then_with(|| (&a.job, &a.branch, &a.test).cmp(&(&b.job, &b.branch, &b.test)))
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analyze::series;
    use crate::context::Context;

    /// A series of one test from a history string (`.` passed, `F` failed, `R` flaky), one
    /// commit per build.
    pub(crate) fn job(h: &str) -> JobSeries {
        let mut b = series::SeriesBuilder::new(
            (0..h.len())
                .map(|i| {
                    let mut c = Context::new(
                        "j",
                        "master",
                        i as u64 + 1,
                        time::OffsetDateTime::from_unix_timestamp(i as i64 * 60).unwrap(),
                    );
                    c.commit = Some(format!("c{i:07}"));
                    c.build_url = Some(format!("https://ci/j/{}", i + 1));
                    c
                })
                .collect(),
            "master",
        );
        use crate::junit::Status;
        for (i, ch) in h.chars().enumerate() {
            let status = match ch {
                'F' => Status::Failed,
                'R' => Status::Flaky,
                _ => Status::Passed,
            };
            b.add(i, "s", "c", "t", Some(1.0), status);
        }
        b.finish()
    }

    #[test]
    fn findings_table() {
        let o = Options::default();
        let late = format!("{}{}", ".".repeat(60), ".F..F...F.F..F..F...F..".repeat(2));
        let table: &[(&str, &str, &str)] = &[
            ("clean", "..........", "none"),
            (
                "intermittent",
                ".F....F....F....F..",
                "flaky c=4 started=none",
            ),
            ("retried", "...R....R..", "flaky c=2 started=none"),
            ("breakage", "........FFFF", "breakage 9 (8..9)"),
            (&late, &late, "flaky c=14 started=62"),
        ];
        for (what, h, want) in table {
            let j = job(h);
            let got = match find(&j, &j.tests[0], &o) {
                None => "none".to_string(),
                Some(Finding::Flaky(f)) => format!(
                    "flaky c={} started={}",
                    f.flaky_builds.len(),
                    f.started
                        .map_or("none".into(), |r| r.first_bad.build.to_string())
                ),
                Some(Finding::Breakage(b)) => format!(
                    "breakage {} ({}..{})",
                    b.range.first_bad.build,
                    b.range.last_good.map_or(0, |g| g.build),
                    b.range.first_bad.build
                ),
            };
            assert_eq!(&got, want, "{what}");
        }
    }
}
