//! Who and what to blame: the commit range of a regression (last good build to first bad
//! build), links to it on GitHub, GitLab or Bitbucket, and regressions grouped into causes.
//!
//! A regression's culprit lies in the commits after the last good build's commit, up to and
//! including the first bad build's commit. Regressions whose first bad build has the same commit
//! — in one job or several — are one cause; its range is the narrowest of theirs (the one whose
//! last good build is latest).

use super::model::{BuildRef, Cause, CommitRange, Regression};
use crate::context::browsable_repo_url;

/// Which web site's URL forms a repository uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
    Bitbucket,
}

impl Forge {
    /// Told by the host name (`github.com`, `gitlab.example.org`, `bitbucket.org`, …).
    pub fn of(url: &str) -> Option<Forge> {
        let host = url
            .split("://")
            .nth(1)?
            .split('/')
            .next()?
            .to_ascii_lowercase();
        if host.contains("github") {
            Some(Forge::GitHub)
        } else if host.contains("gitlab") {
            Some(Forge::GitLab)
        } else if host.contains("bitbucket") {
            Some(Forge::Bitbucket)
        } else {
            None
        }
    }

    pub fn commit_url(self, repo: &str, commit: &str) -> String {
        match self {
            Forge::GitHub => format!("{repo}/commit/{commit}"),
            Forge::GitLab => format!("{repo}/-/commit/{commit}"),
            Forge::Bitbucket => format!("{repo}/commits/{commit}"),
        }
    }

    pub fn compare_url(self, repo: &str, from: &str, to: &str) -> String {
        match self {
            Forge::GitHub => format!("{repo}/compare/{from}...{to}"),
            Forge::GitLab => format!("{repo}/-/compare/{from}...{to}"),
            // Bitbucket Cloud lists the commits in `to` that are not in `from`.
            Forge::Bitbucket => format!("{repo}/branches/compare/{to}%0D{from}"),
        }
    }
}

fn short(c: &str) -> String {
    c.chars().take(10).collect()
}

