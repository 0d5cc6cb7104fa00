//! One shared AWS `SdkConfig` for the S3 store and the CloudWatch sink, and how SDK errors are
//! told to a person: one line with the service's error code and a hint.
//!
//! The standard variables are honoured (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`,
//! `AWS_ENDPOINT_URL_CLOUDWATCH`, the credential variables and profiles). Set
//! `AWS_EC2_METADATA_DISABLED=true` when running off EC2 so the SDK never probes the
//! instance-metadata address.
//!
//! Messages never carry credentials: they are built from the error code, the service's message,
//! the HTTP status and the names of variables, never from the request.

use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;

/// Loads the shared SDK configuration from the environment.
///
/// When no region is configured anywhere, `us-east-1` is used so local servers work without setup.
pub async fn load() -> SdkConfig {
    let conf = loader().load().await;
    if conf.region().is_some() {
        return conf;
    }
    conf.into_builder()
        .region(Region::from_static("us-east-1"))
        .build()
}

/// The loader behind [`load`], for callers that override a setting (tests set the endpoint and
/// credentials). It carries the HTTPS client: rustls with the `ring` provider and the system's
/// root certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured). The SDK crates are built
/// without a default client, so every configuration has to come from here: a client without one
/// panics on its first call, and so do region and credential providers built apart from the
/// loader (the loader's own chains share its client).
pub fn loader() -> ConfigLoader {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}

/// An SDK error with its whole chain of causes (the SDK's `Display` alone says little). Long:
/// for `-v` logs; [`summary`] is the line to show.
pub fn describe<E: std::error::Error>(err: &E) -> String {
    aws_sdk_s3::error::DisplayErrorContext(err).to_string()
}

/// What went wrong with one AWS call, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The service's error code (`AccessDenied`, `NoSuchBucket`, …).
    pub code: Option<String>,
    /// The service's message, or the innermost cause when there was no answer.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The service answered with an error.
    Service,
    /// No answer in time.
    Timeout,
    /// The request could not be sent (connection refused, DNS, TLS, …).
    Dispatch,
    /// The request could not be built (often: no credentials).
    Construction,
    /// An answer came that could not be read.
    Response,
}

impl Failure {
    pub fn of<E>(err: &SdkError<E>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let kind = match err {
            SdkError::ServiceError(_) => FailureKind::Service,
            SdkError::TimeoutError(_) => FailureKind::Timeout,
            SdkError::DispatchFailure(e) if e.is_timeout() => FailureKind::Timeout,
            SdkError::DispatchFailure(_) => FailureKind::Dispatch,
            SdkError::ConstructionFailure(_) => FailureKind::Construction,
            _ => FailureKind::Response,
        };
        let message = match kind {
            FailureKind::Service => err.message().map(str::to_string),
            _ => innermost(err),
        };
        Failure {
            kind,
            status: err.raw_response().map(|r| r.status().as_u16()),
            code: err.code().map(str::to_string),
            message,
        }
    }
}

/// The deepest cause's text: "Connection refused (os error 111)" rather than "dispatch failure".
fn innermost(err: &dyn std::error::Error) -> Option<String> {
    let mut last = None;
    let mut source = err.source();
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.map(|m| {
        m.lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect()
    })
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.message.as_deref().filter(|m| !m.is_empty());
        match self.kind {
            FailureKind::Service | FailureKind::Response => {
                match (&self.code, message) {
                    (Some(code), Some(m)) => write!(f, "{code}: {m}")?,
                    (Some(code), None) => write!(f, "{code}")?,
                    (None, Some(m)) => write!(f, "{m}")?,
                    (None, None) => write!(f, "error")?,
                }
                if let Some(status) = self.status {
                    write!(f, " (HTTP {status})")?;
                }
                Ok(())
            }
            FailureKind::Timeout => write!(f, "timeout: no answer in time"),
            FailureKind::Dispatch => match message {
                Some(m) => write!(f, "could not reach the endpoint: {m}"),
                None => write!(f, "could not reach the endpoint"),
            },
            FailureKind::Construction => match message {
                Some(m) => write!(f, "could not build the request: {m}"),
                None => write!(f, "could not build the request"),
            },
        }
    }
}

