//! The pull-request gate: is any test slower on this PR than on its target branch?
//!
//! A PR has 1–3 builds, too few for change points. Each test's PR durations are compared with
//! the baseline branch's recent runs (the last `baseline_builds` builds of the same job) on the log
//! scale, where CI durations are roughly normal and a slowdown is a ratio:
//!
//! - baseline: the runs since the test's last change point within the window (rank-based, as
//!   in [`super::changepoint`]; all of them when there is none), their mean `m` and standard
//!   deviation `s` of `n` log durations (`s` is floored at
//!   [`MIN_LOG_SD`], so a test whose timer always says 0.010 s does not alarm on 0.011 s);
//! - PR: mean `y` of its `k` log durations;
//! - under "no change", `(y − m) / (s·√(1/k + 1/n))` follows Student's t with `n − 1` degrees of
//!   freedom (the prediction interval for the mean of `k` new runs); the one-sided p-value is
//!   its upper tail;
//! - when some baseline runs were already as slow as the PR's mean, the p-value is at least the
//!   empirical one, `(runs that slow + 1) / (n + 1)`: heavy tails (a flaky test's slow runs) break
//!   the normal model, and the baseline itself says how often such a level happens;
//! - the p-values of all tests compared are adjusted by Benjamini–Hochberg, so a clean PR with
//!   hundreds of tests does not alarm by chance (at most `fdr` of flagged tests are expected to
//!   be false).
//!
//! A test whose baseline runs are erratic (some run under half or over twice its median: a flaky
//! test's slow runs) is listed, not gated: a few PR runs cannot tell its next slow run from a
//! slowdown.
//!
//! A test is **slower** when its adjusted p-value (q) is at most `fdr`, its geometric-mean ratio
//! is at least `1 + min_shift` and its median is at least `min_seconds` slower. Effect sizes are
//! reported as the ratio, the seconds added and the standardised difference `(y − m) / s`.

use super::changepoint::{self, median};
use super::gate_failures::{self, Failures};
use super::render::md;
use super::series::{JobSeries, TestId};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::HashMap;
use std::fmt::Write;

/// The smallest baseline spread assumed, in log units (about 5% of the duration).
pub const MIN_LOG_SD: f64 = 0.05;
/// Durations below this (seconds) are treated as this, so a 0.000 s test has a log.
const FLOOR: f64 = 0.001;

/// The gate's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GateOptions {
    /// Baseline builds compared with (the latest of the baseline branch).
    pub baseline_builds: usize,
    /// PR builds used (the latest).
    pub pr_builds: usize,
    /// Fewest baseline runs for a test to be compared.
    pub min_baseline_runs: usize,
    /// False discovery rate (Benjamini–Hochberg) over all tests compared.
    pub fdr: f64,
    /// Smallest relative slowdown that fails the gate (0.2 = 20%).
    pub min_shift: f64,
    /// Smallest slowdown that fails the gate, seconds per build.
    pub min_seconds: f64,
    /// Baseline builds looked at for known-flaky tests and earlier failures (the latest).
    pub flaky_window: usize,
}

impl Default for GateOptions {
    fn default() -> GateOptions {
        GateOptions {
            baseline_builds: 30,
            pr_builds: 3,
            min_baseline_runs: 5,
            fdr: 0.05,
            min_shift: 0.2,
            min_seconds: 0.05,
            flaky_window: super::flaky::Thresholds::default().window,
        }
    }
}

/// One test compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub job: String,
    pub test: TestId,
    pub baseline_median: f64,
    pub baseline_runs: usize,
    pub pr_median: f64,
    pub pr_runs: usize,
    /// Geometric-mean ratio PR / baseline.
    pub ratio: f64,
    /// PR median − baseline median, seconds per build.
    pub seconds_added: f64,
    /// (PR mean − baseline mean) / baseline sd, on the log scale.
    pub effect_size: f64,
    /// One-sided p-value (PR slower).
    pub p_value: f64,
    /// Benjamini–Hochberg adjusted p-value over every test compared.
    pub q_value: f64,
    /// Beyond every threshold.
    pub slower: bool,
}

