//! An S3 bucket as a store, through aws-sdk-s3.
//!
//! - The client comes from the shared [`crate::aws::load`] configuration, so the standard
//!   variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, credentials, profiles)
//!   apply. With a custom endpoint (SeaweedFS, MinIO, …) it uses path-style addressing.
//! - Each operation is one SDK call: `put` is a single PutObject (no HeadObject, no multipart),
//!   so the uploader needs `s3:PutObject` on `arn:aws:s3:::BUCKET/*` and nothing else.
//! - The SDK's standard retry mode retries 5xx answers, throttling, and timeouts with
//!   exponential backoff and jitter, up to [`MAX_ATTEMPTS`] attempts (`AWS_MAX_ATTEMPTS`
//!   overrides). Every retried failure is logged as a warning with its attempt number and error
//!   code ([`RetryLog`]), so a retry is never silent.
//! - [`Timeouts`] bound connecting, the first byte of an answer, each attempt and each call:
//!   [`Timeouts::BULK`] for the aggregator's big reads, [`Timeouts::within`] for a CI step.
//! - SDK errors become [`StoreError`] kinds: `NoSuchKey` or a bare 404 is `NotFound`, 403 is
//!   `AccessDenied`; messages are one line with the error code and a hint
//!   ([`crate::aws::summary`]), never credentials; the whole chain is logged under `-v`.

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

/// `Ok(None)` for "no such key", the error otherwise.
fn missing_is_none<T>(e: StoreError) -> Result<Option<T>, StoreError> {
    match e {
        StoreError::NotFound { .. } => Ok(None),
        e => Err(e),
    }
}

/// An object's metadata from a HEAD or GET answer's headers.
fn meta(
    etag: Option<&str>,
    modified: Option<&aws_sdk_s3::primitives::DateTime>,
    length: Option<i64>,
) -> Meta {
    Meta {
        etag: etag.unwrap_or_default().to_string(),
        last_modified: to_time(modified),
        size: length.unwrap_or(0).max(0) as u64,
    }
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
    if let Some(i) = prefix
        .split('/')
        .position(crate::layout::is_reserved_segment)
    {
        let outside: Vec<&str> = prefix.split('/').take(i).collect();
        let fix = format!("s3://{bucket}/{}", outside.join("/"));
        return Err(invalid(&super::reserved_reason(fix.trim_end_matches('/'))));
    }
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

/// The IAM action an S3 operation needs, from its error type's path
/// (`aws_sdk_s3::operation::put_object::PutObjectError` → `s3:PutObject`).
fn s3_action(error_type: &str) -> Option<&'static str> {
    let operation = error_type
        .split("::operation::")
        .nth(1)?
        .split("::")
        .next()?;
    Some(match operation {
        "put_object" => "s3:PutObject",
        "get_object" | "head_object" => "s3:GetObject",
        "list_objects_v2" | "list_objects" => "s3:ListBucket",
        "delete_object" => "s3:DeleteObject",
        _ => return None,
    })
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// How long S3 calls may take. The SDK enforces each bound and retries within `operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a TCP (and TLS) connection.
    pub connect: Duration,
    /// One HTTP exchange up to the answer's headers (the SDK's "read timeout": it wraps sending
    /// the request body too, so it bounds a PUT's upload).
    pub read: Duration,
    /// One attempt, from sending to the parsed answer (a streamed body is read afterwards).
    pub attempt: Duration,
    /// One call: every attempt and back-off.
    pub operation: Duration,
}

impl Timeouts {
    /// Generous bounds for the aggregator, whose GETs can be large and whose runs are not a
    /// build's critical path.
    pub const BULK: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        read: Duration::from_secs(60),
        attempt: Duration::from_secs(120),
        operation: Duration::from_secs(600),
    };

    /// Bounds for a step that must finish within `total` (the uploader in a CI stage): a call
    /// never outlives `total`, an attempt (and its HTTP exchange) takes at most a third of it, so
    /// a stuck connection leaves time for retries, and connecting a sixth (5 s at most). A larger
    /// `total` gives big files longer attempts.
    pub fn within(total: Duration) -> Timeouts {
        let attempt = total / 3;
        Timeouts {
            connect: (total / 6).min(Duration::from_secs(5)),
            read: attempt,
            attempt,
            operation: total,
        }
    }
}

