//! Failure flakiness of one test on one branch, from its outcomes build by build: flaky (and
//! why), a breakage (and from which build), or neither, with its failure and flip rates. Pure;
//! the report and the PR gate feed it. Method and thresholds: `docs/analyze.md`, "Flaky tests".

/// A test's outcome in one build, after retries within the build were merged
/// ([`crate::junit::retry`]). One byte: series keep one per test and build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Outcome {
    #[default]
    /// The build did not run the test (or has no result for it).
    NotRun,
    Passed,
    /// Failed or errored, retries included.
    Failed,
    Skipped,
    /// Failed or errored, then passed on a retry in the same build.
    Flaky,
}

impl Outcome {
    /// Two cases of one test in one build (a test that runs twice, or a build's files read in
    /// any order) merge to the more telling outcome, whatever their order: failed over flaky
    /// over passed over skipped over not run.
    pub fn merge(self, other: Outcome) -> Outcome {
        let rank = |o: Outcome| match o {
            Outcome::NotRun => 0,
            Outcome::Skipped => 1,
            Outcome::Passed => 2,
            Outcome::Flaky => 3,
            Outcome::Failed => 4,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<crate::junit::Status> for Outcome {
    fn from(status: crate::junit::Status) -> Outcome {
        use crate::junit::Status;
        match status {
            Status::Passed => Outcome::Passed,
            Status::Failed | Status::Error => Outcome::Failed,
            Status::Skipped => Outcome::Skipped,
            Status::Flaky => Outcome::Flaky,
        }
    }
}

/// One build of the test's branch, in build order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run<'a> {
    pub outcome: Outcome,
    /// The build's commit, when known.
    pub commit: Option<&'a str>,
}

/// The thresholds; the defaults are documented in `docs/analyze.md`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The latest builds looked at (of the branch, whether they ran the test or not).
    pub window: usize,
    /// Intermittent: at least this many short failure episodes …
    pub min_episodes: usize,
    /// … of at most this many consecutive failed runs each …
    pub max_episode_runs: usize,
    /// … and a flip rate of at least this.
    pub min_flip_rate: f64,
    /// A breakage: the test failed in at least this many runs in a row up to the latest.
    pub min_breakage_runs: usize,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            window: 100,
            min_episodes: 2,
            max_episode_runs: 3,
            min_flip_rate: 0.02,
            min_breakage_runs: 3,
        }
    }
}

/// Why a test is flaky; every reason that holds is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// It failed, then passed on a retry, in these builds (indices into the input).
    WithinBuild(Vec<usize>),
    /// It passed and failed on these commits.
    SameCommit(Vec<String>),
    /// Its failures came and went in this many short episodes no commit explains.
    Intermittent { episodes: usize },
}

/// What the history says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Flaky(Vec<Reason>),
    /// It fails in every run from the build with this index (into the input) on, `runs` runs
    /// so far: a change broke it. Attribute it to the commits before that build, like a
    /// slowdown.
    Breakage {
        from: usize,
        runs: usize,
    },
    Neither,
}

/// The verdict and the rates, over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub verdict: Verdict,
    /// Builds in the window that ran the test and passed, failed or were flaky.
    pub runs: usize,
    /// Of those, failed ones (a build where a retry passed is not a failure).
    pub failures: usize,
    /// `failures / runs`; `None` without runs.
    pub failure_rate: Option<f64>,
    /// Changes between passing and failing in consecutive runs (a build where a retry passed
    /// counts as a pass: its final outcome).
    pub flips: usize,
    /// `flips / (runs − 1)` (Apple, ICSE-SEIP 2020); `None` with fewer than two runs.
    pub flip_rate: Option<f64>,
    /// Builds (indices into the input) where it was flaky: a retry passed, a failure on a commit
    /// that also passed, or a failure in a short episode; in build order.
    pub flaky_builds: Vec<usize>,
}

