//! The per-build path, the same for a scheduled run and a Lambda worker: check the destination's
//! ledger, wait out the settle time, claim, read and summarise, publish, record.
//!
//! 1. A build with a `done` marker for the destination (or a first-version marker) is done.
//! 2. A build that had an upload less than the settle time ago waits (parallel stages upload apart).
//! 3. The worker claims it ([`super::claim`]); a live claim of another worker means "not mine".
//! 4. It reads, parses and summarises the build, and writes the summary.
//! 5. It turns its claim into the intent (`publishing`, with what the sink needs to find the build),
//!    sends the metrics, and writes the `done` marker with `If-None-Match: *`.
//!
//! A worker that takes over a claim left in `publishing` asks the sink whether the build's `Builds`
//! datum arrived before it sends anything (the EMF file is searched; CloudWatch is asked with
//! GetMetricStatistics; stdout cannot answer, so there the build is sent again).

use super::claim::{self, Claimed, Clock, Held};
use super::discover::BuildObjects;
use super::ledger::{self, ClaimState};
use super::prepare::{prepare, Prepared};
use super::{rfc3339, BuildOutcome, Options};
use crate::layout::BuildId;
use crate::metrics::Sink;
use crate::store::Store;
use bytes::Bytes;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// What became of one build.
#[derive(Debug)]
pub enum BuildVerdict {
    /// Claimed, read, published (or recorded as not to publish, or recorded with its data
    /// problems in `problems`) and marked done by this worker.
    Done(Box<BuildOutcome>),
    /// Already done for this destination.
    AlreadyDone,
    /// No `context.json` (still uploading, or gone).
    Incomplete,
    /// Something was written to the build less than the settle time ago; try again after
    /// `retry_in`.
    Settling { retry_in: Duration },
    /// Another worker holds a live claim.
    Claimed { owner: String },
    /// A store or sink failure; nothing was recorded, so it is retried.
    Failed(String),
}

impl BuildVerdict {
    /// Whether nothing is left to do for the build (so discovery can forget it).
    pub fn resolved(&self) -> bool {
        matches!(
            self,
            BuildVerdict::Done(_) | BuildVerdict::AlreadyDone | BuildVerdict::Incomplete
        )
    }
}

/// Processes one build for `opts.destination` (see the module docs).
pub async fn process_build(
    store: &Store,
    sink: &mut Sink,
    id: &BuildId,
    opts: &Options,
) -> BuildVerdict {
    let worker = Worker::new(store, Some(sink), opts);
    worker.process(id, None, Hints::default()).await
}

/// What the caller already knows about a build.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hints {
    /// The caller's listing showed no `done` marker: skip the lookup.
    pub not_done: bool,
    /// A first-version intent named it: ask the sink before sending.
    pub maybe_sent: bool,
    /// It arrived again (another stage uploaded): report files written after it was done.
    pub check_late: bool,
}

/// Shared by the builds of one run; the sink takes one request at a time.
pub(crate) struct Worker<'a> {
    store: &'a Store,
    sink: Mutex<Option<&'a mut Sink>>,
    opts: &'a Options,
    clock: Clock,
}