/// What to check, for a failure: the permission (`action` on `resource`, when the caller knows
/// them), the credential variables, the bucket variables, the region, or the endpoint.
pub fn hint(failure: &Failure, permission: Option<(&str, &str)>) -> Option<String> {
    const CREDENTIALS: &str = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and \
                               AWS_SESSION_TOKEN for temporary credentials), or AWS_PROFILE";
    let code = failure.code.as_deref().unwrap_or("");
    let text = match (failure.kind, code) {
        (FailureKind::Timeout | FailureKind::Dispatch, _) => {
            "check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 (unset for AWS itself) and the network \
             to the endpoint"
                .to_string()
        }
        (FailureKind::Construction, _)
            if failure
                .message
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("credential")) =>
        {
            format!("no credentials found: {CREDENTIALS}, or run with an instance or task role")
        }
        (
            _,
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "IncompleteSignature"
            | "InvalidToken"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "InvalidSignatureException",
        ) => format!("the credentials were refused: {CREDENTIALS}"),
        (_, "NoSuchBucket") => "check the bucket name in --store, \
                                MXNET_CI_UNITTEST_ARTIFACT_BUCKET or CI_TEST_METRICS_STORE"
            .to_string(),
        (_, "PermanentRedirect" | "AuthorizationHeaderMalformed") => {
            "the bucket is in another region: set AWS_REGION to it".to_string()
        }
        (_, "AccessDenied" | "AccessDeniedException" | "AllAccessDisabled") => {
            permission_hint(permission)
        }
        _ if failure.status == Some(403) => permission_hint(permission),
        _ => return None,
    };
    Some(text)
}

fn permission_hint(permission: Option<(&str, &str)>) -> String {
    match permission {
        Some((action, resource)) => {
            format!("the identity needs {action} on {resource} (see examples/iam/)")
        }
        None => "the identity lacks a permission for this call (see examples/iam/)".to_string(),
    }
}

/// One line for an SDK error: what failed and, when there is one, a hint.
pub fn summary<E>(err: &SdkError<E>, permission: Option<(&str, &str)>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = Failure::of(err);
    match hint(&failure, permission) {
        Some(h) => format!("{failure}; hint: {h}"),
        None => failure.to_string(),
    }
}

/// Whether a failed attempt is one the SDK's standard retry mode retries: no answer, a 5xx, a
/// 408/429, or a throttling or transient error code. Other answers (404, 403, 412, …) are final
/// and reported by the caller, so the retry log leaves them out.
pub fn retryable_attempt(
    status: Option<u16>,
    code: Option<&str>,
    timeout: bool,
    connector: bool,
) -> bool {
    const CODES: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
    ];
    timeout
        || connector
        || matches!(status, Some(408 | 429 | 500..=599))
        || code.is_some_and(|c| CODES.contains(&c))
}