/// A job's totals on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobTotals {
    pub job: String,
    pub baseline_builds: Vec<u64>,
    pub pr_builds: Vec<u64>,
    pub baseline_total_median: f64,
    pub pr_total_median: f64,
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    pub schema_version: u32,
    pub branch: String,
    pub baseline: String,
    pub options: GateOptions,
    pub jobs: Vec<JobTotals>,
    /// Tests compared, slowest-first by q then p.
    pub compared: Vec<Comparison>,
    /// Tests only in the PR (not gated).
    pub new_tests: Vec<(String, TestId, f64)>,
    /// Tests too erratic in the baseline to gate on a few runs (job, test, baseline median): some
    /// baseline run was under half or over twice the median — a flaky test's slow runs.
    pub erratic: Vec<(String, TestId, f64)>,
    /// Jobs with PR builds but no baseline builds.
    pub without_baseline: Vec<String>,
    /// Number of tests slower beyond the thresholds.
    pub slower: usize,
    /// The PR's failing tests: `known_flaky`, `new_failures`, `failing_on_baseline`.
    #[serde(flatten)]
    pub failures: Failures,
}

/// Compares `pr` series (one per job) with `baseline` series of the same jobs.
pub fn gate(
    branch: &str,
    baseline_branch: &str,
    pr: &[&JobSeries],
    baseline: &[&JobSeries],
    o: &GateOptions,
) -> GateReport {
    let mut report = GateReport {
        schema_version: 2,
        branch: branch.to_string(),
        baseline: baseline_branch.to_string(),
        options: *o,
        jobs: vec![],
        compared: vec![],
        new_tests: vec![],
        erratic: vec![],
        without_baseline: vec![],
        slower: 0,
        failures: Failures::default(),
    };
    for p in pr {
        let Some(b) = baseline.iter().find(|b| b.job == p.job) else {
            report.without_baseline.push(p.job.clone());
            continue;
        };
        gate_failures::failures(p, b, o.pr_builds, o.flaky_window, &mut report.failures);
        let b_from = b.builds.len().saturating_sub(o.baseline_builds);
        let p_from = p.builds.len().saturating_sub(o.pr_builds);
        let totals = |s: &JobSeries, from: usize| {
            median(
                &s.totals[from..]
                    .iter()
                    .copied()
                    .filter(|v| *v > 0.0)
                    .collect::<Vec<_>>(),
            )
        };
        report.jobs.push(JobTotals {
            job: p.job.clone(),
            baseline_builds: b.builds[b_from..].iter().map(|c| c.build).collect(),
            pr_builds: p.builds[p_from..].iter().map(|c| c.build).collect(),
            baseline_total_median: totals(b, b_from),
            pr_total_median: totals(p, p_from),
        });
        let base: HashMap<&TestId, Vec<f64>> = b
            .tests
            .iter()
            .map(|t| (&t.id, latest_level(known(&t.values[b_from..]), o)))
            .collect();
        for t in &p.tests {
            let y = known(&t.values[p_from..]);
            if y.is_empty() {
                continue;
            }
            match base.get(&t.id) {
                Some(x) if x.len() >= o.min_baseline_runs => {
                    let m = median(x);
                    if x.iter().any(|v| *v > 2.0 * m || *v < m / 2.0) {
                        report.erratic.push((p.job.clone(), t.id.clone(), m));
                    } else {
                        report.compared.push(compare(&p.job, &t.id, x, &y));
                    }
                }
                Some(_) => {}
                None => report
                    .new_tests
                    .push((p.job.clone(), t.id.clone(), median(&y))),
            }
        }
    }
    let p: Vec<f64> = report.compared.iter().map(|c| c.p_value).collect();
    for (c, q) in report.compared.iter_mut().zip(benjamini_hochberg(&p)) {
        c.q_value = q;
        c.slower = q <= o.fdr && c.ratio >= 1.0 + o.min_shift && c.seconds_added >= o.min_seconds;
    }
    report.compared.sort_by(|a, b| {
        b.slower
            .cmp(&a.slower)
            .then(a.q_value.total_cmp(&b.q_value))
            .then(a.p_value.total_cmp(&b.p_value))
            .then(b.seconds_added.total_cmp(&a.seconds_added))
    });
    report.slower = report.compared.iter().filter(|c| c.slower).count();
    report
}

/// The baseline runs since the test's last change point (when that leaves enough of them): a
/// master that got slower (or faster) within the window is compared at its current level.
fn latest_level(x: Vec<f64>, o: &GateOptions) -> Vec<f64> {
    let params = changepoint::Params {
        min_segment: o.min_baseline_runs.max(2),
        ..changepoint::Params::default()
    };
    match changepoint::detect(&x, &params).last() {
        Some(c) if x.len() - c.index >= o.min_baseline_runs => x[c.index..].to_vec(),
        _ => x,
    }
}

