//! The aggregation stage: find complete builds, parse them, publish per-job metrics, and record
//! per-build summaries and a per-destination ledger under the reserved prefix `_ci-test-metrics/`.
//!
//! # Guarantee
//!
//! Each build's metrics reach each destination once, however many runs and Lambda workers go at
//! the same time. A worker takes a build with a conditional write on a claim ([`claim`]); only the
//! holder publishes. A build is recorded `done` (again with a conditional write) only after the
//! sink accepted its metrics, and its summary is written before that, so a worker killed at any
//! point loses no build: its claim expires and another worker takes the build. The one window no
//! claim closes is a worker that dies after the sink accepted the metrics and before the `done`
//! marker: its claim then says `publishing`, and the worker that takes it over asks the sink
//! whether the build arrived before sending it again (answered by the EMF file and CloudWatch;
//! stdout cannot answer).
//!
//! # Finding builds
//!
//! A run reads the arrivals index ([`crate::arrivals`]) after its destination's cursor
//! ([`cursor`]), so its cost follows the new builds, not the history. The first run for a
//! destination, and `--full`, sweep the whole store instead ([`discover`]): for backfill, for
//! builds uploaded by versions that wrote no arrival marker, and as a periodic reconciliation.

pub mod branches;
pub mod claim;
pub mod cursor;
pub mod discover;
pub mod ledger;
mod prepare;
pub mod worker;

use crate::arrivals;
use crate::layout::{BuildId, ARRIVALS_PREFIX};
use crate::metrics::encode::EncodeOptions;
use crate::metrics::Sink;
use crate::store::{Requests, Store, StoreError};
use branches::BranchRules;
use bytes::Bytes;
use cursor::{Cursor, Delta};
use discover::{BuildObjects, Listing};
use futures::StreamExt;
use ledger::Destination;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use thiserror::Error;
use time::OffsetDateTime;
use worker::{BuildVerdict, Hints, Worker};

/// CloudWatch accepts datums at most this old.
pub const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// CloudWatch accepts datums at most this far in the future.
pub const MAX_FUTURE: Duration = Duration::from_secs(2 * 3600);

#[derive(Debug, Error)]
pub enum AggregateError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to do with builds older than CloudWatch accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OldBuilds {
    /// Record them without publishing, with the reason (the default for CloudWatch).
    Skip,
    /// Publish them anyway, with a warning (the default for EMF files and stdout).
    Publish,
}

/// How one aggregation run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    pub rules: BranchRules,
    /// Only builds whose `context.json` is at most this old.
    pub since: Option<Duration>,
    /// Wait until nothing was written to a build for this long (parallel stages upload apart).
    pub settle: Duration,
    /// Builds read and parsed at the same time.
    pub concurrency: usize,
    /// Publish and record nothing.
    pub dry_run: bool,
    pub encode: EncodeOptions,
    pub old_builds: OldBuilds,
    /// Result files larger than this are reported, not parsed.
    pub max_file_bytes: u64,
    /// Names this run in the ledger and in its claims.
    pub run_id: String,
    /// "Now", for splitting a full sweep's builds into ready and settling.
    pub now: OffsetDateTime,
    /// Where the metrics land: the part of the ledger this run reads and writes.
    pub destination: Destination,
    /// How long a claim holds before another worker may take the build over.
    pub lease: Duration,
    /// How far before its cursor a run lists the arrivals index again, for late writers.
    pub lookback: Duration,
    /// Which builds to look at.
    pub mode: Mode,
    /// Send builds again even when they are done for the destination (`--republish`).
    pub republish: bool,
    /// When staged builds become parts of the history tables.
    pub tables: crate::table::publish::PublishOptions,
}

/// Which builds a run looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// What arrived since the destination's cursor (a whole sweep when it has none yet).
    Arrivals,
    /// Every build in the store.
    Full,
    /// These builds only.
    Builds(Vec<BuildId>),
}

