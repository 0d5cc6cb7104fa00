//! The crate's error type and how each kind maps to a process exit code.
//!
//! Every module has its own typed error; this enum gathers them so the commands in [`crate::cli`]
//! can return one type and `main` can map it to an exit code scripts can trust.

use thiserror::Error;

/// Exit codes shared by every command.
pub mod exit {
    /// Everything worked.
    pub const OK: u8 = 0;
    /// A usage or configuration error: bad flags, missing variables, an unusable store URL.
    pub const USAGE: u8 = 1;
    /// Some input could not be read or parsed (others were still processed and printed).
    pub const INPUT: u8 = 2;
    /// Nothing to do where something was expected (e.g. no file matched an upload pattern).
    pub const EMPTY: u8 = 3;
    /// Something could not be published or recorded (store or sink failure).
    pub const PUBLISH: u8 = 4;
    /// `analyze --fail-on-regression`: a pull request makes a test slower beyond the thresholds.
    pub const REGRESSION: u8 = 5;
}

/// Any error a command can end with.
#[derive(Debug, Error)]
pub enum Error {
    /// Bad flags or configuration; the message says what to change.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    Dashboard(#[from] crate::dashboard::DashboardError),
    #[error(transparent)]
    Analyze(#[from] crate::analyze::AnalyzeError),
    #[error(transparent)]
    Upload(#[from] crate::upload::UploadError),
    #[error(transparent)]
    Aggregate(#[from] crate::aggregate::AggregateError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Store(crate::store::StoreError::InvalidUrl { .. }) => {
                exit::USAGE
            }
            Error::Io { .. } => exit::INPUT,
            Error::Upload(e) => e.exit_code(),
            Error::Dashboard(e) => e.exit_code(),
            _ => exit::PUBLISH,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