fn known(v: &[f64]) -> Vec<f64> {
    v.iter().copied().filter(|v| v.is_finite()).collect()
}

/// The t-based comparison of PR durations `y` with baseline durations `x` (both seconds).
pub fn compare(job: &str, test: &TestId, x: &[f64], y: &[f64]) -> Comparison {
    let lx: Vec<f64> = x.iter().map(|v| v.max(FLOOR).ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.max(FLOOR).ln()).collect();
    let (n, k) = (lx.len() as f64, ly.len() as f64);
    let mx = lx.iter().sum::<f64>() / n;
    let my = ly.iter().sum::<f64>() / k;
    let var = lx.iter().map(|v| (v - mx).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let sd = var.sqrt().max(MIN_LOG_SD);
    let t = (my - mx) / (sd * (1.0 / k + 1.0 / n).sqrt());
    let p_t = StudentsT::new(0.0, 1.0, (n - 1.0).max(1.0)).map_or(f64::NAN, |d| d.sf(t));
    // The baseline's own runs: a level it reached itself in a share of its runs is not more
    // surprising than that share (an erratic test with a few slow runs stays quiet).
    let reached = lx.iter().filter(|v| **v >= my).count();
    let p_value = if reached > 0 {
        p_t.max((reached + 1) as f64 / (n + 1.0))
    } else {
        p_t
    };
    Comparison {
        job: job.to_string(),
        test: test.clone(),
        baseline_median: median(x),
        baseline_runs: x.len(),
        pr_median: median(y),
        pr_runs: y.len(),
        ratio: (my - mx).exp(),
        seconds_added: median(y) - median(x) + 0.0,
        effect_size: (my - mx) / sd,
        p_value,
        q_value: p_value,
        slower: false,
    }
}

/// Benjamini–Hochberg adjusted p-values, in the input order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut q = vec![1.0; m];
    let mut running: f64 = 1.0;
    for (i, &idx) in order.iter().enumerate() {
        let rank = (m - i) as f64;
        running = running.min(p[idx] * m as f64 / rank);
        q[idx] = running.min(1.0);
    }
    q
}

/// The Markdown comment to post on the pull request.
pub fn markdown(r: &GateReport) -> String {
    use super::render::secs;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Unit-test timing: `{}` compared with `{}`\n",
        r.branch.replace('`', "'"),
        r.baseline.replace('`', "'")
    );
    let o = &r.options;
    let thresholds = format!(
        "at least {:.0}% and {} slower per build, Benjamini–Hochberg q ≤ {} over the {} tests compared",
        o.min_shift * 100.0,
        secs(o.min_seconds),
        o.fdr,
        r.compared.len()
    );
    if r.slower == 0 {
        let _ = writeln!(
            out,
            "**No test is slower** beyond the thresholds ({thresholds}).\n"
        );
    } else {
        let _ = writeln!(
            out,
            "**{} test(s) slower** beyond the thresholds ({thresholds}).\n",
            r.slower
        );
    }
    for j in &r.jobs {
        let _ = writeln!(
            out,
            "- {}: {} PR build(s) ({}) against the last {} `{}` builds; total test time {} → {}",
            md(&j.job),
            j.pr_builds.len(),
            j.pr_builds
                .iter()
                .map(|b| format!("#{b}"))
                .collect::<Vec<_>>()
                .join(", "),
            j.baseline_builds.len(),
            r.baseline.replace('`', "'"),
            secs(j.baseline_total_median),
            secs(j.pr_total_median)
        );
    }
    gate_failures::markdown(&r.failures, &r.baseline, o.flaky_window, &mut out);
    for j in &r.without_baseline {
        let _ = writeln!(
            out,
            "- {}: no `{}` builds to compare with",
            md(j),
            r.baseline
        );
    }
    let row = |c: &Comparison| {
        format!(
            "| `{}` | {} | {} | {} | {:+.0}% | {} | {:.2} | {} | {} |",
            c.test.to_string().replace('`', "'"),
            md(&c.job),
            secs(c.baseline_median),
            secs(c.pr_median),
            (c.ratio - 1.0) * 100.0,
            signed(c.seconds_added),
            c.effect_size,
            pval(c.p_value),
            pval(c.q_value)
        )
    };
    let header = format!(
        "| Test | Job | {} median | PR median | change | seconds added | effect size (SDs) | p | q |\n|--|--|--:|--:|--:|--:|--:|--:|--:|\n",
        r.baseline.replace('`', "'").replace('|', "\\|")
    );
    if r.slower > 0 {
        out.push('\n');
        out.push_str(&header);
        for c in r.compared.iter().filter(|c| c.slower).take(50) {
            let _ = writeln!(out, "{}", row(c));
        }
    }
    let close: Vec<&Comparison> = r
        .compared
        .iter()
        .filter(|c| !c.slower && c.ratio > 1.0)
        .take(5)
        .collect();
    if !close.is_empty() {
        let _ = write!(
            out,
            "\n<details><summary>Closest to the thresholds, not flagged ({})</summary>\n\n{header}",
            close.len()
        );
        for c in close {
            let _ = writeln!(out, "{}", row(c));
        }
        out.push_str("\n</details>\n");
    }
    if !r.erratic.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>Too erratic on `{}` to gate on a few runs ({})</summary>\n",
            r.baseline.replace('`', "'"),
            r.erratic.len()
        );
        for (job, t, m) in r.erratic.iter().take(50) {
            let _ = writeln!(
                out,
                "- `{}` ({}) median {}, some runs under half or over twice that",
                t.to_string().replace('`', "'"),
                md(job),
                secs(*m)
            );
        }
        out.push_str("\n</details>\n");
    }
    if !r.new_tests.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>New in this PR, not gated ({})</summary>\n",
            r.new_tests.len()
        );
        for (job, t, m) in r.new_tests.iter().take(50) {
            let _ = writeln!(
                out,
                "- `{}` ({}) {}",
                t.to_string().replace('`', "'"),
                md(job),
                secs(*m)
            );
        }
        out.push_str("\n</details>\n");
    }
    let _ = writeln!(
        out,
        "\n<sub>Each test's PR runs against its baseline runs (the last {}, since its last change point): one-sided t-test on log durations (prediction interval for the mean of the PR runs), p-values adjusted by Benjamini–Hochberg. Made by `ci-test-metrics analyze --baseline`.</sub>",
        o.baseline_builds
    );
    out
}

