//! The build context: read from the CI's variables and the git checkout, written to and read
//! from `context.json`.
//!
//! [`Context::from_sources`] reads the variables of one CI ([`ci`]: Jenkins, GitHub Actions,
//! GitLab CI or Buildkite, each in its own file with a table of which variable gives which
//! field), then asks git (through a [`Head`] provider, called once) for what the CI did not say;
//! every value has a flag in [`Overrides`] that wins over both. Empty variables count as unset.
//! [`Context::sources`] records where each value came from: `flag:--commit`,
//! `jenkins:GIT_COMMIT`, `github:GITHUB_SHA` or `git`.
//!
//! Git's values describe the checkout's `HEAD`: the branch when no variable names one, the
//! commit, its author and time (`git log -1`), and `remote.origin.url`. A commit given by flag
//! or variable takes git's author and time only when it is that same commit. Credentials in a
//! repository URL (`https://user:token@host/…`) are never stored.
//!
//! Schema versions: 1 (no `author`, `commit_time`, `repo_url`, `sources`) still reads; this build
//! writes 2. Sources of any CI (`NAME:VARIABLE`) read, also of CIs this build does not know.

pub mod buildkite;
pub mod ci;
pub mod github;
pub mod gitlab;
pub mod jenkins;

pub use ci::Found;
pub use jenkins::job_without_branch;

use crate::git::Head;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;
use time::OffsetDateTime;

