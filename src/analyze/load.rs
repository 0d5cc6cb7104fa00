//! Reads build summaries from a store — the only async part of the analysis.
//!
//! Summaries live under [`SUMMARIES_PREFIX`] (one per build, written by `aggregate`). A build that
//! has a `context.json` but no summary (not aggregated yet) is read from its raw result files,
//! parsed with [`FileSummary::parse`]. Builds and jobs outside the selection are skipped
//! before anything is downloaded.

use super::{AnalyzeError, Selection};
use crate::aggregate::branches::BranchRules;
use crate::context::Context;
use crate::layout::{self, BuildId, CONTEXT_FILE, RESERVED_PREFIX};
use crate::store::{ObjectInfo, Store, StoreError};
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
    let listed = list(store, SUMMARIES_PREFIX).await?;
    let keys = summary_keys(listed.iter().map(|o| o.key.as_str()), selection);
    let have: BTreeSet<BuildId> = keys.iter().map(|(id, _)| id.clone()).collect();
    let results: Vec<Result<BuildSummary, String>> = stream::iter(keys)
        .map(|(_, key)| async move {
            let bytes = store.get(&key).await.map_err(|e| e.to_string())?;
            // Decoding is CPU work (JSON of every case): off the async threads, on all cores.
            tokio::task::spawn_blocking(move || {
                BuildSummary::from_gzip_json(&bytes)
                    .map_err(|source| AnalyzeError::Summary { key, source }.to_string())
            })
            .await
            .map_err(|e| format!("decoding a summary: {e}"))?
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

    let raw = list(store, &raw_prefix(selection)).await?;
    let missing = builds_without_summary(raw.iter().map(|o| o.key.as_str()), selection, &have);
    let fallback: Vec<Result<(BuildSummary, Vec<String>), AnalyzeError>> = stream::iter(missing)
        .map(|id| from_raw(store, id, &selection.branches))
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

/// Lists a prefix; a prefix that does not exist (a fresh directory) lists nothing.
async fn list(store: &Store, prefix: &str) -> Result<Vec<ObjectInfo>, AnalyzeError> {
    match store.list(prefix).await {
        Ok(objects) => Ok(objects),
        Err(StoreError::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The summary keys among `keys` that belong to selected jobs, with their builds.
pub fn summary_keys<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    selection: &Selection,
) -> Vec<(BuildId, String)> {
    keys.into_iter()
        .filter_map(|k| summary::parse_key(k).map(|id| (id, k.to_string())))
        .filter(|(id, _)| selection.job_selected(&id.job))
        .collect()
}

/// The builds among `keys` that are complete (have a `context.json`), belong to selected jobs
/// and are not in `have` — the ones to read from raw XML.
pub fn builds_without_summary<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    selection: &Selection,
    have: &BTreeSet<BuildId>,
) -> Vec<BuildId> {
    keys.into_iter()
        .filter(|k| !k.starts_with(RESERVED_PREFIX))
        .filter_map(|k| match layout::parse_key(k) {
            Ok((id, CONTEXT_FILE)) => Some(id),
            _ => None,
        })
        .filter(|id| selection.job_selected(&id.job) && !have.contains(id))
        .collect()
}

/// The prefix to list for raw builds: a literal job name narrows it to that job's keys.
fn raw_prefix(selection: &Selection) -> String {
    match &selection.job {
        Some(p) if !p.as_str().contains(['*', '?', '[']) => format!("{}/", p.as_str()),
        _ => String::new(),
    }
}

/// A summary made from a build's `context.json` and raw result files, and its warnings.
async fn from_raw(
    store: &Store,
    id: BuildId,
    rules: &BranchRules,
) -> Result<(BuildSummary, Vec<String>), AnalyzeError> {
    let key = id.key(CONTEXT_FILE);
    let bytes = store.get(&key).await?;
    let context =
        Context::from_json(&key, &bytes).map_err(|e| AnalyzeError::Invalid(e.to_string()))?;
    let class = rules.classify(&context.branch);
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
                let file = FileSummary::parse(&name, &id.key(&name), &bytes);
                if let Some(e) = &file.error {
                    warnings.push(e.clone());
                }
                files.push(file);
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
            selection.branches.filter()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_summaries_and_builds_that_need_raw_xml() {
        let keys = [
            "_ci-test-metrics/summaries/a/job/master/1.json.gz",
            "_ci-test-metrics/summaries/b/master/7.json.gz",
            "_ci-test-metrics/ledger.json",
            "a/job/master/1/context.json",
            "a/job/master/1/results.xml",
            "a/job/master/2/results.xml",
            "a/job/master/3/context.json",
            "b/master/7/context.json",
            "b/master/8/context.json",
        ];
        let selection = Selection {
            job: Some(glob::Pattern::new("a/*").unwrap()),
            ..Selection::default()
        };
        let summaries = summary_keys(keys, &selection);
        assert_eq!(summaries.len(), 1);
        assert_eq!(
            (summaries[0].0.job.as_str(), summaries[0].0.build),
            ("a/job", 1)
        );
        let have = summaries.into_iter().map(|(id, _)| id).collect();
        let raw: Vec<(String, u64)> = builds_without_summary(keys, &selection, &have)
            .into_iter()
            .map(|id| (id.job, id.build))
            .collect();
        // Build 2 has no context.json yet (incomplete); b is not selected.
        assert_eq!(raw, [("a/job".to_string(), 3)]);
        let all = builds_without_summary(keys, &Selection::default(), &have);
        assert_eq!(all.len(), 3);
        assert_eq!(raw_prefix(&Selection::default()), "");
        let literal = Selection {
            job: Some(glob::Pattern::new("a/job").unwrap()),
            ..Selection::default()
        };
        assert_eq!(raw_prefix(&literal), "a/job/");
    }
}
