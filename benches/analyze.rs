//! Accuracy and speed of `analyze` on generated histories (`cargo bench --bench analyze`).
//!
//! Accuracy: histories from [`synth`] with injected steps (≥30%, lasting ≥5 builds), single
//! spikes, slow drifts, flaky tests and new/removed tests at 5–20% noise. A finding is a true
//! positive when it names an injected step's test (one finding per step; a second finding on the
//! same test, or any finding on a decoy, is a false positive); it is exact when it also names the
//! injected first build. Compared with two simple rules, applied to the same series:
//! - "5× mean and above max" (as Datadog flags a slow run): the first build whose duration is at
//!   least 5× the mean of the builds before it and above their maximum;
//! - "p50 over a fixed threshold" (as Buildkite/Trunk alert): the first build where the p50 of the
//!   last 10 builds exceeds a fixed threshold, set at 1.2× the p50 of the first 20 builds.
//!
//! Speed: 1,000 builds × 10,000 tests, timing the series building and the analysis, and
//! separately the decoding of the 1,000 gzip JSON summaries (loading, without store I/O).
//!
//! Attribution (`-- attribution`): histories where all jobs build the same commits and some commits
//! slow one test in every job. A regression's range is a hit when it names exactly the injected
//! last good and first bad commits. Causes (regressions grouped by commit) are scored once each: a
//! cause is a hit when its commit, its last good commit and its set of jobs are all right; the
//! true causes are the injected steps and new tests, grouped by commit.
//!
//! PR gate (`-- gate`): a clean master of 30 builds with noise and flaky tests, and a PR of 1, 2
//! or 3 builds from the same distribution: the false-alarm rate is the share of clean PRs where
//! any test is flagged; the detection rate the share of PRs with one test (median ≥ 0.2 s, so a
//! ×1.5 step adds more than `--min-seconds`) made ×1.5 slower where that test is flagged.
//!
//! Flaky tests (`-- flaky`): histories of 100 builds (the default window) where each job has 3
//! failure-flaky tests (fail with probability p, whatever the commit), 1 retried test (with
//! probability p failed, then passed on a retry) and 2 breakages (fail from a build in the last
//! 90 on), at p = 0.02, 0.05, 0.1 and 0.2. Flaky detection: precision over the tests listed as
//! flaky, recall over the failure-flaky and retried tests (and over the failure-flaky alone, the
//! hard part). Breakage detection: a hit names the injected test and its first failing build.
//!
//! `cargo bench --bench analyze -- accuracy` or `-- speed` runs one part; `-- holdout` runs the
//! accuracy part on 20 other seeds.

use ci_test_metrics::analyze::model::Kind;
use ci_test_metrics::analyze::series::{self, JobSeries};
#[path = "../tests/support/synth.rs"]
#[allow(dead_code)]
mod synth;
use ci_test_metrics::analyze::{analyze, changepoint::median, Options};
use ci_test_metrics::summary::BuildSummary;
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use synth::{Config, Injected, Truth};

/// A finding: (job, test name, first build named).
type Finding = (String, String, u64);

#[derive(Default, Debug, Clone, Copy)]
struct Score {
    findings: usize,
    true_positives: usize,
    exact: usize,
    steps: usize,
}

impl Score {
    fn add(&mut self, truth: &Truth, findings: &[Finding]) {
        let steps: HashMap<(&str, &str), u64> = truth
            .injections
            .iter()
            .filter(|i| i.kind == Injected::Step)
            .map(|i| ((i.job.as_str(), i.name.as_str()), i.build))
            .collect();
        self.steps += steps.len();
        let mut seen = HashSet::new();
        for (job, name, build) in findings {
            self.findings += 1;
            if let Some(&want) = steps.get(&(job.as_str(), name.as_str())) {
                if seen.insert((job.clone(), name.clone())) {
                    self.true_positives += 1;
                    self.exact += usize::from(*build == want);
                }
            }
        }
    }
    fn line(&self, name: &str) -> String {
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                f64::NAN
            } else {
                a as f64 / b as f64
            }
        };
        format!(
            "{name:<34} {:>9.3} {:>7.3} {:>12.3} {:>9} {:>5} {:>6}",
            ratio(self.true_positives, self.findings),
            ratio(self.true_positives, self.steps),
            ratio(self.exact, self.true_positives),
            self.findings,
            self.true_positives,
            self.exact
        )
    }
}

