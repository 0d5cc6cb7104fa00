//! One build as the aggregator reads it, in memory: its context, branch class and each result
//! file's test cases. The history tables ([`crate::table`]) store it; metrics are encoded from it.
//!
//! Versions before the tables wrote it as gzip JSON under
//! `_ci-test-metrics/summaries/{job}/{branch}/{build}.json.gz`; [`BuildSummary::from_gzip_json`]
//! reads those for the one-time migration, and [`BuildSummary::to_gzip_json`] writes them for its
//! tests.

use crate::context::Context;
use crate::junit::Status;
use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

/// Where earlier versions kept summaries, relative to the store's root.
pub const SUMMARIES_PREFIX: &str = "_ci-test-metrics/summaries/";

/// The key of one build's summary: `_ci-test-metrics/summaries/{job}/{branch}/{build}.json.gz`.
pub fn key(build: &crate::layout::BuildId) -> String {
    format!(
        "{SUMMARIES_PREFIX}{}/{}/{}.json.gz",
        build.job, build.branch, build.build
    )
}

/// The build a summary key names, if it is one.
pub fn parse_key(key: &str) -> Option<crate::layout::BuildId> {
    let rest = key
        .strip_prefix(SUMMARIES_PREFIX)?
        .strip_suffix(".json.gz")?;
    let (job_branch, build) = rest.rsplit_once('/')?;
    let (job, branch) = job_branch.rsplit_once('/')?;
    Some(crate::layout::BuildId {
        job: job.into(),
        branch: branch.into(),
        build: build.parse().ok()?,
    })
}

/// One build, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildSummary {
    pub schema_version: u32,
    pub context: Context,
    /// The branch class the rules gave (`master`, `release`, `pr`, `branch`, ...).
    pub branch_class: String,
    /// Whether the branch rules published this build's metrics.
    pub published: bool,
    pub files: Vec<FileSummary>,
}

/// One result file of a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    pub name: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub partial: bool,
    pub cases: Vec<CaseSummary>,
}

/// One test case: its identity, duration in seconds (when known), final status and attempts.
///
/// Stored as a JSON array `[suite, classname, name, time, status]` rather than an object: a
/// summary holds one per test of a build, and the field names would be a third of its bytes.
/// A retried test (attempts > 1) adds `attempts` as a sixth element; arrays of five, as every
/// earlier version wrote them, read as one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSummary {
    pub suite: String,
    pub classname: String,
    pub name: String,
    pub time: Option<f64>,
    pub status: Status,
    /// How many times the test ran in the build (1 without retries); see [`crate::junit::retry`].
    pub attempts: u32,
}

impl Serialize for CaseSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (suite, classname, name) = (&self.suite, &self.classname, &self.name);
        if self.attempts == 1 {
            (suite, classname, name, self.time, self.status).serialize(serializer)
        } else {
            let attempts = self.attempts;
            (suite, classname, name, self.time, self.status, attempts).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for CaseSummary {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Array;
        impl<'de> serde::de::Visitor<'de> for Array {
            type Value = CaseSummary;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[suite, classname, name, time, status] or with attempts added")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CaseSummary, A::Error> {
                use serde::de::Error;
                fn next<'de, A: serde::de::SeqAccess<'de>, T: Deserialize<'de>>(
                    seq: &mut A,
                    i: usize,
                ) -> Result<T, A::Error> {
                    seq.next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &Array))
                }
                let case = CaseSummary {
                    suite: next(&mut seq, 0)?,
                    classname: next(&mut seq, 1)?,
                    name: next(&mut seq, 2)?,
                    time: next(&mut seq, 3)?,
                    status: next(&mut seq, 4)?,
                    attempts: 1,
                };
                let attempts: Option<u32> = seq.next_element()?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(7, &self));
                }
                Ok(CaseSummary {
                    attempts: attempts.unwrap_or(1).max(1),
                    ..case
                })
            }
        }
        deserializer.deserialize_seq(Array)
    }
}

crate::junit::retry::impl_run!(CaseSummary);

impl FileSummary {
    /// Parses one result file straight into its summary, streaming (no intermediate report).
    /// `key` names the file in errors; `name` is its base name.
    pub fn parse(name: &str, key: &str, bytes: &[u8]) -> FileSummary {
        FileSummary::parse_reader(name, key, bytes)
    }

