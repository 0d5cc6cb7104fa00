//! The build context: read from Jenkins' environment, written to and read from `context.json`.
//!
//! [`Context::from_env`] reads Jenkins' variables; every value has a flag in [`Overrides`] that
//! wins over its variable. Empty variables count as unset.
//!
//! | field           | flag              | Jenkins variable                                      |
//! |-----------------|-------------------|-------------------------------------------------------|
//! | `job`           | `--job`           | `JOB_NAME`, without its last segment when `BRANCH_NAME` is set |
//! | `branch` (raw)  | `--branch`        | `BRANCH_NAME`                                         |
//! | `build`         | `--build`         | `BUILD_NUMBER`                                        |
//! | `build_url`     | `--build-url`     | `BUILD_URL`                                           |
//! | `commit`        | `--commit`        | `GIT_COMMIT`                                          |
//! | `user`          | `--user`          | `CHANGE_AUTHOR`                                       |
//! | `source_branch` | `--source-branch` | `CHANGE_BRANCH`, else `BRANCH_NAME`, else the branch  |
//! | `target_branch` | `--target-branch` | `CHANGE_TARGET`                                       |
//! | `pr`            | `--pr`            | `CHANGE_ID` (a number; anything else is ignored with a warning) |
//! | `timestamp`     | `--timestamp`     | now (RFC 3339, stored in UTC)                          |
//! | `node`          | `--node`          | `NODE_NAME`                                           |

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

/// The `context.json` schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum ContextError {
    /// A required value is missing; the message names the flag and the variable.
    #[error("no {what}: pass {flag} or set {var}")]
    Missing {
        what: &'static str,
        flag: &'static str,
        var: &'static str,
    },
    #[error("invalid {what} {value:?} (from {from}): {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        from: String,
        reason: String,
    },
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

/// Values given on the command line; each one wins over its Jenkins variable.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub job: Option<String>,
    pub branch: Option<String>,
    pub build: Option<String>,
    pub build_url: Option<String>,
    pub commit: Option<String>,
    pub user: Option<String>,
    pub source_branch: Option<String>,
    pub target_branch: Option<String>,
    pub pr: Option<String>,
    pub timestamp: Option<String>,
    pub node: Option<String>,
}

impl Context {
    /// A context with just the build's identity and time; everything else unknown. Use struct
    /// update syntax to add more: `Context { commit: Some(c), ..Context::new(…) }`.
    pub fn new(job: &str, branch: &str, build: u64, timestamp: OffsetDateTime) -> Context {
        Context {
            schema_version: SCHEMA_VERSION,
            job: job.to_string(),
            branch: branch.to_string(),
            build,
            build_url: None,
            commit: None,
            user: None,
            source_branch: None,
            target_branch: None,
            pr: None,
            timestamp,
            node: None,
            files: Vec::new(),
        }
    }

