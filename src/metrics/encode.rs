//! Pure encoding: a build summary → metric datums (placeholder until metrics land).

use super::Datum;
use crate::summary::BuildSummary;

/// What to add beyond the per-job metrics.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    pub per_suite: bool,
    pub per_test_top: Option<usize>,
}

/// Placeholder.
pub fn encode_build(_summary: &BuildSummary, _opts: &EncodeOptions) -> Vec<Datum> {
    Vec::new()
}
