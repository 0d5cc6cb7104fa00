//! The ledger: which builds were processed, kept as small objects under the reserved prefix.
//!
//! Every key is written once with PutObject, so the aggregator needs no DeleteObject and two
//! writers never read-modify-write one object:
//!
//! - `_ci-test-metrics/ledger/done/{job}/{branch}/{build}`: the build is finished (metrics accepted
//!   by the sink, or not to be published). Written only after the sink accepted its metrics.
//! - `_ci-test-metrics/ledger/intents/{run}-{seq}.json`: written just before a publish request,
//!   naming the builds whose metrics it carries. An intent whose builds have no `done` marker
//!   means a run stopped between sending and recording: the next run asks the sink whether those
//!   builds arrived before it publishes them again.
//! - `_ci-test-metrics/ledger/intents/{run}-{seq}.json.done`: every build of that intent is
//!   recorded, so later runs skip reading it (the ledger only grows; nothing is deleted).

use crate::layout::{BuildId, RESERVED_PREFIX};
use serde::{Deserialize, Serialize};

/// Prefix of the per-build `done` markers.
pub fn done_prefix() -> String {
    format!("{RESERVED_PREFIX}ledger/done/")
}

/// Prefix of the publish intents.
pub fn intents_prefix() -> String {
    format!("{RESERVED_PREFIX}ledger/intents/")
}

/// The `done` marker of a build.
pub fn done_key(build: &BuildId) -> String {
    format!(
        "{}{}/{}/{}",
        done_prefix(),
        build.job,
        build.branch,
        build.build
    )
}

/// The build a `done` key names.
pub fn parse_done_key(key: &str) -> Option<BuildId> {
    let rest = key.strip_prefix(&done_prefix())?;
    let (job_branch, build) = rest.rsplit_once('/')?;
    let (job, branch) = job_branch.rsplit_once('/')?;
    Some(BuildId {
        job: job.into(),
        branch: branch.into(),
        build: build.parse().ok()?,
    })
}

/// The key of one publish intent.
pub fn intent_key(run: &str, seq: usize) -> String {
    format!("{}{run}-{seq:05}.json", intents_prefix())
}

/// The marker that says every build of an intent is recorded.
pub fn intent_done_key(intent_key: &str) -> String {
    format!("{intent_key}.done")
}

/// What a `done` marker records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub run: String,
    /// RFC 3339 time the marker was written.
    pub at: String,
    /// Whether metrics were published for this build.
    pub published: bool,
    /// Why not, when not.
    #[serde(default)]
    pub reason: Option<String>,
    pub datums: usize,
}

/// What an intent records: the builds (as `job/branch/build`) whose metrics a request carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub run: String,
    pub builds: Vec<IntentBuild>,
}

/// One build named in an intent, with what the sink needs to check whether it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentBuild {
    pub job: String,
    pub branch: String,
    pub build: u64,
    pub branch_class: String,
    /// RFC 3339 build timestamp (the metrics' timestamp).
    pub timestamp: String,
}

impl IntentBuild {
    pub fn id(&self) -> BuildId {
        BuildId {
            job: self.job.clone(),
            branch: self.branch.clone(),
            build: self.build,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_keys_round_trip() {
        for (job, branch) in [
            ("a", "master"),
            ("mxnet-validation/unix-cpu", "PR-16336"),
            ("j", "feature%2Ffoo"),
        ] {
            let id = BuildId {
                job: job.into(),
                branch: branch.into(),
                build: 42,
            };
            let key = done_key(&id);
            assert!(key.starts_with("_ci-test-metrics/ledger/done/"), "{key}");
            assert_eq!(parse_done_key(&key), Some(id));
        }
        assert_eq!(
            parse_done_key("_ci-test-metrics/ledger/done/j/b/notanumber"),
            None
        );
        assert_eq!(parse_done_key("j/b/1/context.json"), None);
    }

    #[test]
    fn intent_keys_sort_in_write_order() {
        assert!(intent_key("r1", 9) < intent_key("r1", 10));
    }
}
