//! Integration tests: analyze's flaky tests and breakages (issue 18) on synthetic histories with
//! known failure-flaky, retried and broken tests ([`synth::inject_failures`]), in process, through
//! the binary from a store (`--format json` and `list`), and the PR gate's known-flaky and new
//! failures with their exit codes.

use crate::common;
use crate::synth::{self, Config, Failures, Injected, Stored, Truth};
use ci_test_metrics::analyze::{self, series, Options};
use ci_test_metrics::junit::Status;
use ci_test_metrics::summary::BuildSummary;
use std::collections::BTreeSet;

/// A history of `jobs` jobs with no duration injections, then 2 failure-flaky, 1 retried and 1
/// broken test per job.
fn history(jobs: usize, p: f64, seed: u64) -> (Vec<BuildSummary>, Truth) {
    let config = Config::noise_only(seed, jobs, 120, 60);
    let (mut summaries, mut truth) = synth::generate(&config);
    let failures = Failures {
        seed,
        flaky: 2,
        retried: 1,
        p,
        breakages: 1,
    };
    synth::inject_failures(&mut summaries, &mut truth, &failures);
    (summaries, truth)
}

fn truth_names(truth: &Truth, kinds: &[Injected]) -> BTreeSet<(String, String)> {
    let owned = |(j, n): (&str, &str)| (j.to_string(), n.to_string());
    truth.names(kinds).into_iter().map(owned).collect()
}

#[test]
fn report_names_flaky_tests_and_breakages() {
    for (p, seed) in [(0.1, 1), (0.2, 2), (0.05, 3)] {
        let (summaries, truth) = history(2, p, seed);
        let report = analyze::analyze(&series::build(&summaries), &Options::default());
        let flaky: BTreeSet<_> = report
            .flaky_failures
            .iter()
            .map(|f| (f.job.clone(), f.test.name.clone()))
            .collect();
        let want = truth_names(&truth, &[Injected::FlakyFailure, Injected::Retried]);
        assert_eq!(want.len(), 6, "p {p}: three per job");
        assert_eq!(flaky, want, "p {p}: flaky tests");
        for f in &report.flaky_failures {
            let retried = truth_names(&truth, &[Injected::Retried]);
            let within = f.reasons.iter().any(|r| r == "within_build");
            assert_eq!(
                within,
                retried.contains(&(f.job.clone(), f.test.name.clone())),
                "p {p}: {f:?}"
            );
            assert!(f.flaky_builds.len() >= 2, "{f:?}");
            assert!(f.flaky_builds[0].build_url.is_some());
            // A retried build counts as passed: only failures flip.
            assert!(within || f.flip_rate > 0.0, "{f:?}");
            assert!(f.failure_rate < 0.5, "{f:?}");
        }
        let breakages = truth_names(&truth, &[Injected::Breakage]);
        assert_eq!(report.breakages.len(), breakages.len(), "p {p}");
        for i in truth
            .injections
            .iter()
            .filter(|i| i.kind == Injected::Breakage)
        {
            let b = report
                .breakages
                .iter()
                .find(|b| b.job == i.job && b.test.name == i.name)
                .unwrap_or_else(|| panic!("p {p}: breakage {} not found", i.name));
            assert_eq!(b.range.first_bad.build, i.build, "p {p}");
            assert_eq!(b.range.first_bad.commit.as_deref(), Some(i.commit.as_str()));
            let last_good = b.range.last_good.as_ref().and_then(|g| g.commit.clone());
            assert_eq!(last_good.as_deref(), Some(i.previous_commit.as_str()));
        }
    }
}

#[test]
fn binary_lists_flaky_tests_for_quarantine() {
    let (summaries, truth) = history(2, 0.1, 4);
    let dir = tempfile::tempdir().unwrap();
    synth::write_local_store(dir.path(), &summaries, |_| Stored::Staged).unwrap();
    let run = |format: &str| {
        let out = common::bin()
            .args(["analyze", "--store"])
            .arg(dir.path())
            .args(["--format", format])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}");
        String::from_utf8(out.stdout).unwrap()
    };
    let want: BTreeSet<String> = truth
        .injections
        .iter()
        .filter(|i| matches!(i.kind, Injected::FlakyFailure | Injected::Retried))
        .map(|i| format!("{}.{}", i.classname, i.name))
        .collect();
    let list = run("list");
    assert_eq!(
        list.lines().map(String::from).collect::<BTreeSet<_>>(),
        want
    );
    assert_eq!(list.lines().count(), want.len(), "one line each:\n{list}");
    let v: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(v["schema_version"], 3);
    assert_eq!(v["flaky_failures"].as_array().unwrap().len(), want.len());
    assert_eq!(v["breakages"].as_array().unwrap().len(), 2);
    let table = run("table");
    for title in [
        "Flaky tests (failures come and go): 6",
        "Breakages (failing since a build): 2",
    ] {
        assert!(table.contains(title), "{title} in\n{table}");
    }
}