/// A failed attempt, for the retry log: the error code, or what kind of failure it was.
pub fn attempt_failure(
    status: Option<u16>,
    code: Option<&str>,
    timeout: bool,
    connector: bool,
) -> String {
    match (code, status) {
        _ if timeout => "timeout".to_string(),
        _ if connector => "dispatch failure (no connection or no answer)".to_string(),
        (Some(code), Some(status)) => format!("{code} (HTTP {status})"),
        (Some(code), None) => code.to_string(),
        (None, Some(status)) => format!("HTTP {status}"),
        (None, None) => "error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: FailureKind, status: Option<u16>, code: Option<&str>, msg: &str) -> Failure {
        Failure {
            kind,
            status,
            code: code.map(str::to_string),
            message: Some(msg.to_string()).filter(|m| !m.is_empty()),
        }
    }

    #[test]
    fn one_line_with_a_hint() {
        use FailureKind::*;
        let put = Some(("s3:PutObject", "arn:aws:s3:::b/*"));
        /// A failure, the permission the caller names, and what the line must contain.
        type Row<'a> = (Failure, Option<(&'a str, &'a str)>, &'a [&'a str]);
        let table: &[Row] = &[
            (
                failure(Service, Some(403), Some("AccessDenied"), "Access Denied"),
                put,
                &[
                    "AccessDenied: Access Denied (HTTP 403)",
                    "s3:PutObject on arn:aws:s3:::b/*",
                ],
            ),
            (
                failure(Service, Some(403), None, ""),
                None,
                &["HTTP 403", "lacks a permission"],
            ),
            (
                failure(
                    Service,
                    Some(403),
                    Some("InvalidAccessKeyId"),
                    "The key does not exist",
                ),
                put,
                &[
                    "InvalidAccessKeyId",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                ],
            ),
            (
                failure(
                    Service,
                    Some(403),
                    Some("SignatureDoesNotMatch"),
                    "bad signature",
                ),
                put,
                &["SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY"],
            ),
            (
                failure(
                    Service,
                    Some(404),
                    Some("NoSuchBucket"),
                    "The bucket does not exist",
                ),
                put,
                &["NoSuchBucket", "MXNET_CI_UNITTEST_ARTIFACT_BUCKET"],
            ),
            (
                failure(Service, Some(301), Some("PermanentRedirect"), "elsewhere"),
                None,
                &["AWS_REGION"],
            ),
            (
                failure(Timeout, None, None, ""),
                put,
                &["timeout", "AWS_ENDPOINT_URL"],
            ),
            (
                failure(Dispatch, None, None, "Connection refused (os error 111)"),
                put,
                &[
                    "could not reach the endpoint: Connection refused",
                    "AWS_ENDPOINT_URL",
                ],
            ),
            (
                failure(
                    Construction,
                    None,
                    None,
                    "no credentials in the provider chain",
                ),
                put,
                &[
                    "could not build the request",
                    "no credentials found",
                    "AWS_PROFILE",
                ],
            ),
        ];
        for (f, permission, want) in table {
            let line = match hint(f, *permission) {
                Some(h) => format!("{f}; hint: {h}"),
                None => f.to_string(),
            };
            assert!(!line.contains('\n'), "{line}");
            for w in *want {
                assert!(line.contains(w), "{line:?} should contain {w:?}");
            }
        }
        // No hint where there is nothing useful to say.
        assert_eq!(
            hint(
                &failure(Service, Some(500), Some("InternalError"), "x"),
                put
            ),
            None
        );
    }

    #[test]
    fn retryable_attempts() {
        let table = [
            ((None, None, true, false), true),
            ((None, None, false, true), true),
            ((Some(503), Some("SlowDown"), false, false), true),
            ((Some(500), None, false, false), true),
            ((Some(429), None, false, false), true),
            ((Some(400), Some("RequestTimeout"), false, false), true),
            ((Some(400), Some("Throttling"), false, false), true),
            ((Some(404), Some("NoSuchKey"), false, false), false),
            ((Some(412), Some("PreconditionFailed"), false, false), false),
            ((Some(403), Some("AccessDenied"), false, false), false),
            ((Some(400), Some("InvalidArgument"), false, false), false),
        ];
        for ((status, code, timeout, connector), want) in table {
            assert_eq!(
                retryable_attempt(status, code, timeout, connector),
                want,
                "{status:?} {code:?}"
            );
        }
    }

    #[test]
    fn attempt_failures() {
        let table = [
            (
                (Some(503), Some("SlowDown"), false, false),
                "SlowDown (HTTP 503)",
            ),
            ((Some(500), None, false, false), "HTTP 500"),
            ((None, None, true, false), "timeout"),
            (
                (None, None, false, true),
                "dispatch failure (no connection or no answer)",
            ),
            ((None, Some("X"), false, false), "X"),
        ];
        for ((status, code, timeout, connector), want) in table {
            assert_eq!(attempt_failure(status, code, timeout, connector), want);
        }
    }
}
