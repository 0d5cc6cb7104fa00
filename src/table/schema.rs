//! The two tables' columns (names, Parquet and SQL types, nullability) and the build row that
//! both the `builds` table and each `test_runs` part's footer hold. `docs/history.md` and the
//! Glue tables in `examples/lambda/template.yaml` follow this file; a test checks both.

use crate::context::Context;
use crate::junit::Status;
use crate::layout::BuildId;
use crate::summary::BuildSummary;
use serde::{Deserialize, Serialize};

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text (`BYTE_ARRAY` annotated `STRING`).
    Text,
    Int32,
    Int64,
    Double,
    Bool,
    /// Milliseconds since the epoch, UTC (`INT64` annotated `TIMESTAMP(MILLIS, true)`).
    Timestamp,
}

impl Kind {
    /// The type as Athena (Glue, Hive DDL) names it.
    pub fn sql(self) -> &'static str {
        match self {
            Kind::Text => "string",
            Kind::Int32 => "int",
            Kind::Int64 => "bigint",
            Kind::Double => "double",
            Kind::Bool => "boolean",
            Kind::Timestamp => "timestamp",
        }
    }

    fn parquet(self) -> &'static str {
        match self {
            Kind::Text => "binary",
            Kind::Int32 => "int32",
            Kind::Int64 | Kind::Timestamp => "int64",
            Kind::Double => "double",
            Kind::Bool => "boolean",
        }
    }

    fn annotation(self) -> &'static str {
        match self {
            Kind::Text => " (STRING)",
            Kind::Timestamp => " (TIMESTAMP(MILLIS,true))",
            _ => "",
        }
    }
}

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
    pub doc: &'static str,
}

const fn col(name: &'static str, kind: Kind, nullable: bool, doc: &'static str) -> Column {
    Column {
        name,
        kind,
        nullable,
        doc,
    }
}

/// The columns every row of both tables starts with: the build's identity and context.
const BUILD_COLUMNS: [Column; 8] = [
    col(
        "job",
        Kind::Text,
        false,
        "the job, without the branch (`team/app`)",
    ),
    col(
        "branch",
        Kind::Text,
        false,
        "the raw branch name (`master`, `PR-42`, `feature/x`)",
    ),
    col(
        "branch_class",
        Kind::Text,
        false,
        "the class the branch rules gave (`master`, `release`, `pr`, `branch`)",
    ),
    col("build", Kind::Int64, false, "the build number"),
    col(
        "build_time",
        Kind::Timestamp,
        false,
        "when the build ran (UTC); the partition `dt` is its date",
    ),
    col("commit", Kind::Text, true, "the commit built"),
    col(
        "author",
        Kind::Text,
        true,
        "who made the change: the PR's author, else the commit's",
    ),
    col("pr", Kind::Int64, true, "the pull request number"),
];

/// The build columns, then `rest`.
const fn with_build_columns<const N: usize>(rest: &[Column]) -> [Column; N] {
    assert!(
        BUILD_COLUMNS.len() + rest.len() == N,
        "N is the number of columns"
    );
    let mut out = [BUILD_COLUMNS[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < BUILD_COLUMNS.len() {
            BUILD_COLUMNS[i]
        } else {
            rest[i - BUILD_COLUMNS.len()]
        };
        i += 1;
    }
    out
}

/// `test_runs`: one row per test case per build.
pub const TEST_RUNS_COLUMNS: [Column; 16] = with_build_columns(&[
    col("file", Kind::Text, false, "the result file's base name"),
    col("suite", Kind::Text, false, "the innermost `<testsuite>` name (empty when none)"),
    col("classname", Kind::Text, false, "the test's class (empty when none)"),
    col("name", Kind::Text, false, "the test's name"),
    col(
        "test_id",
        Kind::Int64,
        false,
        "the test's identity as one number: FNV-1a (64-bit) of suite, classname and name joined by NUL bytes",
    ),
    col("status", Kind::Text, false, "`passed`, `failed`, `error`, `skipped` or `flaky` (failed, then passed on a retry in the same build)"),
    col("attempts", Kind::Int32, false, "how many times the test ran in the build (1 without retries)"),
    col("duration_s", Kind::Double, true, "seconds; null when the file gives no usable time"),
]);

/// A staged build's file: the per-case columns of `test_runs` (the build's own are in its
/// footer's build row, and are added when it is published).
pub const STAGED_COLUMNS: [Column; 8] = {
    let mut out = [TEST_RUNS_COLUMNS[8]; 8];
    let mut i = 0;
    while i < 8 {
        out[i] = TEST_RUNS_COLUMNS[8 + i];
        i += 1;
    }
    out
};

/// `builds`: one row per build.
pub const BUILDS_COLUMNS: [Column; 25] = with_build_columns(&[
    col("build_url", Kind::Text, true, "the build's page in the CI"),
    col("repo_url", Kind::Text, true, "the repository"),
    col(
        "source_branch",
        Kind::Text,
        true,
        "a pull request's source branch",
    ),
    col(
        "target_branch",
        Kind::Text,
        true,
        "a pull request's target branch",
    ),
    col("node", Kind::Text, true, "the agent the build ran on"),
    col(
        "commit_time",
        Kind::Timestamp,
        true,
        "when the commit was made",
    ),
    col(
        "published",
        Kind::Bool,
        false,
        "whether the branch rules sent its metrics",
    ),
    col("tests", Kind::Int64, false, "test cases"),
    col(
        "passed",
        Kind::Int64,
        false,
        "passed test cases (flaky ones not included)",
    ),
    col("failed", Kind::Int64, false, "failed test cases"),
    col("errors", Kind::Int64, false, "errored test cases"),
    col("skipped", Kind::Int64, false, "skipped test cases"),
    col(
        "flaky",
        Kind::Int64,
        false,
        "test cases that failed and then passed on a retry",
    ),
    col(
        "retries",
        Kind::Int64,
        false,
        "extra runs: the sum of attempts minus one per test case",
    ),
    col(
        "total_time_s",
        Kind::Double,
        false,
        "sum of the known test durations, seconds",
    ),
    col(
        "parse_errors",
        Kind::Int32,
        false,
        "result files (or a context.json) that did not parse cleanly",
    ),
    col("files", Kind::Int32, false, "result files"),
]);

/// The Parquet message type of a table.
pub fn message_type(table: &str, columns: &[Column]) -> String {
    let mut s = format!("message {table} {{\n");
    for c in columns {
        s.push_str(&format!(
            "  {} {} {}{};\n",
            if c.nullable { "optional" } else { "required" },
            c.kind.parquet(),
            c.name,
            c.kind.annotation()
        ));
    }
    s.push('}');
    s
}

/// One build: a `builds` row, and where its `test_runs` rows are in a part. A `test_runs` file's
/// footer holds its builds as a JSON array of these under [`BUILDS_METADATA_KEY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRow {
    pub context: Context,
    /// The branch as the store's keys spell it (`feature%2Fx`); with the job and build number it
    /// names the build's folder and its staged file.
    pub branch_key: String,
    pub branch_class: String,
    pub published: bool,
    pub tests: u64,
    pub passed: u64,
    pub failed: u64,
    pub errors: u64,
    pub skipped: u64,
    pub flaky: u64,
    pub retries: u64,
    pub total_time_s: f64,
    pub parse_errors: u32,
    pub files: u32,
    /// Problems with the build's data, as the aggregator reported them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Its first row's index in the file (row groups follow each other).
    #[serde(default)]
    pub first_row: u64,
    /// Its rows (test cases), contiguous from `first_row`.
    #[serde(default)]
    pub rows: u64,
}

