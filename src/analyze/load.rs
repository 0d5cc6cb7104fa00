//! Reads the history for `analyze`, one series at a time (async: the store edge of the analysis).
//!
//! [`plan`] finds every selected build and where its rows are: in a published part of the
//! `test_runs` table (whose footer lists its builds), in a staged build not published yet, or,
//! for a build the aggregator has not read yet, in its raw result files. It reads footers and
//! `context.json`s, never rows, and applies the selection (jobs, branches, the last N builds of
//! each series) before anything else is fetched. [`read_series`] then reads one job's series on
//! one branch: from a part only the row groups that hold its builds, and of those only the
//! columns a series needs, with range GETs. So memory follows the series being analysed, not
//! the history.

use super::series::{self, JobSeries, SeriesBuilder};
use super::{AnalyzeError, Selection};
use crate::aggregate::branches::BranchRules;
use crate::context::Context;
use crate::layout::{self, BuildId, CONTEXT_FILE, RESERVED_PREFIX};
use crate::store::Store;
use crate::summary::{self, BuildSummary, FileSummary};
use crate::table::decode::{self, Ranges};
use crate::table::schema::BuildRow;
use crate::table::{self, fetch, TableError, STAGING_PREFIX, TEST_RUNS};
use futures::stream::{self, StreamExt};
use parquet::file::reader::FileReader;
use std::collections::{BTreeMap, HashSet};

/// How many objects are fetched at once.
const CONCURRENCY: usize = 16;

/// Where a build's rows are.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A published `test_runs` part (the build's rows are `first_row..+rows` of its row).
    Part { key: String, size: u64 },
    /// A staged build, not published yet.
    Staged { key: String },
    /// Not aggregated yet: its `context.json` and result files.
    Raw(BuildId),
}

/// One selected build.
#[derive(Debug, Clone)]
pub struct Planned {
    pub row: BuildRow,
    pub source: Source,
}

/// One job's selected builds on one branch, oldest first.
#[derive(Debug, Clone)]
pub struct SeriesPlan {
    pub job: String,
    pub branch: String,
    pub builds: Vec<Planned>,
}

/// Every selected series, by job and branch.
#[derive(Debug, Default)]
pub struct Plan {
    pub series: Vec<SeriesPlan>,
    /// Selected builds to be read from raw XML.
    pub from_xml: usize,
    /// Problems that did not stop the plan (an unreadable part, staged file or context).
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn builds(&self) -> usize {
        self.series.iter().map(|s| s.builds.len()).sum()
    }
}

