//! Per-test duration series of one job on one branch, ordered by build timestamp, built from
//! build summaries.
//!
//! Each (job, branch) is its own series: pull requests are never pooled with each other or with
//! master. A series' builds are ordered by (timestamp, build number). Each test (suite, classname, name)
//! gets one value per build: the sum of its passed cases' times in that build (a test that runs
//! twice in one build counts twice), or NaN when it did not run, has no time, or did not pass.
//! Failed and errored runs are counted separately: their durations say little (a crash is fast,
//! a timeout slow) and they mark a flaky test. Builds without any case are left out.

use super::flaky::Outcome;
use crate::context::Context;
use crate::junit::Status;
use crate::summary::BuildSummary;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

/// A test's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TestId {
    pub suite: String,
    pub classname: String,
    pub name: String,
}

impl std::fmt::Display for TestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.classname.is_empty() {
            write!(f, "{}.{}", self.classname, self.name)
        } else if !self.suite.is_empty() {
            write!(f, "{}.{}", self.suite, self.name)
        } else {
            f.write_str(&self.name)
        }
    }
}

/// One test's durations over a job's builds.
#[derive(Debug, Clone)]
pub struct TestSeries {
    pub id: TestId,
    /// Seconds per build (index as in [`JobSeries::builds`]); NaN where there is no passed run.
    pub values: Vec<f64>,
    /// Its outcome per build (index as in `values`; one byte each), cases of one build merged
    /// by [`Outcome::merge`].
    pub outcomes: Vec<Outcome>,
    /// Builds where the test ran at all (any status).
    pub runs: usize,
    /// Runs that failed or errored.
    pub failures: usize,
    /// First and last build index where the test ran.
    pub first_seen: usize,
    pub last_seen: usize,
}

/// One job's builds on one branch, and its tests' series.
#[derive(Debug, Clone)]
pub struct JobSeries {
    pub job: String,
    /// The raw branch name (`master`, `PR-16336`).
    pub branch: String,
    /// The branch's class (`master`, `pr`, …), as the summaries give it.
    pub branch_class: String,
    /// The builds' contexts, oldest first.
    pub builds: Vec<Context>,
    /// Sum of all known case times per build (any status).
    pub totals: Vec<f64>,
    pub tests: Vec<TestSeries>,
}

/// Groups summaries by job and branch (in that order) and builds each one's series.
pub fn build(summaries: &[BuildSummary]) -> Vec<JobSeries> {
    let mut by_job: BTreeMap<(&str, &str), Vec<&BuildSummary>> = BTreeMap::new();
    for s in summaries {
        by_job
            .entry((s.context.job.as_str(), s.context.branch.as_str()))
            .or_default()
            .push(s);
    }
    by_job
        .into_values()
        .map(|mut builds| {
            sort_builds(&mut builds, |s| &s.context);
            // The class of its latest build that has cases (the others are left out).
            let class = builds
                .iter()
                .rev()
                .find(|s| s.cases().next().is_some())
                .map_or("", |s| s.branch_class.as_str());
            let mut b =
                SeriesBuilder::new(builds.iter().map(|s| s.context.clone()).collect(), class);
            for (i, summary) in builds.iter().enumerate() {
                for case in summary.cases() {
                    b.add(
                        i,
                        &case.suite,
                        &case.classname,
                        &case.name,
                        case.time,
                        case.status,
                    );
                }
            }
            b.finish()
        })
        .collect()
}

/// Orders one series' builds: by timestamp, then build number, then branch.
pub fn sort_builds<T>(builds: &mut [T], context: impl Fn(&T) -> &Context) {
    builds.sort_by(|a, b| {
        let (a, b) = (context(a), context(b));
        (a.timestamp, a.build, &a.branch).cmp(&(b.timestamp, b.build, &b.branch))
    });
}

/// Builds one job's series on one branch from its test cases, given in any order (rows of a
/// history table arrive part by part, staged builds and raw XML after). Memory is the series:
/// one value (8 bytes) and one outcome (1 byte) per test and build.
pub struct SeriesBuilder {
    builds: Vec<Context>,
    branch_class: String,
    /// Test id (`table::schema::test_id`) → index in `tests`.
    index: HashMap<i64, usize, BuildHasherDefault<FastHasher>>,
    tests: Vec<Pending>,
    totals: Vec<f64>,
    /// Cases seen per build (a case's position within its build).
    cases: Vec<u32>,
    /// Keep only the tests of this group: (group, groups), by the test's id.
    group: (u64, u64),
}

