//! An S3 bucket as a store, through aws-sdk-s3.
//!
//! - The client comes from the shared [`crate::aws::load`] configuration, so the standard
//!   variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, credentials, profiles)
//!   apply. With a custom endpoint (SeaweedFS, MinIO, …) it uses path-style addressing.
//! - Each operation is one SDK call: `put` is a single PutObject (no HeadObject, no multipart),
//!   so the uploader needs `s3:PutObject` on `arn:aws:s3:::BUCKET/*` and nothing else.
//! - The SDK's standard retry mode retries 5xx answers, throttling, and timeouts with
//!   exponential backoff and jitter, up to [`MAX_ATTEMPTS`] attempts (`AWS_MAX_ATTEMPTS`
//!   overrides); connect and per-attempt timeouts bound a stuck connection.
//! - SDK errors become [`StoreError`] kinds: `NoSuchKey` or a bare 404 is `NotFound`, 403 is
//!   `AccessDenied`; messages carry the SDK's whole error chain, never credentials.

use super::{check_key, BodyReader, Meta, ObjectInfo, Stats, StoreError};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::{Buf, Bytes};
use std::sync::Arc;
use std::time::Duration;

/// Attempts per request, the first included.
pub const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Empty, or ending with `/`.
    prefix: String,
    pub(super) stats: Arc<Stats>,
}

/// Where [`S3Store::now`] writes to read the store's clock (under the reserved prefix: only the
/// aggregator asks).
const CLOCK_KEY: &str = "_ci-test-metrics/ledger/clock";

/// Attempts of a conditional write that S3 answers with 409 ConditionalRequestConflict (another
/// conditional write to the key was in flight; AWS says retry).
const CONFLICT_ATTEMPTS: u32 = 5;

/// Whether a failed conditional write means "the condition did not hold" (412, or 404 for
/// If-Match on a missing key) rather than a failure.
fn precondition_failed(status: Option<u16>, code: Option<&str>) -> bool {
    matches!(status, Some(412)) || matches!(code, Some("PreconditionFailed"))
}

fn conditional_conflict(status: Option<u16>, code: Option<&str>) -> bool {
    matches!(status, Some(409)) || matches!(code, Some("ConditionalRequestConflict"))
}

fn to_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<time::OffsetDateTime> {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok())
}

/// An S3 body read from blocking code: each `read` waits on the next chunk.
struct BlockingBody {
    body: ByteStream,
    chunk: Bytes,
    handle: tokio::runtime::Handle,
    url: String,
}

impl std::io::Read for BlockingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.body.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => {
                    return Err(std::io::Error::other(format!(
                        "reading {}: {}",
                        self.url,
                        crate::aws::describe(&e)
                    )))
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// Splits `s3://BUCKET[/PREFIX]` into the bucket and a prefix that is empty or ends with `/`.
pub fn parse_url(url: &str) -> Result<(String, String), StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.into(),
        reason: reason.into(),
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| invalid("it does not start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid("no bucket name"));
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(invalid(
            "a bucket name has only letters, digits, `.`, `-` and `_`",
        ));
    }
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return Ok((bucket.into(), String::new()));
    }
    check_key(prefix).map_err(|e| invalid(&format!("bad prefix: {e}")))?;
    Ok((bucket.into(), format!("{prefix}/")))
}

/// What an SDK error means to a store caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotFound,
    AccessDenied,
    Other,
}