/// Ours: the shift regressions of the report.
fn ours(jobs: &[JobSeries]) -> Vec<Finding> {
    analyze(jobs, &Options::default())
        .regressions
        .into_iter()
        .filter(|r| r.kind == Kind::Shift)
        .map(|r| (r.job, r.test.name, r.first_build.build))
        .collect()
}

/// Applies a per-series rule that returns the index of the first flagged value.
fn rule(jobs: &[JobSeries], flag: impl Fn(&[f64]) -> Option<usize>) -> Vec<Finding> {
    let mut out = Vec::new();
    for j in jobs {
        for t in &j.tests {
            let (x, at) = t.known();
            if let Some(i) = flag(&x) {
                out.push((j.job.clone(), t.id.name.clone(), j.builds[at[i]].build));
            }
        }
    }
    out
}

/// "A run at least 5× the mean and above the max" of the runs before it.
fn five_times_mean(x: &[f64]) -> Option<usize> {
    let (mut sum, mut max) = (0.0, f64::NEG_INFINITY);
    for (i, &v) in x.iter().enumerate() {
        if i > 0 && v >= 5.0 * sum / i as f64 && v > max {
            return Some(i);
        }
        sum += v;
        max = max.max(v);
    }
    None
}

/// "p50 of the last 10 builds over a fixed threshold" (1.2× the p50 of the first 20).
fn p50_threshold(x: &[f64]) -> Option<usize> {
    if x.len() < 30 {
        return None;
    }
    let threshold = 1.2 * median(&x[..20]);
    (20..x.len()).find(|&i| median(&x[i + 1 - 10..=i]) > threshold)
}

fn accuracy(seeds: std::ops::RangeInclusive<u64>) {
    let mut scores = [Score::default(); 3];
    let mut decoys: HashMap<String, usize> = HashMap::new();
    let mut analysis_time = 0.0;
    let (mut missed, mut off_by) = (Vec::new(), Vec::new());
    let mut config = Config {
        jobs: 2,
        builds: 200,
        tests: 300,
        steps: 8,
        spikes: 10,
        drifts: 4,
        flaky: 5,
        new_tests: 3,
        removed_tests: 3,
        shared_steps: 0,
        ..Config::default()
    };
    println!(
        "accuracy: seeds {seeds:?}, per seed {} jobs × {} builds × {} tests; per job {} steps, {} spikes, {} drifts, {} flaky, {} new, {} removed",
        config.jobs, config.builds, config.tests, config.steps, config.spikes, config.drifts, config.flaky, config.new_tests, config.removed_tests
    );
    for seed in seeds {
        config.seed = seed;
        let (summaries, truth) = synth::generate(&config);
        let jobs = series::build(&summaries);
        let t = Instant::now();
        let mine = ours(&jobs);
        analysis_time += t.elapsed().as_secs_f64();
        let kinds: HashMap<(&str, &str), Injected> = truth
            .injections
            .iter()
            .map(|i| ((i.job.as_str(), i.name.as_str()), i.kind))
            .collect();
        for (job, name, _) in &mine {
            let kind = kinds.get(&(job.as_str(), name.as_str()));
            if kind != Some(&Injected::Step) {
                *decoys.entry(format!("{kind:?}")).or_default() += 1;
            }
        }
        scores[0].add(&truth, &mine);
        for i in truth.injections.iter().filter(|i| i.kind == Injected::Step) {
            let found = mine.iter().find(|(j, n, _)| *j == i.job && *n == i.name);
            let at = jobs
                .iter()
                .find(|j| j.job == i.job)
                .and_then(|j| j.builds.iter().position(|b| b.build == i.build))
                .unwrap_or(0);
            let lasting = if at + i.lasts >= config.builds {
                "to end"
            } else {
                "reverts"
            };
            match found {
                None => missed.push(format!(
                    "seed {seed} {} {} build {}: {:.2}s ×{:.2} lasting {} ({lasting})",
                    i.job, i.name, i.build, i.median, i.factor, i.lasts
                )),
                Some((_, _, b)) if *b != i.build => off_by.push(*b as i64 - i.build as i64),
                _ => {}
            }
        }
        scores[1].add(&truth, &rule(&jobs, five_times_mean));
        scores[2].add(&truth, &rule(&jobs, p50_threshold));
    }
    println!(
        "{:<34} {:>9} {:>7} {:>12} {:>9} {:>5} {:>6}",
        "method", "precision", "recall", "exact build", "findings", "TP", "exact"
    );
    println!("{}", scores[0].line("ours (rank change points)"));
    println!("{}", scores[1].line("5x mean and above max"));
    println!("{}", scores[2].line("p50 over fixed threshold (1.2x)"));
    println!("injected steps: {}", scores[0].steps);
    println!("our false positives by what the test really was: {decoys:?}");
    println!("our analysis time over all seeds: {analysis_time:.2}s");
    println!("steps we missed: {missed:?}");
    println!("first build named minus injected, where not exact: {off_by:?}");
}

