//! Uploads one build's result files, then its `context.json`, through a [`crate::store::Store`]
//! with PutObject only.
//!
//! 1. [`find_files`] expands the patterns relative to the working directory. Only regular files
//!    count. A file keeps its path relative to its pattern's base (the pattern's leading
//!    directories without wildcards), encoded into one key segment
//!    ([`crate::layout::encode_file_path`]): `**/junit.xml` stores `a/junit.xml` and
//!    `b/junit.xml` as `a%2Fjunit.xml` and `b%2Fjunit.xml`; `build/*.xml` stores
//!    `build/r.xml` as `r.xml`. A file matched by several patterns counts once; two different
//!    files with the same stored name are an error (they would overwrite each other's key).
//! 2. [`upload`] checks every key first (see [`crate::layout`]), so a bad name fails before
//!    anything is written. Then it reads, hashes and parses each file and PUTs it to
//!    `{job}/{branch}/{build}/{stored name}`, at most `concurrency` at a time. A file that is not
//!    valid JUnit is still uploaded as the raw artifact; the manifest records the parse error.
//! 3. Only when every file is stored does it PUT `context.json` with the manifest: its presence
//!    tells the aggregator the build is complete. If any file failed, no `context.json` is
//!    written, and the error lists every failed file.
//! 4. Last, a tiny marker in the arrivals index ([`crate::arrivals`]), by which the aggregator
//!    finds the build without listing the bucket.
//!
//! No key ever lies under the reserved prefix `_ci-test-metrics/`: job names are checked by
//! [`crate::layout::check_job`], and [`upload`] checks each key again before writing.

use crate::context::{Context, ContextError, ManifestEntry};
use crate::layout::{BuildId, LayoutError};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Uploads at a time unless told otherwise.
pub const DEFAULT_CONCURRENCY: u16 = 8;

#[derive(Debug, Error)]
pub enum UploadError {
    #[error(
        "no file matched {patterns:?} in {dir} (pass --allow-empty to record a build without results)"
    )]
    NoFiles { patterns: Vec<String>, dir: PathBuf },
    #[error("bad pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    BadName { path: PathBuf, reason: String },
    #[error(
        "two files would both be stored as {name:?}: {first} and {second}; match them with one \
         pattern from a common directory (e.g. '**/junit.xml') so each keeps its relative path, \
         or copy them to distinct names first"
    )]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{key}: under the reserved prefix {}", crate::layout::RESERVED_PREFIX)]
    Reserved { key: String },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("{}", describe_failures(*total, failures))]
    Failed {
        total: usize,
        failures: Vec<FileFailure>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the results and context.json are stored, but the arrival marker {key} could not be \
         written ({source}); the aggregator finds this build only with `aggregate --full`"
    )]
    Arrival {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error(
        "the upload did not finish within {seconds} s (--timeout, CI_TEST_METRICS_UPLOAD_TIMEOUT), \
         so {} was not written; check AWS_ENDPOINT_URL and the network to the store",
        crate::layout::CONTEXT_FILE
    )]
    TimedOut { seconds: u64 },
    #[error(
        "{} of the uploaded files are not valid JUnit (--strict): {}; they are stored and noted \
         in {}",
        files.len(), files.join(", "), crate::layout::CONTEXT_FILE
    )]
    NotJUnit { files: Vec<String> },
}

/// One file that could not be read or stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFailure {
    pub name: String,
    pub message: String,
    /// The file itself could not be read (an input problem, not the store's).
    pub unreadable: bool,
}

/// The first failure in full, the others by name (they usually share one cause).
fn describe_failures(total: usize, failures: &[FileFailure]) -> String {
    let mut out = format!(
        "{} of {total} files could not be uploaded, so {} was not written",
        failures.len(),
        crate::layout::CONTEXT_FILE
    );
    if let Some(first) = failures.first() {
        out.push_str(&format!(": {}: {}", first.name, first.message));
    }
    if failures.len() > 1 {
        let rest: Vec<&str> = failures[1..].iter().map(|f| f.name.as_str()).collect();
        out.push_str(&format!(" (also failed: {})", rest.join(", ")));
    }
    out
}

