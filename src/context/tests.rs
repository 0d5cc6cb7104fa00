//! The common model: flags over CI variables over git, errors, context.json.
use super::*;
use time::macros::datetime;

use super::testing::{env, NOW};

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
fn outside_any_ci() {
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
    let none = Overrides {
        ci: Some("none".into()),
        ..flags.clone()
    };
    assert_eq!(
        msg(&[("JOB_NAME", "j")], &none),
        "no job: pass --job (--ci none reads no CI variables)"
    );
    let github = Overrides {
        ci: Some("github".into()),
        ..flags.clone()
    };
    assert_eq!(
        msg(&[], &github),
        "no job: pass --job or set GITHUB_REPOSITORY, GITHUB_WORKFLOW and GITHUB_JOB"
    );
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
    assert_eq!(from("build").as_deref(), Some("jenkins:BUILD_NUMBER"));
    assert_eq!(from("job").as_deref(), Some("jenkins:JOB_NAME"));

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
    v2.sources
        .insert("user".into(), Source::ci("jenkins", "CHANGE_AUTHOR"));
    v2.sources
        .insert("commit".into(), Source::ci("github", "GITHUB_EVENT_PATH"));
    v2.author = Author::parse("A <a@b>");
    let json = String::from_utf8(v2.to_json()).unwrap();
    assert!(
        json.contains("\"commit\": \"github:GITHUB_EVENT_PATH\""),
        "{json}"
    );
    assert!(
        json.contains("\"user\": \"jenkins:CHANGE_AUTHOR\""),
        "{json}"
    );
    assert_eq!(Context::from_json("k", json.as_bytes()).unwrap(), v2);
}

#[test]
fn unknown_sources_still_read_and_a_bad_one_is_named() {
    for (text, want) in [
        (
            "travis:TRAVIS_COMMIT",
            Some(Source::ci("travis", "TRAVIS_COMMIT")),
        ),
        ("flag:--job", Some(Source::Flag("--job".into()))),
        ("git", Some(Source::Git)),
        ("no source", None),
        (":X", None),
    ] {
        assert_eq!(Source::try_from(text.to_string()).ok(), want, "{text}");
    }
}

#[test]
fn any_ci_flags_win_and_git_fills_the_gaps() {
    // A GitHub push without the event file: no author from the CI, so git's (same commit).
    let vars = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "o/r"),
        ("GITHUB_WORKFLOW", "CI"),
        ("GITHUB_JOB", "test"),
        ("GITHUB_RUN_NUMBER", "5"),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_SHA", "c0ffee"),
    ];
    let flags = Overrides {
        job: Some("mine".into()),
        ..Overrides::default()
    };
    let c = Context::from_sources(env(&vars), head, &flags, NOW).unwrap();
    let from = |f: &str| c.sources.get(f).cloned().map(String::from);
    assert_eq!((c.job.as_str(), c.build), ("mine", 501));
    assert_eq!(from("job").as_deref(), Some("flag:--job"));
    assert_eq!(c.commit.as_deref(), Some("c0ffee"));
    assert_eq!(from("commit").as_deref(), Some("github:GITHUB_SHA"));
    assert_eq!(c.author.as_ref().unwrap().name, "Dana Git");
    assert_eq!(from("author").as_deref(), Some("git"));
    // The CI's URL wins over git's remote.
    assert_eq!(c.repo_url.as_deref(), Some("https://github.com/o/r"));
    // A bad CI build number fails only when no --build replaces it, naming the variable.
    let bad = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_RUN_NUMBER", "x"),
        ("GITHUB_REF_NAME", "m"),
    ];
    let e = Context::from_env(env(&bad), &flags, NOW)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("GITHUB_RUN_NUMBER") && e.contains("--build"),
        "{e}"
    );
    let with_build = Overrides {
        build: Some("9".into()),
        ..flags
    };
    assert_eq!(
        Context::from_env(env(&bad), &with_build, NOW)
            .unwrap()
            .build,
        9
    );
}
