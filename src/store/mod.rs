//! Where builds live: a local directory (the embedded default) or an S3 bucket, behind one API.
//!
//! A store is opened from a URL: `s3://BUCKET[/PREFIX]` or a directory path. Keys are relative to
//! the store's root; the store adds its prefix. Only these edges are async.

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
    /// Opens `s3://BUCKET[/PREFIX]` or a local directory.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("s3://") {
            Ok(Store::S3(s3::S3Store::open(url).await?))
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
