//! Where builds live: a local directory (the embedded default) or an S3 bucket, behind one API.
//!
//! A store is opened from a URL: `s3://BUCKET[/PREFIX]`, `file:///DIR` or a directory path. Keys
//! are relative to the store's root; the store adds its prefix. Only these edges are async.
//!
//! Both backends check every key with [`check_key`] before touching anything: a key is one or
//! more `/`-separated segments, none empty, `.` or `..`, with no backslash and no control
//! character, and it does not start with `/`. So a key names the same place in a bucket and in a
//! directory, and can never climb out of either.
//!
//! Besides plain reads and writes, both backends offer what the aggregator's claims need:
//! conditional writes ([`Store::put_if_absent`] is S3's `If-None-Match: *`, an exclusive create
//! locally; [`Store::put_if_match`] is `If-Match` on an ETag), [`Store::head`] for an object's ETag
//! and `Last-Modified`, [`Store::now`] for the store's own clock, listings that start after a key,
//! and [`Store::reader`], which streams an object's body into blocking code (the parser) so
//! memory never follows file size. Every request is counted in [`Store::stats`].

pub mod local;
pub mod s3;

use bytes::Bytes;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;
use time::OffsetDateTime;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{key}: not found")]
    NotFound { key: String },
    #[error("{key}: access denied: {message}")]
    AccessDenied { key: String, message: String },
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("invalid store {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{key}: {message}")]
    Other { key: String, message: String },
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    /// Relative to the store's root.
    pub key: String,
    pub size: u64,
    pub last_modified: Option<time::OffsetDateTime>,
}

/// What a HEAD (or a conditional write) tells about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Changes whenever the object is written (S3's ETag; a content hash locally).
    pub etag: String,
    /// The store's clock when the object was last written.
    pub last_modified: Option<OffsetDateTime>,
    pub size: u64,
}

/// Requests a store made, by kind (one LIST page counts one).
#[derive(Debug, Default)]
pub struct Stats {
    pub lists: AtomicU64,
    pub gets: AtomicU64,
    pub heads: AtomicU64,
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    pub lists: u64,
    pub gets: u64,
    pub heads: u64,
    pub puts: u64,
    pub deletes: u64,
}

impl Requests {
    /// Every request but LIST pages.
    pub fn others(&self) -> u64 {
        self.gets + self.heads + self.puts + self.deletes
    }
}

impl Stats {
    pub(crate) fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Requests {
        Requests {
            lists: self.lists.load(Ordering::Relaxed),
            gets: self.gets.load(Ordering::Relaxed),
            heads: self.heads.load(Ordering::Relaxed),
            puts: self.puts.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
        }
    }
}

/// A blocking reader over an object's body, for the parser.
pub type BodyReader = Box<dyn Read + Send>;

/// A local directory or an S3 bucket.
#[derive(Debug, Clone)]
pub enum Store {
    Local(local::LocalStore),
    S3(s3::S3Store),
}

