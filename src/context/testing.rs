//! Test helpers shared by each CI's tests: its variables in, `context.json` checked field by
//! field, with where each value came from.
use super::{Context, Overrides};
use time::macros::datetime;
use time::OffsetDateTime;

pub const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

pub fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// A CI's fixture: the variables every job has, plus those of one kind of build.
pub fn with<'a>(
    common: &[(&'a str, &'a str)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    common.iter().chain(extra).copied().collect()
}

/// Sets one variable of a fixture (it must be there).
pub fn set<'a>(vars: &mut [(&'a str, &'a str)], name: &str, value: &'a str) {
    let slot = vars
        .iter_mut()
        .find(|(k, _)| *k == name)
        .expect("a variable of the fixture");
    slot.1 = value;
}

/// Each field's value and source (`""`: no source recorded).
#[derive(Debug, Default)]
pub struct Want<'a> {
    pub job: (&'a str, &'a str),
    pub branch: (&'a str, &'a str),
    pub build: (u64, &'a str),
    pub build_url: Option<(&'a str, &'a str)>,
    pub commit: Option<(&'a str, &'a str)>,
    pub author: Option<(&'a str, &'a str)>,
    pub user: Option<(&'a str, &'a str)>,
    pub repo_url: Option<(&'a str, &'a str)>,
    pub source_branch: Option<(&'a str, &'a str)>,
    pub target_branch: Option<(&'a str, &'a str)>,
    pub pr: Option<(u64, &'a str)>,
    pub node: Option<(&'a str, &'a str)>,
}

/// Reads `vars` (no flags, no git) and checks every field of the context and its JSON.
pub fn check(vars: &[(&str, &str)], want: &Want) -> Context {
    let c = Context::from_env(env(vars), &Overrides::default(), NOW).unwrap();
    // Through context.json and back, as the aggregator reads it.
    let c = Context::from_json("context.json", &c.to_json()).unwrap();
    let source = |field: &str| {
        c.sources
            .get(field)
            .cloned()
            .map(String::from)
            .unwrap_or_default()
    };
    let text = |field: &str, got: Option<String>, want: Option<(&str, &str)>| {
        let got = got.map(|v| (v, source(field)));
        let want = want.map(|(v, s)| (v.to_string(), s.to_string()));
        assert_eq!(got, want, "{field}");
    };
    text("job", Some(c.job.clone()), Some(want.job));
    text("branch", Some(c.branch.clone()), Some(want.branch));
    assert_eq!((c.build, source("build").as_str()), want.build, "build");
    text("build_url", c.build_url.clone(), want.build_url);
    text("commit", c.commit.clone(), want.commit);
    text(
        "author",
        c.author.as_ref().map(|a| a.to_string()),
        want.author,
    );
    text("user", c.user.clone(), want.user);
    text("repo_url", c.repo_url.clone(), want.repo_url);
    text("source_branch", c.source_branch.clone(), want.source_branch);
    text("target_branch", c.target_branch.clone(), want.target_branch);
    let pr = c.pr.map(|n| (n, source("pr")));
    assert_eq!(pr, want.pr.map(|(n, s)| (n, s.to_string())), "pr");
    text("node", c.node.clone(), want.node);
    assert_eq!(c.timestamp, NOW);
    assert_eq!(c.schema_version, super::SCHEMA_VERSION);
    c
}
