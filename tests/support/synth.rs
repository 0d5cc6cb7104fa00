//! Synthetic build histories with known injected changes, for tests, the accuracy benchmark and
//! `examples/gen_history.rs`. Deterministic: the same [`Config`] always gives the same history.
//!
//! Every test has a log-normal duration with a median between 0.01 s and 20 s (log-uniform) and a
//! coefficient of variation between 5% and 20%. On top of that noise, each job gets:
//! - **steps**: the median rises by ×1.3–×2.5 from one build on, until the end or (one in three)
//!   for 5–30 builds and then back — these are what the analysis must find, at the exact build;
//! - **spikes**: one build ×5–×20;
//! - **drifts**: a linear rise of ×1.3–×2 over at least 100 builds;
//! - **flaky** tests: 15% of runs ×3–×10 slower, 10% of runs failed;
//! - **new** tests (appear and stay) and **removed** tests;
//! - with `shared_steps`, **one commit slows a test in every job**: all jobs then build the same
//!   commits (as the jobs of one pipeline do), and each such commit steps one test per job up.
//!
//! Builds look like master builds on Jenkins: a commit and its git author, the repository URL, and
//! no `CHANGE_AUTHOR` (`user`).
//!
//! [`inject_failures`] then adds failure flakiness to a generated history, from its own random
//! stream (so the durations stay as they were): **failure-flaky** tests (fail with probability
//! p in each build, whatever the commit), **retried** tests (with probability p a build fails
//! then passes them on a retry: status flaky, 2 attempts) and **breakages** (fail in every build
//! from one on, in the last 90 builds and at least 3 before the end); every job gets each kind.
//!
//! Steps, spikes, drifts and flaky behaviour go to tests with a median of at least 0.2 s, so a 30%
//! step adds at least 0.06 s (above the default `--min-seconds`). [`Truth`] lists every injection.

use ci_test_metrics::context::Context;
use ci_test_metrics::junit::Status;
use ci_test_metrics::summary::{BuildSummary, CaseSummary, FileSummary};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[path = "synth_failures.rs"]
mod failures;
#[allow(unused_imports)] // the library's unit tests use the durations only
pub use failures::{inject_failures, Failures};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub seed: u64,
    pub jobs: usize,
    pub builds: usize,
    /// Tests per job.
    pub tests: usize,
    /// Injections per job.
    pub steps: usize,
    pub spikes: usize,
    pub drifts: usize,
    pub flaky: usize,
    pub new_tests: usize,
    pub removed_tests: usize,
    /// Commits that slow one test in every job at once (0: each job has its own commits).
    #[serde(default)]
    pub shared_steps: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            seed: 1,
            jobs: 2,
            builds: 120,
            tests: 200,
            steps: 4,
            spikes: 6,
            drifts: 2,
            flaky: 3,
            new_tests: 2,
            removed_tests: 2,
            shared_steps: 0,
        }
    }
}

impl Config {
    /// A history with no duration injections (noise only), for [`inject_failures`] to add
    /// failures to.
    pub fn noise_only(seed: u64, jobs: usize, builds: usize, tests: usize) -> Config {
        Config {
            seed,
            jobs,
            builds,
            tests,
            steps: 0,
            spikes: 0,
            drifts: 0,
            flaky: 0,
            new_tests: 0,
            removed_tests: 0,
            shared_steps: 0,
        }
    }
}

/// What was injected where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub config: Config,
    pub injections: Vec<Injection>,
}

impl Truth {
    /// The (job, test name) of every injection of these kinds.
    pub fn names(&self, kinds: &[Injected]) -> std::collections::BTreeSet<(&str, &str)> {
        self.injections
            .iter()
            .filter(|i| kinds.contains(&i.kind))
            .map(|i| (i.job.as_str(), i.name.as_str()))
            .collect()
    }
}

