//! Reading one build: its `context.json`, then each result file streamed from the store into the
//! parser (hashed on the way and checked against the manifest), summarised, classified and encoded
//! into datums. Memory follows the number of builds read at once, never the size of a file.

use super::discover::BuildObjects;
use super::{ledger, BuildOutcome, OldBuilds, Options, MAX_AGE, MAX_FUTURE};
use crate::context::Context;
use crate::junit;
use crate::layout::{BuildId, CONTEXT_FILE};
use crate::metrics::encode::{encode_build, round_duration};
use crate::metrics::Datum;
use crate::store::{ObjectInfo, Store};
use crate::summary::{self, BuildSummary, FileSummary};
use crate::table::{self, TableError};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::Read;
use time::OffsetDateTime;

/// One build read, parsed, encoded and its summary written, ready to publish and record.
pub(crate) struct Prepared {
    pub build: BuildOutcome,
    pub datums: Vec<Datum>,
    pub intent: ledger::IntentBuild,
}

/// Reads one build, then parses and encodes it on a blocking thread, and writes its summary
/// (unless a dry run). Never fails: problems are in the outcome, and a store failure that should
/// be retried is in its `failed`.
pub(crate) async fn prepare(
    store: &Store,
    id: &BuildId,
    objects: &BuildObjects,
    opts: &Options,
) -> Prepared {
    let context_key = id.key(CONTEXT_FILE);
    let context = store.get(&context_key).await;
    let task_opts = opts.clone();
    let task_store = store.clone();
    let task_objects = objects.clone();
    let task_id = id.clone();
    let handle = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        let mut problems = Vec::new();
        let mut context_error = None;
        let context = match context {
            Ok(bytes) => match Context::from_json(&context_key, &bytes) {
                Ok(c) => check_context(c, &task_id, &mut problems),
                Err(e) => {
                    context_error = Some(e.to_string());
                    fallback_context(&task_id, task_objects.context.as_ref())
                }
            },
            Err(e) => {
                return Err(format!("could not read {context_key}: {e}"));
            }
        };
        let files = read_files(&handle, &task_store, &task_objects, &context, &task_opts)?;
        Ok(summarise(
            task_id,
            context,
            context_error,
            files,
            problems,
            &task_opts,
        ))
    });
    let done = match task.await {
        Ok(done) => done,
        // A panic while parsing must not stop the other builds: report it as this build's failure.
        Err(e) => Err(format!("{id}: internal error while parsing: {e}")),
    };
    let (mut prepared, staged) = match done {
        Ok(done) => done,
        Err(message) => {
            let context = fallback_context(id, objects.context.as_ref());
            let (mut prepared, staged) = summarise(id.clone(), context, None, vec![], vec![], opts);
            prepared.build.failed = Some(message);
            prepared.build.published = false;
            (prepared, staged)
        }
    };
    // Always staged before the build is recorded: a build that is done is in the history.
    if !opts.dry_run && prepared.build.failed.is_none() {
        let written = match staged {
            Ok((key, bytes)) => store
                .put(&key, Bytes::from(bytes))
                .await
                .map_err(|e| format!("could not stage the build's history rows at {key}: {e}")),
            Err(e) => Err(format!("could not encode the build's history rows: {e}")),
        };
        if let Err(message) = written {
            prepared.build.failed = Some(message);
            prepared.build.published = false;
        }
    }
    prepared
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Streams each result file into the parser (blocking; opens each object through `handle`).
/// `Err` only for a store failure worth retrying; bad files are summaries with an error.
fn read_files(
    handle: &tokio::runtime::Handle,
    store: &Store,
    objects: &BuildObjects,
    context: &Context,
    opts: &Options,
) -> Result<Vec<FileSummary>, String> {
    let mut files = Vec::new();
    for object in &objects.files {
        let name = object.key.rsplit('/').next().unwrap_or(&object.key);
        if object.size > opts.max_file_bytes {
            let message = format!(
                "{}: {} bytes is over the limit of {} (--max-file-bytes)",
                object.key, object.size, opts.max_file_bytes
            );
            files.push(FileSummary::unreadable(name, message));
            continue;
        }
        let reader = handle
            .block_on(store.reader(&object.key))
            .map_err(|e| format!("could not read {}: {e}", object.key))?;
        let mut hashing = Hashing {
            inner: reader,
            hash: Sha256::new(),
            bytes: 0,
        };
        let mut file = FileSummary::parse_reader(name, &object.key, &mut hashing);
        // Read what the parser left (trailing bytes, or after an error) so the hash is whole.
        if let Err(e) = std::io::copy(&mut hashing, &mut std::io::sink()) {
            return Err(format!("could not read {}: {e}", object.key));
        }
        let sha256 = hex::encode(hashing.hash.finalize());
        let expected = context.files.iter().find(|e| e.name == name);
        if let Some(entry) = expected.filter(|e| !e.sha256.is_empty() && e.sha256 != sha256) {
            let message = format!(
                "{}: its SHA-256 is {sha256}, but {CONTEXT_FILE} recorded {} ({} bytes, now {}): \
                 the file changed after its upload; upload each result file name once per build",
                object.key, entry.sha256, entry.bytes, hashing.bytes
            );
            file.partial = file.partial || !file.cases.is_empty();
            file.error = Some(match file.error {
                Some(parse) => format!("{message}; {parse}"),
                None => message,
            });
        }
        files.push(file);
    }
    Ok(files)
}

