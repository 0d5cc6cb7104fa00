//! The build context: read from Jenkins' environment, written to and read from `context.json`.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

/// The `context.json` schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum ContextError {
    #[error("{key}: not a valid context.json: {source}")]
    Json {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What `context.json` holds. Written last by `upload`; its presence marks the build complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub schema_version: u32,
    pub job: String,
    /// The raw branch name (`feature/foo`); keys use the encoded form.
    pub branch: String,
    pub build: u64,
    #[serde(default)]
    pub build_url: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub source_branch: Option<String>,
    #[serde(default)]
    pub target_branch: Option<String>,
    #[serde(default)]
    pub pr: Option<u64>,
    /// When the build ran, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(default)]
    pub node: Option<String>,
    /// The result files uploaded with this build.
    #[serde(default)]
    pub files: Vec<ManifestEntry>,
}

/// One uploaded result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    /// Number of test cases parsed at upload time, when it parsed.
    #[serde(default)]
    pub tests: Option<u64>,
    /// The parse error at upload time, when it did not.
    #[serde(default)]
    pub error: Option<String>,
}

impl Context {
    /// Reads a `context.json`; `key` names it in the error.
    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Context, ContextError> {
        serde_json::from_slice(bytes).map_err(|source| ContextError::Json {
            key: key.to_string(),
            source,
        })
    }
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("context serialises")
    }
}
