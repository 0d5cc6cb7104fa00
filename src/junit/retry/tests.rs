//! Tables over the retry fixtures (tests/fixtures/README.md says where each comes from) and
//! the odd cases: repeats, huge counts, the held-test limit.

use super::*;
use crate::junit::parse_bytes;
use std::path::Path;
use std::time::Duration;
use Status::*;

fn fixture(name: &str) -> Vec<TestCase> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/junit")
        .join(name);
    let r = crate::junit::parse_path(&path);
    assert!(r.error.is_none(), "{name}: {:?}", r.error);
    r.cases
}

/// (name, status, attempts, time in ms) of each case.
fn outcomes(cases: &[TestCase]) -> Vec<(String, Status, u32, Option<u128>)> {
    cases
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.status,
                c.attempts,
                c.time.map(|t| t.as_millis()),
            )
        })
        .collect()
}

/// A merged test as the tables write it: name, status, attempts, time in ms.
type Want<'a> = &'a [(&'a str, Status, u32, u128)];

fn row(name: &str, status: Status, attempts: u32, ms: u128) -> (String, Status, u32, Option<u128>) {
    (name.to_string(), status, attempts, Some(ms))
}

#[test]
fn fixtures_merge_as_the_tools_mean_them() {
    // (fixture, cases as parsed, then merged): name, status, attempts, time (ms).
    let table: &[(&str, usize, Want)] = &[
        // Surefire: flaky elements → flaky; rerun elements beside a failure → failed.
        (
            "surefire.xml",
            6,
            &[
                ("createsOrder", Passed, 1, 412),
                ("rejectsEmptyCart", Failed, 3, 33),
                ("retriesPayment", Flaky, 2, 2918),
                ("cachesPrices", Flaky, 2, 201),
                ("loadsLegacyOrders", Error, 2, 806),
                ("exportsToCsv", Skipped, 1, 0),
            ],
        ),
        // Gradle with mergeReruns: Surefire's elements; a failure then a skip stays skipped.
        (
            "gradle-merge-reruns.xml",
            4,
            &[
                ("addsItem()", Passed, 1, 21),
                ("removesItem()", Flaky, 2, 488),
                ("totals()", Failed, 3, 302),
                ("checksOut()", Skipped, 2, 4),
            ],
        ),
        // Gradle without mergeReruns: one case per execution, retries after the first round.
        // Flaky: the passing run's time; failed every time: the first run's.
        (
            "gradle-retry.xml",
            6,
            &[
                ("addsItem()", Passed, 1, 21),
                ("removesItem()", Flaky, 2, 488),
                ("totals()", Failed, 3, 302),
            ],
        ),
        // pytest-rerunfailures 16.7, --reruns 2: a bare case per rerun attempt.
        (
            "pytest-rerunfailures.xml",
            14,
            &[
                ("test_passes", Passed, 1, 0),
                ("test_fails_once_then_passes", Flaky, 2, 1),
                ("test_always_fails", Failed, 3, 0),
                ("test_errors_once_in_fixture_then_passes", Flaky, 2, 0),
                ("test_fails_twice_then_passes", Flaky, 3, 1),
                ("test_skipped", Skipped, 1, 0),
                ("test_method_flaky", Flaky, 2, 0),
            ],
        ),
        // Retry elements where no tool writes them: a clear status each.
        (
            "retry-odd-cases.xml",
            6,
            &[
                ("rerunWithoutParentOutcome", Failed, 3, 1500),
                ("rerunErrorWithoutParentOutcome", Error, 2, 500),
                ("skippedAndFlaky", Skipped, 2, 250),
                ("failureAndFlaky", Failed, 2, 750),
                ("flakyAndRerun", Error, 3, 125),
                ("nestedRetryIgnored", Passed, 1, 1000),
            ],
        ),
    ];
    for (file, parsed, want) in table {
        let mut cases = fixture(file);
        assert_eq!(cases.len(), *parsed, "{file}: cases as parsed");
        merge_repeats(&mut cases, Order::OneFile);
        let want: Vec<_> = want.iter().map(|(n, s, a, t)| row(n, *s, *a, *t)).collect();
        assert_eq!(outcomes(&cases), want, "{file}");
    }
}

#[test]
fn odd_cases_warn() {
    let r = parse_bytes(
        "odd.xml",
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit/retry-odd-cases.xml"),
        )
        .unwrap(),
    );
    let has = |s: &str| r.warnings.iter().any(|w| w.contains(s));
    assert!(
        has("<flakyFailure> outside a <testcase> ignored"),
        "{:?}",
        r.warnings
    );
    assert!(has(
        "\"rerunWithoutParentOutcome\" has rerunFailure/rerunError without"
    ));
    assert!(has(
        "\"failureAndFlaky\" has flaky elements beside a failure"
    ));
    assert!(has("\"flakyAndRerun\" has both flaky and rerun elements"));
    assert!(!has("skippedAndFlaky"));
}

fn run(name: &str, status: Status, ms: u64) -> TestCase {
    TestCase {
        suite: "s".into(),
        classname: "C".into(),
        name: name.into(),
        file: None,
        time: Some(Duration::from_millis(ms)),
        status,
        attempts: 1,
    }
}

#[test]
fn repeated_cases_table() {
    // Runs in one file, in order → the merged tests.
    type Runs<'a> = &'a [(&'a str, Status, u64)];
    let table: &[(&str, Runs, Want)] = &[
        (
            "fail, pass",
            &[("a", Failed, 5), ("a", Passed, 3)],
            &[("a", Flaky, 2, 3)],
        ),
        (
            "error, pass",
            &[("a", Error, 5), ("a", Passed, 3)],
            &[("a", Flaky, 2, 3)],
        ),
        (
            "fail thrice: the first run's time",
            &[("a", Failed, 5), ("a", Failed, 6), ("a", Failed, 7)],
            &[("a", Failed, 3, 5)],
        ),
        (
            "fail, skip",
            &[("a", Failed, 5), ("a", Skipped, 0)],
            &[("a", Skipped, 2, 0)],
        ),
        (
            "bare reruns right after each other (pytest-rerunfailures)",
            &[("a", Passed, 1), ("a", Passed, 2), ("a", Failed, 3)],
            &[("a", Failed, 3, 1)],
        ),
        (
            "a passed test seen again later is another test",
            &[("a", Passed, 1), ("b", Passed, 2), ("a", Passed, 3)],
            &[
                ("a", Passed, 1, 1),
                ("b", Passed, 1, 2),
                ("a", Passed, 1, 3),
            ],
        ),
        (
            "a failed test retried later (Gradle's retry round)",
            &[
                ("a", Failed, 1),
                ("b", Passed, 2),
                ("a", Failed, 3),
                ("c", Failed, 4),
                ("a", Passed, 5),
                ("c", Passed, 6),
            ],
            &[("a", Flaky, 3, 5), ("b", Passed, 1, 2), ("c", Flaky, 2, 6)],
        ),
        (
            "a flaky test run again later is another run",
            &[
                ("a", Failed, 1),
                ("a", Passed, 2),
                ("b", Passed, 3),
                ("a", Passed, 4),
            ],
            &[("a", Flaky, 2, 2), ("b", Passed, 1, 3), ("a", Passed, 1, 4)],
        ),
        (
            "pytest's call failure and teardown error: one run",
            &[("a", Failed, 1), ("a", Error, 2), ("b", Passed, 1)],
            &[("a", Error, 1, 3), ("b", Passed, 1, 1)],
        ),
        (
            "skipped twice: two tests",
            &[("a", Skipped, 0), ("a", Skipped, 0)],
            &[("a", Skipped, 1, 0), ("a", Skipped, 1, 0)],
        ),
    ];
    for (what, runs, want) in table {
        let mut cases: Vec<TestCase> = runs.iter().map(|(n, s, ms)| run(n, *s, *ms)).collect();
        merge_repeats(&mut cases, Order::OneFile);
        let want: Vec<_> = want.iter().map(|(n, s, a, t)| row(n, *s, *a, *t)).collect();
        assert_eq!(outcomes(&cases), want, "{what}");
        let again = cases.clone();
        merge_repeats(&mut cases, Order::AcrossFiles);
        assert_eq!(cases, again, "{what}: merging again");
    }
    // A failure + error pair whose cases carry reruns of their own: one run for the pair, the
    // reruns kept (the fuzzer's case: one attempt less, not the smaller count lost).
    let mut cases = vec![
        TestCase {
            attempts: 3,
            ..run("a", Failed, 1)
        },
        TestCase {
            attempts: 2,
            ..run("a", Error, 2)
        },
    ];
    merge_repeats(&mut cases, Order::OneFile);
    assert_eq!(outcomes(&cases), [row("a", Error, 4, 3)]);
    // Across files only a run after a failure continues a test.
    let mut cases = vec![
        run("a", Passed, 1),
        run("a", Passed, 2),
        run("b", Failed, 3),
        run("b", Passed, 4),
    ];
    merge_repeats(&mut cases, Order::AcrossFiles);
    let want = [
        row("a", Passed, 1, 1),
        row("a", Passed, 1, 2),
        row("b", Flaky, 2, 4),
    ];
    assert_eq!(outcomes(&cases), want);
}

#[test]
fn thousands_of_repeats_and_huge_retry_counts() {
    // 5,000 failed reruns of one test, then a pass: one flaky test.
    let mut xml = String::from("<testsuite>");
    for _ in 0..5_000 {
        xml.push_str("<testcase classname='C' name='t' time='0.001'><failure/></testcase>");
    }
    xml.push_str("<testcase classname='C' name='t' time='0.002'/></testsuite>");
    let mut cases = parse_bytes("r.xml", xml.as_bytes()).cases;
    merge_repeats(&mut cases, Order::OneFile);
    assert_eq!(outcomes(&cases), [row("t", Flaky, 5_001, 2)]);

    // 200,000 rerun elements in one case: counted, nothing kept per element.
    let mut xml = String::from("<testsuite><testcase name='t'><failure/>");
    xml.push_str(&"<rerunFailure type='x'/>".repeat(200_000));
    xml.push_str("</testcase></testsuite>");
    let r = parse_bytes("r.xml", xml.as_bytes());
    assert_eq!((r.cases[0].status, r.cases[0].attempts), (Failed, 200_001));

    // Counts near u32::MAX saturate instead of overflowing.
    let mut tally = Tally {
        flaky: u32::MAX - 1,
        ..Tally::default()
    };
    tally.count(RetryElement::Flaky);
    tally.count(RetryElement::Flaky);
    assert_eq!(tally.settle(Passed), (Flaky, u32::MAX, None));
    let mut big = vec![
        TestCase {
            attempts: u32::MAX,
            ..run("a", Failed, 1)
        },
        TestCase {
            attempts: u32::MAX,
            ..run("a", Passed, 1)
        },
    ];
    merge_repeats(&mut big, Order::OneFile);
    assert_eq!((big[0].status, big[0].attempts), (Flaky, u32::MAX));
}

#[test]
fn held_failures_are_bounded() {
    // More failed tests than the limit wait for a retry: the oldest are passed on unmerged.
    let mut repeats = Repeats::with_limit(3);
    let mut out = Vec::new();
    let mut emit = |seq: u64, t: TestCase| out.push((seq, t.name, t.status, t.attempts));
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        repeats.push(run(name, Failed, 1), i as u64, true, &mut emit);
    }
    for (i, name) in ["a", "e"].iter().enumerate() {
        repeats.push(run(name, Passed, 1), 10 + i as u64, true, &mut emit);
    }
    let stats = repeats.finish(&mut emit);
    // a and b: the open test (e) needs a place when d's successor arrives.
    assert_eq!(stats.released, 2);
    out.sort();
    let got: Vec<_> = out
        .iter()
        .map(|(_, n, s, a)| (n.as_str(), *s, *a))
        .collect();
    assert_eq!(
        got,
        [
            ("a", Failed, 1),
            ("b", Failed, 1),
            ("c", Failed, 1),
            ("d", Failed, 1),
            ("e", Flaky, 2),
            ("a", Passed, 1)
        ]
    );
    // Many failures and retries interleaved: the held list is compacted, results stay right.
    let mut cases: Vec<TestCase> = (0..5_000)
        .map(|i| run(&format!("t{i}"), Failed, 1))
        .collect();
    cases.extend((0..5_000).rev().map(|i| run(&format!("t{i}"), Passed, 2)));
    merge_repeats(&mut cases, Order::OneFile);
    assert_eq!(cases.len(), 5_000);
    assert!(cases.iter().all(|c| c.status == Flaky && c.attempts == 2));
    assert_eq!(cases[4_999].name, "t4999");
}
