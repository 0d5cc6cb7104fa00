//! The scheduled stage: discover complete builds, parse them, publish metrics, record a ledger
//! and per-build summaries under the reserved prefix (placeholder until aggregation lands).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AggregateError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}
