//! Finds the tests and changes that made a job slower: per-test series, change points, attribution, reports.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AnalyzeError {
    #[error("{0}")]
    Invalid(String),
}
