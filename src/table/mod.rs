//! The history tables: `test_runs` (one row per test case per build) and `builds` (one row per
//! build), in Apache Parquet under the reserved prefix, Hive-partitioned by the build's UTC date.
//! Athena, DuckDB and Spark read them as they are; `analyze` streams them.
//!
//! ```text
//! _ci-test-metrics/staging/dt=2026-12-04/{job}/{branch}/{build}.parquet     one build, private
//! _ci-test-metrics/tables/test_runs/dt=2026-12-04/part-00000.parquet        immutable, public
//! _ci-test-metrics/tables/builds/dt=2026-12-04/part-00000.parquet           immutable, public
//! ```
//!
//! The aggregator stages each build it reads as one small file (rewritten whole if the build is
//! read again). [`publish`] turns a day's staged builds into one part per table once the day is
//! over (or as soon as a day's staged rows fill a part): a part is created with a conditional
//! write (`If-None-Match: *`) under the next free number, and never changed or deleted, so a
//! reader sees a part whole or not at all, and a build is in at most one part. The `test_runs`
//! part is the commit point: its footer lists the builds it holds (with their full context), and
//! the `builds` part of the same number is written from that footer. Staged files are deleted only
//! after both parts exist. `docs/history.md` describes the layout, the schema and the queries.

pub mod cases;
pub mod decode;
pub mod encode;
pub mod fetch;
pub mod migrate;
pub mod publish;
pub mod schema;
pub mod staged;

use crate::layout::{BuildId, RESERVED_PREFIX};
use thiserror::Error;
use time::OffsetDateTime;

/// Where the public tables live, relative to the store's root.
pub const TABLES_PREFIX: &str = "_ci-test-metrics/tables/";
/// Where staged builds wait to be published.
pub const STAGING_PREFIX: &str = "_ci-test-metrics/staging/";
/// The tables' names (and folder names under [`TABLES_PREFIX`]).
pub const TEST_RUNS: &str = "test_runs";
pub const BUILDS: &str = "builds";

#[derive(Debug, Error)]
pub enum TableError {
    #[error("{key}: not a readable Parquet table file: {source}")]
    Parquet {
        key: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl TableError {
    pub(crate) fn parquet(
        key: &str,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> TableError + '_ {
        move |source| TableError::Parquet {
            key: key.to_string(),
            source,
        }
    }
}

/// The partition value of a build: its UTC date, `YYYY-MM-DD`.
pub fn date_of(t: OffsetDateTime) -> String {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `_ci-test-metrics/staging/dt={date}/{job}/{branch}/{build}.parquet`
pub fn staged_key(date: &str, id: &BuildId) -> String {
    format!(
        "{STAGING_PREFIX}dt={date}/{}/{}/{}.parquet",
        id.job, id.branch, id.build
    )
}

/// The date and build a staged key names, if it is one.
pub fn parse_staged_key(key: &str) -> Option<(String, BuildId)> {
    let rest = key.strip_prefix(STAGING_PREFIX)?.strip_prefix("dt=")?;
    let (date, rest) = rest.split_once('/')?;
    let rest = rest.strip_suffix(".parquet")?;
    let (job_branch, build) = rest.rsplit_once('/')?;
    let (job, branch) = job_branch.rsplit_once('/')?;
    (valid_date(date) && !job.is_empty() && !branch.is_empty()).then_some(())?;
    Some((
        date.to_string(),
        BuildId {
            job: job.into(),
            branch: branch.into(),
            build: build.parse().ok()?,
        },
    ))
}

/// `_ci-test-metrics/tables/{table}/dt={date}/part-{n:05}.parquet`
pub fn part_key(table: &str, date: &str, n: u32) -> String {
    format!("{TABLES_PREFIX}{table}/dt={date}/part-{n:05}.parquet")
}

/// The prefix of one table's partition, or of the whole table when `date` is `None`.
pub fn table_prefix(table: &str, date: Option<&str>) -> String {
    match date {
        Some(date) => format!("{TABLES_PREFIX}{table}/dt={date}/"),
        None => format!("{TABLES_PREFIX}{table}/"),
    }
}

/// The table, date and part number a part key names, if it is one.
pub fn parse_part_key(key: &str) -> Option<(&str, &str, u32)> {
    let rest = key.strip_prefix(TABLES_PREFIX)?;
    let (table, rest) = rest.split_once("/dt=")?;
    let (date, file) = rest.split_once('/')?;
    let n = file.strip_prefix("part-")?.strip_suffix(".parquet")?;
    (valid_date(date) && n.len() >= 5 && n.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
    Some((table, date, n.parse().ok()?))
}

fn valid_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

const _: () = assert!(TABLES_PREFIX.len() > RESERVED_PREFIX.len());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let id = BuildId {
            job: "team/app".into(),
            branch: "feature%2Fx".into(),
            build: 42,
        };
        let k = staged_key("2026-12-04", &id);
        assert_eq!(
            k,
            "_ci-test-metrics/staging/dt=2026-12-04/team/app/feature%2Fx/42.parquet"
        );
        assert_eq!(parse_staged_key(&k), Some(("2026-12-04".into(), id)));
        let p = part_key(TEST_RUNS, "2026-12-04", 7);
        assert_eq!(
            p,
            "_ci-test-metrics/tables/test_runs/dt=2026-12-04/part-00007.parquet"
        );
        assert_eq!(parse_part_key(&p), Some((TEST_RUNS, "2026-12-04", 7)));
        for bad in [
            "_ci-test-metrics/tables/test_runs/dt=2026-12-04/part-7.parquet",
            "_ci-test-metrics/tables/test_runs/dt=2026-1-04/part-00007.parquet",
            "_ci-test-metrics/tables/test_runs/dt=2026-12-04/x.parquet",
        ] {
            assert_eq!(parse_part_key(bad), None, "{bad}");
        }
        for bad in [
            "_ci-test-metrics/staging/dt=2026-12-04/app/x.parquet",
            "_ci-test-metrics/staging/dt=2026-12-04/app/b/x.parquet",
            "_ci-test-metrics/staging/2026-12-04/app/b/1.parquet",
        ] {
            assert_eq!(parse_staged_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_are_utc() {
        let t = time::macros::datetime!(2026-12-04 23:30 -02:00);
        assert_eq!(date_of(t), "2026-12-05");
    }
}
