//! Pure encoding: one build summary → the metric datums CloudWatch or EMF get.
//!
//! Per build and dimension set `{Job, BranchClass}` (and, with `per_suite`, also
//! `{Job, BranchClass, Suite}` per result file):
//!
//! | metric          | unit    | value                                                        |
//! |-----------------|---------|--------------------------------------------------------------|
//! | `TestDuration`  | Seconds | every known test duration, as Values/Counts (≤ 150 a datum) |
//! | `TotalTestTime` | Seconds | sum of the known durations (0 when none is known)            |
//! | `Tests`         | Count   | test cases                                                   |
//! | `Failures`      | Count   | failed cases                                                 |
//! | `Errors`        | Count   | errored cases                                                |
//! | `Skipped`       | Count   | skipped cases                                                |
//! | `FlakyTests`    | Count   | tests that failed or errored, then passed on a retry         |
//! | `Retries`       | Count   | extra runs: the sum over tests of their attempts − 1         |
//! | `SlowestTest`   | Seconds | the largest known duration (absent when none is known)       |
//! | `Builds`        | Count   | 1 (job level only)                                           |
//! | `ParseErrors`   | Count   | result files that did not parse cleanly (job level only)     |
//!
//! With `per_test_top: Some(N)`, the N slowest tests also get a `TestDuration` scalar with
//! dimensions `{Job, BranchClass, Test}` (`Test` = `classname.name`), so cost is bounded by N.
//!
//! **Rounding.** Durations in the distribution are rounded to 3 significant digits, but never
//! finer than 1 ms ([`round_duration`]): relative error ≤ 0.5 %, and equal-looking durations merge
//! so Counts work and a build needs few datums. Sums and maxima use the unrounded times.
//! Unknown, negative or non-finite times are left out of every duration metric (still counted in
//! `Tests`). Every datum carries the build's timestamp.
//!
//! **Retries.** Counts are of tests, not of runs: the summary's retries are expected to be
//! merged already ([`BuildSummary::merge_retries`]), so a test retried three times is one test
//! with `attempts` 4, counted once in `Tests` and in its final status, and 3 in `Retries`.

use super::{Datum, Unit, Value, MAX_VALUES};
use crate::junit::Status;
use crate::summary::{BuildSummary, CaseSummary};
use std::collections::{BTreeMap, HashMap};

/// What to add beyond the per-job metrics.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// Also publish every metric except `Builds`/`ParseErrors` per result file (`Suite` dimension).
    pub per_suite: bool,
    /// Also publish the N slowest tests' durations (`Test` dimension). Each is a billed metric.
    pub per_test_top: Option<usize>,
}

/// Dimension values CloudWatch accepts at most (bytes).
const MAX_DIMENSION_VALUE: usize = 1024;

/// Rounds a duration to 3 significant digits, but to no finer than 1 ms.
pub fn round_duration(secs: f64) -> f64 {
    if secs <= 0.0 || !secs.is_finite() {
        return 0.0;
    }
    // Decimal exponent of the quantum: 3 significant digits, at least 10^-3. Below 1 s that is
    // always 1 ms; above, one more digit per decade (comparisons, not log10: exact and cheap).
    let (mut exp, mut decade) = (-3, 1.0);
    while secs >= decade && exp < 300 {
        exp += 1;
        decade *= 10.0;
    }
    if exp < 0 {
        let scale = 10f64.powi(-exp);
        (secs * scale).round() / scale
    } else {
        let q = 10f64.powi(exp);
        (secs / q).round() * q
    }
}

