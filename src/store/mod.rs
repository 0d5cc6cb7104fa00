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
