//! Reads build summaries from a store — the only async part of the analysis.
//!
//! Summaries live under [`SUMMARIES_PREFIX`] (one per build, written by `aggregate`). A build that
//! has a `context.json` but no summary (not aggregated yet) is read from its raw result files,
//! parsed with [`crate::junit::parse_bytes`]. Builds and jobs outside the selection are skipped
//! before anything is downloaded.

use super::{AnalyzeError, Selection};
use crate::context::Context;
use crate::layout::{self, BuildId, CONTEXT_FILE, RESERVED_PREFIX};
use crate::store::Store;
use crate::summary::{self, BuildSummary, FileSummary, SUMMARIES_PREFIX};
use futures::stream::{self, StreamExt};
use std::collections::BTreeSet;

/// How many objects are fetched at once.
const CONCURRENCY: usize = 16;

/// What was loaded.
#[derive(Debug, Default)]
pub struct Loaded {
    pub summaries: Vec<BuildSummary>,
    /// Builds read from raw XML because they had no summary.
    pub from_xml: usize,
    /// Problems that did not stop the load (an unreadable summary or result file).
    pub warnings: Vec<String>,
}

/// Loads the selected builds' summaries, falling back to raw XML where a summary is missing.
pub async fn load(store: &Store, selection: &Selection) -> Result<Loaded, AnalyzeError> {
    let mut loaded = Loaded::default();
    let keys: Vec<(BuildId, String)> = store
        .list(SUMMARIES_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| summary::parse_key(&o.key).map(|id| (id, o.key)))
        .filter(|(id, _)| selection.job_selected(&id.job))
        .collect();
    let have: BTreeSet<BuildId> = keys.iter().map(|(id, _)| id.clone()).collect();
    let results: Vec<Result<BuildSummary, String>> = stream::iter(keys)
        .map(|(_, key)| async move {
            let bytes = store.get(&key).await.map_err(|e| e.to_string())?;
            BuildSummary::from_gzip_json(&bytes).map_err(|e| {
                AnalyzeError::Summary {
                    key: key.clone(),
                    source: e,
                }
                .to_string()
            })
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for r in results {
        match r {
            Ok(s) => loaded.summaries.push(s),
            Err(w) => loaded.warnings.push(w),
        }
    }

    let missing = builds_without_summary(store, selection, &have).await?;
    let fallback: Vec<Result<(BuildSummary, Vec<String>), AnalyzeError>> = stream::iter(missing)
        .map(|id| from_raw(store, id))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for r in fallback {
        match r {
            Ok((s, warnings)) => {
                loaded.from_xml += 1;
                loaded.warnings.extend(warnings);
                loaded.summaries.push(s);
            }
            Err(e) => loaded.warnings.push(e.to_string()),
        }
    }
    loaded.summaries = selection.apply(std::mem::take(&mut loaded.summaries));
    Ok(loaded)
}

/// Complete builds (with a `context.json`) of selected jobs that have no summary.
async fn builds_without_summary(
    store: &Store,
    selection: &Selection,
    have: &BTreeSet<BuildId>,
) -> Result<Vec<BuildId>, AnalyzeError> {
    // A literal job name narrows the listing to that job's keys.
    let prefix = match &selection.job {
        Some(p) if !p.as_str().contains(['*', '?', '[']) => format!("{}/", p.as_str()),
        _ => String::new(),
    };
    Ok(store
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|o| !o.key.starts_with(RESERVED_PREFIX))
        .filter_map(|o| match layout::parse_key(&o.key) {
            Ok((id, CONTEXT_FILE)) => Some(id),
            _ => None,
        })
        .filter(|id| selection.job_selected(&id.job) && !have.contains(id))
        .collect())
}

/// A summary made from a build's `context.json` and raw result files, and its warnings.
async fn from_raw(store: &Store, id: BuildId) -> Result<(BuildSummary, Vec<String>), AnalyzeError> {
    let key = id.key(CONTEXT_FILE);
    let bytes = store.get(&key).await?;
    let context =
        Context::from_json(&key, &bytes).map_err(|e| AnalyzeError::Invalid(e.to_string()))?;
    let class = super::branch_class(&id.branch).to_string();
    let names: Vec<String> = if context.files.is_empty() {
        // No manifest: every other file of the build.
        store
            .list(&id.prefix())
            .await?
            .into_iter()
            .filter_map(|o| o.key.rsplit('/').next().map(str::to_string))
            .filter(|name| name != CONTEXT_FILE)
            .collect()
    } else {
        context.files.iter().map(|f| f.name.clone()).collect()
    };
    let mut warnings = Vec::new();
    let mut files = Vec::new();
    for name in names {
        match store.get(&id.key(&name)).await {
            Ok(bytes) => {
                let report = crate::junit::parse_bytes(&name, &bytes);
                if let Some(e) = &report.error {
                    warnings.push(format!("{id}: {e}"));
                }
                files.push(FileSummary::from_report(&name, &report));
            }
            Err(e) => warnings.push(e.to_string()),
        }
    }
    Ok((
        BuildSummary {
            schema_version: summary::SCHEMA_VERSION,
            context,
            branch_class: class,
            published: false,
            files,
        },
        warnings,
    ))
}

/// Fails when the load found nothing to analyse, saying why.
pub fn ensure_some(
    loaded: &Loaded,
    store: &Store,
    selection: &Selection,
) -> Result<(), AnalyzeError> {
    if loaded.summaries.is_empty() {
        return Err(AnalyzeError::Invalid(format!(
            "no builds to analyse in {} (job {}, branches {}): run `ci-test-metrics aggregate` first, or widen --job/--branches",
            store.describe(),
            selection.job.as_ref().map_or("*", |p| p.as_str()),
            selection.branches
        )));
    }
    Ok(())
}