/// Finds the selected builds and where their rows are.
pub async fn plan(store: &Store, selection: &Selection) -> Result<Plan, AnalyzeError> {
    let mut out = Plan::default();
    let mut known: HashSet<BuildId> = HashSet::new();
    let mut chosen: Vec<Planned> = Vec::new();
    let mut keep = |row: BuildRow, source: Source, out: &mut Plan, known: &mut HashSet<BuildId>| {
        if !known.insert(row.id()) {
            out.warnings.push(format!(
                "{}: in the history twice; the copy in {source:?} is ignored",
                row.id()
            ));
            return;
        }
        if selection.job_selected(&row.context.job)
            && selection.branch_selected(&row.context.branch, &row.branch_class)
        {
            chosen.push(Planned { row, source });
        }
    };

    // Published parts, in key (date) order: their footers list their builds.
    let mut parts: Vec<_> = store
        .list_or_empty(&table::table_prefix(TEST_RUNS, None))
        .await?
        .into_iter()
        .filter(|o| table::parse_part_key(&o.key).is_some_and(|(t, _, _)| t == TEST_RUNS))
        .collect();
    parts.sort_by(|a, b| a.key.cmp(&b.key));
    let footers: Vec<_> = stream::iter(parts)
        .map(|o| async move {
            let builds = match fetch::footer(store, &o.key, o.size).await {
                Ok(f) => decode::builds_of(&f.meta).map_err(|e| TableError::parquet(&o.key)(e)),
                Err(e) => Err(e),
            };
            (o, builds)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for (o, builds) in footers {
        match builds {
            Ok(builds) => {
                for row in builds {
                    let source = Source::Part {
                        key: o.key.clone(),
                        size: o.size,
                    };
                    keep(row, source, &mut out, &mut known);
                }
            }
            Err(e) => out
                .warnings
                .push(format!("{e}; its builds are read from their result files")),
        }
    }

    // Staged builds not published yet.
    let staged: Vec<_> = store
        .list_or_empty(STAGING_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| table::parse_staged_key(&o.key).map(|(_, id)| (id, o)))
        .filter(|(id, _)| selection.job_selected(&id.job) && !known.contains(id))
        .collect();
    let staged: Vec<_> = stream::iter(staged)
        .map(|(_, o)| async move {
            let row = fetch::footer(store, &o.key, o.size)
                .await
                .and_then(|f| one_build(&o.key, &f.meta));
            (o.key, row)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for (key, row) in staged {
        match row {
            Ok(row) => keep(row, Source::Staged { key }, &mut out, &mut known),
            Err(e) => out
                .warnings
                .push(format!("{e}; the build is read from its result files")),
        }
    }

    // Builds the aggregator has not read: their context.json only, for now.
    let raw = store.list_or_empty(&raw_prefix(selection)).await?;
    let missing = builds_without_summary(raw.iter().map(|o| o.key.as_str()), selection, &known);
    let contexts: Vec<_> = stream::iter(missing)
        .map(|id| async move {
            let key = id.key(CONTEXT_FILE);
            let context = match store.get(&key).await {
                Ok(bytes) => Context::from_json(&key, &bytes).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (id, context)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for (id, context) in contexts {
        match context {
            Ok(context) => {
                let summary = BuildSummary {
                    schema_version: summary::SCHEMA_VERSION,
                    branch_class: selection.branches.classify(&context.branch),
                    context,
                    published: false,
                    files: Vec::new(),
                };
                let mut row = BuildRow::of(&id, &summary, &[]);
                row.context.job = id.job.clone();
                row.context.build = id.build;
                out.from_xml += 1;
                keep(row, Source::Raw(id), &mut out, &mut known);
            }
            Err(e) => out.warnings.push(e),
        }
    }
    out.from_xml = chosen
        .iter()
        .filter(|p| matches!(p.source, Source::Raw(_)))
        .count();

    // One series per job and branch, oldest first, the last N of each.
    let mut by_series: BTreeMap<(String, String), Vec<Planned>> = BTreeMap::new();
    for p in chosen {
        by_series
            .entry((p.row.context.job.clone(), p.row.context.branch.clone()))
            .or_default()
            .push(p);
    }
    for ((job, branch), mut builds) in by_series {
        series::sort_builds(&mut builds, |p| &p.row.context);
        if let Some(last) = selection.last {
            builds.drain(..builds.len().saturating_sub(last));
        }
        out.series.push(SeriesPlan {
            job,
            branch,
            builds,
        });
    }
    Ok(out)
}

/// The one build a staged file's footer lists.
fn one_build(
    key: &str,
    meta: &parquet::file::metadata::ParquetMetaData,
) -> Result<BuildRow, TableError> {
    let mut builds = decode::builds_of(meta).map_err(TableError::parquet(key))?;
    match (builds.pop(), builds.is_empty()) {
        (Some(b), true) => Ok(b),
        _ => Err(TableError::Invalid {
            key: key.to_string(),
            message: "a staged file lists one build".into(),
        }),
    }
}

impl SeriesPlan {
    /// Keeps the last `n` builds that have test cases (raw builds count: their cases are not
    /// known yet), and the empty ones among them.
    pub fn keep_last_with_cases(&mut self, n: usize) {
        let mut seen = 0;
        let from = self
            .builds
            .iter()
            .rposition(|p| {
                if p.row.tests > 0 || matches!(p.source, Source::Raw(_)) {
                    seen += 1;
                }
                seen >= n
            })
            .unwrap_or(0);
        self.builds.drain(..from);
    }
}

/// Cells (a test in a build) a pass holds at most, 9 bytes each (an 8-byte duration and a 1-byte
/// outcome: 9 MB): a longer series is read in several passes, each keeping one group of its tests.
pub const MAX_CELLS: usize = 1 << 20;

impl SeriesPlan {
    /// How many passes keep each under `max_cells` (default [`MAX_CELLS`]) cells: tests (the
    /// most cases a build of the series had) times builds; a cell is 9 bytes, whatever is read.
    pub fn passes(&self, max_cells: usize) -> usize {
        let tests = self.builds.iter().map(|p| p.row.tests).max().unwrap_or(0) as usize;
        (tests.saturating_mul(self.builds.len()))
            .div_ceil(max_cells.max(1))
            .max(1)
    }
}

/// Reads one series' rows, keeping the tests of group `group` of `groups` (see
/// [`SeriesBuilder::only_group`]; `0, 1` for all); problems that lose a build's rows (an
/// unreadable result file) are returned beside it.
pub async fn read_series(
    store: &Store,
    plan: &SeriesPlan,
    rules: &BranchRules,
    (group, groups): (usize, usize),
) -> Result<(JobSeries, Vec<String>), AnalyzeError> {
    let mut warnings = Vec::new();
    let class = plan
        .builds
        .iter()
        .rev()
        .find(|p| p.row.tests > 0 || matches!(p.source, Source::Raw(_)))
        .map_or("", |p| p.row.branch_class.as_str());
    let mut builder = SeriesBuilder::new(
        plan.builds.iter().map(|p| p.row.context.clone()).collect(),
        class,
    )
    .only_group(group, groups);
    // Per part: its size, and its builds of this series as (first row, rows, build index).
    let mut by_part: BTreeMap<&str, (u64, Vec<RowsOf>)> = BTreeMap::new();
    for (b, p) in plan.builds.iter().enumerate() {
        match &p.source {
            Source::Part { key, size } => by_part
                .entry(key.as_str())
                .or_insert((*size, Vec::new()))
                .1
                .push((p.row.first_row, p.row.rows, b)),
            Source::Staged { key } => {
                if let Err(e) = read_staged(store, key, b, &mut builder).await {
                    warnings.push(format!("{e}; the build is left out"));
                }
            }
            Source::Raw(id) => match from_raw(store, id.clone(), rules).await {
                Ok((summary, w)) => {
                    warnings.extend(w);
                    for c in summary.cases() {
                        builder.add(b, &c.suite, &c.classname, &c.name, c.time, c.status);
                    }
                }
                Err(e) => warnings.push(format!("{id}: {e}; the build is left out")),
            },
        }
    }
    for (key, (size, mut builds)) in by_part {
        builds.sort();
        if let Err(e) = read_part(store, key, size, &builds, &mut builder).await {
            warnings.push(format!("{e}; its builds of this series are left out"));
        }
    }
    Ok((builder.finish(), warnings))
}

/// Adds a staged build's rows as build `b`.
async fn read_staged(
    store: &Store,
    key: &str,
    b: usize,
    builder: &mut SeriesBuilder,
) -> Result<(), TableError> {
    let bytes = store.get(key).await?;
    let file = decode::open(Ranges::whole(bytes)).map_err(TableError::parquet(key))?;
    let groups: Vec<usize> = (0..file.metadata().num_row_groups()).collect();
    let mut into = IntoBuilds {
        builder,
        builds: &[(0, u64::MAX, b)],
        at: 0,
    };
    crate::table::cases::for_each_case(&file, &groups, &mut into).map_err(TableError::parquet(key))
}

/// A build's rows in a file: (first row, rows, the build's index in the series).
type RowsOf = (u64, u64, usize);

/// A file's rows as cases of a series' builds: `builds` are (first row, rows, build index),
/// by first row.
struct IntoBuilds<'a> {
    builder: &'a mut SeriesBuilder,
    builds: &'a [RowsOf],
    at: usize,
}

impl table::cases::Cases for IntoBuilds<'_> {
    fn knows(&self, test_id: i64) -> bool {
        self.builder.knows(test_id)
    }

    fn case(&mut self, row: u64, c: crate::table::cases::Case<'_>) {
        let builds = self.builds;
        while self.at < builds.len() && row >= builds[self.at].0.saturating_add(builds[self.at].1) {
            self.at += 1;
        }
        if let Some(&(first, _, b)) = builds.get(self.at) {
            if row >= first {
                self.builder
                    .add_case(b, c.test_id, c.names, c.duration_s, c.status);
            }
        }
    }
}

/// Adds the rows of `builds` (first row, rows, build index; by first row) from one part: its
/// footer, then one range GET per row group that holds any of them.
async fn read_part(
    store: &Store,
    key: &str,
    size: u64,
    builds: &[RowsOf],
    builder: &mut SeriesBuilder,
) -> Result<(), TableError> {
    let mut footer = fetch::footer(store, key, size).await?;
    let starts = decode::row_group_starts(&footer.meta);
    let mut groups: Vec<usize> = builds
        .iter()
        .flat_map(|&(first, rows, _)| decode::row_groups_of(&starts, &footer.meta, first, rows))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    // The columns there are of those a series reads (an older file may lack test_id).
    let columns: Vec<usize> = crate::table::cases::CASE_COLUMNS
        .iter()
        .chain(&crate::table::cases::NAME_COLUMNS)
        .filter_map(|c| decode::column_indices(&footer.meta, &[c]).ok())
        .flatten()
        .collect();

    footer.fetch_columns(store, &groups, &columns).await?;
    let file = decode::open(footer.ranges).map_err(TableError::parquet(key))?;
    let mut into = IntoBuilds {
        builder,
        builds,
        at: 0,
    };
    crate::table::cases::for_each_case(&file, &groups, &mut into).map_err(TableError::parquet(key))
}

/// The builds among `keys` that are complete (have a `context.json`), belong to selected jobs
/// and are not in `have`: the ones to read from raw XML.
pub fn builds_without_summary<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    selection: &Selection,
    have: &HashSet<BuildId>,
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

/// Fails when the plan found nothing to analyse, saying why.
pub fn ensure_some(plan: &Plan, store: &Store, selection: &Selection) -> Result<(), AnalyzeError> {
    if plan.series.is_empty() {
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
    fn finds_builds_that_need_raw_xml() {
        let keys = [
            "_ci-test-metrics/staging/dt=2026-12-01/a/job/master/1.parquet",
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
        let have: HashSet<BuildId> = [BuildId {
            job: "a/job".into(),
            branch: "master".into(),
            build: 1,
        }]
        .into();
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