impl Store {
    /// Opens `s3://BUCKET[/PREFIX]`, `file://DIR` or a local directory, with
    /// [`s3::Timeouts::BULK`] for S3. See [`Store::open_with`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, s3::Timeouts::BULK).await
    }

    /// Opens a store with S3 calls bounded by `timeouts`. A scheme-like string that is not a
    /// store URL (`s3:/b`, `S3://b`, `gs://b`) is refused with the corrected form, and so is a
    /// store inside a reserved area (a prefix or directory segment `_ci-test-metrics…`).
    pub async fn open_with(url: &str, timeouts: s3::Timeouts) -> Result<Store, StoreError> {
        match locate(url)? {
            Location::S3 => Ok(Store::S3(s3::S3Store::open(url, timeouts).await?)),
            Location::Local(path) => Ok(Store::Local(local::LocalStore::open(path)?)),
        }
    }

    /// Writes one object (PutObject only: no read, list or multipart).
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        match self {
            Store::Local(s) => s.put(key, body).await,
            Store::S3(s) => s.put(key, body).await,
        }
    }

    /// Reads one object; [`StoreError::NotFound`] when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        match self {
            Store::Local(s) => s.get(key).await,
            Store::S3(s) => s.get(key).await,
        }
    }

    /// Every object whose key starts with `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.list_after(prefix, "").await
    }

    /// Like [`Store::list`], but a prefix that does not exist (a fresh directory) lists nothing.
    pub async fn list_or_empty(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        match self.list(prefix).await {
            Err(StoreError::NotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Every object whose key starts with `prefix` and sorts after `start_after` (S3's
    /// `StartAfter`; empty for all), in key order. Cost follows the objects returned.
    pub async fn list_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<ObjectInfo>, StoreError> {
        match self {
            Store::Local(s) => s.list(prefix, start_after).await,
            Store::S3(s) => s.list(prefix, start_after).await,
        }
    }

    /// Creates an object only if none exists at `key` (S3 `If-None-Match: *`; an exclusive
    /// create locally). `Some(etag)` when this call created it, `None` when it already existed.
    pub async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Store::Local(s) => s.put_if_absent(key, body).await,
            Store::S3(s) => s.put_if_absent(key, body).await,
        }
    }

    /// Replaces an object only if its ETag is still `etag` (S3 `If-Match`). `Some(new etag)` when
    /// replaced, `None` when someone else wrote it meanwhile (or it is gone).
    pub async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        etag: &str,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Store::Local(s) => s.put_if_match(key, body, etag).await,
            Store::S3(s) => s.put_if_match(key, body, etag).await,
        }
    }

    /// `len` bytes of an object from byte `start` (an HTTP range GET on S3): a Parquet footer or
    /// column chunk without the rest of the object. Fewer bytes come back when the object ends
    /// first; [`StoreError::NotFound`] when it does not exist.
    pub async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, StoreError> {
        match self {
            Store::Local(s) => s.get_range(key, start, len).await,
            Store::S3(s) => s.get_range(key, start, len).await,
        }
    }

    /// Removes an object; removing one that does not exist is not an error. The aggregator
    /// deletes only its own staged table files, after they are published.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Local(s) => s.delete(key).await,
            Store::S3(s) => s.delete(key).await,
        }
    }

    /// An object's ETag, time and size; `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<Meta>, StoreError> {
        match self {
            Store::Local(s) => s.head(key).await,
            Store::S3(s) => s.head(key).await,
        }
    }

    /// An object's body and metadata in one request; `None` when it does not exist.
    pub async fn get_with_meta(&self, key: &str) -> Result<Option<(Bytes, Meta)>, StoreError> {
        match self {
            Store::Local(s) => s.get_with_meta(key).await,
            Store::S3(s) => s.get_with_meta(key).await,
        }
    }

    /// Opens an object for streaming into blocking code (call its `read` from a blocking thread,
    /// e.g. inside `spawn_blocking`). Memory stays at one buffer whatever the object's size.
    pub async fn reader(&self, key: &str) -> Result<BodyReader, StoreError> {
        match self {
            Store::Local(s) => s.reader(key).await,
            Store::S3(s) => s.reader(key).await,
        }
    }

    /// The store's clock: what `Last-Modified` would say for an object written now. Claims
    /// expire by this clock, never by the worker's.
    pub async fn now(&self) -> Result<OffsetDateTime, StoreError> {
        match self {
            Store::Local(_) => Ok(OffsetDateTime::now_utc()),
            Store::S3(s) => s.now().await,
        }
    }

    /// Requests made so far through this store (and its clones).
    pub fn stats(&self) -> Requests {
        match self {
            Store::Local(s) => s.stats.snapshot(),
            Store::S3(s) => s.stats.snapshot(),
        }
    }

    /// A URL-like description for messages (never includes credentials).
    pub fn describe(&self) -> String {
        match self {
            Store::Local(s) => s.describe(),
            Store::S3(s) => s.describe(),
        }
    }
}

/// Which backend a store URL names.
#[derive(Debug, PartialEq, Eq)]
enum Location<'a> {
    S3,
    Local(&'a str),
}

/// Classifies a store URL (see [`Store::open_with`]); S3 URLs are checked further by
/// [`s3::parse_url`].
fn locate(url: &str) -> Result<Location<'_>, StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: url.into(),
        reason,
    };
    if url.starts_with("s3://") {
        s3::parse_url(url)?;
        return Ok(Location::S3);
    }
    let path = match url.strip_prefix("file://") {
        Some(path) => path,
        None => {
            if let Some((scheme, rest)) = scheme_like(url) {
                return Err(invalid(corrected(scheme, rest)));
            }
            url
        }
    };
    // As written (for a message in the user's terms), then absolute (`.` inside a reserved
    // directory is inside it too).
    let written = std::path::Path::new(path);
    let absolute = std::path::absolute(written).unwrap_or_else(|_| written.to_path_buf());
    if let Some(outside) = outside_reserved(written).or_else(|| outside_reserved(&absolute)) {
        let fix = match outside.to_string_lossy() {
            o if o.is_empty() => ".".to_string(),
            o => o.into_owned(),
        };
        return Err(invalid(reserved_reason(&fix)));
    }
    Ok(Location::Local(path))
}

/// The part of `path` before its first reserved segment, if it has one.
fn outside_reserved(path: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut outside = std::path::PathBuf::new();
    for component in path.components() {
        if crate::layout::is_reserved_segment(&component.as_os_str().to_string_lossy()) {
            return Some(outside);
        }
        outside.push(component);
    }
    None
}

/// Why a store inside a reserved area is refused, and what to use instead.
fn reserved_reason(fix: &str) -> String {
    format!(
        "a `{}…` segment is the tool's own area (the aggregator's ledger and summaries), so \
         uploads there would corrupt another store; use the store itself: {fix}",
        crate::layout::RESERVED_PREFIX.trim_end_matches('/')
    )
}

