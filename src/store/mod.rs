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
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    pub lists: u64,
    pub gets: u64,
    pub heads: u64,
    pub puts: u64,
}

impl Requests {
    /// Every request but LIST pages.
    pub fn others(&self) -> u64 {
        self.gets + self.heads + self.puts
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
    /// Opens `s3://BUCKET[/PREFIX]`, `file://DIR` or a local directory.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("s3://") {
            Ok(Store::S3(s3::S3Store::open(url).await?))
        } else if let Some(path) = url.strip_prefix("file://") {
            Ok(Store::Local(local::LocalStore::open(path)?))
        } else if url.contains("://") {
            Err(StoreError::InvalidUrl {
                url: url.into(),
                reason: "use s3://BUCKET[/PREFIX], file://DIR or a directory path".into(),
            })
        } else {
            Ok(Store::Local(local::LocalStore::open(url)?))
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