    /// Like [`FileSummary::parse`], from a reader (an object streamed from the store).
    pub fn parse_reader<R: std::io::Read>(name: &str, key: &str, reader: R) -> FileSummary {
        let mut cases = Vec::new();
        let parsed = crate::junit::parse_stream_ref(key, reader, |c| {
            cases.push(CaseSummary {
                suite: c.suite.clone(),
                classname: c.classname.clone(),
                name: c.name.clone(),
                time: c.time.map(|t| t.as_secs_f64()),
                status: c.status,
                attempts: c.attempts,
            })
        });
        crate::junit::merge_repeats(&mut cases, crate::junit::Order::OneFile);
        FileSummary {
            name: name.to_string(),
            error: parsed.error.as_ref().map(|e| e.to_string()),
            partial: parsed.error.is_some() && !cases.is_empty(),
            cases,
        }
    }

    /// A file that could not be read at all.
    pub fn unreadable(name: &str, error: String) -> FileSummary {
        FileSummary {
            name: name.to_string(),
            error: Some(error),
            partial: false,
            cases: Vec::new(),
        }
    }
}

impl BuildSummary {
    /// Files that did not parse cleanly, and an unusable `context.json` (kept as a file entry
    /// named `context.json` with its error and no cases): the `ParseErrors` metric.
    pub fn parse_errors(&self) -> usize {
        self.files.iter().filter(|f| f.error.is_some()).count()
    }

    /// Merges the retries of each test across the build's files, in file order: a test that
    /// failed in one file and ran again in a later one (a runner that writes its reruns to a
    /// second file). Retries within a file were merged by [`FileSummary::parse_reader`]. The
    /// merged test stays in the file of its first run. Rules and durations:
    /// [`crate::junit::retry`]. Merging again changes nothing. Memory: what the summary holds,
    /// plus the failed tests awaiting a rerun.
    pub fn merge_retries(&mut self) -> crate::junit::RepeatStats {
        if crate::junit::retry::all_distinct(
            self.cases()
                .map(|c| (c.suite.as_str(), c.classname.as_str(), c.name.as_str())),
        ) {
            return crate::junit::RepeatStats::default();
        }
        // A case's number: its file in the high half, its place in the file in the low half.
        let mut repeats = crate::junit::Repeats::new();
        let mut places: Vec<Vec<(u64, CaseSummary)>> = vec![Vec::new(); self.files.len()];
        let mut place = |seq: u64, case| places[(seq >> 32) as usize].push((seq, case));
        for (f, file) in self.files.iter_mut().enumerate() {
            for (i, case) in std::mem::take(&mut file.cases).into_iter().enumerate() {
                repeats.push(case, (f as u64) << 32 | i as u64, false, &mut place);
            }
        }
        let stats = repeats.finish(&mut place);
        for (file, mut cases) in self.files.iter_mut().zip(places) {
            cases.sort_unstable_by_key(|(seq, _)| *seq);
            file.cases = cases.into_iter().map(|(_, c)| c).collect();
        }
        stats
    }

    /// All cases of all files.
    pub fn cases(&self) -> impl Iterator<Item = &CaseSummary> {
        self.files.iter().flat_map(|f| f.cases.iter())
    }