fn attribution(seeds: std::ops::RangeInclusive<u64>) {
    let mut config = Config {
        jobs: 3,
        builds: 200,
        tests: 300,
        steps: 4,
        spikes: 10,
        drifts: 4,
        flaky: 5,
        new_tests: 3,
        removed_tests: 3,
        shared_steps: 3,
        ..Config::default()
    };
    let (mut steps, mut found, mut range_hits) = (0, 0, 0);
    let (mut causes_reported, mut truth_causes, mut cause_hits, mut split) = (0, 0, 0, 0);
    for seed in seeds.clone() {
        config.seed = seed;
        let (summaries, truth) = synth::generate(&config);
        let report = analyze(&series::build(&summaries), &Options::default());
        let injected: Vec<_> = truth
            .injections
            .iter()
            .filter(|i| i.kind == Injected::Step)
            .collect();
        for i in &injected {
            steps += 1;
            let r = report
                .regressions
                .iter()
                .find(|r| r.kind == Kind::Shift && r.job == i.job && r.test.name == i.name);
            if let Some(r) = r {
                found += 1;
                let good = r.range.last_good.as_ref().and_then(|b| b.commit.as_deref());
                if r.range.first_bad.commit.as_deref() == Some(i.commit.as_str())
                    && good == Some(i.previous_commit.as_str())
                {
                    range_hits += 1;
                }
            }
        }
        // The true causes: injected steps and new tests grouped by commit, with their jobs.
        let mut truth_by_commit: HashMap<&str, (&str, HashSet<&str>)> = HashMap::new();
        for i in truth
            .injections
            .iter()
            .filter(|i| matches!(i.kind, Injected::Step | Injected::NewTest))
        {
            let e = truth_by_commit
                .entry(i.commit.as_str())
                .or_insert((i.previous_commit.as_str(), HashSet::new()));
            e.1.insert(i.job.as_str());
        }
        truth_causes += truth_by_commit.len();
        causes_reported += report.causes.len();
        for c in &report.causes {
            let Some((good, jobs)) = c.commit.as_deref().and_then(|k| truth_by_commit.get(k))
            else {
                continue;
            };
            let got: HashSet<&str> = c.jobs.iter().map(String::as_str).collect();
            let last_good = c.range.last_good.as_ref().and_then(|b| b.commit.as_deref());
            if got == *jobs && last_good == Some(*good) {
                cause_hits += 1;
            } else if got.len() < jobs.len() {
                split += 1;
            }
        }
    }
    let ratio = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    println!(
        "attribution: seeds {seeds:?}, {} jobs sharing commits × {} builds × {} tests; per seed {} shared steps (one commit, every job) + {} own steps per job",
        config.jobs, config.builds, config.tests, config.shared_steps, config.steps
    );
    println!("{:<44} {:>8} {:>8} {:>8}", "", "count", "of", "share");
    println!(
        "{:<44} {:>8} {:>8} {:>8.3}",
        "steps found (shift on the right test)",
        found,
        steps,
        ratio(found, steps)
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8.3}",
        "exact commit range (of steps found)",
        range_hits,
        found,
        ratio(range_hits, found)
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8.3}",
        "exact commit range (of all steps)",
        range_hits,
        steps,
        ratio(range_hits, steps)
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8.3}",
        "causes right: commit, range, every job",
        cause_hits,
        truth_causes,
        ratio(cause_hits, truth_causes)
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8.3}",
        "causes reported that are right (precision)",
        cause_hits,
        causes_reported,
        ratio(cause_hits, causes_reported)
    );
    println!(
        "{:<44} {:>8}",
        "true causes reported with a job missing", split
    );
}