/// `(scheme, rest)` when `url` starts like a URL (`name:`), except a Windows drive (`C:\x`).
fn scheme_like(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let is_scheme = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (is_scheme && scheme.len() > 1).then_some((scheme, rest))
}

/// What to write instead of a scheme-like string that is not a store URL.
fn corrected(scheme: &str, rest: &str) -> String {
    const FORMS: &str = "use s3://BUCKET[/PREFIX], file://DIR or a directory path \
                         (./NAME for a directory whose name has a colon)";
    match scheme.to_ascii_lowercase().as_str() {
        "s3" | "s3a" | "s3n" if !rest.trim_start_matches('/').is_empty() => {
            format!("did you mean s3://{}?", rest.trim_start_matches('/'))
        }
        "file" if rest.starts_with("//") => format!("did you mean file:{rest}?"),
        "file" => format!("did you mean file://{rest}?"),
        "http" | "https" => format!(
            "an endpoint is not a store: pass --store s3://BUCKET and set \
             AWS_ENDPOINT_URL={scheme}:{rest}"
        ),
        _ => FORMS.to_string(),
    }
}

/// Checks a key relative to a store's root (see the module's rules).
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let invalid = |reason: &str| StoreError::InvalidKey {
        key: key.chars().take(120).collect(),
        reason: reason.into(),
    };
    if key.is_empty() {
        return Err(invalid("it is empty"));
    }
    if key.starts_with('/') {
        return Err(invalid("it starts with `/`"));
    }
    if key.contains('\\') {
        return Err(invalid("it contains a backslash"));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid("it contains a control character"));
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(invalid("it has an empty segment")),
            "." | ".." => return Err(invalid("it has a `.` or `..` segment")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let ok = [
            ("s3://b", Location::S3),
            ("s3://b/p/q", Location::S3),
            ("s3://b/p_ci-test-metrics", Location::S3),
            ("./store", Location::Local("./store")),
            ("store", Location::Local("store")),
            ("/abs/dir", Location::Local("/abs/dir")),
            ("file:///abs/dir", Location::Local("/abs/dir")),
            ("file://rel", Location::Local("rel")),
            ("./a:b", Location::Local("./a:b")),
            ("C:\\ci\\results", Location::Local("C:\\ci\\results")),
            ("c:/ci/results", Location::Local("c:/ci/results")),
            ("x_ci-test-metrics", Location::Local("x_ci-test-metrics")),
        ];
        for (url, want) in ok {
            assert_eq!(locate(url).unwrap(), want, "{url}");
        }
        // (URL, the message contains)
        let bad = [
            ("s3:/my-bucket", "did you mean s3://my-bucket?"),
            ("s3:my-bucket/p", "did you mean s3://my-bucket/p?"),
            ("S3://my-bucket", "did you mean s3://my-bucket?"),
            ("s3a://b/p", "did you mean s3://b/p?"),
            ("s3:", "use s3://BUCKET"),
            ("file:/tmp/x", "did you mean file:///tmp/x?"),
            ("FILE:///tmp/x", "did you mean file:///tmp/x?"),
            ("gs://b", "use s3://BUCKET[/PREFIX], file://DIR"),
            ("results:2024", "./NAME"),
            (
                "http://127.0.0.1:9000",
                "AWS_ENDPOINT_URL=http://127.0.0.1:9000",
            ),
            ("s3://b/_ci-test-metrics", "use the store itself: s3://b"),
            ("s3://b/_CI-Test-Metrics/", "use the store itself: s3://b"),
            (
                "s3://b/p/_ci-test-metrics/x",
                "use the store itself: s3://b/p",
            ),
            (
                "s3://b/_ci-test-metrics-arrivals",
                "use the store itself: s3://b",
            ),
            ("./s/_ci-test-metrics", "use the store itself: ./s"),
            ("_ci-test-metrics/x", "use the store itself: ."),
            (
                "file:///srv/s/_ci-test-metrics/summaries",
                "use the store itself: /srv/s",
            ),
        ];
        for (url, want) in bad {
            let err = locate(url).expect_err(url);
            assert!(matches!(err, StoreError::InvalidUrl { .. }), "{url}: {err}");
            assert!(
                err.to_string().contains(want),
                "{url}: {err} should contain {want:?}"
            );
        }
    }

    #[test]
    fn keys() {
        for key in [
            "a",
            "a/b/c.xml",
            "j/feature%2Ffoo/1/r.xml",
            "a/..b/c..",
            ".x",
        ] {
            assert!(check_key(key).is_ok(), "{key:?}");
        }
        let bad = [
            "", "/a", "a/", "a//b", "..", "../a", "a/../b", "a/./b", ".", "a\\b", "a\u{0}b",
            "a\nb", "C:\\x",
        ];
        for key in bad {
            assert!(check_key(key).is_err(), "{key:?} should be rejected");
        }
    }
}