fn signed(s: f64) -> String {
    let s = s + 0.0;
    if s >= 0.0 {
        format!("+{}", super::render::secs(s))
    } else {
        super::render::secs(s)
    }
}

fn pval(p: f64) -> String {
    if p < 1e-12 {
        "<1e-12".into()
    } else if p >= 0.01 {
        format!("{p:.2}")
    } else {
        format!("{p:.1e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> TestId {
        TestId {
            suite: "s".into(),
            classname: "c".into(),
            name: name.into(),
        }
    }

    #[test]
    fn baseline_is_its_latest_level() {
        let o = GateOptions::default();
        let step: Vec<f64> = (0..30)
            .map(|i| if i < 18 { 2.0 } else { 5.0 } * (1.0 + 0.01 * (i % 3) as f64))
            .collect();
        assert_eq!(latest_level(step.clone(), &o), step[18..].to_vec());
        let flat: Vec<f64> = (0..30).map(|i| 2.0 + 0.01 * (i % 5) as f64).collect();
        assert_eq!(latest_level(flat.clone(), &o), flat);
    }

    #[test]
    fn bh_matches_the_textbook() {
        // Benjamini & Hochberg (1995)'s procedure on a small table.
        let p = [0.01, 0.04, 0.03, 0.005];
        let q = benjamini_hochberg(&p);
        let want = [0.02, 0.04, 0.04, 0.02];
        for (got, want) in q.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
    }

    #[test]
    fn t_comparison_is_honest_at_one_build() {
        let base: Vec<f64> = (0..30)
            .map(|i| 2.0 * (0.1 * ((i % 7) as f64 - 3.0) / 3.0).exp())
            .collect();
        // Same level: a large p. Twice as slow: a tiny p and a big effect.
        let same = compare("j", &id("t"), &base, &[2.05]);
        assert!(same.p_value > 0.2, "{same:?}");
        let slow = compare("j", &id("t"), &base, &[4.0]);
        assert!(slow.p_value < 1e-6 && slow.effect_size > 5.0, "{slow:?}");
        assert!((slow.ratio - 2.0).abs() < 0.1);
        // More PR builds narrow the interval: the same ratio is more significant.
        let one = compare("j", &id("t"), &base, &[2.4]);
        let three = compare("j", &id("t"), &base, &[2.4, 2.4, 2.4]);
        assert!(three.p_value < one.p_value, "{one:?} {three:?}");
        // A constant baseline does not make any difference significant.
        let flat = compare("j", &id("t"), &[0.01; 20], &[0.0102]);
        assert!(flat.p_value > 0.3, "{flat:?}");
    }
}