/// Encodes one build. Pure: the same summary gives the same datums in the same order.
pub fn encode_build(summary: &BuildSummary, opts: &EncodeOptions) -> Vec<Datum> {
    let base = vec![
        ("Job".to_string(), summary.context.job.clone()),
        ("BranchClass".to_string(), summary.branch_class.clone()),
    ];
    let ts = summary.context.timestamp;
    let mut out = Vec::new();
    let scalar = |name: &str, unit: Unit, dims: &[(String, String)], v: f64| Datum {
        name: name.to_string(),
        unit,
        dimensions: dims.to_vec(),
        timestamp: ts,
        value: Value::Scalar(v),
    };

    encode_cases(summary.cases(), &base, ts, &mut out);
    out.push(scalar("Builds", Unit::Count, &base, 1.0));
    out.push(scalar(
        "ParseErrors",
        Unit::Count,
        &base,
        summary.parse_errors() as f64,
    ));

    if opts.per_suite {
        // An unusable context.json is recorded as a file without cases; it is no suite.
        let suites = summary
            .files
            .iter()
            .filter(|f| f.name != crate::layout::CONTEXT_FILE);
        for file in suites {
            let mut dims = base.clone();
            dims.push(("Suite".to_string(), truncate(suite_name(&file.name))));
            encode_cases(file.cases.iter(), &dims, ts, &mut out);
        }
    }
    if let Some(n) = opts.per_test_top {
        for (test, secs) in slowest_tests(summary, n) {
            let mut dims = base.clone();
            dims.push(("Test".to_string(), test));
            out.push(scalar("TestDuration", Unit::Seconds, &dims, secs));
        }
    }
    out
}

/// The duration and count metrics of a set of cases, with `dims`.
fn encode_cases<'a>(
    cases: impl Iterator<Item = &'a CaseSummary>,
    dims: &[(String, String)],
    ts: time::OffsetDateTime,
    out: &mut Vec<Datum>,
) {
    let (mut tests, mut failures, mut errors, mut skipped) = (0u64, 0u64, 0u64, 0u64);
    let (mut flaky, mut retries) = (0u64, 0u64);
    let (mut total, mut slowest) = (0.0f64, None::<f64>);
    // Rounded durations are non-negative, so their bit patterns sort like the numbers.
    let mut histogram: HashMap<u64, u64> = HashMap::new();
    for case in cases {
        tests += 1;
        match case.status {
            Status::Failed => failures += 1,
            Status::Error => errors += 1,
            Status::Skipped => skipped += 1,
            Status::Flaky => flaky += 1,
            Status::Passed => {}
        }
        retries += u64::from(case.attempts.saturating_sub(1));
        if let Some(t) = known_time(case) {
            total += t;
            slowest = Some(slowest.map_or(t, |s: f64| s.max(t)));
            *histogram.entry(round_duration(t).to_bits()).or_default() += 1;
        }
    }
    let datum = |name: &str, unit: Unit, value: Value| Datum {
        name: name.to_string(),
        unit,
        dimensions: dims.to_vec(),
        timestamp: ts,
        value,
    };
    let mut pairs: Vec<(u64, u64)> = histogram.into_iter().collect();
    pairs.sort_unstable();
    let pairs: Vec<(f64, f64)> = pairs
        .into_iter()
        .map(|(bits, n)| (f64::from_bits(bits), n as f64))
        .collect();
    for chunk in pairs.chunks(MAX_VALUES) {
        out.push(datum(
            "TestDuration",
            Unit::Seconds,
            Value::Distribution {
                values: chunk.iter().map(|p| p.0).collect(),
                counts: chunk.iter().map(|p| p.1).collect(),
            },
        ));
    }
    out.push(datum("TotalTestTime", Unit::Seconds, Value::Scalar(total)));
    for (name, n) in [
        ("Tests", tests),
        ("Failures", failures),
        ("Errors", errors),
        ("Skipped", skipped),
        ("FlakyTests", flaky),
        ("Retries", retries),
    ] {
        out.push(datum(name, Unit::Count, Value::Scalar(n as f64)));
    }
    if let Some(s) = slowest {
        out.push(datum("SlowestTest", Unit::Seconds, Value::Scalar(s)));
    }
}

/// A case's duration when it is known, finite and non-negative.
fn known_time(case: &CaseSummary) -> Option<f64> {
    case.time.filter(|t| t.is_finite() && *t >= 0.0)
}