/// A result file to upload: where it is and the name it is stored under (one key segment).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub path: PathBuf,
    pub name: String,
}

/// What was (or, with a dry run, would be) written.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The store, as [`Store::describe`] prints it.
    pub store: String,
    pub dry_run: bool,
    /// `{job}/{encoded branch}/{build}/`, relative to the store.
    pub build_prefix: String,
    /// Every key of the build written, result files first (by name), `context.json` last.
    pub keys: Vec<String>,
    /// The build's marker in the arrivals index, written after `context.json`.
    pub arrival: String,
    /// The `context.json` written, manifest included.
    pub context: Context,
}

/// Expands glob `patterns` relative to `dir` (absolute patterns stay as they are) into the files
/// to upload, sorted by stored name (see the module docs). An empty result is not an error here.
pub fn find_files(dir: &Path, patterns: &[String]) -> Result<Vec<Source>, UploadError> {
    let escaped = glob::Pattern::escape(&dir.to_string_lossy());
    let mut sources: Vec<Source> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for pattern in patterns {
        let (full, base) = if Path::new(pattern).is_absolute() {
            (pattern.clone(), pattern_base(pattern))
        } else {
            (
                format!("{escaped}/{pattern}"),
                dir.join(pattern_base(pattern)),
            )
        };
        let paths = glob::glob(&full).map_err(|e| UploadError::Pattern {
            pattern: pattern.clone(),
            message: e.to_string(),
        })?;
        let mut matched = 0;
        for path in paths {
            let path = path.map_err(|e| UploadError::Read {
                path: e.path().to_path_buf(),
                source: e.into(),
            })?;
            if !path.is_file() {
                continue;
            }
            matched += 1;
            // The same file through two patterns (maybe under two names) counts once.
            let real = path.canonicalize().unwrap_or_else(|_| path.clone());
            if seen.contains(&real) {
                continue;
            }
            let name = stored_name(&path, &base)?;
            if let Some(s) = sources.iter().find(|s| s.name == name) {
                return Err(UploadError::DuplicateName {
                    name,
                    first: s.path.clone(),
                    second: path,
                });
            }
            seen.push(real);
            sources.push(Source { path, name });
        }
        if matched == 0 {
            tracing::warn!("{pattern:?} matched no file in {}", dir.display());
        }
    }
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sources)
}

/// A pattern's base: its leading directories up to the first one with a wildcard; the last
/// component (the file part) never belongs to it. `build/**/*.xml` → `build`, `r.xml` → ``.
fn pattern_base(pattern: &str) -> PathBuf {
    let parts: Vec<&str> = pattern.split(std::path::is_separator).collect();
    let dirs = &parts[..parts.len().saturating_sub(1)];
    let literal = dirs
        .iter()
        .take_while(|p| !p.contains(['*', '?', '[']))
        .copied()
        .collect::<Vec<_>>();
    let mut base = literal.join("/");
    if pattern.starts_with(std::path::is_separator) && base.is_empty() {
        base.push('/');
    }
    PathBuf::from(base)
}

/// `path` relative to `base`, encoded into one key segment.
fn stored_name(path: &Path, base: &Path) -> Result<String, UploadError> {
    let bad = |reason: String| UploadError::BadName {
        path: path.to_path_buf(),
        reason,
    };
    let relative = normal(path)
        .strip_prefix(normal(base))
        .map_err(|_| {
            bad(format!(
                "it is not under the pattern's base {}",
                base.display()
            ))
        })?
        .to_path_buf();
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            std::path::Component::Normal(part) => parts.push(
                part.to_str()
                    .ok_or_else(|| bad("the path is not UTF-8".into()))?,
            ),
            _ => {
                return Err(bad(
                    "the pattern has `..` or `.` after its first wildcard; \
                     move them before it"
                        .into(),
                ))
            }
        }
    }
    crate::layout::encode_file_path(&parts).map_err(|e| bad(e.to_string()))
}

