//! Publishing staged builds into the tables, exactly once (async; the store edge).
//!
//! For each date with staged builds: list the date's `test_runs` parts and read their footers
//! (the builds each holds); write a missing `builds` part from its `test_runs` footer; delete
//! staged files of builds already published; and, once the date is due, write the rest as the
//! next part numbers, each with `If-None-Match: *`. A part number another worker took first
//! means its view was stale: it lists again and publishes what is still left. So a build is in
//! one part or none, and a part is never replaced: readers never see a build twice or in half.
//!
//! A date is due when it has been over for `grace` (late builds of a due date become a further,
//! smaller part), when its staged builds already fill a part, or at once with [`Seal::Now`].

use super::decode::{self, Ranges};
use super::encode::{self, RunsWriter};
use super::fetch;
use super::schema::BuildRow;
use super::{
    parse_part_key, parse_staged_key, part_key, table_prefix, TableError, BUILDS, STAGING_PREFIX,
    TEST_RUNS,
};
use crate::layout::BuildId;
use crate::store::{ObjectInfo, Store, StoreError};
use bytes::Bytes;
use parquet::file::reader::FileReader;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use time::OffsetDateTime;

/// When a date's staged builds are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Seal {
    /// Once the date (UTC) has been over for the grace time, or its builds fill a part.
    DayEnd,
    /// At every run: fresher tables, smaller files.
    Now,
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub now: OffsetDateTime,
    pub seal: Seal,
    /// How long after a date ends its builds wait for stragglers.
    pub grace: Duration,
    /// A part is closed when it reaches this many bytes.
    pub part_bytes: usize,
    /// Rows per row group of a part.
    pub row_group_rows: usize,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            now: OffsetDateTime::now_utc(),
            seal: Seal::DayEnd,
            grace: DEFAULT_GRACE,
            part_bytes: PART_BYTES,
            row_group_rows: encode::ROW_GROUP_ROWS,
        }
    }
}

/// The default wait after a date ends.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2 * 3600);
/// Parts are closed at this size: Athena's guidance is objects of about 128 MB.
pub const PART_BYTES: usize = 128 << 20;
/// Attempts at a date before giving up for this run (each lost race means another worker wrote).
const ATTEMPTS: usize = 8;

/// What a publishing pass did.
#[derive(Debug, Default, Clone)]
pub struct Published {
    /// `test_runs` parts written.
    pub parts: Vec<String>,
    pub builds: usize,
    pub rows: u64,
    /// Staged builds of dates not due yet.
    pub waiting: usize,
    /// Staged files removed because their builds were already published.
    pub cleaned: usize,
    /// Problems that did not stop the pass (a staged file that cannot be read stays staged).
    pub warnings: Vec<String>,
}

/// Publishes every due date's staged builds.
pub async fn publish(store: &Store, opts: &PublishOptions) -> Result<Published, TableError> {
    let mut out = Published::default();
    let mut days: BTreeMap<String, Vec<(BuildId, ObjectInfo)>> = BTreeMap::new();
    for o in store.list_or_empty(STAGING_PREFIX).await? {
        match parse_staged_key(&o.key) {
            Some((date, id)) => days.entry(date).or_default().push((id, o)),
            None if o.key.contains(".ctm-tmp") => {}
            None => out.warnings.push(format!(
                "{}: not a staged build (the aggregator writes nothing else under {STAGING_PREFIX}); left alone",
                o.key
            )),
        }
    }
    for (date, mut staged) in days {
        staged.sort_by(|a, b| a.0.cmp(&b.0));
        if let Err(e) = publish_date(store, &date, &staged, opts, &mut out).await {
            out.warnings
                .push(format!("date {date}: not published this run: {e}"));
        }
    }
    Ok(out)
}

/// A date's `test_runs` parts: number, key, size.
pub(crate) async fn parts(
    store: &Store,
    table: &str,
    date: &str,
) -> Result<Vec<(u32, ObjectInfo)>, StoreError> {
    let mut parts: Vec<(u32, ObjectInfo)> = store
        .list_or_empty(&table_prefix(table, Some(date)))
        .await?
        .into_iter()
        .filter_map(|o| parse_part_key(&o.key).map(|(_, _, n)| n).map(|n| (n, o)))
        .collect();
    parts.sort_by_key(|(n, _)| *n);
    Ok(parts)
}

fn due(date: &str, staged_bytes: u64, opts: &PublishOptions) -> bool {
    if opts.seal == Seal::Now || staged_bytes >= opts.part_bytes as u64 {
        return true;
    }
    let Ok(day) = time::Date::parse(
        date,
        time::macros::format_description!("[year]-[month]-[day]"),
    ) else {
        return true;
    };
    let end = day.midnight().assume_utc() + time::Duration::DAY;
    opts.now >= end + opts.grace
}

enum Attempt {
    Done,
    /// Another worker published meanwhile: look again.
    Raced,
}

