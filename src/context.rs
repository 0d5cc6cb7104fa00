//! The build context: read from Jenkins' environment and the git checkout, written to and read
//! from `context.json`.
//!
//! [`Context::from_sources`] reads Jenkins' variables, then asks git (through a [`Head`]
//! provider, called once) for what Jenkins did not say; every value has a flag in [`Overrides`] that
//! wins over both. Empty variables count as unset. [`Context::sources`] records where each
//! optional value came from: `flag:--commit`, `jenkins:GIT_COMMIT` or `git`.
//!
//! | field           | flag              | Jenkins variable                                      | git (in `--working-dir`) |
//! |-----------------|-------------------|-------------------------------------------------------|-----|
//! | `job`           | `--job`           | `JOB_NAME`, without its last segment when `BRANCH_NAME` is set | |
//! | `branch` (raw)  | `--branch`        | `BRANCH_NAME`, else `GIT_BRANCH` without `origin/`    | `rev-parse --abbrev-ref HEAD` |
//! | `build`         | `--build`         | `BUILD_NUMBER`                                        | |
//! | `build_url`     | `--build-url`     | `BUILD_URL`                                           | |
//! | `commit`        | `--commit`        | `GIT_COMMIT`                                          | `log -1` (`%H`) |
//! | `commit_time`   |                   |                                                       | `log -1` (`%cI`, stored in UTC) |
//! | `author`        | `--author`        | `CHANGE_AUTHOR_DISPLAY_NAME`, `CHANGE_AUTHOR_EMAIL`   | `log -1` (`%an`, `%ae`) |
//! | `user`          | `--user`          | `CHANGE_AUTHOR` (pull requests only)                  | |
//! | `repo_url`      | `--repo-url`      | `GIT_URL`, else `GIT_URL_1`                           | `remote.origin.url` |
//! | `source_branch` | `--source-branch` | `CHANGE_BRANCH`, else `BRANCH_NAME`, else the branch  | |
//! | `target_branch` | `--target-branch` | `CHANGE_TARGET`                                       | |
//! | `pr`            | `--pr`            | `CHANGE_ID` (a number; anything else is ignored with a warning) | |
//! | `timestamp`     | `--timestamp`     | now (RFC 3339, stored in UTC)                          | |
//! | `node`          | `--node`          | `NODE_NAME`                                           | |
//!
//! Git's values describe the checkout's `HEAD`; a commit given by flag or variable takes git's
//! author and time only when it is that same commit. Credentials in a repository URL
//! (`https://user:token@host/…`) are never stored.
//!
//! Schema versions: 1 (no `author`, `commit_time`, `repo_url`, `sources`) still reads; this build
//! writes 2.

use crate::git::Head;
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::collections::BTreeMap;
use thiserror::Error;
use time::OffsetDateTime;

/// The `context.json` schema version this build writes (it reads every version up to it).
pub const SCHEMA_VERSION: u32 = 2;

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
    /// When the commit was made (committer time), RFC 3339 UTC (schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_time: Option<String>,
    /// The commit's author (schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    /// The Jenkins user behind the change (`CHANGE_AUTHOR`, pull requests only).
    #[serde(default)]
    pub user: Option<String>,
    /// The repository, as a browsable `https://` URL when it could be told (schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
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
    /// Where each value came from, by field name (schema 2).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, Source>,
    /// The result files uploaded with this build.
    #[serde(default)]
    pub files: Vec<ManifestEntry>,
}

/// A commit's author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
}

impl Author {
    /// `Name <email>` or `Name`; `None` when empty.
    pub fn parse(text: &str) -> Option<Author> {
        let text = text.trim();
        let (name, email) = match text.strip_suffix('>').and_then(|t| t.rsplit_once('<')) {
            Some((name, email)) => (name.trim(), Some(email.trim().to_string())),
            None => (text, None),
        };
        (!name.is_empty() || email.is_some()).then(|| Author {
            name: name.to_string(),
            email: email.filter(|e| !e.is_empty()),
        })
    }
}