/// One test case of a build, as `test_runs` holds it.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub file: &'a str,
    pub suite: &'a str,
    pub classname: &'a str,
    pub name: &'a str,
    pub status: Status,
    pub attempts: u32,
    pub duration_s: Option<f64>,
}

/// The footer key that lists a `test_runs` file's builds.
pub const BUILDS_METADATA_KEY: &str = "ci-test-metrics.builds";

impl BuildRow {
    /// The row of a summarised build (its rows' position is set when it is written).
    pub fn of(id: &BuildId, summary: &BuildSummary, problems: &[String]) -> BuildRow {
        let mut row = BuildRow {
            context: summary.context.clone(),
            branch_key: id.branch.clone(),
            branch_class: summary.branch_class.clone(),
            published: summary.published,
            tests: 0,
            passed: 0,
            failed: 0,
            errors: 0,
            skipped: 0,
            flaky: 0,
            retries: 0,
            total_time_s: 0.0,
            parse_errors: u32::try_from(summary.parse_errors()).unwrap_or(u32::MAX),
            files: u32::try_from(
                summary
                    .files
                    .iter()
                    .filter(|f| f.name != crate::layout::CONTEXT_FILE)
                    .count(),
            )
            .unwrap_or(u32::MAX),
            problems: problems.to_vec(),
            first_row: 0,
            rows: 0,
        };
        for c in summary.cases() {
            row.tests += 1;
            match c.status {
                Status::Passed => row.passed += 1,
                Status::Failed => row.failed += 1,
                Status::Error => row.errors += 1,
                Status::Skipped => row.skipped += 1,
                Status::Flaky => row.flaky += 1,
            }
            row.retries += u64::from(c.attempts.saturating_sub(1));
            if let Some(t) = c.time {
                row.total_time_s += t;
            }
        }
        row
    }

    /// The build's folder in the store.
    pub fn id(&self) -> BuildId {
        BuildId {
            job: self.context.job.clone(),
            branch: self.branch_key.clone(),
            build: self.context.build,
        }
    }

    /// `YYYY-MM-DD`, the partition it belongs to.
    pub fn date(&self) -> String {
        super::date_of(self.context.timestamp)
    }
}

/// A test's identity as one number (the `test_id` column): FNV-1a (64-bit) of its suite,
/// classname and name joined by NUL bytes, as a signed integer. Stable across versions: engines
/// group and join on it, and `analyze` reads it instead of three strings per row.
pub fn test_id(suite: &str, classname: &str, name: &str) -> i64 {
    crate::junit::identity_hash(suite, classname, name) as i64
}

/// Milliseconds since the epoch.
pub fn millis(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ids_are_fnv1a_of_the_joined_names() {
        // FNV-1a 64 of "s\0c\0n", computed independently (Python: see docs/history.md).
        assert_eq!(test_id("", "", ""), 0x0832_8807_b4eb_6fedu64 as i64);
        assert_ne!(test_id("a", "bc", "d"), test_id("ab", "c", "d"));
        assert_eq!(test_id("s", "c", "n"), test_id("s", "c", "n"));
    }

    #[test]
    fn message_types_parse() {
        for (name, cols) in [
            ("test_runs", &TEST_RUNS_COLUMNS[..]),
            ("builds", &BUILDS_COLUMNS[..]),
        ] {
            let t = parquet::schema::parser::parse_message_type(&message_type(name, cols))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.get_fields().len(), cols.len());
        }
        let mut names: Vec<_> = TEST_RUNS_COLUMNS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TEST_RUNS_COLUMNS.len());
    }
}