/// The kind of an injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Injected {
    Step,
    Spike,
    Drift,
    Flaky,
    NewTest,
    RemovedTest,
    /// Fails with probability p in each build ([`inject_failures`]).
    FlakyFailure,
    /// Fails, then passes on a retry, with probability p in each build.
    Retried,
    /// Fails in every build from `build` on.
    Breakage,
}

/// One injected change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    pub kind: Injected,
    pub job: String,
    pub suite: String,
    pub classname: String,
    pub name: String,
    /// The first build affected (for a removed test: the first build without it).
    pub build: u64,
    pub commit: String,
    /// The commit of the build before (the last good one); empty at the first build.
    #[serde(default)]
    pub previous_commit: String,
    pub author: String,
    /// Median before the change, seconds.
    pub median: f64,
    /// Multiplier (step, spike, drift at its end); 1 for the others.
    pub factor: f64,
    /// Builds the change lasts (to the end for most steps).
    pub lasts: usize,
}

/// A small deterministic PRNG (SplitMix64); good enough for synthetic noise.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform in lo..hi (hi exclusive); lo when the range is empty.
    pub fn index(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            lo
        } else {
            lo + (self.next_u64() % (hi - lo) as u64) as usize
        }
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

const AUTHORS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];

/// What happens to one test.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Plain,
    Step {
        at: usize,
        until: usize,
        factor: f64,
    },
    Spike {
        at: usize,
        factor: f64,
    },
    Drift {
        from: usize,
        to: usize,
        factor: f64,
    },
    Flaky,
    New {
        at: usize,
    },
    Removed {
        at: usize,
    },
}