/// The S3 client's configuration: the shared one, plus path-style addressing with a custom
/// endpoint, `timeouts`, retry logging, and (unless `AWS_MAX_ATTEMPTS` is set) our retry policy.
fn client_config(sdk: &aws_config::SdkConfig, timeouts: Timeouts) -> aws_sdk_s3::Config {
    // A custom endpoint rarely resolves virtual-hosted bucket names; path-style always works.
    let custom_endpoint = sdk.endpoint_url().is_some()
        || env_set("AWS_ENDPOINT_URL")
        || env_set("AWS_ENDPOINT_URL_S3");
    let mut conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(custom_endpoint)
        .interceptor(RetryLog)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .read_timeout(timeouts.read)
                .operation_attempt_timeout(timeouts.attempt)
                .operation_timeout(timeouts.operation)
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

/// Logs every failed attempt of an S3 call that the SDK retries (no answer, 5xx, throttling) as
/// one warning line: operation, key, attempt number out of the maximum, the error code or kind,
/// and whether it retries. Final answers (404, 403, 412) are left to the caller's error, so an
/// expected "not found" is not a warning; no retry goes unseen.
#[derive(Debug)]
pub struct RetryLog;

/// The attempt's path (the key, before the endpoint is resolved; no query), kept from before the
/// attempt: the request is gone once sent.
#[derive(Debug, Clone)]
struct AttemptTarget(String);

impl aws_smithy_types::config_bag::Storable for AttemptTarget {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_sdk_s3::config::Intercept for RetryLog {
    fn name(&self) -> &'static str {
        "RetryLog"
    }

    fn read_before_attempt(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let uri = context.request().uri();
        let target = uri.split('?').next().unwrap_or_default().to_string();
        cfg.interceptor_state().store_put(AttemptTarget(target));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_s3::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let Some(Err(err)) = context.output_or_error() else {
            return Ok(());
        };
        let status = context.response().map(|r| r.status().as_u16());
        let code = err.as_operation_error().and_then(operation_error_code);
        let connector = err.as_connector_error();
        let timeout = err.is_timeout_error() || connector.is_some_and(|c| c.is_timeout());
        if !crate::aws::retryable_attempt(status, code.as_deref(), timeout, connector.is_some()) {
            // A final answer (404, 403, 412, …): the caller reports it; nothing is retried.
            return Ok(());
        }
        let what =
            crate::aws::attempt_failure(status, code.as_deref(), timeout, connector.is_some());
        let attempt = cfg
            .load::<aws_smithy_runtime_api::client::retries::RequestAttempts>()
            .map_or(1, |a| a.attempts());
        let max = cfg.load::<RetryConfig>().map_or(1, |r| r.max_attempts());
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("S3 call", |m| m.name());
        let target = cfg
            .load::<AttemptTarget>()
            .map_or("", |t| t.0.trim_start_matches('/'));
        let next = if attempt < max {
            "retrying"
        } else {
            "giving up"
        };
        tracing::warn!("{operation} {target}: attempt {attempt} of {max} failed: {what}; {next}");
        Ok(())
    }
}

/// The service's error code of a failed attempt, for the S3 operations the stores call.
fn operation_error_code(
    err: &aws_smithy_runtime_api::client::interceptors::context::Error,
) -> Option<String> {
    use aws_sdk_s3::operation::{
        get_object::GetObjectError, list_objects_v2::ListObjectsV2Error, put_object::PutObjectError,
    };
    let code = if let Some(e) = err.downcast_ref::<PutObjectError>() {
        e.code()
    } else if let Some(e) = err.downcast_ref::<GetObjectError>() {
        e.code()
    } else if let Some(e) = err.downcast_ref::<ListObjectsV2Error>() {
        e.code()
    } else {
        None
    };
    code.map(str::to_string)
}

impl S3Store {
    /// Opens `s3://BUCKET[/PREFIX]` with calls bounded by `timeouts`.
    pub async fn open(url: &str, timeouts: Timeouts) -> Result<S3Store, StoreError> {
        let (bucket, prefix) = parse_url(url)?;
        let sdk = crate::aws::load().await;
        Ok(S3Store {
            client: aws_sdk_s3::Client::from_conf(client_config(&sdk, timeouts)),
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
        let kind = classify(status, err.code());
        if kind == Kind::NotFound {
            return StoreError::NotFound { key };
        }
        // The whole chain only under -v; the error itself is one line with a hint.
        tracing::info!("{key}: {}", crate::aws::describe(&err));
        let action = s3_action(std::any::type_name::<E>());
        let resource = match action {
            Some("s3:ListBucket") => format!("arn:aws:s3:::{}", self.bucket),
            _ => format!("arn:aws:s3:::{}/{}*", self.bucket, self.prefix),
        };
        let message = crate::aws::summary(&err, action.map(|a| (a, resource.as_str())));
        match kind {
            Kind::AccessDenied => StoreError::AccessDenied { key, message },
            _ => StoreError::Other { key, message },
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
        self.get_body(key, None).await
    }

    /// An object's body, or the byte range `range` of it (`bytes=START-END`).
    async fn get_body(&self, key: &str, range: Option<String>) -> Result<Bytes, StoreError> {
        check_key(key)?;
        Stats::count(&self.stats.gets, 1);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .set_range(range)
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
            Ok(out) => Ok(Some(meta(
                out.e_tag(),
                out.last_modified(),
                out.content_length(),
            ))),
            Err(e) => missing_is_none(self.error(key, e)),
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
            Err(e) => missing_is_none(self.error(key, e)),
        }
    }

    pub async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, StoreError> {
        if len == 0 {
            check_key(key)?;
            return Ok(Bytes::new());
        }
        self.get_body(key, Some(format!("bytes={start}-{}", start + len - 1)))
            .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        Stats::count(&self.stats.deletes, 1);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        Ok(())
    }

    pub async fn get_with_meta(&self, key: &str) -> Result<Option<(Bytes, Meta)>, StoreError> {
        let Some(out) = self.get_object(key).await? else {
            return Ok(None);
        };
        let meta = meta(out.e_tag(), out.last_modified(), out.content_length());
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
            "s3://b/_ci-test-metrics",
            "s3://b/p/_CI-TEST-METRICS/q",
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
        let upload = Timeouts::within(Duration::from_secs(60));
        let conf = client_config(&sdk, upload);
        let retry = conf.retry_config().expect("a retry policy");
        assert_eq!(retry.mode(), aws_sdk_s3::config::retry::RetryMode::Standard);
        if !env_set("AWS_MAX_ATTEMPTS") {
            assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
        }
        let timeouts = conf.timeout_config().expect("timeouts");
        assert_eq!(timeouts.connect_timeout(), Some(upload.connect));
        assert_eq!(timeouts.read_timeout(), Some(upload.read));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(upload.attempt));
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn timeouts_fit_inside_the_whole_step() {
        for secs in [1, 3, 10, 60, 600, 3600] {
            let total = Duration::from_secs(secs);
            let t = Timeouts::within(total);
            assert_eq!(t.operation, total, "{secs}");
            // Room for at least three attempts, and a connect and a first byte inside one.
            assert!(t.attempt * 3 <= total, "{secs}: {t:?}");
            assert!(
                t.connect < t.attempt && t.read <= t.attempt,
                "{secs}: {t:?}"
            );
        }
        assert_eq!(
            Timeouts::within(Duration::from_secs(60)).attempt,
            Duration::from_secs(20)
        );
        assert_eq!(
            Timeouts::within(Duration::from_secs(60)).connect,
            Duration::from_secs(5)
        );
        // The aggregator's reads keep generous bounds.
        assert!(Timeouts::BULK.attempt >= Duration::from_secs(120));
    }

    #[test]
    fn actions_from_operations() {
        use aws_sdk_s3::operation::{
            get_object::GetObjectError, list_objects_v2::ListObjectsV2Error,
            put_object::PutObjectError,
        };
        let table = [
            (
                std::any::type_name::<PutObjectError>(),
                Some("s3:PutObject"),
            ),
            (
                std::any::type_name::<GetObjectError>(),
                Some("s3:GetObject"),
            ),
            (
                std::any::type_name::<ListObjectsV2Error>(),
                Some("s3:ListBucket"),
            ),
            ("std::io::Error", None),
        ];
        for (type_name, want) in table {
            assert_eq!(s3_action(type_name), want, "{type_name}");
        }
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
