//! The ledger: which builds went to which destination, kept as small objects under the reserved
//! prefix. Every key and body format of the aggregator's own state lives here.
//!
//! A *destination* is where metrics land: a CloudWatch namespace, an EMF file, stdout. Each has a
//! short stable id ([`Destination`]) and its own part of the ledger, so a trial run into a local
//! EMF file never hides a build from CloudWatch:
//!
//! - `_ci-test-metrics/dest/{id}/claims/{job}/{branch}/{build}`: the worker that is processing
//!   the build for this destination ([`Claim`]: owner, lease, state). Created with
//!   `If-None-Match: *`; an expired one is taken over with `If-Match` on its ETag. A claim in the
//!   `publishing` state is the intent: its worker was about to send the build's metrics.
//! - `_ci-test-metrics/dest/{id}/done/{job}/{branch}/{build}`: the build is finished for this
//!   destination ([`Done`]); written with `If-None-Match: *` after the sink accepted its metrics.
//! - `_ci-test-metrics/dest/{id}/late/{job}/{branch}/{build}/{file}`: a result file that arrived
//!   after the build was done was reported (so it is reported once).
//! - `_ci-test-metrics/dest/{id}/cursor.json`: how far discovery read the arrivals index
//!   (see [`super::cursor`]).
//!
//! Ledgers of the first version (`_ci-test-metrics/ledger/done/…` and `ledger/intents/…`) name no
//! destination. They still count, for every destination: a build they record is never sent again
//! unless asked (`aggregate --republish`).

use crate::layout::{BuildId, RESERVED_PREFIX};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the per-destination ledgers live.
pub fn destinations_prefix() -> String {
    format!("{RESERVED_PREFIX}dest/")
}

/// The short stable name of a destination, one key segment long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub id: String,
}

/// The longest destination id; also the limit for `--destination`.
pub const MAX_DESTINATION_ID: usize = 100;

impl Destination {
    /// The destination of a sink spec (`cloudwatch`, `emf:PATH`, `stdout`) and namespace.
    /// `stdout_is_cloudwatch` is set on Lambda, where stdout goes to CloudWatch Logs and EMF lines
    /// become metrics in the namespace: that is the same destination as `cloudwatch`.
    pub fn for_sink(spec: &str, namespace: &str, stdout_is_cloudwatch: bool) -> Destination {
        let (kind, path) = match spec {
            "stdout" if stdout_is_cloudwatch => ("cloudwatch", None),
            "stdout" => ("stdout", None),
            _ => match spec.strip_prefix("emf:") {
                Some(path) => ("emf", Some(path)),
                None => ("cloudwatch", None),
            },
        };
        let clean: String = namespace
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let mut id = format!("{kind}-{clean}");
        if clean != namespace {
            id.push('-');
            id.push_str(&short_hash(namespace));
        }
        if let Some(path) = path {
            id.push('-');
            id.push_str(&short_hash(path));
        }
        Destination { id }
    }

    /// A destination named by the user (`--destination`): letters, digits, `.`, `-`, `_`.
    pub fn named(id: &str) -> Result<Destination, String> {
        let ok = !id.is_empty()
            && id.len() <= MAX_DESTINATION_ID
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if ok {
            Ok(Destination { id: id.into() })
        } else {
            Err(format!(
                "destination {id:?}: use 1-{MAX_DESTINATION_ID} letters, digits, `.`, `-` or `_`"
            ))
        }
    }

    /// `_ci-test-metrics/dest/{id}/`.
    pub fn prefix(&self) -> String {
        format!("{}{}/", destinations_prefix(), self.id)
    }

    pub fn done_prefix(&self) -> String {
        format!("{}done/", self.prefix())
    }

    pub fn done_key(&self, build: &BuildId) -> String {
        format!("{}{}", self.done_prefix(), build_path(build))
    }

    pub fn claim_key(&self, build: &BuildId) -> String {
        format!("{}claims/{}", self.prefix(), build_path(build))
    }

    pub fn late_prefix(&self) -> String {
        format!("{}late/", self.prefix())
    }

    /// The marker of a late file, by the file's key (`job/branch/build/file`).
    pub fn late_key(&self, file_key: &str) -> String {
        format!("{}{file_key}", self.late_prefix())
    }

    pub fn cursor_key(&self) -> String {
        format!("{}cursor.json", self.prefix())
    }
}

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..4])
}

fn build_path(build: &BuildId) -> String {
    format!("{}/{}/{}", build.job, build.branch, build.build)
}

/// The build a ledger key names, below `prefix` (`{job}/{branch}/{build}`).
pub fn parse_build_key(prefix: &str, key: &str) -> Option<BuildId> {
    let rest = key.strip_prefix(prefix)?;
    let (job_branch, build) = rest.rsplit_once('/')?;
    let (job, branch) = job_branch.rsplit_once('/')?;
    if job.is_empty() || !build.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(BuildId {
        job: job.into(),
        branch: branch.into(),
        build: build.parse().ok()?,
    })
}

/// Prefix of the first version's `done` markers (no destination).
pub fn legacy_done_prefix() -> String {
    format!("{RESERVED_PREFIX}ledger/done/")
}