/// Generates a history and what was injected into it.
pub fn generate(config: &Config) -> (Vec<BuildSummary>, Truth) {
    let mut rng = Rng::new(config.seed);
    let n = config.builds;
    let mut summaries = Vec::with_capacity(config.jobs * n);
    let mut injections = Vec::new();
    let start = time::macros::datetime!(2026-01-05 00:00 UTC);
    // Shared commits and the builds where a shared step starts, from their own stream so that
    // histories without them stay as they were.
    let mut shared_rng = Rng::new(config.seed ^ 0x00c0_ffee);
    let shared: Vec<(String, usize)> = (0..n)
        .map(|_| {
            let commit = format!(
                "{:016x}{:016x}{:08x}",
                shared_rng.next_u64(),
                shared_rng.next_u64(),
                shared_rng.next_u64() as u32
            );
            (commit, shared_rng.index(0, AUTHORS.len()))
        })
        .collect();
    let shared_at: Vec<(usize, f64)> = (0..config.shared_steps)
        .map(|_| {
            (
                shared_rng.index(10.min(n), n.saturating_sub(5)),
                shared_rng.range(1.3, 2.5),
            )
        })
        .collect();
    for j in 0..config.jobs {
        let job = format!("ci-demo/unit-{}", ["cpu", "gpu", "arm", "win"][j % 4])
            + &if j >= 4 {
                format!("-{j}")
            } else {
                String::new()
            };
        // Builds: numbers with an occasional gap (aborted builds), hourly with jitter.
        let mut contexts = Vec::with_capacity(n);
        let mut number = 100u64;
        for b in 0..n {
            number += if rng.unit() < 0.05 { 2 } else { 1 };
            let commit = format!(
                "{:016x}{:016x}{:08x}",
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64() as u32
            );
            let pr = (rng.unit() < 0.8).then(|| 20_000 + rng.index(0, 5_000) as u64);
            let mut author = AUTHORS[rng.index(0, AUTHORS.len())];
            let mut commit = commit;
            if config.shared_steps > 0 {
                commit = shared[b].0.clone();
                author = AUTHORS[shared[b].1];
            }
            let timestamp =
                start + time::Duration::seconds(b as i64 * 3600 + rng.index(0, 600) as i64);
            let node = Some(format!("agent-{}", rng.index(1, 9)));
            contexts.push(Context {
                build_url: Some(format!(
                    "https://jenkins.example.invalid/job/{job}/job/master/{number}/"
                )),
                commit: Some(commit),
                author: Some(ci_test_metrics::context::Author {
                    name: author.to_string(),
                    email: Some(format!("{author}@example.com")),
                }),
                repo_url: Some("https://github.com/ci-demo/project".into()),
                pr,
                node,
                ..Context::new(&job, "master", number, timestamp)
            });
        }
        // Tests: medians log-uniform 0.01–20 s, CV 5–20%.
        let tests: Vec<(f64, f64)> = (0..config.tests)
            .map(|_| {
                let median = (rng.range(0.01f64.ln(), 20f64.ln())).exp();
                let cv = rng.range(0.05, 0.20);
                (median, (1.0 + cv * cv).ln().sqrt())
            })
            .collect();
        let mut plans = vec![Plan::Plain; config.tests];
        let mut eligible: Vec<usize> = (0..config.tests).filter(|&t| tests[t].0 >= 0.2).collect();
        let mut pick = |rng: &mut Rng| -> Option<usize> {
            (!eligible.is_empty()).then(|| eligible.swap_remove(rng.index(0, eligible.len())))
        };
        for _ in 0..config.steps {
            let Some(t) = pick(&mut rng) else { break };
            let at = rng.index(10.min(n), n.saturating_sub(5));
            let until = if rng.unit() < 1.0 / 3.0 {
                (at + rng.index(5, 31)).min(n)
            } else {
                n
            };
            plans[t] = Plan::Step {
                at,
                until,
                factor: rng.range(1.3, 2.5),
            };
        }
        for &(at, factor) in &shared_at {
            let Some(t) = pick(&mut rng) else { break };
            plans[t] = Plan::Step {
                at,
                until: n,
                factor,
            };
        }
        for _ in 0..config.spikes {
            let Some(t) = pick(&mut rng) else { break };
            let at = rng.index(1, n);
            plans[t] = Plan::Spike {
                at,
                factor: rng.range(5.0, 20.0),
            };
        }
        for _ in 0..config.drifts {
            let Some(t) = pick(&mut rng) else { break };
            let from = rng.index(0, n.saturating_sub(100).max(1));
            let to = rng.index((from + 100).min(n), n + 1);
            plans[t] = Plan::Drift {
                from,
                to,
                factor: rng.range(1.3, 2.0),
            };
        }
        for _ in 0..config.flaky {
            let Some(t) = pick(&mut rng) else { break };
            plans[t] = Plan::Flaky;
        }
        for _ in 0..config.new_tests {
            let t = rng.index(0, config.tests);
            if !matches!(plans[t], Plan::Plain) {
                continue;
            }
            let at = rng.index(10.min(n), n.saturating_sub(10));
            plans[t] = Plan::New { at };
        }
        for _ in 0..config.removed_tests {
            let t = rng.index(0, config.tests);
            if !matches!(plans[t], Plan::Plain) {
                continue;
            }
            let at = rng.index(10.min(n), n.saturating_sub(10));
            plans[t] = Plan::Removed { at };
        }
        let id = |t: usize| {
            let module = t / 25;
            (
                format!("tests.module_{module}"),
                format!("tests.module_{module}.TestCase{}", t % 5),
                format!("test_case_{t}"),
            )
        };
        for (t, plan) in plans.iter().enumerate() {
            let (kind, at, factor, lasts) = match *plan {
                Plan::Plain => continue,
                Plan::Step { at, until, factor } => (Injected::Step, at, factor, until - at),
                Plan::Spike { at, factor } => (Injected::Spike, at, factor, 1),
                Plan::Drift { from, to, factor } => (Injected::Drift, from, factor, to - from),
                Plan::Flaky => (Injected::Flaky, 0, 1.0, n),
                Plan::New { at } => (Injected::NewTest, at, 1.0, n - at),
                Plan::Removed { at } => (Injected::RemovedTest, at, 1.0, n - at),
            };
            let (suite, classname, name) = id(t);
            let c = &contexts[at.min(n - 1)];
            let previous_commit = at
                .min(n - 1)
                .checked_sub(1)
                .and_then(|p| contexts[p].commit.clone())
                .unwrap_or_default();
            injections.push(Injection {
                kind,
                job: job.clone(),
                suite,
                classname,
                name,
                build: c.build,
                commit: c.commit.clone().unwrap_or_default(),
                previous_commit,
                author: c.who().unwrap_or_default(),
                median: tests[t].0,
                factor,
                lasts,
            });
        }
        for (b, context) in contexts.into_iter().enumerate() {
            let mut cases = Vec::with_capacity(config.tests);
            for (t, &(median, sigma)) in tests.iter().enumerate() {
                let mut status = Status::Passed;
                let level = match plans[t] {
                    Plan::Step { at, until, factor } if (at..until).contains(&b) => factor,
                    Plan::Spike { at, factor } if at == b => factor,
                    Plan::Drift { from, to, factor } if b >= from => {
                        1.0 + (factor - 1.0)
                            * ((b - from) as f64 / (to - from).max(1) as f64).min(1.0)
                    }
                    Plan::Flaky => {
                        if rng.unit() < 0.1 {
                            status = Status::Failed;
                        }
                        if rng.unit() < 0.15 {
                            rng.range(3.0, 10.0)
                        } else {
                            1.0
                        }
                    }
                    Plan::New { at } if b < at => continue,
                    Plan::Removed { at } if b >= at => continue,
                    _ => 1.0,
                };
                let time = median * level * (sigma * rng.normal()).exp();
                let (suite, classname, name) = id(t);
                cases.push(CaseSummary {
                    suite,
                    classname,
                    name,
                    time: Some((time * 1e4).round() / 1e4),
                    status,
                    attempts: 1,
                });
            }
            summaries.push(BuildSummary {
                schema_version: ci_test_metrics::summary::SCHEMA_VERSION,
                context,
                branch_class: "master".into(),
                published: true,
                files: vec![FileSummary {
                    name: "unittest-results.xml".into(),
                    error: None,
                    partial: false,
                    cases,
                }],
            });
        }
    }
    (
        summaries,
        Truth {
            config: config.clone(),
            injections,
        },
    )
}