    /// The context of the running build from Jenkins' variables (read through `var`) and the
    /// flags; `now` is the timestamp when none is given. The manifest is left empty.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
        now: OffsetDateTime,
    ) -> Result<Context, ContextError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let flag = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        // Each value: the flag, else the first variable set; with where it came from.
        let pick = |value: &Option<String>, flag_name: &str, vars: &[&str]| {
            flag(value).map(|v| (v, flag_name.to_string())).or_else(|| {
                vars.iter()
                    .find_map(|name| var(name).map(|v| (v, name.to_string())))
            })
        };

        let branch_name = var("BRANCH_NAME");
        let job = match flag(&flags.job) {
            Some(job) => job,
            None => {
                let name = var("JOB_NAME").ok_or(ContextError::Missing {
                    what: "job",
                    flag: "--job",
                    var: "JOB_NAME",
                })?;
                match (&branch_name, name.rsplit_once('/')) {
                    // A multibranch project's branch job: the leaf is the branch.
                    (Some(_), Some((parent, _))) => parent.to_string(),
                    _ => name,
                }
            }
        };
        let branch =
            flag(&flags.branch)
                .or_else(|| branch_name.clone())
                .ok_or(ContextError::Missing {
                    what: "branch",
                    flag: "--branch",
                    var: "BRANCH_NAME",
                })?;
        let (build, from) =
            pick(&flags.build, "--build", &["BUILD_NUMBER"]).ok_or(ContextError::Missing {
                what: "build number",
                flag: "--build",
                var: "BUILD_NUMBER",
            })?;
        let build = parse_number(&build).ok_or_else(|| ContextError::Invalid {
            what: "build number",
            value: build.clone(),
            from,
            reason: "not a whole number".into(),
        })?;
        let pr = match pick(&flags.pr, "--pr", &["CHANGE_ID"]) {
            None => None,
            Some((value, from)) => match parse_number(&value) {
                Some(n) => Some(n),
                None if from == "--pr" => {
                    return Err(ContextError::Invalid {
                        what: "pull request",
                        value,
                        from,
                        reason: "not a whole number".into(),
                    })
                }
                None => {
                    tracing::warn!("{from}={value:?} is not a number; pr is left empty");
                    None
                }
            },
        };
        let timestamp = match flag(&flags.timestamp) {
            None => now,
            Some(value) => {
                OffsetDateTime::parse(&value, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| ContextError::Invalid {
                        what: "timestamp",
                        value: value.clone(),
                        from: "--timestamp".into(),
                        reason: format!("not RFC 3339 like 2026-01-31T12:00:00Z ({e})"),
                    })?
            }
        }
        .to_offset(time::UtcOffset::UTC);
        let value = |v: &Option<String>, flag_name: &str, vars: &[&str]| {
            pick(v, flag_name, vars).map(|(v, _)| v)
        };
        Ok(Context {
            schema_version: SCHEMA_VERSION,
            job,
            source_branch: value(&flags.source_branch, "", &["CHANGE_BRANCH", "BRANCH_NAME"])
                .or_else(|| Some(branch.clone())),
            branch,
            build,
            build_url: value(&flags.build_url, "", &["BUILD_URL"]),
            commit: value(&flags.commit, "", &["GIT_COMMIT"]),
            user: value(&flags.user, "", &["CHANGE_AUTHOR"]),
            target_branch: value(&flags.target_branch, "", &["CHANGE_TARGET"]),
            pr,
            timestamp,
            node: value(&flags.node, "", &["NODE_NAME"]),
            files: Vec::new(),
        })
    }

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