/// The `context.json` schema version this build writes (it reads every version up to it).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Error)]
pub enum ContextError {
    /// A required value is missing; the message names the flag and the variables.
    #[error("no {what}: pass {flag}{}", hint(var))]
    Missing {
        what: &'static str,
        flag: &'static str,
        /// The CI variables that would give it (none with `--ci none`).
        var: Option<&'static str>,
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
    /// The CI user behind the change (pull requests only: Jenkins' `CHANGE_AUTHOR`, the pull
    /// request's author on GitHub).
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

/// Where a context value came from. Serialised as `flag:--commit`, `CI:VARIABLE` (`jenkins:GIT_COMMIT`,
/// `github:GITHUB_SHA`) or `git`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Source {
    Flag(String),
    /// A CI's variable (or variables, for a value made of several): the CI's short name
    /// ([`ci::Provider::name`]) and the variable.
    Ci {
        ci: String,
        var: String,
    },
    Git,
}

impl Source {
    /// A CI's variable: `Source::ci("jenkins", "GIT_COMMIT")`.
    pub fn ci(ci: &str, var: &str) -> Source {
        Source::Ci {
            ci: ci.to_string(),
            var: var.to_string(),
        }
    }
}

impl From<Source> for String {
    fn from(s: Source) -> String {
        match s {
            Source::Flag(f) => format!("flag:{f}"),
            Source::Ci { ci, var } => format!("{ci}:{var}"),
            Source::Git => "git".into(),
        }
    }
}

impl TryFrom<String> for Source {
    type Error = String;
    fn try_from(s: String) -> Result<Source, String> {
        if s == "git" {
            return Ok(Source::Git);
        }
        match s.split_once(':') {
            Some(("flag", f)) => Ok(Source::Flag(f.to_string())),
            // Any CI, also one this build does not know: a newer uploader's context still reads.
            Some((ci, var)) if !ci.is_empty() && ci.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                Ok(Source::ci(ci, var))
            }
            _ => Err(format!("unknown source {s:?} (flag:…, CI:VARIABLE or git)")),
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

/// Values given on the command line; each one wins over its CI variable.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The CI whose variables to read (`--ci`: a [`ci::Provider::name`] or `none`); detected
    /// when unset.
    pub ci: Option<String>,
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

    /// The context of the running build from the flags, the CI's variables (read through `var`;
    /// the CI is `flags.ci`, else detected, see [`ci::choose`]) and the checkout (`git` is
    /// called once); `now` is the timestamp when none is given. The manifest is left empty.
    /// Warns once when no commit is known.
    pub fn from_sources(
        var: impl Fn(&str) -> Option<String>,
        git: impl FnOnce() -> Head,
        flags: &Overrides,
        now: OffsetDateTime,
    ) -> Result<Context, ContextError> {
        let (provider, found) = ci::read(&var, flags.ci.as_deref())?;
        let ci_name = provider.map_or(ci::NONE, |p| p.name);
        let names = provider.map(|p| &p.names);
        let mut sources = BTreeMap::new();
        // Each value: the flag, else the CI's variable; with where it came from.
        let pick = |value: &Option<String>, flag_name: &str, found: Option<Found>| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .map(|v| (v, Source::Flag(flag_name.to_string())))
                .or_else(|| found.map(|f| (f.value, Source::ci(ci_name, &f.var))))
        };

        let job = keep(&mut sources, "job", pick(&flags.job, "--job", found.job)).ok_or(
            ContextError::Missing {
                what: "job",
                flag: "--job",
                var: names.map(|n| n.job),
            },
        )?;
        let mut head = Some(git);
        let mut head_cache: Option<Head> = None;
        let mut head = move || -> Head {
            head_cache
                .get_or_insert_with(|| head.take().map(|g| g()).unwrap_or_default())
                .clone()
        };
        let branch = match keep(
            &mut sources,
            "branch",
            pick(&flags.branch, "--branch", found.branch),
        ) {
            Some(branch) => branch,
            None => {
                let branch = head().branch.ok_or(ContextError::Missing {
                    what: "branch",
                    flag: "--branch",
                    var: names.map(|n| n.branch),
                })?;
                sources.insert("branch".into(), Source::Git);
                branch
            }
        };
        let build_found = match found.build {
            Some(Err(e)) if flags.build.as_deref().is_none_or(str::is_empty) => return Err(e),
            Some(Err(_)) | None => None,
            Some(Ok(f)) => Some(f),
        };
        let (build, from) =
            pick(&flags.build, "--build", build_found).ok_or(ContextError::Missing {
                what: "build number",
                flag: "--build",
                var: names.map(|n| n.build),
            })?;
        let build = parse_number(&build).ok_or_else(|| ContextError::Invalid {
            what: "build number",
            value: build.clone(),
            from: source_name(&from),
            reason: "not a whole number".into(),
        })?;
        sources.insert("build".into(), from);
        let pr = match pick(&flags.pr, "--pr", found.pr) {
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
        let timestamp = match flags.timestamp.as_deref().filter(|t| !t.is_empty()) {
            None => now,
            Some(value) => {
                OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| ContextError::Invalid {
                        what: "timestamp",
                        value: value.to_string(),
                        from: "--timestamp".into(),
                        reason: format!("not RFC 3339 like 2026-01-31T12:00:00Z ({e})"),
                    })?
            }
        }
        .to_offset(time::UtcOffset::UTC);
        let mut value = |field: &str, v: &Option<String>, flag_name: &str, found: Option<Found>| {
            keep(&mut sources, field, pick(v, flag_name, found))
        };
        let build_url = value(
            "build_url",
            &flags.build_url,
            "--build-url",
            found.build_url,
        );
        let user = value("user", &flags.user, "--user", found.user);
        let target_branch = value(
            "target_branch",
            &flags.target_branch,
            "--target-branch",
            found.target_branch,
        );
        let node = value("node", &flags.node, "--node", found.node);
        let source_branch = value(
            "source_branch",
            &flags.source_branch,
            "--source-branch",
            found.source_branch,
        );
        let mut repo_url = value("repo_url", &flags.repo_url, "--repo-url", found.repo_url);
        let mut commit = value("commit", &flags.commit, "--commit", found.commit);
        let mut author = value("author", &flags.author, "--author", found.author)
            .and_then(|a| Author::parse(&a));
        if author.is_none() {
            sources.remove("author");
        }
        let mut commit_time = None;
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
            let set = names
                .map(|n| format!("set {}, ", n.commit))
                .unwrap_or_default();
            tracing::warn!(
                "no commit for this build: {set}pass --commit, or upload from inside the git \
                 checkout (--working-dir); reports will name builds, not commits"
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

/// The value picked for `field`, its source recorded.
fn keep(
    sources: &mut BTreeMap<String, Source>,
    field: &str,
    picked: Option<(String, Source)>,
) -> Option<String> {
    picked.map(|(value, from)| {
        sources.insert(field.to_string(), from);
        value
    })
}

/// The end of a missing-value message: the variables, or why none are read.
fn hint(var: &Option<&'static str>) -> String {
    match var {
        Some(var) => format!(" or set {var}"),
        None => " (--ci none reads no CI variables)".into(),
    }
}

/// How an error names where a value came from.
fn source_name(s: &Source) -> String {
    match s {
        Source::Flag(f) | Source::Ci { var: f, .. } => f.clone(),
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
pub(crate) mod testing;
#[cfg(test)]
mod tests;