/// Turns the last `builds` builds of `job` into builds of a pull request `PR-{pr}` (numbered from
/// 1, with `CHANGE_*` fields), as if the PR had been built from the latest master; with `slow`,
/// the named test's durations in them are multiplied by the factor. Returns how many builds
/// were moved. The builds before stay master: the PR's baseline.
pub fn split_pull_request(
    summaries: &mut [BuildSummary],
    job: &str,
    builds: usize,
    pr: u64,
    slow: Option<(&str, f64)>,
) -> usize {
    let mut idx: Vec<usize> = (0..summaries.len())
        .filter(|&i| summaries[i].context.job == job && summaries[i].context.branch == "master")
        .collect();
    idx.sort_by_key(|&i| (summaries[i].context.timestamp, summaries[i].context.build));
    let moved = &idx[idx.len().saturating_sub(builds)..];
    for (n, &i) in moved.iter().enumerate() {
        let s = &mut summaries[i];
        let branch = format!("PR-{pr}");
        s.context.build = n as u64 + 1;
        s.context.build_url = Some(format!(
            "https://jenkins.example.invalid/job/{job}/job/{branch}/{}/",
            n + 1
        ));
        s.context.user = s.context.author.as_ref().map(|a| a.name.clone());
        s.context.pr = Some(pr);
        s.context.target_branch = Some("master".into());
        s.context.source_branch = Some(format!("feature-{pr}"));
        s.context.branch = branch;
        s.branch_class = "pr".into();
        s.published = true;
        if let Some((name, factor)) = slow {
            for c in s.files.iter_mut().flat_map(|f| f.cases.iter_mut()) {
                if c.name == name {
                    c.time = c.time.map(|t| (t * factor * 1e4).round() / 1e4);
                }
            }
        }
    }
    moved.len()
}