/// Classifies an S3 answer by its HTTP status and error code.
fn classify(status: Option<u16>, code: Option<&str>) -> Kind {
    match (status, code) {
        (_, Some("NoSuchKey")) => Kind::NotFound,
        (_, Some("NoSuchBucket")) => Kind::Other,
        (_, Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch")) => {
            Kind::AccessDenied
        }
        (Some(403), _) => Kind::AccessDenied,
        (Some(404), None | Some("NotFound")) => Kind::NotFound,
        _ => Kind::Other,
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// The S3 client's configuration: the shared one, plus path-style addressing with a custom
/// endpoint, timeouts, and (unless `AWS_MAX_ATTEMPTS` is set) our retry policy.
fn client_config(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Config {
    // A custom endpoint rarely resolves virtual-hosted bucket names; path-style always works.
    let custom_endpoint = sdk.endpoint_url().is_some()
        || env_set("AWS_ENDPOINT_URL")
        || env_set("AWS_ENDPOINT_URL_S3");
    let mut conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(custom_endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(120))
                .operation_timeout(Duration::from_secs(600))
                .build(),
        );
    if !env_set("AWS_MAX_ATTEMPTS") {
        conf = conf.retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        );
    }
    conf.build()
}

impl S3Store {
    pub async fn open(url: &str) -> Result<S3Store, StoreError> {
        let (bucket, prefix) = parse_url(url)?;
        let sdk = crate::aws::load().await;
        Ok(S3Store {
            client: aws_sdk_s3::Client::from_conf(client_config(&sdk)),
            bucket,
            prefix,
            stats: Arc::default(),
        })
    }

    /// `s3://BUCKET/PREFIX/KEY`, for messages.
    fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{}{}", self.bucket, self.prefix, key)
    }

    fn error<E>(&self, key: &str, err: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let key = self.url_of(key);
        let message = crate::aws::describe(&err);
        match classify(status, err.code()) {
            Kind::NotFound => StoreError::NotFound { key },
            Kind::AccessDenied => StoreError::AccessDenied { key, message },
            Kind::Other => StoreError::Other { key, message },
        }
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        check_key(key)?;
        Stats::count(&self.stats.puts, 1);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .content_type(content_type(key))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        check_key(key)?;
        Stats::count(&self.stats.gets, 1);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        let body = out.body.collect().await.map_err(|e| StoreError::Other {
            key: self.url_of(key),
            message: crate::aws::describe(&e),
        })?;
        Ok(body.into_bytes())
    }

    pub async fn list(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{prefix}", self.prefix));
        if !start_after.is_empty() {
            request = request.start_after(format!("{}{start_after}", self.prefix));
        }
        let mut pages = request.into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            Stats::count(&self.stats.lists, 1);
            let page = page.map_err(|e| self.error(prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_time(object.last_modified()),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// One conditional PutObject (`If-None-Match: *` or `If-Match: etag`), retried on 409.
    async fn put_conditional(
        &self,
        key: &str,
        body: Bytes,
        if_match: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        check_key(key)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            Stats::count(&self.stats.puts, 1);
            let mut request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(format!("{}{key}", self.prefix))
                .content_type(content_type(key))
                .body(ByteStream::from(body.clone()));
            request = match if_match {
                Some(etag) => request.if_match(etag),
                None => request.if_none_match("*"),
            };
            match request.send().await {
                Ok(out) => return Ok(Some(out.e_tag().unwrap_or_default().to_string())),
                Err(e) => {
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    if precondition_failed(status, e.code())
                        || (if_match.is_some() && classify(status, e.code()) == Kind::NotFound)
                    {
                        return Ok(None);
                    }
                    if conditional_conflict(status, e.code()) && attempt < CONFLICT_ATTEMPTS {
                        tracing::info!(
                            "{}: conditional write conflict (409), retrying",
                            self.url_of(key)
                        );
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                        continue;
                    }
                    return Err(self.error(key, e));
                }
            }
        }
    }

    pub async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
    ) -> Result<Option<String>, StoreError> {
        self.put_conditional(key, body, None).await
    }

    pub async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        etag: &str,
    ) -> Result<Option<String>, StoreError> {
        self.put_conditional(key, body, Some(etag)).await
    }

    pub async fn head(&self, key: &str) -> Result<Option<Meta>, StoreError> {
        check_key(key)?;
        Stats::count(&self.stats.heads, 1);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .send()
            .await
        {
            Ok(out) => Ok(Some(Meta {
                etag: out.e_tag().unwrap_or_default().to_string(),
                last_modified: to_time(out.last_modified()),
                size: out.content_length().unwrap_or(0).max(0) as u64,
            })),
            Err(e) => match self.error(key, e) {
                StoreError::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    /// GetObject, with the body still streaming.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, StoreError> {
        check_key(key)?;
        Stats::count(&self.stats.gets, 1);
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) => match self.error(key, e) {
                StoreError::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    pub async fn get_with_meta(&self, key: &str) -> Result<Option<(Bytes, Meta)>, StoreError> {
        let Some(out) = self.get_object(key).await? else {
            return Ok(None);
        };
        let meta = Meta {
            etag: out.e_tag().unwrap_or_default().to_string(),
            last_modified: to_time(out.last_modified()),
            size: out.content_length().unwrap_or(0).max(0) as u64,
        };
        let body = out.body.collect().await.map_err(|e| StoreError::Other {
            key: self.url_of(key),
            message: crate::aws::describe(&e),
        })?;
        Ok(Some((body.into_bytes(), meta)))
    }

    pub async fn reader(&self, key: &str) -> Result<BodyReader, StoreError> {
        let out = self
            .get_object(key)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                key: self.url_of(key),
            })?;
        Ok(Box::new(BlockingBody {
            body: out.body,
            chunk: Bytes::new(),
            handle: tokio::runtime::Handle::current(),
            url: self.url_of(key),
        }))
    }

    /// Writes a tiny object and reads back its `Last-Modified`: the store's clock, to the second.
    pub async fn now(&self) -> Result<time::OffsetDateTime, StoreError> {
        self.put(CLOCK_KEY, Bytes::new()).await?;
        self.head(CLOCK_KEY)
            .await?
            .and_then(|m| m.last_modified)
            .ok_or_else(|| StoreError::Other {
                key: self.url_of(CLOCK_KEY),
                message: "the store returned no Last-Modified".into(),
            })
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A content type that lets the S3 console show result files and context files inline.
fn content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("xml") => "application/xml",
        Some("json") => "application/json",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = [
            ("s3://b", ("b", "")),
            ("s3://b/", ("b", "")),
            ("s3://my-bucket.x/p", ("my-bucket.x", "p/")),
            ("s3://b/p/q/", ("b", "p/q/")),
        ];
        for (url, (bucket, prefix)) in ok {
            assert_eq!(
                parse_url(url).unwrap(),
                (bucket.into(), prefix.into()),
                "{url}"
            );
        }
        for url in [
            "s3://",
            "s3:///p",
            "s3://b/../x",
            "s3://b//x",
            "s3://b b/x",
            "b/x",
        ] {
            assert!(parse_url(url).is_err(), "{url} should be rejected");
        }
    }

    #[test]
    fn classifies_errors() {
        let table = [
            (Some(404), Some("NoSuchKey"), Kind::NotFound),
            (Some(404), None, Kind::NotFound),
            (Some(404), Some("NotFound"), Kind::NotFound),
            (Some(404), Some("NoSuchBucket"), Kind::Other),
            (Some(403), Some("AccessDenied"), Kind::AccessDenied),
            (Some(403), None, Kind::AccessDenied),
            (Some(400), Some("InvalidAccessKeyId"), Kind::AccessDenied),
            (Some(500), Some("InternalError"), Kind::Other),
            (Some(503), Some("SlowDown"), Kind::Other),
            (None, None, Kind::Other),
        ];
        for (status, code, want) in table {
            assert_eq!(classify(status, code), want, "{status:?} {code:?}");
        }
    }

    #[test]
    fn client_retries_and_times_out() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let conf = client_config(&sdk);
        let retry = conf.retry_config().expect("a retry policy");
        assert_eq!(retry.mode(), aws_sdk_s3::config::retry::RetryMode::Standard);
        if !env_set("AWS_MAX_ATTEMPTS") {
            assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
        }
        let timeouts = conf.timeout_config().expect("timeouts");
        assert!(timeouts.connect_timeout().is_some());
        assert!(timeouts.operation_attempt_timeout().is_some());
    }

    #[test]
    fn conditional_answers() {
        assert!(precondition_failed(Some(412), None));
        assert!(precondition_failed(None, Some("PreconditionFailed")));
        assert!(!precondition_failed(
            Some(409),
            Some("ConditionalRequestConflict")
        ));
        assert!(conditional_conflict(
            Some(409),
            Some("ConditionalRequestConflict")
        ));
        assert!(!conditional_conflict(Some(500), Some("InternalError")));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("j/b/1/r.XML"), "application/xml");
        assert_eq!(content_type("j/b/1/context.json"), "application/json");
        assert_eq!(content_type("j/b/1/noext"), "application/octet-stream");
    }
}