fn gate_bench(runs: u64) {
    use ci_test_metrics::analyze::gate::{gate, GateOptions};
    println!(
        "PR gate: {runs} PRs per cell; master 30 builds × 300 tests (noise CV 5–20%, 5 flaky tests), defaults {:?}",
        GateOptions::default()
    );
    println!(
        "{:<10} {:>18} {:>22} {:>24}",
        "PR builds", "false alarms", "detected ×1.5 step", "other tests flagged too"
    );
    for k in 1..=3usize {
        let (mut alarms, mut detected, mut collateral) = (0, 0, 0);
        for seed in 0..runs {
            let config = Config {
                seed: 10_000 + seed,
                jobs: 1,
                builds: 30 + k,
                tests: 300,
                steps: 0,
                spikes: 0,
                drifts: 0,
                flaky: 5,
                new_tests: 0,
                removed_tests: 0,
                shared_steps: 0,
            };
            let (summaries, truth) = synth::generate(&config);
            let job = summaries[0].context.job.clone();
            let flaky: HashSet<&str> = truth
                .injections
                .iter()
                .filter(|i| i.kind == Injected::Flaky)
                .map(|i| i.name.as_str())
                .collect();
            let eligible: Vec<String> = summaries[0]
                .cases()
                .filter(|c| c.time.is_some_and(|t| t >= 0.2) && !flaky.contains(c.name.as_str()))
                .map(|c| c.name.clone())
                .collect();
            let target = eligible[(seed as usize * 7919) % eligible.len()].clone();
            for slow in [None, Some((target.as_str(), 1.5))] {
                let mut s = summaries.clone();
                synth::split_pull_request(&mut s, &job, k, 1, slow);
                let series = series::build(&s);
                let pr: Vec<_> = series.iter().filter(|j| j.branch == "PR-1").collect();
                let base: Vec<_> = series.iter().filter(|j| j.branch == "master").collect();
                let r = gate("PR-1", "master", &pr, &base, &GateOptions::default());
                match slow {
                    None => {
                        alarms += usize::from(r.slower > 0);
                        if std::env::var_os("GATE_DEBUG").is_some() {
                            for c in r.compared.iter().filter(|c| c.slower) {
                                eprintln!("k={k} seed={seed} {} flaky={} base={:.3} pr={:.3} ratio={:.2} p={:.2e} q={:.2e} runs={}/{}", c.test.name, flaky.contains(c.test.name.as_str()), c.baseline_median, c.pr_median, c.ratio, c.p_value, c.q_value, c.baseline_runs, c.pr_runs);
                            }
                        }
                    }
                    Some((name, _)) => {
                        detected +=
                            usize::from(r.compared.iter().any(|c| c.slower && c.test.name == name));
                        collateral +=
                            usize::from(r.compared.iter().any(|c| c.slower && c.test.name != name));
                    }
                }
            }
        }
        let pct = |n: usize| 100.0 * n as f64 / runs as f64;
        println!(
            "{k:<10} {:>11} ({:>4.1}%) {:>15} ({:>4.1}%) {:>17} ({:>4.1}%)",
            alarms,
            pct(alarms),
            detected,
            pct(detected),
            collateral,
            pct(collateral)
        );
    }
}