/// How [`write_local_store`] writes a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Staged for the history tables, as `aggregate` leaves it before its day is published.
    Staged,
    /// Only as a version before the history tables kept it, a gzip JSON summary (no context or
    /// result files, as after a lifecycle rule expired them): for the migration test.
    LegacySummary,
    /// Only its result files as JUnit XML beside the context: uploaded, not aggregated yet.
    Raw,
}

/// Writes a history as a local-directory store: each build's context
/// (`{dir}/{job}/{branch}/{build}/context.json`) and its cases as `how(i)` says.
pub fn write_local_store(
    dir: &Path,
    summaries: &[BuildSummary],
    how: impl Fn(usize) -> Stored,
) -> std::io::Result<()> {
    for (i, s) in summaries.iter().enumerate() {
        let id = ci_test_metrics::layout::BuildId {
            job: s.context.job.clone(),
            branch: s.context.branch.clone(),
            build: s.context.build,
        };
        let how = how(i);
        if how != Stored::LegacySummary {
            let context = dir.join(id.key(ci_test_metrics::layout::CONTEXT_FILE));
            write(&context, &s.context.to_json())?;
        }
        match how {
            Stored::Staged => {
                let key = ci_test_metrics::table::staged_key(
                    &ci_test_metrics::table::date_of(s.context.timestamp),
                    &id,
                );
                let bytes = ci_test_metrics::table::staged::staged(&id, s, &[])
                    .map_err(std::io::Error::other)?;
                write(&dir.join(key), &bytes)?;
            }
            Stored::LegacySummary => {
                write(
                    &dir.join(ci_test_metrics::summary::key(&id)),
                    &s.to_gzip_json(),
                )?;
            }
            Stored::Raw => {
                for f in &s.files {
                    write(&dir.join(id.key(&f.name)), junit_xml(&f.cases).as_bytes())?;
                }
            }
        }
    }
    Ok(())
}

/// Cases as a JUnit XML file (one `<testsuite>` per run of cases with the same suite).
pub fn junit_xml(cases: &[CaseSummary]) -> String {
    let esc = |v: &str| {
        v.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;")
    };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for group in cases.chunk_by(|a, b| a.suite == b.suite) {
        out.push_str(&format!(
            " <testsuite name=\"{}\" tests=\"{}\">\n",
            esc(&group[0].suite),
            group.len()
        ));
        for c in group {
            let time = c.time.map(|t| format!(" time=\"{t}\"")).unwrap_or_default();
            let body = match c.status {
                Status::Passed => String::new(),
                Status::Skipped => "<skipped/>".into(),
                Status::Failed => "<failure message=\"failed\"/>".into(),
                Status::Error => "<error message=\"error\"/>".into(),
                Status::Flaky => "<flakyFailure type=\"flaky\"/>".into(),
            };
            out.push_str(&format!(
                "  <testcase classname=\"{}\" name=\"{}\"{time}>{body}</testcase>\n",
                esc(&c.classname),
                esc(&c.name)
            ));
        }
        out.push_str(" </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

#[cfg(test)]
#[allow(unused_imports)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_as_configured() {
        let config = Config::default();
        let (a, truth) = generate(&config);
        let (b, _) = generate(&config);
        assert_eq!(a, b);
        assert_eq!(a.len(), config.jobs * config.builds);
        let steps = truth
            .injections
            .iter()
            .filter(|i| i.kind == Injected::Step)
            .count();
        assert_eq!(steps, config.jobs * config.steps);
        assert!(truth
            .injections
            .iter()
            .all(|i| i.kind != Injected::Step || (i.factor >= 1.3 && i.lasts >= 5)));
    }
}
