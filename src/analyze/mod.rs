//! Finds the tests and changes that made a job slower.
//!
//! ```text
//! load (async: summaries from a store, raw XML where a summary is missing)
//!   └▶ select (job, branch class, last N builds)
//!        └▶ series (per-test durations by build time, one series per job and branch)
//!             ├▶ flakiness (failure flakiness and breakages per test, by `flaky::classify`)
//!             ├▶ changepoint (rank-based binary segmentation)
//!             │    └▶ report (regressions, new/removed/flaky tests, drifts; ranked)
//!             │         ├▶ attribution (commit ranges, links, causes grouped by commit)
//!             │         ├▶ total (the job's total time, explained by its regressions)
//!             │         └▶ render (table, Markdown, JSON, HTML with SVG charts)
//!             └▶ gate (a PR's builds against the baseline's recent runs; Markdown comment)
//!                  └▶ gate_failures (the PR's failing tests: known flaky, new, failing on the baseline)
//!
//! imports: report ─▶ attribution, total, flakiness ─▶ model ─▶ changepoint, series, flaky
//!          (report and render import model too; model imports none of the steps above it)
//! ```
//!
//! [`model`] holds the report's types (the JSON schema): [`report`] fills them, with
//! [`attribution`] and [`total`], and [`render`] prints them.
//!
//! Everything but [`load`] is pure and synchronous. The method is described in `docs/analyze.md`;
//! `tests/support/synth.rs` generates histories with known injected changes for the tests and
//! the benchmark.

pub mod attribution;
pub mod changepoint;
pub mod flakiness;
pub mod flaky;
pub mod gate;
pub mod gate_failures;
pub mod load;
pub mod model;
pub mod render;
pub mod report;
pub mod series;
pub mod total;

pub use model::{Options, Report};
pub use report::analyze;

use crate::aggregate::branches::BranchRules;
use crate::summary::BuildSummary;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AnalyzeError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    #[error("{key}: not a valid build summary: {source}")]
    Summary {
        key: String,
        #[source]
        source: std::io::Error,
    },
}

/// Which builds to analyse.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Job name or glob pattern (`mxnet-validation/*`); `None` for all jobs.
    pub job: Option<glob::Pattern>,
    /// The aggregator's branch rules and filter (`master`, `master,release`, `all`, globs, `!`).
    pub branches: BranchRules,
    /// Keep only the latest N builds of each job.
    pub last: Option<usize>,
}

impl Default for Selection {
    fn default() -> Selection {
        Selection {
            job: None,
            branches: BranchRules::new::<&str>(&[], "master").expect("the default filter is valid"),
            last: None,
        }
    }
}

impl Selection {
    /// Whether a job is selected.
    pub fn job_selected(&self, job: &str) -> bool {
        self.job.as_ref().is_none_or(|p| p.matches(job))
    }

    /// Whether a build of this branch, given this class, is selected.
    pub fn branch_selected(&self, branch: &str, class: &str) -> bool {
        self.branches.selects(branch, class)
    }

    /// The selected summaries, at most `last` per job and branch (the latest by timestamp).
    pub fn apply(&self, summaries: Vec<BuildSummary>) -> Vec<BuildSummary> {
        let mut kept: Vec<BuildSummary> = summaries
            .into_iter()
            .filter(|s| {
                self.job_selected(&s.context.job)
                    && self.branch_selected(&s.context.branch, &s.branch_class)
            })
            .collect();
        if let Some(last) = self.last {
            kept.sort_by(|a, b| {
                (
                    &a.context.job,
                    &a.context.branch,
                    b.context.timestamp,
                    b.context.build,
                )
                    .cmp(&(
                        &b.context.job,
                        &b.context.branch,
                        a.context.timestamp,
                        a.context.build,
                    ))
            });
            let mut count = 0;
            let mut series = (String::new(), String::new());
            kept.retain(|s| {
                if (&s.context.job, &s.context.branch) != (&series.0, &series.1) {
                    series = (s.context.job.clone(), s.context.branch.clone());
                    count = 0;
                }
                count += 1;
                count <= last
            });
        }
        kept
    }
}