fn speed() {
    let config = Config {
        seed: 7,
        jobs: 1,
        builds: 1000,
        tests: 10_000,
        steps: 20,
        spikes: 50,
        drifts: 10,
        flaky: 20,
        new_tests: 20,
        removed_tests: 20,
        shared_steps: 0,
    };
    let t = Instant::now();
    let (summaries, _) = synth::generate(&config);
    println!(
        "speed: {} builds × {} tests generated in {:.2}s",
        config.builds,
        config.tests,
        t.elapsed().as_secs_f64()
    );
    // The same bytes as `BuildSummary::to_gzip_json`, through a buffer (much faster to make).
    let t = Instant::now();
    let encoded: Vec<Vec<u8>> = summaries.iter().map(gzip_json).collect();
    let encode = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let jobs = series::build(&summaries);
    let build = t.elapsed().as_secs_f64();
    drop(summaries);
    let t = Instant::now();
    let report = analyze(&jobs, &Options::default());
    let analysis = t.elapsed().as_secs_f64();
    println!(
        "  series from summaries {build:.2}s + change points and report {analysis:.2}s = {:.2}s ({} regressions; threads: {})",
        build + analysis,
        report.regressions.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    drop(jobs);
    let t = Instant::now();
    let decoded: usize = encoded
        .iter()
        .map(|b| BuildSummary::from_gzip_json(b).map_or(0, |s| s.files[0].cases.len()))
        .sum();
    println!(
        "  loading: decoding {} gzip JSON summaries ({:.0} MB, {decoded} cases) {:.2}s (encoding them took {encode:.2}s; store I/O not included)",
        encoded.len(),
        encoded.iter().map(Vec::len).sum::<usize>() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    // The loader decodes on blocking threads; the same on every core:
    let t = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parallel: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = encoded
            .chunks(encoded.len().div_ceil(threads))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|b| {
                            BuildSummary::from_gzip_json(b).map_or(0, |s| s.files[0].cases.len())
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    println!(
        "  loading on {threads} threads: {:.2}s ({parallel} cases)",
        t.elapsed().as_secs_f64()
    );
}

fn gzip_json(s: &BuildSummary) -> Vec<u8> {
    let json = serde_json::to_vec(s).expect("serialises");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &json).expect("in memory");
    enc.finish().expect("in memory")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = args.is_empty();
    if all || args.iter().any(|a| a == "accuracy") {
        accuracy(1..=10);
    }
    // Seeds the thresholds were never looked at with.
    if args.iter().any(|a| a == "holdout") {
        accuracy(101..=120);
    }
    if all || args.iter().any(|a| a == "attribution") {
        attribution(1..=10);
    }
    if all || args.iter().any(|a| a == "gate") {
        gate_bench(200);
    }
    if all || args.iter().any(|a| a == "flaky") {
        flaky_accuracy(1..=20);
    }
    if all || args.iter().any(|a| a == "speed") {
        speed();
    }
}

/// Precision and recall of flaky-test and breakage detection (see the module's comment).
fn flaky_accuracy(seeds: std::ops::RangeInclusive<u64>) {
    let config = |seed| Config::noise_only(seed, 2, 100, 100);
    println!(
        "flaky tests: seeds {seeds:?}, per seed 2 jobs × 100 builds × 100 tests; per job 3 failure-flaky, 1 retried, 2 breakages; window 100"
    );
    println!("p      flaky: precision recall (failure-flaky only)   breakages: precision recall");
    for p in [0.02, 0.05, 0.1, 0.2] {
        // (listed, true listed, truth, failure-flaky truth, failure-flaky found, found with a
        // start named: all false, they were flaky from the first build)
        let (mut flaky, mut breakage) = ([0usize; 6], [0usize; 3]);
        for seed in seeds.clone() {
            let (mut summaries, mut truth) = synth::generate(&config(seed));
            let failures = synth::Failures {
                seed,
                flaky: 3,
                retried: 1,
                p,
                breakages: 2,
            };
            synth::inject_failures(&mut summaries, &mut truth, &failures);
            let report = analyze(&series::build(&summaries), &Options::default());
            let want = truth.names(&[Injected::FlakyFailure, Injected::Retried]);
            let hard = truth.names(&[Injected::FlakyFailure]);
            let listed: std::collections::BTreeSet<(&str, &str)> = report
                .flaky_failures
                .iter()
                .map(|f| (f.job.as_str(), f.test.name.as_str()))
                .collect();
            flaky[0] += listed.len();
            flaky[1] += listed.intersection(&want).count();
            flaky[2] += want.len();
            flaky[3] += hard.len();
            flaky[4] += listed.intersection(&hard).count();
            flaky[5] += report
                .flaky_failures
                .iter()
                .filter(|f| f.started.is_some())
                .count();
            let broken: HashSet<(&str, &str, u64)> = truth
                .injections
                .iter()
                .filter(|i| i.kind == Injected::Breakage)
                .map(|i| (i.job.as_str(), i.name.as_str(), i.build))
                .collect();
            breakage[0] += report.breakages.len();
            breakage[1] += report
                .breakages
                .iter()
                .filter(|b| {
                    broken.contains(&(
                        b.job.as_str(),
                        b.test.name.as_str(),
                        b.range.first_bad.build,
                    ))
                })
                .count();
            breakage[2] += broken.len();
        }
        let ratio = |a: usize, b: usize| a as f64 / b.max(1) as f64;
        println!(
            "{p:<6} {:>16.3} {:>6.3} {:>6.3} ({}/{} listed true, {} flaky; {} false starts)   {:>9.3} {:>6.3} ({}/{} exact, {} broken)",
            ratio(flaky[1], flaky[0]),
            ratio(flaky[1], flaky[2]),
            ratio(flaky[4], flaky[3]),
            flaky[1],
            flaky[0],
            flaky[2],
            flaky[5],
            ratio(breakage[1], breakage[0]),
            ratio(breakage[1], breakage[2]),
            breakage[1],
            breakage[0],
            breakage[2]
        );
    }
}
