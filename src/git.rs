//! Reads a git checkout by running the `git` binary: what `upload` learns about the commit it
//! built when Jenkins does not say (scripted pipelines set no `GIT_COMMIT`), and the authors of a
//! commit range for `analyze --git-dir`.
//!
//! Git runs non-interactively (`GIT_TERMINAL_PROMPT=0`, no pager, no optional locks). A missing
//! binary, a directory that is not a repository, or any failing command is not an error: it
//! just gives no value.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A git working tree (or bare repository) to ask.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

/// What `git log -1` says about `HEAD`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub commit: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    /// Committer time of HEAD, strict ISO 8601 (`2026-11-28T12:00:00+01:00`).
    pub commit_time: Option<String>,
    /// The checked-out branch, `None` on a detached HEAD.
    pub branch: Option<String>,
    /// `remote.origin.url`.
    pub remote_url: Option<String>,
}

impl Git {
    pub fn new(dir: impl AsRef<Path>) -> Git {
        Git {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    /// Runs `git ARGS` in the directory; its trimmed standard output when it succeeds and says
    /// something.
    pub fn run(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PAGER", "cat")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!text.is_empty()).then_some(text)
    }

    /// HEAD's commit, author, time, branch and origin URL; all `None` outside a repository.
    pub fn head(&self) -> Head {
        let mut head = Head::default();
        // One call for the commit fields, NUL-separated (names may hold any other character).
        if let Some(log) = self.run(&["log", "-1", "--format=%H%x00%an%x00%ae%x00%cI"]) {
            let mut parts = log
                .split('\0')
                .map(|s| Some(s.to_string()).filter(|s| !s.is_empty()));
            head.commit = parts.next().flatten();
            head.author_name = parts.next().flatten();
            head.author_email = parts.next().flatten();
            head.commit_time = parts.next().flatten();
        }
        head.branch = self
            .run(&["rev-parse", "--abbrev-ref", "HEAD"])
            .filter(|b| b != "HEAD");
        head.remote_url = self.run(&["config", "--get", "remote.origin.url"]);
        head
    }

    /// The distinct authors (`Name <email>`) of the commits in `from..to`, oldest first; empty
    /// when either commit is unknown here.
    pub fn authors(&self, from: &str, to: &str) -> Vec<String> {
        let range = format!("{from}..{to}");
        let Some(log) = self.run(&["log", "--reverse", "--format=%an <%ae>", &range, "--"]) else {
            return Vec::new();
        };
        let mut seen = Vec::new();
        for line in log.lines() {
            if !seen.iter().any(|s: &String| s == line) {
                seen.push(line.to_string());
            }
        }
        seen
    }

    /// How many commits `from..to` holds, when both are known here.
    pub fn count(&self, from: &str, to: &str) -> Option<usize> {
        self.run(&["rev-list", "--count", &format!("{from}..{to}"), "--"])?
            .parse()
            .ok()
    }
}
