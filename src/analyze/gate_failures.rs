//! The PR gate's failures: each test that failed in one of the PR's builds used is sorted by what
//! the baseline branch's latest `flaky_window` builds say of it: **known flaky** (flaky there by
//! [`super::flaky::classify`]; it does not fail the gate), a **new failure** (it never failed nor
//! was retried there, or the baseline never ran it), or **failing on the baseline too** (it failed
//! there without being called flaky: a breakage, or a rare failure). Pure.

use super::flakiness;
use super::flaky::{self, Outcome, Thresholds, Verdict};
use super::render::md;
use super::series::{JobSeries, TestId};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;

/// One failing test of the PR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub job: String,
    pub test: TestId,
    /// The PR builds it failed in.
    pub pr_builds: Vec<u64>,
    /// In the baseline's window: builds that ran it, and of those, failed or retried ones.
    pub baseline_runs: usize,
    pub baseline_failures: usize,
}

/// The PR's failing tests, sorted by what the baseline says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Failures {
    pub known_flaky: Vec<Failure>,
    pub new_failures: Vec<Failure>,
    pub failing_on_baseline: Vec<Failure>,
}

/// Sorts the failing tests of the PR's last `pr_builds` builds of `pr` against `baseline`'s last
/// `window` builds (same job).
pub fn failures(
    pr: &JobSeries,
    baseline: &JobSeries,
    pr_builds: usize,
    window: usize,
    out: &mut Failures,
) {
    let p_from = pr.builds.len().saturating_sub(pr_builds);
    let b_from = baseline.builds.len().saturating_sub(window.max(1));
    let base: HashMap<&TestId, usize> = baseline
        .tests
        .iter()
        .enumerate()
        .map(|(i, t)| (&t.id, i))
        .collect();
    let thresholds = Thresholds {
        window: window.max(1),
        ..Thresholds::default()
    };
    for t in &pr.tests {
        let failed: Vec<u64> = (p_from..pr.builds.len())
            .filter(|&i| t.outcomes.get(i) == Some(&Outcome::Failed))
            .map(|i| pr.builds[i].build)
            .collect();
        if failed.is_empty() {
            continue;
        }
        let b = base.get(&t.id).map(|&i| &baseline.tests[i]);
        let window = b.map_or(&[][..], |b| &b.outcomes[b_from.min(b.outcomes.len())..]);
        let count = |f: &dyn Fn(Outcome) -> bool| window.iter().filter(|o| f(**o)).count();
        let failure = Failure {
            job: pr.job.clone(),
            test: t.id.clone(),
            pr_builds: failed,
            baseline_runs: count(&|o| o != Outcome::NotRun && o != Outcome::Skipped),
            baseline_failures: count(&|o| o == Outcome::Failed || o == Outcome::Flaky),
        };
        let verdict =
            b.map(|b| flaky::classify(&flakiness::runs(baseline, b), &thresholds).verdict);
        if matches!(verdict, Some(Verdict::Flaky(_))) {
            out.known_flaky.push(failure);
        } else if failure.baseline_failures == 0 {
            out.new_failures.push(failure);
        } else {
            out.failing_on_baseline.push(failure);
        }
    }
}

/// The failures' part of the gate's Markdown comment (nothing when no test failed).
pub fn markdown(f: &Failures, baseline: &str, window: usize, out: &mut String) {
    let baseline = baseline.replace('`', "'");
    let lists = [
        (
            "New failures",
            format!("never failed in the last {window} `{baseline}` builds"),
            &f.new_failures,
        ),
        (
            "Known flaky",
            format!("flaky on `{baseline}`: not held against this PR"),
            &f.known_flaky,
        ),
        (
            "Failing on the baseline too",
            format!("also failed on `{baseline}`, not flaky there"),
            &f.failing_on_baseline,
        ),
    ];
    for (title, why, items) in lists {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n**{title}** ({}): {why}.\n", items.len());
        for x in items.iter().take(50) {
            let _ = writeln!(
                out,
                "- `{}` ({}) failed in {}; {} of {} `{baseline}` runs failed or were retried",
                x.test.to_string().replace('`', "'"),
                md(&x.job),
                x.pr_builds
                    .iter()
                    .map(|b| format!("#{b}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                x.baseline_failures,
                x.baseline_runs
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::flakiness::tests::job;

    #[test]
    fn failures_table() {
        // (baseline history, PR history, expected list)
        let table: &[(&str, &str, &str)] = &[
            (
                "flaky on the baseline",
                ".F...F...F...F......",
                "known_flaky",
            ),
            ("never failed there", "....................", "new"),
            ("broken there too", "...............FFFFF", "baseline"),
            ("one old failure", "...F................", "baseline"),
        ];
        for (what, base, want) in table {
            let b = job(base);
            let mut p = job("..F");
            p.branch = "PR-1".into();
            let mut f = Failures::default();
            failures(&p, &b, 3, 100, &mut f);
            let got = match (
                f.known_flaky.len(),
                f.new_failures.len(),
                f.failing_on_baseline.len(),
            ) {
                (1, 0, 0) => "known_flaky",
                (0, 1, 0) => "new",
                (0, 0, 1) => "baseline",
                other => panic!("{what}: {other:?}"),
            };
            assert_eq!(got, *want, "{what}");
        }
        // A passing PR lists nothing; a test the baseline never ran is a new failure.
        let mut f = Failures::default();
        failures(&job("..."), &job(".F.F.F"), 3, 100, &mut f);
        assert_eq!(f, Failures::default());
        let mut other = job("....");
        other.tests[0].id.name = "other".into();
        failures(&job("F"), &other, 3, 100, &mut f);
        assert_eq!(
            (f.new_failures.len(), f.new_failures[0].baseline_runs),
            (1, 0)
        );
        let mut md = String::new();
        markdown(&f, "master", 100, &mut md);
        assert!(
            md.contains("**New failures** (1)") && md.contains("`c.t`"),
            "{md}"
        );
    }
}