/// The first version's `done` marker of a build.
pub fn legacy_done_key(build: &BuildId) -> String {
    format!("{}{}", legacy_done_prefix(), build_path(build))
}

/// Prefix of the first version's publish intents.
pub fn legacy_intents_prefix() -> String {
    format!("{RESERVED_PREFIX}ledger/intents/")
}

/// The marker that says every build of a first-version intent is recorded.
pub fn legacy_intent_done_key(intent_key: &str) -> String {
    format!("{intent_key}.done")
}

/// What a `done` marker records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub run: String,
    /// RFC 3339 time the marker was written (the worker's clock; informational).
    pub at: String,
    /// Whether metrics were published for this build.
    pub published: bool,
    /// Why not, when not; or a note (recovered, republished).
    #[serde(default)]
    pub reason: Option<String>,
    pub datums: usize,
    /// Problems with the build's data (broken files, a bad context), recorded so they are never
    /// retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A first-version intent: the builds whose metrics one request carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub run: String,
    pub builds: Vec<IntentBuild>,
}

/// A build about to be sent, with what the sink needs to check whether it arrived.
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

/// Where a claimed build is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimState {
    /// Reading and parsing; nothing sent.
    Working,
    /// About to send, or sent: a worker taking over asks the sink before sending again.
    Publishing,
    /// Given back (the build was settling, or a transient failure): free to take at once.
    Released,
}

/// What a claim object holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The worker (run id, or Lambda request id).
    pub owner: String,
    /// The claim expires this long after the store's `Last-Modified` of the claim object.
    pub lease_seconds: u64,
    pub state: ClaimState,
    /// RFC 3339, the owner's clock (informational only: expiry uses the store's clock).
    pub at: String,
    /// Set in the `publishing` state.
    #[serde(default)]
    pub build: Option<IntentBuild>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(job: &str, branch: &str, build: u64) -> BuildId {
        BuildId {
            job: job.into(),
            branch: branch.into(),
            build,
        }
    }

    #[test]
    fn destinations_are_short_stable_and_distinct() {
        let table = [
            (
                "cloudwatch",
                "CITestMetrics",
                false,
                "cloudwatch-CITestMetrics",
            ),
            ("stdout", "CITestMetrics", true, "cloudwatch-CITestMetrics"),
            ("stdout", "CITestMetrics", false, "stdout-CITestMetrics"),
        ];
        for (spec, ns, lambda, want) in table {
            assert_eq!(Destination::for_sink(spec, ns, lambda).id, want, "{spec}");
        }
        let a = Destination::for_sink("emf:out/a.emf", "CITestMetrics", false);
        let b = Destination::for_sink("emf:out/b.emf", "CITestMetrics", false);
        assert!(a.id.starts_with("emf-CITestMetrics-"), "{}", a.id);
        assert_ne!(a, b);
        assert_eq!(
            a,
            Destination::for_sink("emf:out/a.emf", "CITestMetrics", false)
        );
        let odd = Destination::for_sink("cloudwatch", "CI/Tests:x", false);
        assert!(odd.id.starts_with("cloudwatch-CI_Tests_x-"), "{}", odd.id);
        assert_ne!(
            odd,
            Destination::for_sink("cloudwatch", "CI_Tests_x", false)
        );
        let long = Destination::for_sink("cloudwatch", &"n".repeat(255), false);
        assert!(long.id.len() <= MAX_DESTINATION_ID, "{}", long.id.len());
        assert!(crate::store::check_key(&long.cursor_key()).is_ok());
    }

    #[test]
    fn named_destinations() {
        assert_eq!(Destination::named("prod-cw").unwrap().id, "prod-cw");
        for bad in ["", "a/b", "..", ".x", "a b", &"x".repeat(101)] {
            assert!(Destination::named(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let dest = Destination::for_sink("cloudwatch", "NS", false);
        for build in [
            id("a", "master", 1),
            id("mxnet-validation/unix-cpu", "PR-16336", 42),
            id("j", "feature%2Ffoo", 7),
        ] {
            let done = dest.done_key(&build);
            assert!(
                done.starts_with("_ci-test-metrics/dest/cloudwatch-NS/done/"),
                "{done}"
            );
            assert_eq!(
                parse_build_key(&dest.done_prefix(), &done),
                Some(build.clone())
            );
            let legacy = legacy_done_key(&build);
            assert_eq!(
                parse_build_key(&legacy_done_prefix(), &legacy),
                Some(build.clone())
            );
            assert_ne!(dest.claim_key(&build), done);
        }
        assert_eq!(
            parse_build_key(&legacy_done_prefix(), "_ci-test-metrics/ledger/done/j/b/x"),
            None
        );
        assert_eq!(
            parse_build_key(&legacy_done_prefix(), "j/b/1/context.json"),
            None
        );
    }

    #[test]
    fn claims_read_back() {
        let claim = Claim {
            owner: "run-1".into(),
            lease_seconds: 900,
            state: ClaimState::Publishing,
            at: "2026-12-01T06:00:00Z".into(),
            build: None,
        };
        let json = serde_json::to_string(&claim).unwrap();
        assert!(json.contains("\"state\":\"publishing\""), "{json}");
        assert_eq!(serde_json::from_str::<Claim>(&json).unwrap(), claim);
    }
}
