//! Where builds live: a local directory (the embedded default) or an S3 bucket, behind one API.
//!
//! A store is opened from a URL: `s3://BUCKET[/PREFIX]`, `file:///DIR` or a directory path. Keys
//! are relative to the store's root; the store adds its prefix. Only these edges are async.
//!
//! Both backends check every key with [`check_key`] before touching anything: a key is one or
//! more `/`-separated segments, none empty, `.` or `..`, with no backslash and no control
//! character, and it does not start with `/`. So a key names the same place in a bucket and in a
//! directory, and can never climb out of either.

pub mod local;
pub mod s3;

use bytes::Bytes;
use thiserror::Error;

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
        match self {
            Store::Local(s) => s.list(prefix).await,
            Store::S3(s) => s.list(prefix).await,
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