/// The path without `.` components (glob keeps a leading `./`; a base may have one inside).
fn normal(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Uploads `sources` for the build `context` names, then `context.json` (see the module docs).
/// `context.files` is replaced by the manifest. With `dry_run` nothing is written.
pub async fn upload(
    store: &Store,
    mut context: Context,
    sources: Vec<Source>,
    concurrency: usize,
    dry_run: bool,
) -> Result<Outcome, UploadError> {
    let build = BuildId::new(&context.job, &context.branch, context.build)?;
    let mut planned = Vec::with_capacity(sources.len());
    for source in sources {
        let key = build.file_key(&source.name)?;
        planned.push((key, source));
    }
    let context_key = build.context_key();
    for key in planned.iter().map(|(k, _)| k).chain([&context_key]) {
        if crate::layout::is_reserved(key) {
            return Err(UploadError::Reserved { key: key.clone() });
        }
    }

    let total = planned.len();
    let results: Vec<Result<ManifestEntry, FileFailure>> = futures::stream::iter(planned)
        .map(|(key, source)| upload_one(store, key, source, dry_run))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(entry) => context.files.push(entry),
            Err(failure) => failures.push(failure),
        }
    }
    if !failures.is_empty() {
        failures.sort_by(|a, b| a.name.cmp(&b.name));
        return Err(UploadError::Failed { total, failures });
    }
    context.files.sort_by(|a, b| a.name.cmp(&b.name));

    // The arrival marker goes last: the build is complete once it is listed in the index.
    let arrival_key = crate::arrivals::key(time::OffsetDateTime::now_utc(), &build);
    if !dry_run {
        store
            .put(&context_key, Bytes::from(context.to_json()))
            .await?;
        store
            .put(&arrival_key, Bytes::new())
            .await
            .map_err(|source| UploadError::Arrival {
                key: arrival_key.clone(),
                source,
            })?;
    }
    let mut keys: Vec<String> = context.files.iter().map(|f| build.key(&f.name)).collect();
    keys.push(context_key);
    Ok(Outcome {
        store: store.describe(),
        dry_run,
        build_prefix: build.prefix(),
        keys,
        arrival: arrival_key,
        context,
    })
}

/// Reads one file; hashes and parses it while it is being stored.
async fn upload_one(
    store: &Store,
    key: String,
    source: Source,
    dry_run: bool,
) -> Result<ManifestEntry, FileFailure> {
    let fail = |message: String| FileFailure {
        name: source.name.clone(),
        message,
        unreadable: false,
    };
    let body = tokio::fs::read(&source.path)
        .await
        .map(Bytes::from)
        .map_err(|e| FileFailure {
            unreadable: true,
            ..fail(format!("cannot read {}: {e}", source.path.display()))
        })?;
    let name = source.name.clone();
    let inspect = {
        let body = body.clone();
        tokio::task::spawn_blocking(move || manifest_entry(&name, &body))
    };
    let put = async {
        if dry_run {
            Ok(())
        } else {
            store.put(&key, body.clone()).await
        }
    };
    let (entry, put) = tokio::join!(inspect, put);
    put.map_err(|e| fail(e.to_string()))?;
    let entry = entry.map_err(|e| fail(format!("cannot inspect the file: {e}")))?;
    if let Some(error) = &entry.error {
        tracing::warn!(
            "{}: not valid JUnit, uploaded as a raw artifact: {error}",
            source.path.display()
        );
    }
    tracing::info!("{} → {key} ({} bytes)", source.path.display(), entry.bytes);
    Ok(entry)
}