/// What happened to one build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub id: BuildId,
    pub branch_class: String,
    /// Metrics went (or, in a dry run, would go) to the sink.
    pub published: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    pub tests: usize,
    pub failures: usize,
    pub errors: usize,
    pub skipped: usize,
    /// Sum of known test times, seconds.
    pub total_time: f64,
    /// Known test durations, seconds, rounded to 3 significant digits, with their counts. Moved
    /// into [`Outcome::job_durations`] when the build is finished, so memory does not grow with
    /// the number of builds.
    pub durations: Vec<(f64, u32)>,
    pub parse_errors: usize,
    pub datums: usize,
    /// Outside CloudWatch's timestamp window but published anyway (`--old-builds publish`).
    pub too_old: bool,
    /// Problems with this build's data: broken files, a bad context, missing files.
    pub problems: Vec<String>,
    /// Sent by an earlier worker that stopped before recording it; found at the sink.
    pub recovered: bool,
    /// Requests that carried its metrics (that would, in a dry run).
    pub requests: usize,
    /// Its distinct metrics (name and dimensions); moved into [`Outcome::metrics`].
    pub metrics: BTreeSet<(String, Vec<(String, String)>)>,
    /// Set when the build could not be recorded or published; it is retried next run.
    pub failed: Option<String>,
}

/// What a whole run did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub builds: Vec<BuildOutcome>,
    /// Builds still uploading.
    pub incomplete: Vec<BuildId>,
    /// Keys that do not fit the layout.
    pub stray: Vec<String>,
    /// Complete builds that had something written within the settle time; taken by a later run.
    pub settling: Vec<BuildId>,
    /// Result files written after their build was recorded: not in the metrics. Each is
    /// reported by one run only.
    pub late_files: Vec<String>,
    /// Builds already done for the destination before this run (that this run looked at).
    pub already_done: usize,
    /// Builds a previous run sent but did not record, found at the sink and recorded now.
    pub recovered: Vec<BuildId>,
    /// Builds another worker holds a live claim on, with the owner.
    pub claimed: Vec<(BuildId, String)>,
    /// How builds were found: `arrivals` or `full`.
    pub discovery: &'static str,
    /// Store requests this run made.
    pub store_requests: Requests,
    /// Datums sent (or, in a dry run, that would be sent).
    pub datums: usize,
    /// Distinct metrics (name and dimensions) among them: what CloudWatch bills per month.
    pub metrics: BTreeSet<(String, Vec<(String, String)>)>,
    pub requests: usize,
    /// Failures to publish or record; non-empty means a non-zero exit.
    pub failures: Vec<String>,
    /// What went into the history tables (nothing in a dry run).
    pub tables: crate::table::publish::Published,
    /// Builds converted from an earlier version's JSON summaries.
    pub migrated: usize,
    /// Per job: rounded test durations (as `f64` bits, which order like the values) and counts,
    /// for percentiles in the summary table.
    pub job_durations: BTreeMap<String, BTreeMap<u64, u64>>,
}

impl Outcome {
    /// Keeps a finished build: reports it and folds its durations into its job's.
    fn finish(&mut self, mut build: BuildOutcome, progress: &dyn Progress) {
        progress.build_done(&build);
        if build.recovered {
            self.recovered.push(build.id.clone());
        }
        let job = self.job_durations.entry(build.id.job.clone()).or_default();
        for (value, count) in std::mem::take(&mut build.durations) {
            *job.entry(value.to_bits()).or_default() += u64::from(count);
        }
        self.builds.push(build);
    }
}

/// Progress events, for a progress bar or log lines.
pub trait Progress {
    fn discovered(&self, _pending: usize) {}
    fn build_done(&self, _outcome: &BuildOutcome) {}
}

impl Progress for () {}

