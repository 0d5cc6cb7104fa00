//! The scheduled stage: discover complete builds, parse them, publish per-job metrics, and record
//! per-build summaries and a ledger under the reserved prefix `_ci-test-metrics/`.
//!
//! # Guarantee
//!
//! Each build's metrics are published once. A build is recorded `done` only after the sink
//! accepted the request that carried its metrics, and its summary is written before that, so a
//! run killed at any point (or a store or sink that goes away) loses no build: the next run
//! takes every build without a `done` marker again. Before each publish request the run writes an
//! intent naming the builds it carries; a build named in an intent but not `done` is checked with
//! the sink (is its `Builds` datum there?) before it is published again, so the window in which a
//! rerun could publish twice is closed for sinks that can answer (the EMF file, CloudWatch).
//! Requests carry whole builds, so a build is never half-published.
//!
//! Two runs at the same time may both take the same new build and publish it twice: schedule one
//! run at a time (Jenkins `disableConcurrentBuilds()`, one EventBridge target). The run warns
//! when it sees another run's intents written in the last few minutes.

pub mod branches;
pub mod discover;
pub mod ledger;

use crate::context::Context;
use crate::junit;
use crate::layout::{BuildId, CONTEXT_FILE};
use crate::metrics::cloudwatch::{estimated_size, MAX_DATUMS_PER_REQUEST, MAX_REQUEST_BYTES};
use crate::metrics::encode::{encode_build, round_duration, EncodeOptions};
use crate::metrics::{Datum, Sink};
use crate::store::{ObjectInfo, Store, StoreError};
use crate::summary::{self, BuildSummary, FileSummary};
use branches::BranchRules;
use bytes::Bytes;
use discover::{BuildObjects, Listing};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use thiserror::Error;
use time::OffsetDateTime;

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
    /// Names this run in the ledger.
    pub run_id: String,
    /// "Now", for the age checks.
    pub now: OffsetDateTime,
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
    /// Result files written after their build was recorded: not in the metrics.
    pub late_files: Vec<String>,
    /// Builds already done before this run.
    pub already_done: usize,
    /// Builds a previous run sent but did not record, found at the sink and recorded now.
    pub recovered: Vec<BuildId>,
    /// Datums sent (or, in a dry run, that would be sent).
    pub datums: usize,
    /// Distinct metrics (name and dimensions) among them: what CloudWatch bills per month.
    pub metrics: BTreeSet<(String, Vec<(String, String)>)>,
    pub requests: usize,
    /// Failures to publish or record; non-empty means a non-zero exit.
    pub failures: Vec<String>,
    /// Per job: rounded test durations (as `f64` bits, which order like the values) and counts,
    /// for percentiles in the summary table.
    pub job_durations: BTreeMap<String, BTreeMap<u64, u64>>,
}