/// Only hex hashes go into URLs and ranges (a context could hold anything).
fn is_hash(c: &str) -> bool {
    !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Making and linking a range (the type is the report model's, in `model`).
impl CommitRange {
    /// The range between two builds; `repo_url` overrides the repository the builds name.
    pub fn new(last_good: Option<BuildRef>, first_bad: BuildRef, repo_url: Option<&str>) -> Self {
        let mut r = CommitRange {
            authors: first_bad.author.iter().cloned().collect(),
            last_good,
            first_bad,
            range: None,
            repo_url: None,
            compare_url: None,
            commit_url: None,
            commits: None,
        };
        r.link(repo_url);
        r
    }

    /// Fills the range text and links, for `repo_url` or else the first bad build's repository.
    pub fn link(&mut self, repo_url: Option<&str>) {
        let repo = repo_url
            .map(browsable_repo_url)
            .or_else(|| self.first_bad.repo_url.clone());
        let bad = self.first_bad.commit.clone().filter(|c| is_hash(c));
        let good = self
            .last_good
            .as_ref()
            .and_then(|b| b.commit.clone())
            .filter(|c| is_hash(c) && Some(c) != bad.as_ref());
        self.range = match (&good, &bad) {
            (Some(g), Some(b)) => Some(format!("{}..{}", short(g), short(b))),
            (None, Some(b)) => Some(short(b)),
            _ => None,
        };
        let forge = repo.as_deref().and_then(Forge::of);
        self.commit_url = match (forge, &repo, &bad) {
            (Some(f), Some(repo), Some(b)) => Some(f.commit_url(repo, b)),
            _ => None,
        };
        self.compare_url = match (forge, &repo, &good, &bad) {
            (Some(f), Some(repo), Some(g), Some(b)) => Some(f.compare_url(repo, g, b)),
            _ => None,
        };
        self.repo_url = repo;
    }

    /// Adds the range's authors and commit count from git history.
    pub fn add_history(&mut self, git: &crate::git::Git) {
        let (Some(good), Some(bad)) = (
            self.last_good.as_ref().and_then(|b| b.commit.as_deref()),
            self.first_bad.commit.as_deref(),
        ) else {
            return;
        };
        if !is_hash(good) || !is_hash(bad) {
            return;
        }
        self.commits = git.count(good, bad);
        for a in git.authors(good, bad) {
            let name = a.split(" <").next().unwrap_or(&a).to_string();
            if !self.authors.iter().any(|x| *x == a || *x == name) {
                self.authors.push(a);
            }
        }
    }

    /// The last good build's timestamp, for choosing the narrowest range.
    fn good_since(&self) -> &str {
        self.last_good.as_ref().map_or("", |b| b.timestamp.as_str())
    }
}

/// Groups ranked regressions into causes by first bad commit, biggest first.
pub fn causes(regressions: &[Regression]) -> Vec<Cause> {
    let mut out: Vec<Cause> = Vec::new();
    for r in regressions {
        let commit = r.range.first_bad.commit.clone();
        let job = r.job.clone();
        let same = out.iter_mut().find(|c| match (&c.commit, &commit) {
            (Some(a), Some(b)) => a == b,
            // Without a commit, only the same build of the same job is the same cause.
            (None, None) => {
                c.range.first_bad.build == r.range.first_bad.build
                    && c.range.first_bad.branch == r.range.first_bad.branch
                    && c.jobs == [job.clone()]
            }
            _ => false,
        });
        match same {
            Some(c) => {
                if !c.jobs.contains(&job) {
                    c.jobs.push(job);
                }
                c.regressions.push(r.rank);
                c.seconds_added += r.seconds_added;
                if r.range.good_since() > c.range.good_since() {
                    let authors = std::mem::take(&mut c.range.authors);
                    c.range = r.range.clone();
                    for a in authors {
                        if !c.range.authors.contains(&a) {
                            c.range.authors.push(a);
                        }
                    }
                }
            }
            None => out.push(Cause {
                rank: 0,
                commit,
                range: r.range.clone(),
                jobs: vec![job],
                regressions: vec![r.rank],
                seconds_added: r.seconds_added,
            }),
        }
    }
    out.sort_by(|a, b| b.seconds_added.total_cmp(&a.seconds_added));
    for (i, c) in out.iter_mut().enumerate() {
        c.rank = i + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(n: u64, commit: &str, ts: &str) -> BuildRef {
        BuildRef {
            build: n,
            branch: "master".into(),
            timestamp: ts.into(),
            commit: Some(commit.into()),
            pr: None,
            author: Some(format!("author{n}")),
            build_url: None,
            repo_url: Some("https://github.com/o/r".into()),
        }
    }

    #[test]
    fn links_for_each_forge() {
        let good = build(1, "aaaaaaaaaaaa", "t1");
        let bad = build(2, "bbbbbbbbbbbb", "t2");
        let cases = [
            (
                None,
                "https://github.com/o/r/compare/aaaaaaaaaaaa...bbbbbbbbbbbb",
                "https://github.com/o/r/commit/bbbbbbbbbbbb",
            ),
            (
                Some("git@gitlab.com:g/p.git"),
                "https://gitlab.com/g/p/-/compare/aaaaaaaaaaaa...bbbbbbbbbbbb",
                "https://gitlab.com/g/p/-/commit/bbbbbbbbbbbb",
            ),
            (
                Some("ssh://git@bitbucket.org/t/r.git"),
                "https://bitbucket.org/t/r/branches/compare/bbbbbbbbbbbb%0Daaaaaaaaaaaa",
                "https://bitbucket.org/t/r/commits/bbbbbbbbbbbb",
            ),
        ];
        for (repo, compare, commit) in cases {
            let r = CommitRange::new(Some(good.clone()), bad.clone(), repo);
            assert_eq!(r.compare_url.as_deref(), Some(compare), "{repo:?}");
            assert_eq!(r.commit_url.as_deref(), Some(commit), "{repo:?}");
            assert_eq!(r.range.as_deref(), Some("aaaaaaaaaa..bbbbbbbbbb"));
            assert_eq!(r.authors, ["author2"]);
        }
        // Unknown host: no links; a non-hash commit: no range.
        let r = CommitRange::new(Some(good.clone()), bad.clone(), Some("https://git.corp/x"));
        assert_eq!((r.compare_url, r.commit_url), (None, None));
        let mut odd = bad.clone();
        odd.commit = Some("not a hash)".into());
        let r = CommitRange::new(Some(good), odd, None);
        assert_eq!((r.range, r.commit_url), (None, None));
    }
}