/// Runs one aggregation over `store`, publishing to `sink` (none in a dry run).
pub async fn run(
    store: &Store,
    sink: Option<&mut Sink>,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Outcome, AggregateError> {
    let before = store.stats();
    let worker = Worker::new(store, sink, opts);
    let mut outcome = match &opts.mode {
        Mode::Arrivals => match read_cursor(store, &opts.destination).await? {
            Some(read) => from_arrivals(store, &worker, read, opts, progress).await?,
            None => {
                tracing::info!(
                    "first run for destination {}: sweeping the whole store once; later runs \
                     read only the arrivals index",
                    opts.destination.id
                );
                full(store, &worker, opts, progress, Some(None)).await?
            }
        },
        Mode::Full | Mode::Builds(_) => full(store, &worker, opts, progress, None).await?,
    };
    if !opts.dry_run {
        tables(store, opts, &mut outcome).await;
    }
    let after = store.stats();
    outcome.store_requests = Requests {
        lists: after.lists - before.lists,
        gets: after.gets - before.gets,
        heads: after.heads - before.heads,
        puts: after.puts - before.puts,
        deletes: after.deletes - before.deletes,
    };
    Ok(outcome)
}

/// Converts an earlier version's summaries (once per store), then publishes the staged builds
/// that are due. A failure leaves the builds staged for the next run.
async fn tables(store: &Store, opts: &Options, outcome: &mut Outcome) {
    match crate::table::migrate::migrate(store).await {
        Ok(m) => {
            outcome.migrated = m.builds;
            for w in m.warnings {
                tracing::warn!("{w}");
            }
        }
        Err(e) => outcome.failures.push(format!(
            "migrating the JSON summaries to the history tables: {e}"
        )),
    }
    match crate::table::publish::publish(store, &opts.tables).await {
        Ok(published) => {
            for w in &published.warnings {
                tracing::warn!("{w}");
            }
            outcome.tables = published;
        }
        Err(e) => outcome.failures.push(format!(
            "publishing the history tables (the builds stay staged for the next run): {e}"
        )),
    }
}

/// The whole-store sweep; `cursor` is the destination's cursor when the caller already read it.
async fn full(
    store: &Store,
    worker: &Worker<'_>,
    opts: &Options,
    progress: &dyn Progress,
    cursor: Option<Option<(Cursor, String)>>,
) -> Result<Outcome, AggregateError> {
    let listing = Listing::new(store.list("").await?, &opts.destination);
    let mut outcome = Outcome {
        discovery: "full",
        incomplete: listing.incomplete().cloned().collect(),
        stray: listing.stray.clone(),
        ..Outcome::default()
    };
    for id in &outcome.incomplete {
        tracing::info!("{id}: no context.json yet; waiting for the upload to finish");
    }
    let late: Vec<String> = listing.late_files().into_iter().map(String::from).collect();
    outcome.late_files = report_late(store, opts, &late).await;
    let maybe_sent = read_intents(store, &listing, &mut outcome).await;

    let (ready, settling) = match &opts.mode {
        Mode::Builds(wanted) => {
            let mut ready = Vec::new();
            for id in wanted {
                match listing.builds.get(id) {
                    Some(objects) if objects.context.is_some() => ready.push((id, objects)),
                    _ => outcome.failures.push(format!(
                        "{id}: no such build (no context.json at {})",
                        id.key("context.json")
                    )),
                }
            }
            (ready, Vec::new())
        }
        _ if opts.republish => {
            let ready = listing
                .builds
                .iter()
                .filter(|(_, o)| o.context.is_some())
                .collect();
            (ready, Vec::new())
        }
        _ => {
            let (ready, settling) = listing.pending(opts.now, opts.settle);
            outcome.already_done = listing.done.len();
            (ready, settling)
        }
    };
    outcome.settling = settling.into_iter().cloned().collect();
    let pending: Vec<(BuildId, BuildObjects)> = ready
        .into_iter()
        .filter(|(_, objects)| within_since(objects, opts))
        .map(|(id, objects)| (id.clone(), objects.clone()))
        .collect();
    progress.discovered(pending.len());
    let hints = |id: &BuildId| Hints {
        // The listing knows the ledger, except for builds named one by one.
        not_done: !matches!(opts.mode, Mode::Builds(_)),
        maybe_sent: maybe_sent.contains(id),
        check_late: false,
    };
    let verdicts: Vec<(BuildId, BuildVerdict)> = futures::stream::iter(pending)
        .map(|(id, objects)| async {
            let verdict = worker.process(&id, Some(objects), hints(&id)).await;
            (id, verdict)
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let unresolved: BTreeSet<BuildId> = verdicts
        .iter()
        .filter(|(_, v)| !v.resolved())
        .map(|(id, _)| id.clone())
        .chain(outcome.settling.iter().cloned())
        .collect();
    for (id, verdict) in verdicts {
        outcome.add(id, verdict, progress);
    }
    // A full sweep also moves the cursor to the newest arrival it saw.
    if matches!(opts.mode, Mode::Full | Mode::Arrivals) && !opts.dry_run && !opts.republish {
        let mut delta = Delta {
            newest: listing.arrivals.keys().next_back().cloned(),
            ..Delta::default()
        };
        for (key, id) in &listing.arrivals {
            if unresolved.contains(id) {
                delta.unresolved.insert(key.clone());
            } else {
                delta.resolved.insert(key.clone());
            }
        }
        // Unfinished builds that have no arrival marker (older uploaders) are remembered under
        // one made from their context.json's time, so the next run looks at them again.
        let indexed: BTreeSet<&BuildId> = listing.arrivals.values().collect();
        for id in unresolved.iter().filter(|id| !indexed.contains(id)) {
            let at = listing
                .builds
                .get(id)
                .and_then(|o| o.context.as_ref())
                .and_then(|c| c.last_modified)
                .unwrap_or(opts.now);
            delta.unresolved.insert(arrivals::key(at, id));
        }
        write_cursor(store, opts, &delta, cursor, &mut outcome).await;
    }
    outcome.builds.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(outcome)
}

/// The incremental run: what arrived after the cursor (and its lookback), plus its pending work.
async fn from_arrivals(
    store: &Store,
    worker: &Worker<'_>,
    (cursor, etag): (Cursor, String),
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Outcome, AggregateError> {
    let mut outcome = Outcome {
        discovery: "arrivals",
        ..Outcome::default()
    };
    let listed = store
        .list_after(ARRIVALS_PREFIX, &cursor.start_after(opts.lookback))
        .await?;
    let mut delta = Delta {
        newest: listed.last().map(|o| o.key.clone()),
        ..Delta::default()
    };
    // Each build once, with every arrival key that names it.
    let mut builds: BTreeMap<BuildId, (Vec<String>, bool)> = BTreeMap::new();
    let fresh = listed.into_iter().map(|o| (o.key, true));
    let pending = cursor.pending.iter().map(|k| (k.clone(), false));
    for (key, is_new) in fresh.chain(pending) {
        if is_new && cursor.seen.contains(&key) {
            continue;
        }
        match arrivals::parse(&key) {
            Some((_, id)) => {
                let entry = builds.entry(id).or_default();
                entry.0.push(key);
                entry.1 |= is_new;
            }
            None => {
                outcome.stray.push(key.clone());
                delta.resolved.insert(key);
            }
        }
    }
    progress.discovered(builds.len());
    let verdicts: Vec<(BuildId, Vec<String>, BuildVerdict)> = futures::stream::iter(builds)
        .map(|(id, (keys, is_new))| async move {
            let hints = Hints {
                check_late: is_new,
                ..Hints::default()
            };
            let verdict = worker.process(&id, None, hints).await;
            (id, keys, verdict)
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    for (id, keys, verdict) in verdicts {
        let set = if verdict.resolved() {
            &mut delta.resolved
        } else {
            &mut delta.unresolved
        };
        set.extend(keys);
        outcome.add(id, verdict, progress);
    }
    if !opts.dry_run && !opts.republish {
        write_cursor(
            store,
            opts,
            &delta,
            Some(Some((cursor, etag))),
            &mut outcome,
        )
        .await;
    }
    outcome.builds.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(outcome)
}

impl Outcome {
    /// Files one build's verdict.
    fn add(&mut self, id: BuildId, verdict: BuildVerdict, progress: &dyn Progress) {
        match verdict {
            BuildVerdict::Done(mut build) => {
                if build.published && !build.recovered {
                    self.datums += build.datums;
                    self.requests += build.requests;
                    self.metrics.append(&mut build.metrics);
                }
                self.finish(*build, progress);
            }
            BuildVerdict::AlreadyDone => self.already_done += 1,
            BuildVerdict::Incomplete => self.incomplete.push(id),
            BuildVerdict::Settling { .. } => self.settling.push(id),
            BuildVerdict::Claimed { owner } => {
                tracing::info!("{id}: claimed by {owner}; left to it");
                self.claimed.push((id, owner));
            }
            BuildVerdict::Failed(message) => {
                tracing::warn!("{message}");
                self.failures.push(message);
            }
        }
    }
}

/// The destination's cursor and its ETag, if it has one.
async fn read_cursor(
    store: &Store,
    dest: &Destination,
) -> Result<Option<(Cursor, String)>, StoreError> {
    let key = dest.cursor_key();
    let Some((bytes, meta)) = store.get_with_meta(&key).await? else {
        return Ok(None);
    };
    match serde_json::from_slice::<Cursor>(&bytes) {
        Ok(cursor) => Ok(Some((cursor, meta.etag))),
        Err(e) => {
            tracing::warn!("{key}: unreadable cursor ({e}); starting from an empty one");
            Ok(Some((Cursor::default(), meta.etag)))
        }
    }
}

/// Applies a run's findings to the current cursor, retrying when another run wrote it first. A
/// failure only costs the next run a longer listing. `known` is the cursor (and ETag, or `None`
/// for none) as the run read it, tried first; after a conflict the cursor is read again.
async fn write_cursor(
    store: &Store,
    opts: &Options,
    delta: &Delta,
    mut known: Option<Option<(Cursor, String)>>,
    outcome: &mut Outcome,
) {
    let key = opts.destination.cursor_key();
    for _ in 0..8 {
        let current = match known.take() {
            Some(current) => current,
            None => match read_cursor(store, &opts.destination).await {
                Ok(current) => current,
                Err(e) => {
                    tracing::warn!("could not read {key} ({e}); the next run lists more");
                    return;
                }
            },
        };
        let (mut cursor, etag) = match current {
            Some((cursor, etag)) => (cursor, Some(etag)),
            None => (Cursor::default(), None),
        };
        cursor.apply(delta, opts.lookback);
        let body = Bytes::from(serde_json::to_vec(&cursor).unwrap_or_default());
        let written = match &etag {
            Some(etag) => store.put_if_match(&key, body, etag).await,
            None => store.put_if_absent(&key, body).await,
        };
        match written {
            Ok(Some(_)) => return,
            Ok(None) => continue, // another run wrote it: apply ours to theirs
            Err(e) => {
                outcome
                    .failures
                    .push(format!("could not write the cursor {key}: {e}"));
                return;
            }
        }
    }
    tracing::warn!("{key}: too many runs at once; the next run lists more");
}

/// Reports late files that no run reported yet, and records that they were (so each is reported
/// once). Returns the ones reported now.
pub(crate) async fn report_late(store: &Store, opts: &Options, files: &[String]) -> Vec<String> {
    let mut reported = Vec::new();
    for file in files {
        let first = opts.dry_run
            || matches!(
                store
                    .put_if_absent(&opts.destination.late_key(file), Bytes::new())
                    .await,
                Ok(Some(_))
            );
        if first {
            tracing::warn!(
                "{file}: written after its build was aggregated, so it is not in the metrics; \
                 raise --settle above the time between a build's first and last upload"
            );
            reported.push(file.clone());
        }
    }
    reported
}

/// Reads first-version intents not marked complete; returns the builds they name that have no
/// `done` marker (an old run may have sent them).
async fn read_intents(
    store: &Store,
    listing: &Listing,
    outcome: &mut Outcome,
) -> BTreeSet<BuildId> {
    let mut unrecorded = BTreeSet::new();
    for key in &listing.intents {
        let intent = match store
            .get(key)
            .await
            .map(|b| serde_json::from_slice::<ledger::Intent>(&b))
        {
            Ok(Ok(intent)) => intent,
            Ok(Err(e)) => {
                tracing::warn!("{key}: unreadable intent, ignored: {e}");
                continue;
            }
            Err(e) => {
                outcome
                    .failures
                    .push(format!("could not read the intent {key}: {e}"));
                continue;
            }
        };
        unrecorded.extend(
            intent
                .builds
                .iter()
                .map(|b| b.id())
                .filter(|id| !listing.done.contains_key(id)),
        );
    }
    unrecorded
}

/// Asks the sink whether a build's `Builds` datum already arrived.
pub(crate) async fn sink_has_build(sink: &mut Sink, intent: &ledger::IntentBuild) -> bool {
    let id = intent.id();
    let found = match OffsetDateTime::parse(
        &intent.timestamp,
        &time::format_description::well_known::Rfc3339,
    ) {
        Ok(at) => {
            sink.contains_build(&intent.job, &intent.branch_class, at)
                .await
        }
        Err(e) => Err(crate::metrics::MetricsError::InvalidDatum {
            name: id.to_string(),
            reason: e.to_string(),
        }),
    };
    found.unwrap_or_else(|e| {
        tracing::warn!(
            "{id}: cannot tell whether an earlier run sent this build ({e}); sending it"
        );
        false
    })
}

fn within_since(objects: &BuildObjects, opts: &Options) -> bool {
    match (
        opts.since,
        objects.context.as_ref().and_then(|c| c.last_modified),
    ) {
        (Some(since), Some(modified)) => opts.now - modified <= since,
        _ => true,
    }
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