/// Parses what was read into a summary, classifies and encodes it (pure); returns the build's
/// staged history file (key and Parquet bytes) beside.
fn summarise(
    id: BuildId,
    context: Context,
    context_error: Option<String>,
    mut files: Vec<FileSummary>,
    mut problems: Vec<String>,
    opts: &Options,
) -> (Prepared, Result<(String, Vec<u8>), TableError>) {
    problems.extend(files.iter().filter_map(|f| f.error.clone()));
    if let Some(error) = context_error {
        problems.push(error.clone());
        files.push(FileSummary::unreadable(CONTEXT_FILE, error));
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
    if files.iter().all(|f| f.name == CONTEXT_FILE) {
        problems.push(format!("{id}: the build has no result files"));
    }

    let branch_class = opts.rules.classify(&context.branch);
    let mut published = opts.rules.publishes(&context.branch);
    let mut reason =
        (!published).then(|| format!("branch {:?} is filtered out by --branches", context.branch));
    let mut too_old = false;
    let age = OffsetDateTime::now_utc() - context.timestamp;
    if published && (age > MAX_AGE || -age > MAX_FUTURE) {
        let why = format!(
            "build time {} is outside CloudWatch's window (2 weeks back, 2 hours ahead)",
            super::rfc3339(context.timestamp)
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

    let mut summary = BuildSummary {
        schema_version: summary::SCHEMA_VERSION,
        context,
        branch_class,
        published,
        files,
    };
    // A runner that writes its reruns to a second file: one test, its attempts counted.
    summary.merge_retries();
    let datums = if published {
        encode_build(&summary, &opts.encode)
    } else {
        Vec::new()
    };
    let count = |s: junit::Status| summary.cases().filter(|c| c.status == s).count();
    // Rounded durations with their counts: sorted, then counted in runs (bits of non-negative
    // floats order like the values).
    let mut bits: Vec<u64> = Vec::with_capacity(summary.files.iter().map(|f| f.cases.len()).sum());
    let mut total_time = 0.0;
    for t in summary.cases().filter_map(|c| c.time) {
        total_time += t;
        bits.push(round_duration(t).to_bits());
    }
    bits.sort_unstable();
    let durations: Vec<(u64, u32)> = bits
        .chunk_by(|a, b| a == b)
        .map(|run| (run[0], u32::try_from(run.len()).unwrap_or(u32::MAX)))
        .collect();
    let intent = ledger::IntentBuild {
        job: id.job.clone(),
        branch: id.branch.clone(),
        build: id.build,
        branch_class: summary.branch_class.clone(),
        timestamp: super::rfc3339(summary.context.timestamp),
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
        parse_errors: summary.parse_errors(),
        datums: datums.len(),
        too_old,
        problems,
        recovered: false,
        requests: crate::metrics::cloudwatch::batches(&datums).len(),
        metrics: datums
            .iter()
            .map(|d| (d.name.clone(), d.dimensions.clone()))
            .collect(),
        failed: None,
    };
    let staged = table::staged::staged(&build.id, &summary, &build.problems).map(|bytes| {
        (
            table::staged_key(&table::date_of(summary.context.timestamp), &build.id),
            bytes,
        )
    });
    (
        Prepared {
            build,
            datums,
            intent,
        },
        staged,
    )
}

/// Keeps a context's values but makes sure it names the build its key names, and says when a
/// newer version wrote it.
fn check_context(mut context: Context, id: &BuildId, problems: &mut Vec<String>) -> Context {
    if context.schema_version > crate::context::SCHEMA_VERSION {
        problems.push(format!(
            "{}: schema version {} is newer than this aggregator reads ({}); fields it does not \
             know are ignored: upgrade ci-test-metrics where aggregate runs",
            id.key(CONTEXT_FILE),
            context.schema_version,
            crate::context::SCHEMA_VERSION
        ));
    }
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

    #[test]
    fn hashing_reader_hashes_everything_read() {
        let mut r = Hashing {
            inner: &b"<testsuite/>"[..],
            hash: Sha256::new(),
            bytes: 0,
        };
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert_eq!(r.bytes, 12);
        assert_eq!(
            hex::encode(r.hash.finalize()),
            hex::encode(Sha256::digest(b"<testsuite/>"))
        );
    }
}