async fn publish_date(
    store: &Store,
    date: &str,
    staged: &[(BuildId, ObjectInfo)],
    opts: &PublishOptions,
    out: &mut Published,
) -> Result<(), TableError> {
    for _ in 0..ATTEMPTS {
        let parts = parts(store, TEST_RUNS, date).await?;
        let with_builds: HashSet<u32> = self::parts(store, BUILDS, date)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut published: HashSet<BuildId> = HashSet::new();
        for (n, o) in &parts {
            let footer = fetch::footer(store, &o.key, o.size).await?;
            let builds = decode::builds_of(&footer.meta).map_err(TableError::parquet(&o.key))?;
            if !with_builds.contains(n) {
                write_builds_part(store, date, *n, &builds).await?;
            }
            published.extend(builds.iter().map(BuildRow::id));
        }
        let (done, todo): (Vec<_>, Vec<_>) =
            staged.iter().partition(|(id, _)| published.contains(id));
        for (_, o) in &done {
            store.delete(&o.key).await?;
            out.cleaned += 1;
        }
        if todo.is_empty() {
            return Ok(());
        }
        if !due(date, todo.iter().map(|(_, o)| o.size).sum(), opts) {
            out.waiting += todo.len();
            return Ok(());
        }
        let next = parts.last().map_or(0, |(n, _)| n + 1);
        match write_parts(store, date, &todo, next, opts, out).await? {
            Attempt::Done => return Ok(()),
            Attempt::Raced => continue,
        }
    }
    Err(TableError::Invalid {
        key: table_prefix(TEST_RUNS, Some(date)),
        message: format!("other workers kept publishing this date; {ATTEMPTS} attempts lost the race, the next run tries again"),
    })
}

async fn write_builds_part(
    store: &Store,
    date: &str,
    n: u32,
    builds: &[BuildRow],
) -> Result<(), TableError> {
    let key = part_key(BUILDS, date, n);
    let bytes = encode::builds_file(builds).map_err(TableError::parquet(&key))?;
    // Another worker may have written the same part from the same footer: either copy will do.
    store.put_if_absent(&key, Bytes::from(bytes)).await?;
    Ok(())
}

/// Writes `todo` as parts `next`, `next + 1`, …
async fn write_parts(
    store: &Store,
    date: &str,
    todo: &[&(BuildId, ObjectInfo)],
    mut next: u32,
    opts: &PublishOptions,
    out: &mut Published,
) -> Result<Attempt, TableError> {
    let new_writer =
        || RunsWriter::with_row_groups(opts.row_group_rows).map_err(TableError::parquet(date));
    let mut writer = new_writer()?;
    let mut keys: Vec<&str> = Vec::new();
    for (_, o) in todo {
        let bytes = match store.get(&o.key).await {
            Ok(bytes) => bytes,
            // Published (and cleaned up) by another worker since the listing.
            Err(StoreError::NotFound { .. }) => return Ok(Attempt::Raced),
            Err(e) => return Err(e.into()),
        };
        let (build, columns) = match decode_staged(bytes) {
            Ok(decoded) => decoded,
            Err(e) => {
                out.warnings.push(format!(
                    "{}: cannot be read ({e}); left staged and not published: delete it and run `aggregate --republish` for the build",
                    o.key
                ));
                continue;
            }
        };
        writer
            .push(build, columns.runs())
            .map_err(TableError::parquet(&o.key))?;
        keys.push(&o.key);
        if writer.bytes_written() >= opts.part_bytes {
            let full = std::mem::replace(
                &mut writer,
                RunsWriter::new().map_err(TableError::parquet(date))?,
            );
            if !commit(store, date, next, full, &keys, out).await? {
                return Ok(Attempt::Raced);
            }
            keys.clear();
            next += 1;
        }
    }
    if !keys.is_empty() && !commit(store, date, next, writer, &keys, out).await? {
        return Ok(Attempt::Raced);
    }
    Ok(Attempt::Done)
}

/// One staged build, decoded and checked whole before anything is written: a file that breaks
/// off must leave no half build in a part.
fn decode_staged(
    bytes: Bytes,
) -> Result<(BuildRow, decode::RunColumns), parquet::errors::ParquetError> {
    let file = decode::open(Ranges::whole(bytes))?;
    let mut builds = decode::builds_of(file.metadata())?;
    let build = match (builds.pop(), builds.is_empty()) {
        (Some(b), true) => b,
        _ => {
            return Err(parquet::errors::ParquetError::General(
                "a staged file holds one build".into(),
            ))
        }
    };
    let groups: Vec<usize> = (0..file.metadata().num_row_groups()).collect();
    Ok((build, decode::RunColumns::read(&file, &groups)?))
}

/// Writes part `n` if no one has; `false` when someone had.
async fn commit(
    store: &Store,
    date: &str,
    n: u32,
    writer: RunsWriter,
    staged: &[&str],
    out: &mut Published,
) -> Result<bool, TableError> {
    let key = part_key(TEST_RUNS, date, n);
    let (bytes, builds) = writer.finish().map_err(TableError::parquet(&key))?;
    if store
        .put_if_absent(&key, Bytes::from(bytes))
        .await?
        .is_none()
    {
        return Ok(false);
    }
    write_builds_part(store, date, n, &builds).await?;
    for k in staged {
        store.delete(k).await?;
    }
    out.builds += builds.len();
    out.rows += builds.iter().map(|b| b.rows).sum::<u64>();
    tracing::info!(part = %key, builds = builds.len(), "published");
    out.parts.push(key);
    Ok(true)
}
