//! The crate's error type and how each kind maps to a process exit code.
//!
//! Every module has its own typed error and knows nothing of processes; this enum gathers them so
//! the commands in [`crate::cli`] can return one type, and this module is the one place that
//! maps each stage's errors to the exit codes its `--help` lists ([`upload_exit_code`],
//! [`dashboard_exit_code`]). It imports the stages; no stage imports it.

use crate::dashboard::DashboardError;
use crate::upload::UploadError;
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
    /// `analyze --fail-on-new-failure`: a test fails in a pull request that never failed in the
    /// baseline's window (and no test is slower with `--fail-on-regression`, which wins).
    pub const NEW_FAILURE: u8 = 6;
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
            Error::Upload(e) => upload_exit_code(e),
            Error::Dashboard(e) => dashboard_exit_code(e),
            _ => exit::PUBLISH,
        }
    }
}

/// `upload`'s exit codes (its `--help`): 1 bad flags, names, variables or store URL, 2 a file
/// could not be read (or, with --strict, is not JUnit), 3 no file matched, 4 the store failed or
/// timed out.
pub fn upload_exit_code(e: &UploadError) -> u8 {
    match e {
        UploadError::NoFiles { .. } => exit::EMPTY,
        UploadError::Pattern { .. }
        | UploadError::BadName { .. }
        | UploadError::DuplicateName { .. }
        | UploadError::Reserved { .. }
        | UploadError::Layout(_)
        | UploadError::Context(_) => exit::USAGE,
        UploadError::Read { .. } | UploadError::NotJUnit { .. } => exit::INPUT,
        // Only unreadable files: an input problem; any store failure: a publishing one.
        UploadError::Failed { failures, .. } if failures.iter().all(|f| f.unreadable) => {
            exit::INPUT
        }
        UploadError::Failed { .. }
        | UploadError::Store(_)
        | UploadError::TimedOut { .. }
        | UploadError::Arrival { .. } => exit::PUBLISH,
    }
}

/// `dashboard`'s and `alarms`' exit codes: bad templates and names are usage errors, no jobs is
/// "nothing matched", and failed or refused calls are publish errors.
pub fn dashboard_exit_code(e: &DashboardError) -> u8 {
    match e {
        DashboardError::Invalid { .. }
        | DashboardError::Template { .. }
        | DashboardError::Alarm(_)
        | DashboardError::Name(_) => exit::USAGE,
        DashboardError::NoJobs(_) => exit::EMPTY,
        DashboardError::Aws { .. } | DashboardError::Refused { .. } => exit::PUBLISH,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::FileFailure;

    #[test]
    fn upload_failures_map_to_exit_codes() {
        let failure = |name: &str, unreadable| FileFailure {
            name: name.into(),
            message: "x".into(),
            unreadable,
        };
        let failed = |failures: Vec<FileFailure>| UploadError::Failed { total: 3, failures };
        let table = [
            (failed(vec![failure("a", true)]), exit::INPUT),
            (
                failed(vec![failure("a", true), failure("b", true)]),
                exit::INPUT,
            ),
            (
                failed(vec![failure("a", true), failure("b", false)]),
                exit::PUBLISH,
            ),
            (failed(vec![failure("b", false)]), exit::PUBLISH),
            (UploadError::TimedOut { seconds: 3 }, exit::PUBLISH),
            (
                UploadError::NotJUnit {
                    files: vec!["a".into()],
                },
                exit::INPUT,
            ),
            (
                UploadError::NoFiles {
                    patterns: vec![],
                    dir: ".".into(),
                },
                exit::EMPTY,
            ),
            (
                UploadError::DuplicateName {
                    name: "r.xml".into(),
                    first: "a/r.xml".into(),
                    second: "b/r.xml".into(),
                },
                exit::USAGE,
            ),
        ];
        for (err, code) in table {
            assert_eq!(upload_exit_code(&err), code, "{err}");
            assert_eq!(Error::from(err).exit_code(), code);
        }
    }

    #[test]
    fn dashboard_errors_map_to_exit_codes() {
        let table = [
            (DashboardError::Name("a b".into()), exit::USAGE),
            (DashboardError::NoJobs("none".into()), exit::EMPTY),
            (
                DashboardError::Aws {
                    call: "PutDashboard",
                    message: "x".into(),
                },
                exit::PUBLISH,
            ),
        ];
        for (err, code) in table {
            assert_eq!(dashboard_exit_code(&err), code, "{err}");
        }
    }
}