impl std::fmt::Display for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.email {
            Some(e) => write!(f, "{} <{e}>", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Where a context value came from. Serialised as `flag:--commit`, `jenkins:GIT_COMMIT` or `git`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Source {
    Flag(String),
    Jenkins(String),
    Git,
}

impl From<Source> for String {
    fn from(s: Source) -> String {
        match s {
            Source::Flag(f) => format!("flag:{f}"),
            Source::Jenkins(v) => format!("jenkins:{v}"),
            Source::Git => "git".into(),
        }
    }
}

impl TryFrom<String> for Source {
    type Error = String;
    fn try_from(s: String) -> Result<Source, String> {
        if s == "git" {
            Ok(Source::Git)
        } else if let Some(f) = s.strip_prefix("flag:") {
            Ok(Source::Flag(f.to_string()))
        } else if let Some(v) = s.strip_prefix("jenkins:") {
            Ok(Source::Jenkins(v.to_string()))
        } else {
            Err(format!("unknown source {s:?} (flag:…, jenkins:… or git)"))
        }
    }
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
    /// `Name <email>`.
    pub author: Option<String>,
    pub user: Option<String>,
    pub repo_url: Option<String>,
    pub source_branch: Option<String>,
    pub target_branch: Option<String>,
    pub pr: Option<String>,
    pub timestamp: Option<String>,
    pub node: Option<String>,
}

/// Jenkins' job name without the branch leaf: a multibranch project's branch job
/// (`mxnet-validation/unix-cpu/PR-16336`, with `BRANCH_NAME` set) is `mxnet-validation/unix-cpu`.
pub fn job_without_branch(job_name: &str, branch_name_set: bool) -> String {
    match job_name.rsplit_once('/') {
        Some((parent, _)) if branch_name_set => parent.to_string(),
        _ => job_name.to_string(),
    }
}

/// A repository URL as a browsable `https://host/org/repo` when it has one of the common forms
/// (`https://…[.git]`, `ssh://git@host[:port]/org/repo.git`, `git@host:org/repo.git`); any
/// user name or password is dropped. Other forms are kept as given, without credentials.
pub fn browsable_repo_url(url: &str) -> String {
    let url = url.trim();
    let strip = |path: &str| {
        path.trim_end_matches('/')
            .trim_end_matches(".git")
            .trim_matches('/')
            .to_string()
    };
    let without_user = |authority: &str| {
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host)
            .to_string()
    };
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = without_user(authority);
        return match scheme {
            "ssh" | "git" | "git+ssh" | "ssh+git" => {
                // A port on an ssh URL is the ssh port, not a web one.
                let host = host.split(':').next().unwrap_or(&host);
                format!("https://{host}/{}", strip(path))
            }
            "http" | "https" => format!("{scheme}://{host}/{}", strip(path)),
            _ => format!("{scheme}://{host}/{path}"),
        };
    }
    // scp-like: [user@]host:org/repo.git
    if let Some((authority, path)) = url.split_once(':') {
        if !authority.contains('/') && !path.starts_with('/') && !authority.is_empty() {
            return format!("https://{}/{}", without_user(authority), strip(path));
        }
    }
    url.to_string()
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
            commit_time: None,
            author: None,
            user: None,
            repo_url: None,
            source_branch: None,
            target_branch: None,
            pr: None,
            timestamp,
            node: None,
            sources: BTreeMap::new(),
            files: Vec::new(),
        }
    }

    /// [`Context::from_sources`] without git.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
        now: OffsetDateTime,
    ) -> Result<Context, ContextError> {
        Context::from_sources(var, Head::default, flags, now)
    }

    /// The context of the running build from the flags, Jenkins' variables (read through `var`)
    /// and the checkout (`git` is called once); `now`
    /// is the timestamp when none is given. The manifest is left empty. Warns once when no
    /// commit is known.
    pub fn from_sources(
        var: impl Fn(&str) -> Option<String>,
        git: impl FnOnce() -> Head,
        flags: &Overrides,
        now: OffsetDateTime,
    ) -> Result<Context, ContextError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let flag = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let head = OnceCell::new();
        let git = std::cell::Cell::new(Some(git));
        let head = || head.get_or_init(|| git.take().map(|g| g()).unwrap_or_default());
        let mut sources = BTreeMap::new();
        // Each value: the flag, else the first variable set; with where it came from.
        let pick = |value: &Option<String>, flag_name: &str, vars: &[&str]| {
            flag(value)
                .map(|v| (v, Source::Flag(flag_name.to_string())))
                .or_else(|| {
                    vars.iter()
                        .find_map(|name| var(name).map(|v| (v, Source::Jenkins(name.to_string()))))
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
                job_without_branch(&name, branch_name.is_some())
            }
        };
        let branch = pick(&flags.branch, "--branch", &["BRANCH_NAME"])
            .or_else(|| {
                // Non-multibranch jobs: the git plugin's GIT_BRANCH is `origin/master`.
                var("GIT_BRANCH").map(|b| {
                    let b = b.strip_prefix("refs/heads/").unwrap_or(&b);
                    let b = b.strip_prefix("origin/").unwrap_or(b);
                    (b.to_string(), Source::Jenkins("GIT_BRANCH".into()))
                })
            })
            .or_else(|| head().branch.clone().map(|b| (b, Source::Git)));
        let (branch, from) = branch.ok_or(ContextError::Missing {
            what: "branch",
            flag: "--branch",
            var: "BRANCH_NAME (or GIT_BRANCH, or run inside a git checkout on a branch)",
        })?;
        sources.insert("branch".to_string(), from);
        let (build, from) =
            pick(&flags.build, "--build", &["BUILD_NUMBER"]).ok_or(ContextError::Missing {
                what: "build number",
                flag: "--build",
                var: "BUILD_NUMBER",
            })?;
        let build = parse_number(&build).ok_or_else(|| ContextError::Invalid {
            what: "build number",
            value: build.clone(),
            from: source_name(&from),
            reason: "not a whole number".into(),
        })?;
        let pr = match pick(&flags.pr, "--pr", &["CHANGE_ID"]) {
            None => None,
            Some((value, from)) => match parse_number(&value) {
                Some(n) => {
                    sources.insert("pr".into(), from);
                    Some(n)
                }
                None if matches!(from, Source::Flag(_)) => {
                    return Err(ContextError::Invalid {
                        what: "pull request",
                        value,
                        from: source_name(&from),
                        reason: "not a whole number".into(),
                    })
                }
                None => {
                    let from = source_name(&from);
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
        let mut value = |field: &str, v: &Option<String>, flag_name: &str, vars: &[&str]| {
            pick(v, flag_name, vars).map(|(v, from)| {
                sources.insert(field.to_string(), from);
                v
            })
        };
        let build_url = value("build_url", &flags.build_url, "--build-url", &["BUILD_URL"]);
        let user = value("user", &flags.user, "--user", &["CHANGE_AUTHOR"]);
        let target_branch = value(
            "target_branch",
            &flags.target_branch,
            "--target-branch",
            &["CHANGE_TARGET"],
        );
        let node = value("node", &flags.node, "--node", &["NODE_NAME"]);
        let source_branch = value(
            "source_branch",
            &flags.source_branch,
            "--source-branch",
            &["CHANGE_BRANCH", "BRANCH_NAME"],
        );
        let repo_url = value(
            "repo_url",
            &flags.repo_url,
            "--repo-url",
            &["GIT_URL", "GIT_URL_1"],
        );
        let mut commit = value("commit", &flags.commit, "--commit", &["GIT_COMMIT"]);
        let author_flag = flag(&flags.author).and_then(|a| Author::parse(&a));
        let author_vars = var("CHANGE_AUTHOR_DISPLAY_NAME")
            .map(|name| (name, var("CHANGE_AUTHOR_EMAIL")))
            .or_else(|| var("CHANGE_AUTHOR_EMAIL").map(|e| (String::new(), Some(e))))
            .map(|(name, email)| Author { name, email });
        let mut author = match (author_flag, author_vars) {
            (Some(a), _) => {
                sources.insert("author".into(), Source::Flag("--author".into()));
                Some(a)
            }
            (None, Some(a)) => {
                sources.insert(
                    "author".into(),
                    Source::Jenkins("CHANGE_AUTHOR_DISPLAY_NAME".into()),
                );
                Some(a)
            }
            (None, None) => None,
        };
        let mut commit_time = None;
        let mut repo_url = repo_url;
        // Git fills what is still missing (always the commit time), for the commit it has
        // checked out.
        {
            let h = head();
            if commit.is_none() && h.commit.is_some() {
                commit = h.commit.clone();
                sources.insert("commit".into(), Source::Git);
            }
            if h.commit.is_some() && h.commit == commit {
                if author.is_none() {
                    if let Some(name) = &h.author_name {
                        author = Some(Author {
                            name: name.clone(),
                            email: h.author_email.clone(),
                        });
                        sources.insert("author".into(), Source::Git);
                    }
                }
                commit_time = h.commit_time.as_deref().and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                        .and_then(|t| {
                            t.to_offset(time::UtcOffset::UTC)
                                .format(&time::format_description::well_known::Rfc3339)
                                .ok()
                        })
                });
                if commit_time.is_some() {
                    sources.insert("commit_time".into(), Source::Git);
                }
            }
            if repo_url.is_none() && h.remote_url.is_some() {
                repo_url = h.remote_url.clone();
                sources.insert("repo_url".into(), Source::Git);
            }
        }
        if commit.is_none() {
            tracing::warn!(
                "no commit for this build: set GIT_COMMIT, pass --commit, or upload from inside \
                 the git checkout (--working-dir); reports will name builds, not commits"
            );
        }
        Ok(Context {
            schema_version: SCHEMA_VERSION,
            job,
            source_branch: source_branch.or_else(|| Some(branch.clone())),
            branch,
            build,
            build_url,
            commit,
            commit_time,
            author,
            user,
            repo_url: repo_url.map(|u| browsable_repo_url(&u)),
            target_branch,
            pr,
            timestamp,
            node,
            sources,
            files: Vec::new(),
        })
    }

    /// Who to name for this build's change: the Jenkins user (pull requests), else the commit's
    /// author name.
    pub fn who(&self) -> Option<String> {
        self.user
            .clone()
            .or_else(|| {
                self.author
                    .as_ref()
                    .map(|a| a.name.clone())
                    .filter(|n| !n.is_empty())
            })
            .or_else(|| self.author.as_ref().and_then(|a| a.email.clone()))
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

/// How an error names where a value came from.
fn source_name(s: &Source) -> String {
    match s {
        Source::Flag(f) | Source::Jenkins(f) => f.clone(),
        Source::Git => "git".into(),
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
        assert!(msg(&[("JOB_NAME", "j")], &Overrides::default())
            .starts_with("no branch: pass --branch or set BRANCH_NAME (or GIT_BRANCH"));
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

    fn head() -> Head {
        Head {
            commit: Some("c0ffee".into()),
            author_name: Some("Dana Git".into()),
            author_email: Some("dana@example.com".into()),
            commit_time: Some("2026-11-28T13:00:00+01:00".into()),
            branch: Some("main".into()),
            remote_url: Some("https://ci:s3cret@github.com/org/repo.git".into()),
        }
    }

    #[test]
    fn git_fills_what_jenkins_does_not_say() {
        // A scripted pipeline: no GIT_COMMIT, no BRANCH_NAME, no CHANGE_AUTHOR.
        let vars = [("JOB_NAME", "folder/job"), ("BUILD_NUMBER", "3")];
        let c = Context::from_sources(env(&vars), head, &Overrides::default(), NOW).unwrap();
        assert_eq!(c.job, "folder/job");
        assert_eq!(c.branch, "main");
        assert_eq!(c.commit.as_deref(), Some("c0ffee"));
        let author = c.author.clone().unwrap();
        assert_eq!(author.to_string(), "Dana Git <dana@example.com>");
        assert_eq!(c.commit_time.as_deref(), Some("2026-11-28T12:00:00Z"));
        assert_eq!(c.repo_url.as_deref(), Some("https://github.com/org/repo"));
        assert_eq!(c.user, None);
        assert_eq!(c.who().as_deref(), Some("Dana Git"));
        let from = |f: &str| c.sources.get(f).cloned().map(String::from);
        for field in ["branch", "commit", "author", "commit_time", "repo_url"] {
            assert_eq!(from(field).as_deref(), Some("git"), "{field}");
        }
        assert_eq!(from("build").as_deref(), None);

        // GIT_BRANCH (non-multibranch) wins over git; Jenkins and flags win over git.
        let vars = [
            ("JOB_NAME", "folder/job"),
            ("BUILD_NUMBER", "3"),
            ("GIT_BRANCH", "origin/release/1.x"),
            ("GIT_COMMIT", "c0ffee"),
            ("GIT_URL", "git@gitlab.com:grp/sub/proj.git"),
        ];
        let flags = Overrides {
            author: Some("Flag Person <f@example.com>".into()),
            ..Overrides::default()
        };
        let c = Context::from_sources(env(&vars), head, &flags, NOW).unwrap();
        assert_eq!(c.branch, "release/1.x");
        assert_eq!(
            c.repo_url.as_deref(),
            Some("https://gitlab.com/grp/sub/proj")
        );
        assert_eq!(c.author.unwrap().name, "Flag Person");
        // The same commit as HEAD: git's time applies.
        assert_eq!(c.commit_time.as_deref(), Some("2026-11-28T12:00:00Z"));
        let from = |f: &str| c.sources.get(f).cloned().map(String::from);
        assert_eq!(from("branch").as_deref(), Some("jenkins:GIT_BRANCH"));
        assert_eq!(from("commit").as_deref(), Some("jenkins:GIT_COMMIT"));
        assert_eq!(from("author").as_deref(), Some("flag:--author"));
        assert_eq!(from("repo_url").as_deref(), Some("jenkins:GIT_URL"));

        // A commit other than HEAD does not take HEAD's author or time.
        let vars = [
            ("JOB_NAME", "j"),
            ("BUILD_NUMBER", "3"),
            ("BRANCH_NAME", "master"),
            ("GIT_COMMIT", "other"),
        ];
        let c = Context::from_sources(env(&vars), head, &Overrides::default(), NOW).unwrap();
        assert_eq!((c.author, c.commit_time), (None, None));
    }

    #[test]
    fn jenkins_wins_over_git_and_no_git_is_no_error() {
        let vars = [
            ("JOB_NAME", "j"),
            ("BUILD_NUMBER", "3"),
            ("BRANCH_NAME", "master"),
            ("GIT_COMMIT", "abc"),
            ("GIT_URL", "https://github.com/o/r"),
            ("CHANGE_AUTHOR_DISPLAY_NAME", "Al"),
        ];
        let c = Context::from_sources(env(&vars), head, &Overrides::default(), NOW).unwrap();
        assert_eq!(c.author.unwrap().name, "Al");
        assert_eq!(
            (c.branch.as_str(), c.commit.as_deref()),
            ("master", Some("abc"))
        );
        assert_eq!(c.repo_url.as_deref(), Some("https://github.com/o/r"));
        // Without git: nothing, and no error.
        let c = Context::from_env(env(&vars[..4]), &Overrides::default(), NOW).unwrap();
        assert_eq!((c.author, c.repo_url, c.commit_time), (None, None, None));
    }

    #[test]
    fn repository_urls_become_browsable_without_credentials() {
        let cases = [
            (
                "git@github.com:apache/mxnet.git",
                "https://github.com/apache/mxnet",
            ),
            (
                "https://github.com/apache/mxnet.git",
                "https://github.com/apache/mxnet",
            ),
            (
                "https://tok:x-oauth@github.com/apache/mxnet",
                "https://github.com/apache/mxnet",
            ),
            (
                "ssh://git@gitlab.example.com:2222/grp/proj.git",
                "https://gitlab.example.com/grp/proj",
            ),
            (
                "git@bitbucket.org:team/repo.git",
                "https://bitbucket.org/team/repo",
            ),
            ("http://git.internal/a/b/", "http://git.internal/a/b"),
            ("/srv/git/repo.git", "/srv/git/repo.git"),
        ];
        for (url, want) in cases {
            assert_eq!(browsable_repo_url(url), want, "{url}");
        }
        let cases = [
            (
                "Ann Smith <ann@x.org>",
                Some(("Ann Smith", Some("ann@x.org"))),
            ),
            ("ann", Some(("ann", None))),
            ("  ", None),
        ];
        for (text, want) in cases {
            let got = Author::parse(text);
            assert_eq!(
                got.as_ref().map(|a| (a.name.as_str(), a.email.as_deref())),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn schema_1_contexts_still_read() {
        let v1 = br#"{"schema_version":1,"job":"j","branch":"master","build":4,
            "commit":"abc","user":"bob","timestamp":"2026-11-01T10:00:00Z","files":[]}"#;
        let c = Context::from_json("k", v1).unwrap();
        assert_eq!((c.schema_version, c.build), (1, 4));
        assert_eq!((&c.author, &c.repo_url, c.sources.len()), (&None, &None, 0));
        assert_eq!(c.who().as_deref(), Some("bob"));
        let mut v2 = Context::new("j", "m", 1, NOW);
        v2.sources.insert("commit".into(), Source::Git);
        v2.sources
            .insert("user".into(), Source::Jenkins("CHANGE_AUTHOR".into()));
        v2.author = Author::parse("A <a@b>");
        let json = String::from_utf8(v2.to_json()).unwrap();
        assert!(json.contains("\"commit\": \"git\""), "{json}");
        assert!(
            json.contains("\"user\": \"jenkins:CHANGE_AUTHOR\""),
            "{json}"
        );
        assert_eq!(Context::from_json("k", json.as_bytes()).unwrap(), v2);
    }
}