impl<'a> Worker<'a> {
    pub fn new(store: &'a Store, sink: Option<&'a mut Sink>, opts: &'a Options) -> Worker<'a> {
        Worker {
            store,
            sink: Mutex::new(sink),
            opts,
            clock: Clock::default(),
        }
    }

    pub async fn process(
        &self,
        id: &BuildId,
        objects: Option<BuildObjects>,
        hints: Hints,
    ) -> BuildVerdict {
        match self.try_process(id, objects, hints).await {
            Ok(verdict) => verdict,
            Err(message) => BuildVerdict::Failed(message),
        }
    }

    async fn try_process(
        &self,
        id: &BuildId,
        objects: Option<BuildObjects>,
        hints: Hints,
    ) -> Result<BuildVerdict, String> {
        let (store, opts) = (self.store, self.opts);
        let dest = &opts.destination;
        let republish = opts.republish;
        if !republish && !hints.not_done && self.is_done(id, hints.check_late).await? {
            return Ok(BuildVerdict::AlreadyDone);
        }
        let objects = match objects {
            Some(objects) => objects,
            None => BuildObjects::from_listing(
                store
                    .list(&id.prefix())
                    .await
                    .map_err(|e| format!("{id}: could not list the build: {e}"))?,
            ),
        };
        if objects.context.is_none() {
            return Ok(BuildVerdict::Incomplete);
        }
        if let Some(newest) = objects.newest() {
            let age = OffsetDateTime::now_utc() - newest;
            if age < opts.settle {
                let retry_in = (opts.settle - age).unsigned_abs();
                return Ok(BuildVerdict::Settling { retry_in });
            }
        }
        if opts.dry_run {
            let Prepared { build, .. } = prepare(store, id, &objects, opts).await;
            return Ok(match build.failed {
                Some(message) => BuildVerdict::Failed(message),
                None => BuildVerdict::Done(Box::new(build)),
            });
        }

        let key = dest.claim_key(id);
        let claimed = claim::acquire(store, &self.clock, &key, &opts.run_id, opts.lease)
            .await
            .map_err(|e| format!("{id}: could not claim {key}: {e}"))?;
        let mut held = match claimed {
            Claimed::Mine(held) => *held,
            Claimed::Busy { owner } => return Ok(BuildVerdict::Claimed { owner }),
        };
        let mut maybe_sent = hints.maybe_sent;
        if let Some(previous) = &held.previous {
            maybe_sent |= previous.state == ClaimState::Publishing;
            // Its owner may have finished just before its lease ran out.
            if !republish && self.is_done(id, false).await? {
                return Ok(BuildVerdict::AlreadyDone);
            }
        }

        let Prepared {
            mut build,
            datums,
            intent,
        } = prepare(store, id, &objects, opts).await;
        if let Some(message) = build.failed.take() {
            claim::release(store, held).await;
            return Ok(BuildVerdict::Failed(message));
        }
        if build.published {
            let mut guard = self.sink.lock().await;
            let Some(sink) = guard.as_deref_mut() else {
                return Err(format!("{id}: no sink to publish to"));
            };
            if maybe_sent && super::sink_has_build(sink, &intent).await {
                build.reason =
                    Some("sent by an earlier worker that stopped before recording it".into());
                build.recovered = true;
                build.requests = 0;
            } else {
                let mine = claim::update(store, &mut held, ClaimState::Publishing, Some(intent))
                    .await
                    .map_err(|e| format!("{id}: could not update the claim {key}: {e}"))?;
                if !mine {
                    return Ok(BuildVerdict::Claimed {
                        owner: "another worker that took the claim over".into(),
                    });
                }
                match sink.publish(&datums).await {
                    Ok(report) => build.requests = report.requests,
                    Err(e) => {
                        drop(guard);
                        claim::release(store, held).await;
                        return Ok(BuildVerdict::Failed(format!(
                            "{id}: could not publish: {e}"
                        )));
                    }
                }
            }
        }
        if republish {
            build
                .reason
                .get_or_insert_with(|| "republished (--republish)".into());
        }
        self.record_done(&mut build, &held).await?;
        Ok(BuildVerdict::Done(Box::new(build)))
    }

    /// Whether the build is done for the destination; with `check_late`, reports result files
    /// written after that (once each).
    async fn is_done(&self, id: &BuildId, check_late: bool) -> Result<bool, String> {
        let lookup = |key: String| async move {
            self.store
                .head(&key)
                .await
                .map_err(|e| format!("{id}: could not read {key}: {e}"))
        };
        let done = match lookup(self.opts.destination.done_key(id)).await? {
            Some(meta) => meta,
            None => match lookup(ledger::legacy_done_key(id)).await? {
                Some(meta) => meta,
                None => return Ok(false),
            },
        };
        if check_late {
            if let (Some(done_at), Ok(objects)) =
                (done.last_modified, self.store.list(&id.prefix()).await)
            {
                let late: Vec<String> = objects
                    .into_iter()
                    .filter(|o| o.last_modified.is_some_and(|m| m > done_at))
                    .filter(|o| !o.key.ends_with(crate::layout::CONTEXT_FILE))
                    .map(|o| o.key)
                    .collect();
                super::report_late(self.store, self.opts, &late).await;
            }
        }
        Ok(true)
    }

    /// Writes the `done` marker. A marker that is already there means another worker finished
    /// the build too (a lease shorter than the work): said loudly, since it was then sent twice.
    async fn record_done(&self, build: &mut BuildOutcome, held: &Held) -> Result<(), String> {
        let done = ledger::Done {
            run: self.opts.run_id.clone(),
            at: rfc3339(OffsetDateTime::now_utc()),
            published: build.published,
            reason: build.reason.clone(),
            datums: build.datums,
            problems: build.problems.clone(),
        };
        let key = self.opts.destination.done_key(&build.id);
        let body = Bytes::from(serde_json::to_vec(&done).unwrap_or_default());
        match self.store.put_if_absent(&key, body).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) if self.opts.republish => Ok(()),
            Ok(None) => {
                tracing::warn!(
                    "{}: {key} was already written by another worker while {} held {}: if both \
                     published, the build counts twice; raise --lease above the longest build",
                    build.id,
                    self.opts.run_id,
                    held.key
                );
                Ok(())
            }
            Err(e) => Err(format!(
                "{}: metrics sent but the ledger entry {key} could not be written: {e}; the next \
                 run asks the sink before sending it again",
                build.id
            )),
        }
    }
}