struct Pending {
    id: TestId,
    /// Empty for a test of another group: known, so that its id is recognised, but not kept.
    values: Vec<f64>,
    /// Outcome per build ([`Outcome::NotRun`] where it did not run).
    outcomes: Vec<Outcome>,
    failures: usize,
    /// The first build it ran in and its position there: tests keep the order in which a pass
    /// over the builds, oldest first, meets them.
    first: (usize, u32),
}

impl SeriesBuilder {
    /// A series of these builds (oldest first), of the branch class given.
    pub fn new(builds: Vec<Context>, branch_class: &str) -> SeriesBuilder {
        let n = builds.len();
        SeriesBuilder {
            builds,
            branch_class: branch_class.to_string(),
            index: HashMap::default(),
            tests: Vec::new(),
            totals: vec![0.0; n],
            cases: vec![0; n],
            group: (0, 1),
        }
    }

    /// Keeps the series of only one group of tests, `group` of `groups` (each test is in one,
    /// by its id); the totals still count every test. Reading a long series in several passes,
    /// one group each, bounds memory by the group.
    pub fn only_group(mut self, group: usize, groups: usize) -> SeriesBuilder {
        self.group = (group as u64, groups.max(1) as u64);
        self
    }

    /// Whether a test id has been seen (its names are then not needed).
    pub fn knows(&self, test_id: i64) -> bool {
        self.index.contains_key(&test_id)
    }

    /// Adds one test case of build `b`.
    pub fn add(
        &mut self,
        b: usize,
        suite: &str,
        classname: &str,
        name: &str,
        time: Option<f64>,
        status: Status,
    ) {
        let id = crate::table::schema::test_id(suite, classname, name);
        self.add_case(b, id, Some((suite, classname, name)), time, status);
    }

    /// Adds one test case of build `b` by its test id; `names` (suite, classname, name) are
    /// needed only the first time an id is seen, and a case of an unknown id without them is
    /// counted in the totals only.
    pub fn add_case(
        &mut self,
        b: usize,
        id: i64,
        names: Option<(&str, &str, &str)>,
        time: Option<f64>,
        status: Status,
    ) {
        if b >= self.builds.len() {
            return;
        }
        let pos = self.cases[b];
        self.cases[b] += 1;
        let time = time.filter(|t| t.is_finite() && *t >= 0.0);
        if let Some(time) = time {
            self.totals[b] += time;
        }
        let t = match (self.index.get(&id), names) {
            (Some(&t), _) => t,
            (None, Some((suite, classname, name))) => {
                let n = self.builds.len();
                let kept = self.group.1 <= 1 || (id as u64) % self.group.1 == self.group.0;
                self.tests.push(Pending {
                    id: TestId {
                        suite: suite.to_string(),
                        classname: classname.to_string(),
                        name: name.to_string(),
                    },
                    values: if kept { vec![f64::NAN; n] } else { Vec::new() },
                    outcomes: if kept {
                        vec![Outcome::NotRun; n]
                    } else {
                        Vec::new()
                    },
                    failures: 0,
                    first: (b, pos),
                });
                self.index.insert(id, self.tests.len() - 1);
                self.tests.len() - 1
            }
            (None, None) => return,
        };
        let series = &mut self.tests[t];
        if series.values.is_empty() {
            return;
        }
        series.first = series.first.min((b, pos));
        series.outcomes[b] = series.outcomes[b].merge(Outcome::from(status));
        match status {
            Status::Failed | Status::Error => series.failures += 1,
            Status::Skipped => {}
            // A flaky test's time is its passing run's (junit::retry).
            Status::Passed | Status::Flaky => {
                if let Some(time) = time {
                    let v = &mut series.values[b];
                    *v = if v.is_nan() { time } else { *v + time };
                }
            }
        }
    }

