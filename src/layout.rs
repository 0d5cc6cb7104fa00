//! The S3 key layout `{prefix}{job}/{branch}/{build}/{file}`, its parsing, and name sanitising.
//!
//! Keys handled here are relative to the store's root (the store adds its own prefix).
//! Parse keys from the right: file, build, branch, then the rest is the job.

use thiserror::Error;

/// The reserved prefix for the aggregator's ledger and summaries. Uploads never write here.
pub const RESERVED_PREFIX: &str = "_ci-test-metrics/";
/// The per-build context file, written last: its presence marks the build's upload complete.
pub const CONTEXT_FILE: &str = "context.json";

#[derive(Debug, Clone, Error, PartialEq)]
pub enum LayoutError {
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },
}

/// One build: job (Jenkins full name without the branch leaf), encoded branch, build number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildId {
    pub job: String,
    /// Jenkins' encoded branch name (`feature%2Ffoo`).
    pub branch: String,
    pub build: u64,
}

impl BuildId {
    /// `{job}/{branch}/{build}/`
    pub fn prefix(&self) -> String {
        format!("{}/{}/{}/", self.job, self.branch, self.build)
    }
    /// The key of one file of this build.
    pub fn key(&self, file: &str) -> String {
        format!("{}{}", self.prefix(), file)
    }
}

impl std::fmt::Display for BuildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.job, self.branch, self.build)
    }
}

/// Splits a relative key into its build and file name, from the right.
pub fn parse_key(key: &str) -> Result<(BuildId, &str), LayoutError> {
    let invalid = |reason: &str| LayoutError::Invalid {
        what: "key",
        value: key.to_string(),
        reason: reason.to_string(),
    };
    let mut parts = key.rsplitn(4, '/');
    let file = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("no file name"))?;
    let build = parts.next().ok_or_else(|| invalid("no build number"))?;
    let branch = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("no branch"))?;
    let job = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("no job"))?;
    let build = build
        .parse::<u64>()
        .map_err(|_| invalid("build is not a number"))?;
    Ok((
        BuildId {
            job: job.to_string(),
            branch: branch.to_string(),
            build,
        },
        file,
    ))
}