    /// Gzip-compressed JSON. The JSON is built in memory first: many small writes straight
    /// into the encoder are tens of times slower.
    pub fn to_gzip_json(&self) -> Vec<u8> {
        use std::io::Write;
        let json = serde_json::to_vec(self).expect("summary serialises");
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(json.len() / 8),
            flate2::Compression::fast(),
        );
        enc.write_all(&json).expect("writing to a Vec cannot fail");
        enc.finish().expect("writing to a Vec cannot fail")
    }

    /// Reads what [`BuildSummary::to_gzip_json`] wrote.
    pub fn from_gzip_json(bytes: &[u8]) -> Result<BuildSummary, std::io::Error> {
        let dec = flate2::read::GzDecoder::new(bytes);
        serde_json::from_reader(std::io::BufReader::new(dec)).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::BuildId;

    #[test]
    fn round_trips_through_gzip_json() {
        let xml = br#"<testsuite name="s"><testcase classname="c" name="a" time="1.5"/><testcase classname="c" name="b"><failure/></testcase></testsuite>"#;
        let summary = BuildSummary {
            schema_version: SCHEMA_VERSION,
            context: Context::from_json(
                "k",
                br#"{"schema_version":1,"job":"j","branch":"feature/x","build":7,"timestamp":"2026-11-01T10:00:00Z"}"#,
            )
            .unwrap(),
            branch_class: "branch".into(),
            published: true,
            files: vec![FileSummary::parse("r.xml", "j/feature%2Fx/7/r.xml", xml), FileSummary::unreadable("x.xml", "gone".into())],
        };
        let back = BuildSummary::from_gzip_json(&summary.to_gzip_json()).unwrap();
        assert_eq!(back, summary);
        assert_eq!(back.cases().count(), 2);
        let json = serde_json::to_value(&summary.files[0].cases).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                ["s", "c", "a", 1.5, "passed"],
                ["s", "c", "b", null, "failed"]
            ])
        );
    }

    #[test]
    fn attempts_are_a_sixth_element_only_when_retried() {
        let old: Vec<CaseSummary> =
            serde_json::from_str(r#"[["s","c","a",1.5,"passed"],["s","c","b",null,"flaky",3]]"#)
                .unwrap();
        assert_eq!((old[0].attempts, old[1].attempts), (1, 3));
        assert_eq!(old[1].status, Status::Flaky);
        let json = serde_json::to_string(&old).unwrap();
        assert_eq!(
            json,
            r#"[["s","c","a",1.5,"passed"],["s","c","b",null,"flaky",3]]"#
        );
        for bad in [r#"["s","c","a",1.5]"#, r#"["s","c","a",1.5,"passed",2,9]"#] {
            assert!(serde_json::from_str::<CaseSummary>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_merge_within_and_across_files() {
        // pytest-rerunfailures style within a file; a rerun file for another test.
        let first = br#"<testsuite name="s"><testcase classname="c" name="a" time="1"/><testcase classname="c" name="a" time="2"/><testcase classname="c" name="b" time="3"><failure/></testcase></testsuite>"#;
        let rerun = br#"<testsuite name="s"><testcase classname="c" name="b" time="4"/><testcase classname="c" name="a" time="5"/></testsuite>"#;
        let mut summary = BuildSummary {
            schema_version: SCHEMA_VERSION,
            context: Context::from_json(
                "k",
                br#"{"schema_version":1,"job":"j","branch":"master","build":7,"timestamp":"2026-11-01T10:00:00Z"}"#,
            )
            .unwrap(),
            branch_class: "master".into(),
            published: true,
            files: vec![
                FileSummary::parse("a.xml", "j/master/7/a.xml", first),
                FileSummary::parse("b.xml", "j/master/7/b.xml", rerun),
            ],
        };
        type Row = (String, Status, u32, Option<f64>);
        let got = |s: &BuildSummary| -> Vec<Vec<Row>> {
            s.files
                .iter()
                .map(|f| {
                    f.cases
                        .iter()
                        .map(|c| (c.name.clone(), c.status, c.attempts, c.time))
                        .collect()
                })
                .collect()
        };
        let row = |n: &str, s, a, t| (n.to_string(), s, a, Some(t));
        assert_eq!(
            got(&summary),
            [
                vec![
                    row("a", Status::Flaky, 2, 2.0),
                    row("b", Status::Failed, 1, 3.0)
                ],
                vec![
                    row("b", Status::Passed, 1, 4.0),
                    row("a", Status::Passed, 1, 5.0)
                ],
            ]
        );
        summary.merge_retries();
        let want = [
            vec![
                row("a", Status::Flaky, 2, 2.0),
                row("b", Status::Flaky, 2, 4.0),
            ],
            vec![row("a", Status::Passed, 1, 5.0)],
        ];
        assert_eq!(got(&summary), want);
        summary.merge_retries();
        assert_eq!(got(&summary), want, "merging again");
    }

    #[test]
    fn keys_round_trip() {
        let id = BuildId {
            job: "a/b".into(),
            branch: "PR-1".into(),
            build: 3,
        };
        assert_eq!(key(&id), "_ci-test-metrics/summaries/a/b/PR-1/3.json.gz");
        assert_eq!(parse_key(&key(&id)), Some(id));
        assert_eq!(
            parse_key("_ci-test-metrics/summaries/a/b/PR-1/x.json.gz"),
            None
        );
    }
}