impl Outcome {
    /// Keeps a finished build: reports it and folds its durations into its job's.
    fn finish(&mut self, mut build: BuildOutcome, progress: &dyn Progress) {
        progress.build_done(&build);
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

/// One build read, parsed, encoded and its summary written, ready to publish and record.
struct Prepared {
    build: BuildOutcome,
    datums: Vec<Datum>,
    intent: ledger::IntentBuild,
}

/// Runs one aggregation over `store`, publishing to `sink` (none in a dry run).
pub async fn run(
    store: &Store,
    mut sink: Option<&mut Sink>,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Outcome, AggregateError> {
    let listing = Listing::new(store.list("").await?);
    let mut outcome = Outcome {
        incomplete: listing.incomplete().cloned().collect(),
        stray: listing.stray.clone(),
        already_done: listing.done.len(),
        late_files: listing.late_files().into_iter().map(String::from).collect(),
        ..Outcome::default()
    };
    for id in &outcome.incomplete {
        tracing::info!("{id}: no {CONTEXT_FILE} yet; waiting for the upload to finish");
    }

    let unrecorded = read_intents(store, &listing, opts, &mut outcome).await;
    let (ready, settling) = listing.pending(opts.now, opts.settle);
    outcome.settling = settling.into_iter().cloned().collect();
    for key in &outcome.late_files {
        tracing::warn!(
            "{key}: written after its build was aggregated, so it is not in the metrics; \
             raise --settle above the time between a build's first and last upload"
        );
    }
    let pending: Vec<(BuildId, BuildObjects)> = ready
        .into_iter()
        .filter(|(_, objects)| within_since(objects, opts))
        .map(|(id, objects)| (id.clone(), objects.clone()))
        .collect();
    progress.discovered(pending.len());

    let mut batch = Batch::default();
    let mut prepared = futures::stream::iter(pending)
        .map(|(id, objects)| prepare(store, id, objects, opts))
        .buffered(opts.concurrency.max(1));
    while let Some(Prepared {
        mut build,
        datums,
        intent,
    }) = prepared.next().await
    {
        if let Some(message) = &build.failed {
            // The summary could not be written: nothing is published or recorded; next run retries.
            outcome.failures.push(message.clone());
            outcome.finish(build, progress);
            continue;
        }
        if build.published && unrecorded.contains(&build.id) {
            if let Some(sink) = sink.as_deref_mut() {
                if sink_has_build(sink, &intent).await {
                    build.reason =
                        Some("sent by an earlier run that stopped before recording it".into());
                    outcome
                        .failures
                        .extend(record_done(store, &mut build, opts).await);
                    outcome.recovered.push(build.id.clone());
                    outcome.finish(build, progress);
                    continue;
                }
            }
        }
        if !build.published {
            outcome
                .failures
                .extend(record_done(store, &mut build, opts).await);
            outcome.finish(build, progress);
            continue;
        }
        // Requests carry whole builds: send the batch first when this build would not fit.
        let bytes: usize = datums.iter().map(estimated_size).sum();
        if !batch.builds.is_empty()
            && (batch.datums.len() + datums.len() > MAX_DATUMS_PER_REQUEST
                || batch.bytes + bytes > MAX_REQUEST_BYTES)
        {
            flush(
                store,
                sink.as_deref_mut(),
                &mut batch,
                opts,
                &mut outcome,
                progress,
            )
            .await;
        }
        batch.builds.push(build);
        batch.intents.push(intent);
        batch.datums.extend(datums);
        batch.bytes += bytes;
    }
    flush(store, sink, &mut batch, opts, &mut outcome, progress).await;
    Ok(outcome)
}

/// Whole builds waiting to be sent together.
#[derive(Default)]
struct Batch {
    builds: Vec<BuildOutcome>,
    intents: Vec<ledger::IntentBuild>,
    datums: Vec<Datum>,
    /// Estimated request size of `datums`.
    bytes: usize,
}

/// Sends a batch: intent, publish, then a `done` marker per build.
async fn flush(
    store: &Store,
    sink: Option<&mut Sink>,
    batch: &mut Batch,
    opts: &Options,
    outcome: &mut Outcome,
    progress: &dyn Progress,
) {
    if batch.builds.is_empty() {
        return;
    }
    let Batch {
        builds,
        intents,
        datums,
        ..
    } = std::mem::take(batch);
    let sent = if opts.dry_run {
        outcome.requests += crate::metrics::cloudwatch::batches(&datums).len();
        Ok(None)
    } else {
        send(store, sink, intents, &datums, opts, outcome).await
    };
    if sent.is_ok() {
        outcome.datums += datums.len();
        for d in &datums {
            outcome
                .metrics
                .insert((d.name.clone(), d.dimensions.clone()));
        }
    }
    let mut builds = builds;
    match &sent {
        Ok(intent) => {
            let records = builds.iter_mut().map(|b| record_done(store, b, opts));
            let failed: Vec<String> = futures::future::join_all(records)
                .await
                .into_iter()
                .flatten()
                .collect();
            if let (Some(intent), true) = (intent, failed.is_empty()) {
                // Every build it names is recorded: later runs need not read this intent again.
                let key = ledger::intent_done_key(intent);
                if let Err(e) = store.put(&key, Bytes::new()).await {
                    tracing::warn!(
                        "could not write {key} ({e}); the next run reads the intent again"
                    );
                }
            }
            outcome.failures.extend(failed);
        }
        Err(e) => {
            for build in &mut builds {
                build.failed = Some(e.clone());
                build.published = false;
            }
        }
    }
    for build in builds {
        outcome.finish(build, progress);
    }
    if let Err(e) = sent {
        outcome.failures.push(e);
    }
}

/// Writes the intent, then publishes; returns the intent's key.
async fn send(
    store: &Store,
    sink: Option<&mut Sink>,
    builds: Vec<ledger::IntentBuild>,
    datums: &[Datum],
    opts: &Options,
    outcome: &mut Outcome,
) -> Result<Option<String>, String> {
    let Some(sink) = sink else { return Ok(None) };
    let key = ledger::intent_key(&opts.run_id, outcome.requests);
    let intent = ledger::Intent {
        run: opts.run_id.clone(),
        builds,
    };
    let body = serde_json::to_vec(&intent).map_err(|e| format!("{key}: {e}"))?;
    store
        .put(&key, Bytes::from(body))
        .await
        .map_err(|e| format!("could not write the intent {key}: {e}"))?;
    let report = sink.publish(datums).await.map_err(|e| e.to_string())?;
    outcome.requests += report.requests;
    Ok(Some(key))
}

/// Writes a build's `done` marker (nothing in a dry run); a failure is returned and also left
/// in the build's `failed`.
async fn record_done(store: &Store, build: &mut BuildOutcome, opts: &Options) -> Option<String> {
    if opts.dry_run {
        return None;
    }
    let done = ledger::Done {
        run: opts.run_id.clone(),
        at: rfc3339(OffsetDateTime::now_utc()),
        published: build.published,
        reason: build.reason.clone(),
        datums: build.datums,
    };
    let key = ledger::done_key(&build.id);
    let body = serde_json::to_vec(&done).unwrap_or_default();
    if let Err(e) = store.put(&key, Bytes::from(body)).await {
        let message = format!(
            "{}: metrics sent but the ledger entry {key} could not be written: {e}",
            build.id
        );
        build.failed = Some(message.clone());
        return Some(message);
    }
    None
}

/// Reads earlier runs' intents; returns the builds they name that have no `done` marker.
async fn read_intents(
    store: &Store,
    listing: &Listing,
    opts: &Options,
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
        if intent.run == opts.run_id {
            continue;
        }
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
async fn sink_has_build(sink: &mut Sink, intent: &ledger::IntentBuild) -> bool {
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

/// Reads one build, then parses and encodes it on a blocking thread. Never fails: problems are
/// recorded in the outcome.
async fn prepare(store: &Store, id: BuildId, objects: BuildObjects, opts: &Options) -> Prepared {
    let mut problems = Vec::new();
    let context_key = id.key(CONTEXT_FILE);
    let context = match store.get(&context_key).await {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            problems.push(format!("could not read {context_key}: {e}"));
            None
        }
    };
    let mut files = Vec::new();
    for object in &objects.files {
        if object.size > opts.max_file_bytes {
            let message = format!(
                "{}: {} bytes is over the limit of {} (--max-file-bytes)",
                object.key, object.size, opts.max_file_bytes
            );
            files.push((object.key.clone(), Err(message)));
            continue;
        }
        let body = store
            .get(&object.key)
            .await
            .map_err(|e| format!("could not read {}: {e}", object.key));
        files.push((object.key.clone(), body));
    }
    let task_opts = opts.clone();
    let context_object = objects.context.clone();
    let task_id = id.clone();
    let task = tokio::task::spawn_blocking(move || {
        let context = match context {
            Some(bytes) => Context::from_json(&context_key, &bytes)
                .map(|c| check_context(c, &task_id, &mut problems))
                .unwrap_or_else(|e| {
                    problems.push(e.to_string());
                    fallback_context(&task_id, context_object.as_ref())
                }),
            None => fallback_context(&task_id, context_object.as_ref()),
        };
        summarise(task_id, context, files, problems, &task_opts)
    });
    let (mut prepared, summary) = match task.await {
        Ok(done) => done,
        Err(e) => {
            // A panic while parsing must not stop the other builds: report it as this build's failure.
            let message = format!("{id}: internal error while parsing: {e}");
            let context = fallback_context(&id, objects.context.as_ref());
            let (mut prepared, summary) =
                summarise(id, context, vec![], vec![message.clone()], opts);
            prepared.build.failed = Some(message);
            prepared.build.published = false;
            (prepared, summary)
        }
    };
    // Written here, concurrently with other builds, and always before the build is recorded.
    if !opts.dry_run && prepared.build.failed.is_none() {
        let key = summary::key(&prepared.build.id);
        if let Err(e) = store.put(&key, Bytes::from(summary)).await {
            prepared.build.failed = Some(format!("could not write the summary {key}: {e}"));
            prepared.build.published = false;
        }
    }
    prepared
}

type FileBody = (String, Result<Bytes, String>);

/// Parses a build's files, summarises, classifies and encodes it (pure, blocking); returns the
/// gzip JSON summary beside.
fn summarise(
    id: BuildId,
    context: Context,
    bodies: Vec<FileBody>,
    mut problems: Vec<String>,
    opts: &Options,
) -> (Prepared, Vec<u8>) {
    let mut files = Vec::new();
    for (key, body) in bodies {
        let name = key.rsplit('/').next().unwrap_or(&key).to_string();
        match body {
            Ok(bytes) => {
                let file = FileSummary::parse(&name, &key, &bytes);
                if let Some(e) = &file.error {
                    problems.push(e.clone());
                }
                files.push(file);
            }
            Err(message) => {
                problems.push(message.clone());
                files.push(FileSummary::unreadable(&name, message));
            }
        }
    }
    for entry in &context.files {
        if !files.iter().any(|f| f.name == entry.name) {
            let message = format!(
                "{}: named in {CONTEXT_FILE} but missing from the store",
                id.key(&entry.name)
            );
            problems.push(message.clone());
            files.push(FileSummary::unreadable(&entry.name, message));
        }
    }
    if files.is_empty() {
        problems.push(format!("{id}: the build has no result files"));
    }

    let branch_class = opts.rules.classify(&context.branch);
    let mut published = opts.rules.publishes(&context.branch);
    let mut reason =
        (!published).then(|| format!("branch {:?} is filtered out by --branches", context.branch));
    let mut too_old = false;
    let age = opts.now - context.timestamp;
    if published && (age > MAX_AGE || -age > MAX_FUTURE) {
        let why = format!(
            "build time {} is outside CloudWatch's window (2 weeks back, 2 hours ahead)",
            rfc3339(context.timestamp)
        );
        match opts.old_builds {
            OldBuilds::Skip => {
                published = false;
                reason = Some(why);
            }
            OldBuilds::Publish => {
                tracing::info!("{id}: {why}; publishing anyway (--old-builds publish)");
                too_old = true;
            }
        }
    }
    for problem in &problems {
        tracing::warn!("{problem}");
    }

    let summary = BuildSummary {
        schema_version: summary::SCHEMA_VERSION,
        context,
        branch_class,
        published,
        files,
    };
    let datums = if published {
        encode_build(&summary, &opts.encode)
    } else {
        Vec::new()
    };
    let count = |s: junit::Status| summary.cases().filter(|c| c.status == s).count();
    let mut durations: BTreeMap<u64, u32> = BTreeMap::new();
    let mut total_time = 0.0;
    for t in summary.cases().filter_map(|c| c.time) {
        total_time += t;
        *durations.entry(round_duration(t).to_bits()).or_default() += 1;
    }
    let intent = ledger::IntentBuild {
        job: id.job.clone(),
        branch: id.branch.clone(),
        build: id.build,
        branch_class: summary.branch_class.clone(),
        timestamp: rfc3339(summary.context.timestamp),
    };
    let build = BuildOutcome {
        id,
        branch_class: summary.branch_class.clone(),
        published,
        reason,
        tests: summary.cases().count(),
        failures: count(junit::Status::Failed),
        errors: count(junit::Status::Error),
        skipped: count(junit::Status::Skipped),
        total_time,
        durations: durations
            .into_iter()
            .map(|(bits, n)| (f64::from_bits(bits), n))
            .collect(),
        parse_errors: summary.files.iter().filter(|f| f.error.is_some()).count(),
        datums: datums.len(),
        too_old,
        problems,
        failed: None,
    };
    (
        Prepared {
            build,
            datums,
            intent,
        },
        summary.to_gzip_json(),
    )
}

/// Keeps a context's values but makes sure it names the build its key names.
fn check_context(mut context: Context, id: &BuildId, problems: &mut Vec<String>) -> Context {
    if context.job != id.job || context.build != id.build {
        problems.push(format!(
            "{}: says job {:?} build {}, but its key says {:?} build {}; the key wins",
            id.key(CONTEXT_FILE),
            context.job,
            context.build,
            id.job,
            id.build
        ));
        context.job = id.job.clone();
        context.build = id.build;
    }
    context
}

/// A context made from the key alone, for a build whose `context.json` is unusable.
fn fallback_context(id: &BuildId, object: Option<&ObjectInfo>) -> Context {
    let uploaded = object
        .and_then(|o| o.last_modified)
        .unwrap_or_else(OffsetDateTime::now_utc);
    Context::new(&id.job, &percent_decode(&id.branch), id.build, uploaded)
}

/// Undoes Jenkins' branch name encoding (`feature%2Ffoo` → `feature/foo`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_jenkins_branch_names() {
        for (encoded, raw) in [
            ("feature%2Ffoo", "feature/foo"),
            ("PR-1", "PR-1"),
            ("a%25b", "a%b"),
            ("bad%2", "bad%2"),
            ("%zz", "%zz"),
        ] {
            assert_eq!(percent_decode(encoded), raw);
        }
    }
}
