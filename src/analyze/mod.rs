//! Finds the tests and changes that made a job slower.
//!
//! ```text
//! load (async: summaries from a store, raw XML where a summary is missing)
//!   └▶ select (job, branch class, last N builds)
//!        └▶ series (per-test durations by build time)
//!             └▶ changepoint (rank-based binary segmentation)
//!                  └▶ report (regressions, new/removed/flaky tests, drifts; ranked)
//!                       └▶ render (table, Markdown, JSON, HTML with SVG charts)
//! ```
//!
//! Everything but [`load`] is pure and synchronous. The method is described in `docs/analyze.md`;
//! [`synth`] generates histories with known injected changes for tests and the benchmark.

pub mod changepoint;
pub mod load;
pub mod render;
pub mod report;
pub mod series;
pub mod synth;

pub use report::{analyze, Options, Report};

use crate::summary::BuildSummary;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AnalyzeError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{key}: not a valid build summary: {source}")]
    Summary {
        key: String,
        #[source]
        source: std::io::Error,
    },
}

/// Which builds to analyse.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Job name or glob pattern (`mxnet-validation/*`); `None` for all jobs.
    pub job: Option<glob::Pattern>,
    /// Branch classes, comma-separated (`master`, `master,release`), or `all`.
    pub branches: String,
    /// Keep only the latest N builds of each job.
    pub last: Option<usize>,
}

impl Default for Selection {
    fn default() -> Selection {
        Selection {
            job: None,
            branches: "master".into(),
            last: None,
        }
    }
}

impl Selection {
    /// Whether a job is selected.
    pub fn job_selected(&self, job: &str) -> bool {
        self.job.as_ref().is_none_or(|p| p.matches(job))
    }

    /// Whether a build of this branch class is selected.
    pub fn branch_selected(&self, class: &str) -> bool {
        branch_selected(&self.branches, class)
    }

    /// The selected summaries, at most `last` per job (the latest by timestamp).
    pub fn apply(&self, summaries: Vec<BuildSummary>) -> Vec<BuildSummary> {
        let mut kept: Vec<BuildSummary> = summaries
            .into_iter()
            .filter(|s| self.job_selected(&s.context.job) && self.branch_selected(&s.branch_class))
            .collect();
        if let Some(last) = self.last {
            kept.sort_by(|a, b| {
                (&a.context.job, b.context.timestamp, b.context.build).cmp(&(
                    &b.context.job,
                    a.context.timestamp,
                    a.context.build,
                ))
            });
            let mut count = 0;
            let mut job = String::new();
            kept.retain(|s| {
                if s.context.job != job {
                    job = s.context.job.clone();
                    count = 0;
                }
                count += 1;
                count <= last
            });
        }
        kept
    }
}

/// The branch filter: `all`, or a comma-separated list of branch classes. The aggregator owns the
/// branch rules that give each build its class; this only compares names.
pub fn branch_selected(rules: &str, class: &str) -> bool {
    rules
        .split(',')
        .map(str::trim)
        .any(|r| r == "all" || r.eq_ignore_ascii_case(class))
}

/// The class of a branch for builds that have no summary (read from raw XML): `master` for
/// master/main, `pr` for `PR-123`, `release` for release branches, otherwise `branch`.
pub fn branch_class(branch: &str) -> &'static str {
    let b = branch.to_ascii_lowercase();
    if b == "master" || b == "main" {
        "master"
    } else if b
        .strip_prefix("pr-")
        .is_some_and(|n| n.parse::<u64>().is_ok())
    {
        "pr"
    } else if b.starts_with("release") {
        "release"
    } else {
        "branch"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_rules() {
        let cases = [
            ("master", "master", true),
            ("master", "pr", false),
            ("all", "pr", true),
            ("master, pr", "pr", true),
            ("release", "master", false),
        ];
        for (rules, class, want) in cases {
            assert_eq!(branch_selected(rules, class), want, "{rules} {class}");
        }
        let classes = [
            ("master", "master"),
            ("main", "master"),
            ("PR-16336", "pr"),
            ("release-1.9", "release"),
            ("feature%2Ffoo", "branch"),
        ];
        for (branch, want) in classes {
            assert_eq!(branch_class(branch), want, "{branch}");
        }
    }
}