/// The manifest line of one file: size, SHA-256, and its test count or parse error.
pub fn manifest_entry(name: &str, body: &[u8]) -> ManifestEntry {
    // Only the count is kept: stream without collecting the cases.
    let parsed = crate::junit::parse_stream_ref(name, body, |_| {});
    let (tests, error) = match parsed.error {
        None => (Some(parsed.tests() as u64), None),
        Some(e) => (None, Some(e.to_string())),
    };
    ManifestEntry {
        name: name.to_string(),
        bytes: body.len() as u64,
        sha256: hex::encode(Sha256::digest(body)),
        tests,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, rel: &str) -> PathBuf {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, rel).unwrap();
        path
    }

    fn names(sources: &[Source]) -> Vec<&str> {
        sources.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn finds_files_relative_to_the_working_dir() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "b.xml");
        touch(dir.path(), "a.xml");
        touch(dir.path(), "sub/c.xml");
        std::fs::create_dir_all(dir.path().join("d.xml")).unwrap(); // a directory, not a file
        let pats = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let found = find_files(dir.path(), &pats(&["*.xml"])).unwrap();
        assert_eq!(names(&found), ["a.xml", "b.xml"]);
        let found = find_files(dir.path(), &pats(&["**/*.xml", "a.xml"])).unwrap();
        assert_eq!(names(&found), ["a.xml", "b.xml", "sub%2Fc.xml"]);
        // The same file through two patterns counts once, under the first pattern's name.
        let found = find_files(dir.path(), &pats(&["sub/*.xml", "**/*.xml"])).unwrap();
        assert_eq!(names(&found), ["a.xml", "b.xml", "c.xml"]);
        let abs = format!("{}/sub/*.xml", dir.path().display());
        assert_eq!(
            names(&find_files(Path::new("/"), &[abs]).unwrap()),
            ["c.xml"]
        );
        assert!(find_files(dir.path(), &pats(&["none*"]))
            .unwrap()
            .is_empty());
        assert!(matches!(
            find_files(dir.path(), &pats(&["[x"])),
            Err(UploadError::Pattern { .. })
        ));
    }

    #[test]
    fn monorepo_files_keep_their_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "a/junit.xml");
        touch(dir.path(), "b/junit.xml");
        touch(dir.path(), "b/deep/100%/junit.xml");
        touch(dir.path(), "junit.xml");
        let pats = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (patterns, stored names)
        let table: &[(&[&str], &[&str])] = &[
            (
                &["**/junit.xml"],
                &[
                    "a%2Fjunit.xml",
                    "b%2Fdeep%2F100%25%2Fjunit.xml",
                    "b%2Fjunit.xml",
                    "junit.xml",
                ],
            ),
            (&["*/junit.xml"], &["a%2Fjunit.xml", "b%2Fjunit.xml"]),
            (
                &["b/**/junit.xml"],
                &["deep%2F100%25%2Fjunit.xml", "junit.xml"],
            ),
            (&["./b/*.xml"], &["junit.xml"]),
            (&["b/deep/100%/junit.xml"], &["junit.xml"]),
            (&["[ab]/junit.xml"], &["a%2Fjunit.xml", "b%2Fjunit.xml"]),
        ];
        for (patterns, want) in table {
            let found = find_files(dir.path(), &pats(patterns)).unwrap();
            assert_eq!(names(&found), *want, "{patterns:?}");
        }
        // Absolute patterns have a base too.
        let abs = format!("{}/**/junit.xml", dir.path().display());
        let found = find_files(Path::new("/"), &[abs]).unwrap();
        assert_eq!(found.len(), 4);
        assert!(found.iter().all(|s| !s.name.contains('/')));
        // Two different files that would get one name are still an error.
        let err = find_files(dir.path(), &pats(&["a/*.xml", "b/*.xml"])).unwrap_err();
        assert!(matches!(err, UploadError::DuplicateName { .. }), "{err}");
        assert!(err.to_string().contains("**/junit.xml"), "{err}");
        // Every name is one safe segment: the keys stay inside the build.
        let build = BuildId::new("j", "b", 1).unwrap();
        for s in find_files(dir.path(), &pats(&["**/*.xml"])).unwrap() {
            let key = build.file_key(&s.name).unwrap();
            assert_eq!(crate::layout::parse_key(&key).unwrap().1, s.name);
            crate::store::check_key(&key).unwrap();
        }
    }

    #[test]
    fn bad_file_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["context.json", "a\tb.xml", "a\\b.xml"] {
            touch(dir.path(), name);
            let err = find_files(dir.path(), &[glob::Pattern::escape(name)]).unwrap_err();
            assert!(
                matches!(err, UploadError::BadName { .. }),
                "{name:?}: {err}"
            );
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
    }

    #[test]
    fn manifest_entries() {
        let e = manifest_entry("r.xml", b"abc");
        assert_eq!(e.bytes, 3);
        assert_eq!(
            e.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Either a test count or a parse error, never both.
        assert_ne!(e.tests.is_some(), e.error.is_some());
    }
}
