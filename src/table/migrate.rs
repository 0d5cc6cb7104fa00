//! Migration from the per-build gzip JSON summaries that versions before the history tables
//! kept under `_ci-test-metrics/summaries/` (async, once per store).
//!
//! The first aggregation run of this version stages every summary's build (unless the build is
//! staged already), then writes a marker, so later runs only look for the marker. The summaries
//! stay where they are; nothing reads them any more, and they may be deleted once a run has
//! published them (`docs/history.md`). A summary that cannot be read is reported; `analyze`
//! then reads that build from its result files, as it does for any build not in the tables.

use super::{staged_key, TableError};
use crate::store::{Store, StoreError};
use crate::summary::{self, BuildSummary, SUMMARIES_PREFIX};
use bytes::Bytes;
use futures::stream::{self, StreamExt};

/// Written when a store's summaries have been staged.
pub const MARKER: &str = "_ci-test-metrics/migrations/summaries-to-tables.json";
/// Summaries read at once.
const CONCURRENCY: usize = 16;

/// What a migration did.
#[derive(Debug, Default)]
pub struct Migrated {
    /// Builds staged from their summaries.
    pub builds: usize,
    pub warnings: Vec<String>,
}

/// Stages every summary's build, once per store.
pub async fn migrate(store: &Store) -> Result<Migrated, TableError> {
    let mut out = Migrated::default();
    if store.head(MARKER).await?.is_some() {
        return Ok(out);
    }
    let listed = store.list_or_empty(SUMMARIES_PREFIX).await?;
    let keys: Vec<_> = listed
        .iter()
        .filter_map(|o| summary::parse_key(&o.key).map(|id| (id, o.key.clone())))
        .collect();
    let results: Vec<Result<Result<bool, String>, StoreError>> = stream::iter(keys)
        .map(|(id, key)| async move {
            let bytes = store.get(&key).await?;
            let converted = tokio::task::spawn_blocking(move || {
                let summary = BuildSummary::from_gzip_json(&bytes)
                    .map_err(|e| format!("{key}: not a readable summary ({e}); analyze reads this build from its result files"))?;
                let problems: Vec<String> = summary.files.iter().filter_map(|f| f.error.clone()).collect();
                let staged = super::staged::staged(&id, &summary, &problems).map_err(|e| format!("{key}: {e}"))?;
                Ok::<_, String>((staged_key(&super::date_of(summary.context.timestamp), &id), staged))
            })
            .await
            .map_err(|e| StoreError::Other {
                key: SUMMARIES_PREFIX.into(),
                message: format!("converting a summary: {e}"),
            })?;
            match converted {
                Ok((key, bytes)) => Ok(Ok(store.put_if_absent(&key, Bytes::from(bytes)).await?.is_some())),
                Err(warning) => Ok(Err(warning)),
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for r in results {
        match r? {
            Ok(staged) => out.builds += usize::from(staged),
            Err(w) => out.warnings.push(w),
        }
    }
    let marker = serde_json::json!({
        "migrated": out.builds,
        "unreadable": out.warnings,
        "at": crate::aggregate::rfc3339(time::OffsetDateTime::now_utc()),
    });
    store
        .put(
            MARKER,
            Bytes::from(serde_json::to_vec_pretty(&marker).unwrap_or_default()),
        )
        .await?;
    if out.builds > 0 {
        tracing::info!(
            builds = out.builds,
            "staged the builds of this store's JSON summaries for the history tables (a one-time migration)"
        );
    }
    Ok(out)
}
