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

/// One test case: its identity, duration in seconds (when known) and status.
///
/// Stored as a JSON array `[suite, classname, name, time, status]` rather than an object: a
/// summary holds one per test of a build, and the field names would be a third of its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSummary {
    pub suite: String,
    pub classname: String,
    pub name: String,
    pub time: Option<f64>,
    pub status: Status,
}

impl Serialize for CaseSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (
            &self.suite,
            &self.classname,
            &self.name,
            self.time,
            self.status,
        )
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CaseSummary {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (suite, classname, name, time, status) = Deserialize::deserialize(deserializer)?;
        Ok(CaseSummary {
            suite,
            classname,
            name,
            time,
            status,
        })
    }
}

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
            })
        });
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
