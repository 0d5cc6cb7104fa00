//! Uploads one build's result files, then its `context.json`, through a [`crate::store::Store`]
//! with PutObject only.
//!
//! 1. [`find_files`] expands the patterns relative to the working directory. Only regular files
//!    count; a file matched by several patterns counts once; two different files with the same
//!    base name are an error (they would overwrite each other's key).
//! 2. [`upload`] checks every key first (see [`crate::layout`]), so a bad name fails before
//!    anything is written. Then it reads, hashes and parses each file and PUTs it to
//!    `{job}/{branch}/{build}/{base name}`, at most `concurrency` at a time. A file that is not
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
        "two files have the base name {name:?}: {first} and {second}; each build keeps one file \
         per name, so copy them to distinct names first"
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
}

/// One file that could not be read or stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFailure {
    pub name: String,
    pub message: String,
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

impl UploadError {
    pub fn exit_code(&self) -> u8 {
        use crate::error::exit;
        match self {
            UploadError::NoFiles { .. } => exit::EMPTY,
            UploadError::Pattern { .. }
            | UploadError::BadName { .. }
            | UploadError::DuplicateName { .. }
            | UploadError::Reserved { .. }
            | UploadError::Layout(_)
            | UploadError::Context(_) => exit::USAGE,
            UploadError::Read { .. } => exit::INPUT,
            UploadError::Failed { .. } | UploadError::Store(_) | UploadError::Arrival { .. } => {
                exit::PUBLISH
            }
        }
    }
}

/// A result file to upload: where it is and the base name it is stored under.
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
    /// Every key written, result files first (by name), `context.json` last.
    pub keys: Vec<String>,
    /// The `context.json` written, manifest included.
    pub context: Context,
}

/// Expands glob `patterns` relative to `dir` (absolute patterns stay as they are) into the files
/// to upload, sorted by name. An empty result is not an error here.
pub fn find_files(dir: &Path, patterns: &[String]) -> Result<Vec<Source>, UploadError> {
    let base = glob::Pattern::escape(&dir.to_string_lossy());
    let mut sources: Vec<Source> = Vec::new();
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            pattern.clone()
        } else {
            format!("{base}/{pattern}")
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
            let name = base_name(&path)?;
            match sources.iter().find(|s| s.name == name) {
                Some(s) if same_file(&s.path, &path) => {}
                Some(s) => {
                    return Err(UploadError::DuplicateName {
                        name,
                        first: s.path.clone(),
                        second: path,
                    })
                }
                None => sources.push(Source { path, name }),
            }
        }
        if matched == 0 {
            tracing::warn!("{pattern:?} matched no file in {}", dir.display());
        }
    }
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sources)
}

fn base_name(path: &Path) -> Result<String, UploadError> {
    let bad = |reason: String| UploadError::BadName {
        path: path.to_path_buf(),
        reason,
    };
    let name = path
        .file_name()
        .ok_or_else(|| bad("no file name".into()))?
        .to_str()
        .ok_or_else(|| bad("the file name is not UTF-8".into()))?;
    crate::layout::check_file_name(name).map_err(|e| bad(e.to_string()))?;
    Ok(name.to_string())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
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
    keys.push(arrival_key);
    Ok(Outcome {
        store: store.describe(),
        dry_run,
        build_prefix: build.prefix(),
        keys,
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
    };
    let body = tokio::fs::read(&source.path)
        .await
        .map(Bytes::from)
        .map_err(|e| fail(format!("cannot read {}: {e}", source.path.display())))?;
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
    fn same_base_name_twice_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "x/r.xml");
        touch(dir.path(), "y/r.xml");
        let err = find_files(dir.path(), &["*/r.xml".into()]).unwrap_err();
        assert!(matches!(err, UploadError::DuplicateName { .. }), "{err}");
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
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