/// Fails a test in one build.
fn fail(build: &mut BuildSummary, name: &str) {
    for f in &mut build.files {
        for c in f.cases.iter_mut().filter(|c| c.name == name) {
            c.status = Status::Failed;
        }
    }
}

/// Fails a test in the PR's last build.
fn fail_in_pr(summaries: &mut [BuildSummary], name: &str) {
    let last = summaries
        .iter_mut()
        .filter(|s| s.context.branch == "PR-77")
        .max_by_key(|s| s.context.build)
        .expect("a PR build");
    fail(last, name);
}

#[test]
fn gate_tells_known_flaky_from_new_failures() {
    let (mut summaries, truth) = history(1, 0.1, 5);
    let job = summaries[0].context.job.clone();
    assert_eq!(
        synth::split_pull_request(&mut summaries, &job, 2, 77, None),
        2
    );
    let flaky = truth
        .injections
        .iter()
        .find(|i| i.kind == Injected::FlakyFailure)
        .unwrap()
        .name
        .clone();
    let injected = truth_names(
        &truth,
        &[
            Injected::FlakyFailure,
            Injected::Retried,
            Injected::Breakage,
        ],
    );
    let clean_tests: Vec<String> = summaries[0]
        .cases()
        .map(|c| c.name.clone())
        .filter(|n| !injected.contains(&(job.clone(), n.clone())))
        .take(2)
        .collect();
    let (clean, old_flaky) = (clean_tests[0].clone(), clean_tests[1].clone());
    // Flaky on master only before the last 30 builds (--baseline-builds): known flaky only if
    // the gate reads the baseline's longer flaky window.
    let master: Vec<usize> = (0..summaries.len())
        .filter(|&i| summaries[i].context.branch == "master")
        .collect();
    for back in [90, 70, 50] {
        fail(&mut summaries[master[master.len() - back]], &old_flaky);
    }
    fail_in_pr(&mut summaries, &old_flaky);
    fail_in_pr(&mut summaries, &flaky);
    let mut broken = summaries.clone();
    fail_in_pr(&mut broken, &clean);
    // (what, history, flags, exit code, new failures); the flaky test is known flaky in each.
    type Row<'a> = (
        &'a str,
        &'a [BuildSummary],
        &'a [&'a str],
        i32,
        Vec<&'a str>,
    );
    let table: [Row; 3] = [
        (
            "only a known flaky test fails",
            &summaries,
            &["--fail-on-new-failure"],
            0,
            vec![],
        ),
        (
            "a new failure, gated",
            &broken,
            &["--fail-on-new-failure"],
            6,
            vec![clean.as_str()],
        ),
        (
            "a new failure, not gated",
            &broken,
            &[],
            0,
            vec![clean.as_str()],
        ),
    ];
    for (what, history, flags, code, new) in table {
        let dir = tempfile::tempdir().unwrap();
        synth::write_local_store(dir.path(), history, |_| Stored::Staged).unwrap();
        let run = |format: &str| {
            common::bin()
                .args(["analyze", "--store"])
                .arg(dir.path())
                .args([
                    "--branch",
                    "PR-77",
                    "--baseline",
                    "master",
                    "--format",
                    format,
                ])
                .args(flags)
                .output()
                .unwrap()
        };
        let out = run("json");
        assert_eq!(out.status.code(), Some(code), "{what}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let names = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["test"]["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(names("known_flaky").contains(&flaky), "{what}: {v}");
        assert!(names("known_flaky").contains(&old_flaky), "{what}: {v}");
        assert_eq!(names("new_failures"), new, "{what}");
        let md = String::from_utf8(run("md").stdout).unwrap();
        assert!(md.contains("**Known flaky**"), "{what}: {md}");
        assert_eq!(
            md.contains("**New failures** (1)"),
            !new.is_empty(),
            "{what}: {md}"
        );
    }
}
