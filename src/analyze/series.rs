//! Per-test duration series of one job on one branch, ordered by build timestamp, built from
//! build summaries.
//!
//! Each (job, branch) is its own series: pull requests are never pooled with each other or with
//! master. A series' builds are ordered by (timestamp, build number). Each test (suite, classname, name)
//! gets one value per build: the sum of its passed cases' times in that build (a test that runs
//! twice in one build counts twice), or NaN when it did not run, has no time, or did not pass.
//! Failed and errored runs are counted separately: their durations say little (a crash is fast,
//! a timeout slow) and they mark a flaky test. Builds without any case are left out.

use crate::context::Context;
use crate::junit::Status;
use crate::summary::BuildSummary;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

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
    // A build without cases (tests did not run, or no result could be read) says nothing.
    for s in summaries.iter().filter(|s| s.cases().next().is_some()) {
        by_job
            .entry((s.context.job.as_str(), s.context.branch.as_str()))
            .or_default()
            .push(s);
    }
    by_job
        .into_iter()
        .map(|((job, branch), builds)| job_series(job, branch, builds))
        .collect()
}

fn job_series(job: &str, branch: &str, mut builds: Vec<&BuildSummary>) -> JobSeries {
    builds.sort_by(|a, b| {
        (a.context.timestamp, a.context.build, &a.context.branch).cmp(&(
            b.context.timestamp,
            b.context.build,
            &b.context.branch,
        ))
    });
    let n = builds.len();
    let mut index: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut tests: Vec<TestSeries> = Vec::new();
    let mut totals = vec![0.0; n];
    for (b, summary) in builds.iter().enumerate() {
        for case in summary.cases() {
            let key = (
                case.suite.as_str(),
                case.classname.as_str(),
                case.name.as_str(),
            );
            let t = *index.entry(key).or_insert_with(|| {
                tests.push(TestSeries {
                    id: TestId {
                        suite: case.suite.clone(),
                        classname: case.classname.clone(),
                        name: case.name.clone(),
                    },
                    values: vec![f64::NAN; n],
                    runs: 0,
                    failures: 0,
                    first_seen: b,
                    last_seen: b,
                });
                tests.len() - 1
            });
            let series = &mut tests[t];
            let time = case.time.filter(|t| t.is_finite() && *t >= 0.0);
            if let Some(time) = time {
                totals[b] += time;
            }
            if series.last_seen != b || series.runs == 0 {
                series.runs += 1;
            }
            series.last_seen = b;
            match case.status {
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
    }
    JobSeries {
        job: job.to_string(),
        branch: branch.to_string(),
        branch_class: builds
            .last()
            .map(|s| s.branch_class.clone())
            .unwrap_or_default(),
        builds: builds.into_iter().map(|s| s.context.clone()).collect(),
        totals,
        tests,
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
        assert_eq!(j.tests[2].first_seen, 2);
    }
}
