//! Failure flakiness for [`super`]'s histories: failure-flaky, retried and broken tests added to
//! a generated history from their own random stream (so its durations stay as they were).

use super::{Injected, Injection, Rng, Truth};
use ci_test_metrics::junit::Status;
use ci_test_metrics::summary::{BuildSummary, CaseSummary};
use serde::{Deserialize, Serialize};

/// Failure flakiness to add to a history ([`inject_failures`]); per job.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Failures {
    pub seed: u64,
    /// Failure-flaky tests, failing with probability `p`.
    pub flaky: usize,
    /// Tests retried (failed, then passed) with probability `p`.
    pub retried: usize,
    pub p: f64,
    pub breakages: usize,
}

/// Adds failure flakiness and breakages to a history from [`super::generate`] (master builds in build
/// order), on tests with no other injection, and lists them in `truth`.
pub fn inject_failures(summaries: &mut [BuildSummary], truth: &mut Truth, f: &Failures) {
    let mut rng = Rng::new(f.seed ^ 0x00fa_11ed);
    let mut jobs: Vec<String> = Vec::new();
    for s in summaries.iter() {
        if !jobs.contains(&s.context.job) {
            jobs.push(s.context.job.clone());
        }
    }
    for job in jobs {
        let builds: Vec<usize> = (0..summaries.len())
            .filter(|&i| summaries[i].context.job == job)
            .collect();
        let n = builds.len();
        let Some(&last) = builds.last() else { continue };
        let taken: Vec<String> = truth
            .injections
            .iter()
            .filter(|i| i.job == job)
            .map(|i| i.name.clone())
            .collect();
        let mut free: Vec<&CaseSummary> = summaries[last]
            .cases()
            .filter(|c| !taken.contains(&c.name))
            .collect();
        let kinds = [
            (Injected::FlakyFailure, f.flaky),
            (Injected::Retried, f.retried),
            (Injected::Breakage, f.breakages),
        ];
        let mut picked = Vec::new();
        for (kind, count) in kinds {
            for _ in 0..count {
                if free.is_empty() || n < 4 {
                    break;
                }
                let c = free.swap_remove(rng.index(0, free.len()));
                let at = if kind == Injected::Breakage {
                    rng.index(n.saturating_sub(90).clamp(1, n - 3), n - 2)
                } else {
                    0
                };
                picked.push((
                    kind,
                    c.suite.clone(),
                    c.classname.clone(),
                    c.name.clone(),
                    at,
                ));
            }
        }
        for (kind, suite, classname, name, at) in picked {
            let context = &summaries[builds[at]].context;
            truth.injections.push(Injection {
                kind,
                job: job.clone(),
                suite,
                classname,
                name: name.clone(),
                build: context.build,
                commit: context.commit.clone().unwrap_or_default(),
                previous_commit: at
                    .checked_sub(1)
                    .and_then(|p| summaries[builds[p]].context.commit.clone())
                    .unwrap_or_default(),
                author: context.who().unwrap_or_default(),
                median: 0.0,
                factor: 1.0,
                lasts: n - at,
            });
            for (b, &i) in builds.iter().enumerate() {
                let status = match kind {
                    Injected::Breakage if b >= at => Some((Status::Failed, 1)),
                    Injected::FlakyFailure if rng.unit() < f.p => Some((Status::Failed, 1)),
                    Injected::Retried if rng.unit() < f.p => Some((Status::Flaky, 2)),
                    _ => None,
                };
                let Some((status, attempts)) = status else {
                    continue;
                };
                for file in &mut summaries[i].files {
                    for c in file.cases.iter_mut().filter(|c| c.name == name) {
                        (c.status, c.attempts) = (status, attempts);
                    }
                }
            }
        }
    }
}