/// A whole number made of ASCII digits only (no sign, no spaces).
fn parse_number(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    const PR_BUILD: &[(&str, &str)] = &[
        ("JOB_NAME", "mxnet-validation/unix-cpu/PR-16336"),
        ("BRANCH_NAME", "PR-16336"),
        ("BUILD_NUMBER", "7"),
        ("BUILD_URL", "http://jenkins/job/x/7/"),
        ("GIT_COMMIT", "abc123"),
        ("CHANGE_AUTHOR", "alice"),
        ("CHANGE_BRANCH", "feature/foo"),
        ("CHANGE_TARGET", "master"),
        ("CHANGE_ID", "16336"),
        ("NODE_NAME", "linux-cpu-1"),
    ];

    #[test]
    fn jenkins_pull_request() {
        let c = Context::from_env(env(PR_BUILD), &Overrides::default(), NOW).unwrap();
        assert_eq!(c.job, "mxnet-validation/unix-cpu");
        assert_eq!(c.branch, "PR-16336");
        assert_eq!(c.build, 7);
        assert_eq!(c.build_url.as_deref(), Some("http://jenkins/job/x/7/"));
        assert_eq!(c.commit.as_deref(), Some("abc123"));
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert_eq!(c.source_branch.as_deref(), Some("feature/foo"));
        assert_eq!(c.target_branch.as_deref(), Some("master"));
        assert_eq!(c.pr, Some(16336));
        assert_eq!(c.node.as_deref(), Some("linux-cpu-1"));
        assert_eq!(c.timestamp, NOW);
        assert_eq!(c.schema_version, SCHEMA_VERSION);
    }

    #[test]
    fn jenkins_branch_build() {
        let vars = [
            ("JOB_NAME", "mxnet-validation/unix-cpu/feature%2Ffoo"),
            ("BRANCH_NAME", "feature/foo"),
            ("BUILD_NUMBER", "12"),
            ("CHANGE_ID", ""),
        ];
        let c = Context::from_env(env(&vars), &Overrides::default(), NOW).unwrap();
        assert_eq!(c.job, "mxnet-validation/unix-cpu");
        assert_eq!(c.branch, "feature/foo");
        assert_eq!(c.source_branch.as_deref(), Some("feature/foo"));
        assert_eq!((c.target_branch, c.pr, c.user), (None, None, None));
    }

    #[test]
    fn flags_win() {
        let flags = Overrides {
            job: Some("other/job".into()),
            branch: Some("release/1.x".into()),
            build: Some("99".into()),
            commit: Some("def".into()),
            user: Some("bob".into()),
            pr: Some("5".into()),
            timestamp: Some("2026-01-31T13:00:00+01:00".into()),
            node: Some("n".into()),
            ..Overrides::default()
        };
        let c = Context::from_env(env(PR_BUILD), &flags, NOW).unwrap();
        assert_eq!(c.job, "other/job");
        assert_eq!(c.branch, "release/1.x");
        assert_eq!(c.build, 99);
        assert_eq!(c.commit.as_deref(), Some("def"));
        assert_eq!(c.user.as_deref(), Some("bob"));
        assert_eq!(c.pr, Some(5));
        assert_eq!(c.node.as_deref(), Some("n"));
        assert_eq!(c.timestamp, datetime!(2026-01-31 12:00 UTC));
        assert_eq!(c.timestamp.offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn outside_jenkins() {
        let flags = Overrides {
            job: Some("j".into()),
            branch: Some("main".into()),
            build: Some("1".into()),
            ..Overrides::default()
        };
        let c = Context::from_env(env(&[]), &flags, NOW).unwrap();
        assert_eq!(
            (c.job.as_str(), c.branch.as_str(), c.build),
            ("j", "main", 1)
        );
        assert_eq!(c.source_branch.as_deref(), Some("main"));
        // JOB_NAME is kept whole when BRANCH_NAME is not set.
        let c = Context::from_env(
            env(&[("JOB_NAME", "folder/freestyle"), ("BUILD_NUMBER", "3")]),
            &Overrides {
                branch: Some("main".into()),
                ..Overrides::default()
            },
            NOW,
        )
        .unwrap();
        assert_eq!(c.job, "folder/freestyle");
    }

    #[test]
    fn errors_name_flag_and_variable() {
        let flags = Overrides {
            branch: Some("b".into()),
            ..Overrides::default()
        };
        let msg = |vars: &[(&str, &str)], flags: &Overrides| {
            Context::from_env(env(vars), flags, NOW)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(msg(&[], &flags), "no job: pass --job or set JOB_NAME");
        assert_eq!(
            msg(&[("JOB_NAME", "j")], &flags),
            "no build number: pass --build or set BUILD_NUMBER"
        );
        assert_eq!(
            msg(&[("JOB_NAME", "j")], &Overrides::default()),
            "no branch: pass --branch or set BRANCH_NAME"
        );
        let m = msg(&[("JOB_NAME", "j"), ("BUILD_NUMBER", "-1")], &flags);
        assert!(m.contains("BUILD_NUMBER"), "{m}");
        let bad_time = Overrides {
            timestamp: Some("yesterday".into()),
            ..flags.clone()
        };
        let m = msg(&[("JOB_NAME", "j"), ("BUILD_NUMBER", "1")], &bad_time);
        assert!(m.contains("--timestamp"), "{m}");
        // A non-numeric CHANGE_ID is not fatal; a bad --pr is.
        let vars = [
            ("JOB_NAME", "j"),
            ("BUILD_NUMBER", "1"),
            ("CHANGE_ID", "I8a9"),
        ];
        assert_eq!(Context::from_env(env(&vars), &flags, NOW).unwrap().pr, None);
        let bad_pr = Overrides {
            pr: Some("x".into()),
            ..flags
        };
        assert!(Context::from_env(env(&vars), &bad_pr, NOW).is_err());
    }

    #[test]
    fn json_round_trip() {
        let mut c = Context::from_env(env(PR_BUILD), &Overrides::default(), NOW).unwrap();
        c.files.push(ManifestEntry {
            name: "r.xml".into(),
            bytes: 10,
            sha256: "00".into(),
            tests: Some(3),
            error: None,
        });
        let json = c.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(
            text.contains("\"timestamp\": \"2026-11-28T12:00:00Z\""),
            "{text}"
        );
        assert_eq!(Context::from_json("k", &json).unwrap(), c);
    }
}