    /// The series; builds without any case (tests did not run, or nothing could be read) are
    /// left out, since they say nothing.
    pub fn finish(self) -> JobSeries {
        let SeriesBuilder {
            builds,
            branch_class,
            tests,
            totals,
            cases,
            ..
        } = self;
        let keep: Vec<usize> = (0..builds.len()).filter(|&b| cases[b] > 0).collect();
        let all = keep.len() == builds.len();
        let mut tests = tests;
        tests.retain(|t| !t.values.is_empty());
        tests.sort_by_key(|t| t.first);
        let tests = tests
            .into_iter()
            .map(|t| {
                let seen: Vec<usize> = (0..keep.len())
                    .filter(|&i| t.outcomes[keep[i]] != Outcome::NotRun)
                    .collect();
                TestSeries {
                    id: t.id,
                    values: if all {
                        t.values
                    } else {
                        keep.iter().map(|&b| t.values[b]).collect()
                    },
                    outcomes: if all {
                        t.outcomes
                    } else {
                        keep.iter().map(|&b| t.outcomes[b]).collect()
                    },
                    runs: seen.len(),
                    failures: t.failures,
                    first_seen: seen.first().copied().unwrap_or(0),
                    last_seen: seen.last().copied().unwrap_or(0),
                }
            })
            .collect();
        let job = builds.first().map(|c| c.job.clone()).unwrap_or_default();
        let branch = builds.first().map(|c| c.branch.clone()).unwrap_or_default();
        let mut builds = builds;
        let mut i = 0;
        builds.retain(|_| {
            i += 1;
            cases[i - 1] > 0
        });
        JobSeries {
            job,
            branch,
            branch_class,
            builds,
            totals: keep.iter().map(|&b| totals[b]).collect(),
            tests,
        }
    }
}

/// A fast multiplicative hash (Fx) for the test index: its keys are already hashes.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        for &byte in chunks.remainder() {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl TestSeries {
    /// The known values and the build index of each.
    pub fn known(&self) -> (Vec<f64>, Vec<usize>) {
        self.values
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_nan())
            .map(|(i, v)| (*v, i))
            .unzip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{CaseSummary, FileSummary};

    pub(crate) fn summary(
        job: &str,
        build: u64,
        ts: i64,
        cases: &[(&str, f64, Status)],
    ) -> BuildSummary {
        BuildSummary {
            schema_version: 1,
            context: Context::new(
                job,
                "master",
                build,
                time::OffsetDateTime::from_unix_timestamp(ts).unwrap(),
            ),
            branch_class: "master".into(),
            published: true,
            files: vec![FileSummary {
                name: "r.xml".into(),
                error: None,
                partial: false,
                cases: cases
                    .iter()
                    .map(|(name, t, status)| CaseSummary {
                        suite: "s".into(),
                        classname: "c".into(),
                        name: name.to_string(),
                        time: Some(*t),
                        status: *status,
                        attempts: 1,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn one_series_per_branch() {
        use Status::*;
        let mut s = vec![
            summary("j", 1, 100, &[("a", 1.0, Passed)]),
            summary("j", 1, 110, &[("a", 2.0, Passed)]),
            summary("j", 2, 120, &[("a", 3.0, Passed)]),
            summary("j", 1, 130, &[("a", 4.0, Passed)]),
        ];
        for (summary, branch) in s.iter_mut().zip(["master", "PR-1", "PR-1", "PR-2"]) {
            summary.context.branch = branch.into();
            summary.branch_class = if branch == "master" { "master" } else { "pr" }.into();
        }
        let got: Vec<(String, String, usize)> = build(&s)
            .into_iter()
            .map(|j| (j.branch, j.branch_class, j.builds.len()))
            .collect();
        let want = [
            ("PR-1", "pr", 2),
            ("PR-2", "pr", 1),
            ("master", "master", 1),
        ];
        assert_eq!(got, want.map(|(b, c, n)| (b.to_string(), c.to_string(), n)));
    }

    #[test]
    fn orders_by_timestamp_and_keeps_only_passed_times() {
        use Status::*;
        let s = vec![
            summary("j", 2, 200, &[("a", 2.0, Passed), ("b", 1.0, Failed)]),
            summary("j", 1, 100, &[("a", 1.0, Passed), ("a", 0.5, Passed)]),
            summary("j", 3, 300, &[("a", 3.0, Skipped), ("c", 4.0, Passed)]),
            summary("k", 1, 100, &[("a", 9.0, Passed)]),
        ];
        let jobs = build(&s);
        assert_eq!(jobs.len(), 2);
        let j = &jobs[0];
        assert_eq!(
            j.builds.iter().map(|b| b.build).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(j.totals, [1.5, 3.0, 7.0]);
        let a = &j.tests[0];
        assert_eq!(a.id.name, "a");
        assert_eq!(a.values[..2], [1.5, 2.0]);
        assert!(a.values[2].is_nan());
        assert_eq!((a.runs, a.first_seen, a.last_seen), (3, 0, 2));
        let b = &j.tests[1];
        assert_eq!((b.failures, b.first_seen, b.last_seen), (1, 1, 1));
        use Outcome as O;
        assert_eq!(a.outcomes, [O::Passed, O::Passed, O::Skipped]);
        assert_eq!(b.outcomes, [O::NotRun, O::Failed, O::NotRun]);
        assert_eq!(j.tests[2].first_seen, 2);
    }
}