/// Classifies one test's history on one branch: `runs[i]` is build i, oldest first. Only the
/// last [`Thresholds::window`] builds are looked at; indices in the result are into `runs`.
pub fn classify(runs: &[Run<'_>], t: &Thresholds) -> Classification {
    let start = runs.len().saturating_sub(t.window.max(1));
    // (build index, failed) of the builds that passed or failed, in order.
    let ran: Vec<(usize, bool)> = runs
        .iter()
        .enumerate()
        .skip(start)
        .filter_map(|(i, r)| match r.outcome {
            Outcome::Passed | Outcome::Flaky => Some((i, false)),
            Outcome::Failed => Some((i, true)),
            Outcome::NotRun | Outcome::Skipped => None,
        })
        .collect();
    let failures = ran.iter().filter(|r| r.1).count();
    let flips = ran.windows(2).filter(|w| w[0].1 != w[1].1).count();
    let rate = |n: usize, d: usize| (d > 0).then(|| n as f64 / d as f64);
    let flip_rate = rate(flips, ran.len().saturating_sub(1));

    // Failure episodes: maximal runs of failures, as (first, last) positions in `ran`.
    let mut episodes: Vec<(usize, usize)> = Vec::new();
    for (k, &(_, failed)) in ran.iter().enumerate() {
        match episodes.last_mut() {
            Some((_, last)) if failed && *last + 1 == k => *last = k,
            _ if failed => episodes.push((k, k)),
            _ => {}
        }
    }
    let ongoing = episodes
        .last()
        .copied()
        .filter(|&(_, last)| last + 1 == ran.len());

    let mut flaky_builds: Vec<usize> = Vec::new();
    let mut reasons = Vec::new();
    let within: Vec<usize> = (start..runs.len())
        .filter(|&i| runs[i].outcome == Outcome::Flaky)
        .collect();
    flaky_builds.extend(&within);
    if !within.is_empty() {
        reasons.push(Reason::WithinBuild(within));
    }

    let mut commits: Vec<String> = Vec::new();
    let passed_on = |c: &str| {
        ran.iter()
            .any(|&(i, failed)| !failed && runs[i].commit == Some(c))
    };
    for &(i, failed) in &ran {
        let Some(commit) = runs[i].commit.filter(|_| failed) else {
            continue;
        };
        if passed_on(commit) {
            flaky_builds.push(i);
            if !commits.iter().any(|c| c == commit) {
                commits.push(commit.to_string());
            }
        }
    }
    if !commits.is_empty() {
        reasons.push(Reason::SameCommit(commits));
    }

    // Short episodes that ended: failed, then passed again. An ongoing one may be a breakage.
    let short: Vec<(usize, usize)> = episodes
        .iter()
        .copied()
        .filter(|&e| Some(e) != ongoing && e.1 - e.0 < t.max_episode_runs)
        .collect();
    if short.len() >= t.min_episodes && flip_rate.is_some_and(|f| f >= t.min_flip_rate) {
        for &(first, last) in &short {
            flaky_builds.extend(ran[first..=last].iter().map(|r| r.0));
        }
        reasons.push(Reason::Intermittent {
            episodes: short.len(),
        });
    }
    flaky_builds.sort_unstable();
    flaky_builds.dedup();

    let breakage = ongoing
        .filter(|&(first, last)| last - first + 1 >= t.min_breakage_runs)
        .map(|(first, last)| Verdict::Breakage {
            from: ran[first].0,
            runs: last - first + 1,
        });
    let verdict = match breakage {
        // Failing every time now outweighs earlier flakiness: it needs a fix, not a retry.
        Some(b) => b,
        None if !reasons.is_empty() => Verdict::Flaky(reasons),
        None => Verdict::Neither,
    };
    Classification {
        verdict,
        runs: ran.len(),
        failures,
        failure_rate: rate(failures, ran.len()),
        flips,
        flip_rate,
        flaky_builds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    /// A history from a string, one build a character: `.` passed, `F` failed, `R` flaky
    /// (retried, then passed), `s` skipped, `-` not run. Each build has its own commit.
    fn history(s: &str) -> Vec<Outcome> {
        s.chars()
            .map(|c| match c {
                '.' => Passed,
                'F' => Failed,
                'R' => Flaky,
                's' => Skipped,
                '-' => NotRun,
                other => panic!("{other}"),
            })
            .collect()
    }

    fn classify_str(s: &str, commits: Option<&[&str]>) -> Classification {
        let outcomes = history(s);
        let own: Vec<String> = (0..outcomes.len()).map(|i| format!("c{i}")).collect();
        let runs: Vec<Run> = outcomes
            .iter()
            .enumerate()
            .map(|(i, &outcome)| Run {
                outcome,
                commit: Some(commits.map_or(own[i].as_str(), |c| c[i])),
            })
            .collect();
        classify(&runs, &Thresholds::default())
    }

    #[test]
    fn merge_is_order_free() {
        let all = [NotRun, Skipped, Passed, Flaky, Failed];
        for a in all {
            for b in all {
                assert_eq!(a.merge(b), b.merge(a), "{a:?} {b:?}");
            }
            assert_eq!(a.merge(NotRun), a);
            assert_eq!(a.merge(Failed), Failed);
        }
        assert_eq!(Passed.merge(Flaky), Flaky);
        assert_eq!(std::mem::size_of::<Outcome>(), 1);
    }

    #[test]
    fn verdicts_table() {
        let flaky = |r: Vec<Reason>| Verdict::Flaky(r);
        let table: &[(&str, &str, Verdict)] = &[
            ("always passes", "..........", Verdict::Neither),
            ("never ran", "----ss----", Verdict::Neither),
            ("one failure", "....F.....", Verdict::Neither),
            (
                "failed, passed, failed again: intermittent",
                ".F....F....F..",
                flaky(vec![Reason::Intermittent { episodes: 3 }]),
            ),
            (
                "retried within a build",
                "...R......",
                flaky(vec![Reason::WithinBuild(vec![3])]),
            ),
            (
                "broke at build 6 and stays broken",
                "......FFFFFF",
                Verdict::Breakage { from: 6, runs: 6 },
            ),
            (
                "broken, skipped and not run builds do not interrupt",
                "....FF-sFF",
                Verdict::Breakage { from: 4, runs: 4 },
            ),
            (
                "two failures so far: not yet a breakage",
                "........FF",
                Verdict::Neither,
            ),
            (
                "broken for a while, then fixed: neither",
                "..FFFFFFFF......",
                Verdict::Neither,
            ),
            (
                "two long breakages, each fixed: neither",
                "..FFFFF.....FFFFF...",
                Verdict::Neither,
            ),
            (
                "flaky, then broken: the breakage counts",
                ".F..F...F...FFFF",
                Verdict::Breakage { from: 12, runs: 4 },
            ),
        ];
        for (what, h, want) in table {
            assert_eq!(&classify_str(h, None).verdict, want, "{what}: {h}");
        }
    }

    #[test]
    fn same_commit_pass_and_fail() {
        // A rebuild of commit c1 failed where its first build passed.
        let c = classify_str("..F.", Some(&["c0", "c1", "c1", "c2"]));
        assert_eq!(
            c.verdict,
            Verdict::Flaky(vec![Reason::SameCommit(vec!["c1".into()])])
        );
        assert_eq!(c.flaky_builds, [2]);
        // A failure on a commit nothing else built is no evidence.
        let c = classify_str("..F.", Some(&["c0", "c1", "c2", "c3"]));
        assert_eq!(c.verdict, Verdict::Neither);
        // Unknown commits never match each other.
        let runs = [
            Run {
                outcome: Passed,
                commit: None,
            },
            Run {
                outcome: Failed,
                commit: None,
            },
        ];
        assert_eq!(
            classify(&runs, &Thresholds::default()).verdict,
            Verdict::Neither
        );
    }

    /// (history, runs, failures, flips, failure rate, flip rate)
    type RatesRow<'a> = (&'a str, usize, usize, usize, Option<f64>, Option<f64>);

    #[test]
    fn rates_table() {
        let table: &[RatesRow] = &[
            ("", 0, 0, 0, None, None),
            ("-", 0, 0, 0, None, None),
            (".", 1, 0, 0, Some(0.0), None),
            ("F", 1, 1, 0, Some(1.0), None),
            (".F.F", 4, 2, 3, Some(0.5), Some(1.0)),
            ("..FF", 4, 2, 1, Some(0.5), Some(1.0 / 3.0)),
            // Skipped and not-run builds are no runs; a flaky build counts as a pass.
            (".s-F-R", 3, 1, 2, Some(1.0 / 3.0), Some(1.0)),
        ];
        for &(h, runs, failures, flips, fr, flr) in table {
            let c = classify_str(h, None);
            assert_eq!(
                (c.runs, c.failures, c.flips, c.failure_rate, c.flip_rate),
                (runs, failures, flips, fr, flr),
                "{h}"
            );
        }
    }

    #[test]
    fn window_and_thresholds() {
        // Old flakiness leaves the window: 150 builds, the failures among the first 50.
        let mut h = String::new();
        h.push_str(&".F..F..F..".repeat(5));
        h.push_str(&".".repeat(100));
        let c = classify_str(&h, None);
        assert_eq!(c.verdict, Verdict::Neither);
        assert_eq!((c.runs, c.failures), (100, 0));
        // The same failures inside the window: intermittent, with their builds listed.
        let c = classify_str(&h[..100], None);
        assert!(matches!(c.verdict, Verdict::Flaky(_)), "{:?}", c.verdict);
        assert_eq!(c.flaky_builds.len(), 15);
        assert_eq!(c.flaky_builds[0], 1);
        // Rare episodes over a long window fall under the flip-rate threshold.
        let rare = format!(
            "{}F{}F{}",
            ".".repeat(200),
            ".".repeat(200),
            ".".repeat(200)
        );
        let long = Thresholds {
            window: 1000,
            ..Thresholds::default()
        };
        let runs: Vec<Run> = history(&rare)
            .into_iter()
            .map(|outcome| Run {
                outcome,
                commit: None,
            })
            .collect();
        let c = classify(&runs, &long);
        assert_eq!(c.verdict, Verdict::Neither);
        assert!(c.flip_rate.unwrap() < long.min_flip_rate);
        // Episodes longer than max_episode_runs are not "short".
        let c = classify_str("..FFFF..FFFF..", None);
        assert_eq!(c.verdict, Verdict::Neither);
    }
}