/// The `n` slowest distinct tests (`classname.name`, longest time when repeated), slowest first.
fn slowest_tests(summary: &BuildSummary, n: usize) -> Vec<(String, f64)> {
    let mut by_test: BTreeMap<String, f64> = BTreeMap::new();
    for case in summary.cases() {
        if let Some(t) = known_time(case) {
            let name = if case.classname.is_empty() {
                case.name.clone()
            } else {
                format!("{}.{}", case.classname, case.name)
            };
            let slot = by_test.entry(truncate(&name)).or_insert(t);
            *slot = slot.max(t);
        }
    }
    let mut tests: Vec<(String, f64)> = by_test.into_iter().collect();
    tests.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    tests.truncate(n);
    tests
}

/// A result file's stem: the base name without its last extension.
fn suite_name(file: &str) -> &str {
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    match base.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => base,
    }
}

/// A dimension value cut to CloudWatch's 1024 bytes at a character boundary; never empty.
fn truncate(s: &str) -> String {
    if s.is_empty() {
        return "(none)".to_string();
    }
    let mut end = s.len().min(MAX_DIMENSION_VALUE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::summary::FileSummary;
    use time::macros::datetime;

    fn case(name: &str, time: Option<f64>, status: Status) -> CaseSummary {
        CaseSummary {
            suite: "s".into(),
            classname: "pkg.Class".into(),
            name: name.into(),
            time,
            status,
            attempts: 1,
        }
    }

    fn summary(files: Vec<FileSummary>) -> BuildSummary {
        BuildSummary {
            schema_version: 1,
            context: Context {
                pr: Some(1),
                ..Context::new("mxnet/unix-cpu", "PR-1", 7, datetime!(2026-11-28 10:00 UTC))
            },
            branch_class: "pr".into(),
            published: true,
            files,
        }
    }

    fn file(name: &str, cases: Vec<CaseSummary>, error: Option<&str>) -> FileSummary {
        FileSummary {
            name: name.into(),
            error: error.map(String::from),
            partial: error.is_some(),
            cases,
        }
    }

    fn scalar(datums: &[Datum], name: &str, extra: Option<(&str, &str)>) -> Option<f64> {
        let want_dims = 2 + extra.is_some() as usize;
        datums
            .iter()
            .filter(|d| d.name == name && d.dimensions.len() == want_dims)
            .filter(|d| extra.is_none_or(|(k, v)| d.dimension(k) == Some(v)))
            .find_map(|d| match d.value {
                Value::Scalar(v) => Some(v),
                _ => None,
            })
    }

    /// (values, counts) of all `TestDuration` distributions with exactly `dims` dimensions.
    fn distribution(datums: &[Datum], dims: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
        datums
            .iter()
            .filter(|d| d.name == "TestDuration" && d.dimensions.len() == dims)
            .filter_map(|d| match &d.value {
                Value::Distribution { values, counts } => Some((values.clone(), counts.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rounding_table() {
        for (input, want) in [
            (0.0, 0.0),
            (-1.0, 0.0),
            (f64::NAN, 0.0),
            (0.0004, 0.0),
            (0.0005, 0.001),
            (0.001234, 0.001),
            (0.01234, 0.012),
            (0.1234, 0.123),
            (1.2345, 1.23),
            (12.345, 12.3),
            (123.45, 123.0),
            (1234.5, 1230.0),
            (99.96, 100.0),
            (0.9996, 1.0),
            (1.0, 1.0),
            (9.999, 10.0),
            (10.0, 10.0),
            (1e6 + 4000.0, 1.0e6),
            (1.2345e12, 1.23e12),
        ] {
            assert_eq!(round_duration(input), want, "{input}");
        }
    }

    #[test]
    fn counts_sums_and_dimensions() {
        let s = summary(vec![
            file(
                "results/unit.xml",
                vec![
                    case("a", Some(1.0), Status::Passed),
                    case("b", Some(1.0004), Status::Failed), // rounds to 1.0: merges with a
                    case("c", Some(2.5), Status::Error),
                    case("d", None, Status::Skipped),
                ],
                None,
            ),
            file(
                "broken.xml",
                vec![case("e", Some(0.25), Status::Passed)],
                Some("unexpected EOF"),
            ),
        ]);
        let d = encode_build(&s, &EncodeOptions::default());
        assert_eq!(scalar(&d, "Tests", None), Some(5.0));
        assert_eq!(scalar(&d, "Failures", None), Some(1.0));
        assert_eq!(scalar(&d, "Errors", None), Some(1.0));
        assert_eq!(scalar(&d, "Skipped", None), Some(1.0));
        assert_eq!(scalar(&d, "Builds", None), Some(1.0));
        assert_eq!(scalar(&d, "ParseErrors", None), Some(1.0));
        assert_eq!(scalar(&d, "SlowestTest", None), Some(2.5));
        let total = scalar(&d, "TotalTestTime", None).unwrap();
        assert!((total - 4.7504).abs() < 1e-12, "{total}");
        assert_eq!(
            distribution(&d, 2),
            vec![(vec![0.25, 1.0, 2.5], vec![1.0, 2.0, 1.0])]
        );
        for datum in &d {
            assert_eq!(datum.dimension("Job"), Some("mxnet/unix-cpu"));
            assert_eq!(datum.dimension("BranchClass"), Some("pr"));
            assert_eq!(datum.dimension("Suite"), None);
            assert_eq!(datum.timestamp, s.context.timestamp);
        }
        assert_eq!(scalar(&d, "FlakyTests", None), Some(0.0));
        assert_eq!(scalar(&d, "Retries", None), Some(0.0));
        // 1 distribution + TotalTestTime + 6 counts + SlowestTest + Builds + ParseErrors.
        assert_eq!(d.len(), 11);
    }

    #[test]
    fn flaky_tests_and_retries() {
        let retried = |name: &str, status, attempts| CaseSummary {
            attempts,
            ..case(name, Some(1.0), status)
        };
        let s = summary(vec![
            file(
                "unit.xml",
                vec![
                    retried("a", Status::Flaky, 2),
                    retried("b", Status::Flaky, 4),
                    retried("c", Status::Failed, 3),
                    retried("d", Status::Passed, 1),
                ],
                None,
            ),
            file("more.xml", vec![retried("e", Status::Skipped, 2)], None),
        ]);
        let opts = EncodeOptions {
            per_suite: true,
            per_test_top: None,
        };
        let d = encode_build(&s, &opts);
        assert_eq!(scalar(&d, "FlakyTests", None), Some(2.0));
        assert_eq!(scalar(&d, "Retries", None), Some(1.0 + 3.0 + 2.0 + 1.0));
        assert_eq!(scalar(&d, "Tests", None), Some(5.0));
        assert_eq!(scalar(&d, "Failures", None), Some(1.0));
        assert_eq!(scalar(&d, "FlakyTests", Some(("Suite", "more"))), Some(0.0));
        assert_eq!(scalar(&d, "Retries", Some(("Suite", "more"))), Some(1.0));
        // What the cost estimate expects per job and class, and per suite.
        use super::super::cost::{distinct_metrics, METRICS_PER_JOB_CLASS, METRICS_PER_SUITE};
        let job_level = encode_build(&s, &Default::default());
        assert_eq!(distinct_metrics(&job_level) as u64, METRICS_PER_JOB_CLASS);
        assert_eq!(
            distinct_metrics(&d) as u64,
            METRICS_PER_JOB_CLASS + 2 * METRICS_PER_SUITE
        );
    }

    #[test]
    fn per_suite_and_per_test_top() {
        let s = summary(vec![
            file(
                "unit.xml",
                vec![
                    case("a", Some(3.0), Status::Passed),
                    case("b", Some(1.0), Status::Passed),
                ],
                None,
            ),
            file(
                "dir/integration.junit.xml",
                vec![case("c", Some(2.0), Status::Failed)],
                None,
            ),
        ]);
        let opts = EncodeOptions {
            per_suite: true,
            per_test_top: Some(2),
        };
        let d = encode_build(&s, &opts);
        assert_eq!(scalar(&d, "Tests", Some(("Suite", "unit"))), Some(2.0));
        assert_eq!(
            scalar(&d, "Failures", Some(("Suite", "integration.junit"))),
            Some(1.0)
        );
        assert_eq!(scalar(&d, "Tests", None), Some(3.0));
        assert_eq!(
            scalar(&d, "TestDuration", Some(("Test", "pkg.Class.a"))),
            Some(3.0)
        );
        assert_eq!(
            scalar(&d, "TestDuration", Some(("Test", "pkg.Class.c"))),
            Some(2.0)
        );
        assert_eq!(
            scalar(&d, "TestDuration", Some(("Test", "pkg.Class.b"))),
            None
        );
        // Builds and ParseErrors only once, at job level.
        assert_eq!(d.iter().filter(|x| x.name == "Builds").count(), 1);
        assert!(d.iter().all(|x| x.dimensions.len() <= 3));
    }

    #[test]
    fn splits_at_150_distinct_values() {
        // 400 distinct durations (1 ms apart), each seen twice, plus 100 unknown times.
        let mut cases: Vec<CaseSummary> = (0..400)
            .flat_map(|i| {
                let t = 0.001 * (i + 1) as f64;
                [
                    case(&format!("x{i}"), Some(t), Status::Passed),
                    case(&format!("y{i}"), Some(t), Status::Passed),
                ]
            })
            .collect();
        cases.extend((0..100).map(|i| case(&format!("n{i}"), None, Status::Passed)));
        let d = encode_build(
            &summary(vec![file("a.xml", cases, None)]),
            &Default::default(),
        );
        let parts = distribution(&d, 2);
        let sizes: Vec<usize> = parts.iter().map(|p| p.0.len()).collect();
        assert_eq!(sizes, vec![150, 150, 100]);
        let samples: f64 = parts.iter().flat_map(|p| p.1.iter()).sum();
        assert_eq!(samples, 800.0);
        assert!(parts.iter().all(|p| p.1.iter().all(|c| *c == 2.0)));
        // Values ascend across the split, without repeats.
        let all: Vec<f64> = parts.iter().flat_map(|p| p.0.iter().copied()).collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(scalar(&d, "Tests", None), Some(900.0));
        let now = s_now();
        assert!(d
            .iter()
            .all(|x| super::super::validate(x, now) == super::super::Verdict::Ok));
    }

    #[test]
    fn empty_build_and_bad_times() {
        let s = summary(vec![file(
            "a.xml",
            vec![
                case("neg", Some(-1.0), Status::Passed),
                case("nan", Some(f64::NAN), Status::Passed),
                case("inf", Some(f64::INFINITY), Status::Passed),
            ],
            None,
        )]);
        let d = encode_build(&s, &Default::default());
        assert!(distribution(&d, 2).is_empty());
        assert_eq!(scalar(&d, "TotalTestTime", None), Some(0.0));
        assert_eq!(scalar(&d, "SlowestTest", None), None);
        assert_eq!(scalar(&d, "Tests", None), Some(3.0));
        let none = encode_build(&summary(vec![]), &Default::default());
        assert_eq!(scalar(&none, "Tests", None), Some(0.0));
        assert_eq!(scalar(&none, "Builds", None), Some(1.0));
        for x in d.iter().chain(&none) {
            assert_eq!(
                super::super::validate(x, s_now()),
                super::super::Verdict::Ok
            );
        }
    }

    fn s_now() -> time::OffsetDateTime {
        datetime!(2026-11-28 11:00 UTC)
    }
}
