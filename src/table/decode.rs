//! Parquet to rows (pure): a file's footer and the builds a `test_runs` file lists, and chosen
//! columns of chosen row groups. The bytes come whole (a staged build) or as the ranges a reader
//! fetched (a part's footer and the column chunks it needs, by range GETs), behind one
//! [`Ranges`] reader that refuses to read anything it was not given.

use super::schema::{BuildRow, Run, BUILDS_METADATA_KEY};
use crate::junit::Status;
use bytes::Bytes;
use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, FileReader, Length};
use parquet::file::serialized_reader::SerializedFileReader;

/// The footer's fixed tail: metadata length (4 bytes, little-endian) and `PAR1`.
pub const TAIL: u64 = 8;
/// Bytes a reader fetches from a file's end at first, hoping the whole footer is in them.
pub const FOOTER_GUESS: u64 = 64 * 1024;

/// Parts of one file, by offset; the rest of the file is unknown.
#[derive(Debug, Clone, Default)]
pub struct Ranges {
    len: u64,
    /// (start, bytes), sorted by start.
    chunks: Vec<(u64, Bytes)>,
}

impl Ranges {
    /// A file of `len` bytes of which nothing is known yet.
    pub fn new(len: u64) -> Ranges {
        Ranges {
            len,
            chunks: Vec::new(),
        }
    }

    /// A whole file.
    pub fn whole(bytes: Bytes) -> Ranges {
        Ranges {
            len: bytes.len() as u64,
            chunks: vec![(0, bytes)],
        }
    }

    pub fn insert(&mut self, start: u64, bytes: Bytes) {
        let at = self.chunks.partition_point(|(s, _)| *s < start);
        self.chunks.insert(at, (start, bytes));
    }

    fn find(&self, start: u64, length: u64) -> Option<Bytes> {
        self.chunks.iter().find_map(|(s, b)| {
            let end = s + b.len() as u64;
            (start >= *s && start + length <= end)
                .then(|| b.slice((start - s) as usize..(start - s + length) as usize))
        })
    }
}

impl Length for Ranges {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Ranges {
    type T = std::io::Cursor<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let chunk = self
            .chunks
            .iter()
            .find(|(s, b)| start >= *s && start < s + b.len() as u64)
            .ok_or_else(|| ParquetError::General(format!("byte {start} was not fetched")))?;
        Ok(std::io::Cursor::new(
            chunk.1.slice((start - chunk.0) as usize..),
        ))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.find(start, length as u64).ok_or_else(|| {
            ParquetError::General(format!("bytes {start}..+{length} were not fetched"))
        })
    }
}

/// The metadata length a file's last 8 bytes give (`None`: not a Parquet file).
pub fn metadata_len(tail: &[u8]) -> Option<u64> {
    let tail: &[u8; 8] = tail.get(tail.len().checked_sub(8)?..)?.try_into().ok()?;
    (&tail[4..] == b"PAR1")
        .then(|| u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]])))
}

/// Reads the footer of a file whose tail (at least its metadata and the 8-byte tail) is in `ranges`.
pub fn metadata(ranges: &Ranges) -> Result<ParquetMetaData, ParquetError> {
    ParquetMetaDataReader::new().parse_and_finish(ranges)
}

/// The builds a `test_runs` file's footer lists.
pub fn builds_of(meta: &ParquetMetaData) -> Result<Vec<BuildRow>, ParquetError> {
    let value = meta
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == BUILDS_METADATA_KEY))
        .and_then(|kv| kv.value.as_deref())
        .ok_or_else(|| {
            ParquetError::General(format!(
                "no {BUILDS_METADATA_KEY} in its footer: not written by ci-test-metrics"
            ))
        })?;
    serde_json::from_str(value)
        .map_err(|e| ParquetError::General(format!("{BUILDS_METADATA_KEY} in its footer: {e}")))
}

/// The index of each named column in the file; an error names a missing one.
pub fn column_indices(meta: &ParquetMetaData, names: &[&str]) -> Result<Vec<usize>, ParquetError> {
    let schema = meta.file_metadata().schema_descr();
    names
        .iter()
        .map(|name| {
            (0..schema.num_columns())
                .find(|&i| schema.column(i).name() == *name)
                .ok_or_else(|| ParquetError::General(format!("it has no column {name:?}")))
        })
        .collect()
}

/// The byte span that holds the given columns of one row group (one range GET).
pub fn span(meta: &ParquetMetaData, row_group: usize, columns: &[usize]) -> (u64, u64) {
    let rg = meta.row_group(row_group);
    let mut start = u64::MAX;
    let mut end = 0;
    for &c in columns {
        let (s, len) = rg.column(c).byte_range();
        start = start.min(s);
        end = end.max(s + len);
    }
    (start, end.saturating_sub(start))
}

/// One column of one row group, decoded; `None` is null.
#[derive(Debug, Clone)]
pub enum Values {
    Text(Vec<Option<ByteArray>>),
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    F64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Text(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i` as text (`None` when null or not a text column, or not valid UTF-8).
    pub fn text(&self, i: usize) -> Option<&str> {
        match self {
            Values::Text(v) => v
                .get(i)?
                .as_ref()
                .and_then(|b| std::str::from_utf8(b.data()).ok()),
            _ => None,
        }
    }

    pub fn i64(&self, i: usize) -> Option<i64> {
        match self {
            Values::I64(v) => *v.get(i)?,
            Values::I32(v) => v.get(i).copied().flatten().map(i64::from),
            _ => None,
        }
    }

    pub fn f64(&self, i: usize) -> Option<f64> {
        match self {
            Values::F64(v) => *v.get(i)?,
            _ => None,
        }
    }
}

/// Reads whole columns of one row group.
pub fn read_columns<R: ChunkReader + 'static>(
    reader: &SerializedFileReader<R>,
    row_group: usize,
    columns: &[usize],
) -> Result<Vec<Values>, ParquetError> {
    let rg = reader.get_row_group(row_group)?;
    let rows = usize::try_from(rg.metadata().num_rows()).unwrap_or(0);
    columns
        .iter()
        .map(|&c| {
            let max_def = rg.metadata().column(c).column_descr().max_def_level();
            let reader = rg.get_column_reader(c)?;
            Ok(match reader {
                ColumnReader::ByteArrayColumnReader(mut r) => {
                    Values::Text(read_all(rows, max_def, |d, v| {
                        r.read_records(rows, d, None, v)
                    })?)
                }
                ColumnReader::Int32ColumnReader(mut r) => {
                    Values::I32(read_all(rows, max_def, |d, v| {
                        r.read_records(rows, d, None, v)
                    })?)
                }
                ColumnReader::Int64ColumnReader(mut r) => {
                    Values::I64(read_all(rows, max_def, |d, v| {
                        r.read_records(rows, d, None, v)
                    })?)
                }
                ColumnReader::DoubleColumnReader(mut r) => {
                    Values::F64(read_all(rows, max_def, |d, v| {
                        r.read_records(rows, d, None, v)
                    })?)
                }
                ColumnReader::BoolColumnReader(mut r) => {
                    Values::Bool(read_all(rows, max_def, |d, v| {
                        r.read_records(rows, d, None, v)
                    })?)
                }
                _ => {
                    return Err(ParquetError::General(format!(
                        "column {c} has a type ci-test-metrics does not write"
                    )))
                }
            })
        })
        .collect()
}

/// Reads `rows` records of a flat column and spreads nulls back in.
fn read_all<T: Clone>(
    rows: usize,
    max_def: i16,
    mut read: impl FnMut(
        Option<&mut Vec<i16>>,
        &mut Vec<T>,
    ) -> parquet::errors::Result<(usize, usize, usize)>,
) -> Result<Vec<Option<T>>, ParquetError> {
    let mut defs: Vec<i16> = Vec::with_capacity(if max_def > 0 { rows } else { 0 });
    let mut values: Vec<T> = Vec::with_capacity(rows);
    let mut records = 0;
    while records < rows {
        let (n, _, _) = read((max_def > 0).then_some(&mut defs), &mut values)?;
        if n == 0 {
            break;
        }
        records += n;
    }
    if records != rows {
        return Err(ParquetError::General(format!(
            "{records} of {rows} rows could be read"
        )));
    }
    if max_def == 0 {
        return Ok(values.into_iter().map(Some).collect());
    }
    let mut values = values.into_iter();
    Ok(defs
        .into_iter()
        .map(|d| if d == max_def { values.next() } else { None })
        .collect())
}

/// Opens a file from what `ranges` holds (its footer at least).
pub fn open(ranges: Ranges) -> Result<SerializedFileReader<Ranges>, ParquetError> {
    SerializedFileReader::new(ranges)
}

/// The `test_runs` columns a [`Run`] is read from, in its fields' order.
pub const RUN_COLUMNS: [&str; 7] = [
    "file",
    "suite",
    "classname",
    "name",
    "status",
    "attempts",
    "duration_s",
];

/// The [`RUN_COLUMNS`] of chosen row groups, decoded and checked: every row's status is one this
/// version knows, so iterating cannot fail half-way through a build.
pub struct RunColumns {
    /// Per row group: its columns and its rows' statuses.
    groups: Vec<(Vec<Values>, Vec<Status>)>,
}

impl RunColumns {
    pub fn read<R: ChunkReader + 'static>(
        file: &SerializedFileReader<R>,
        row_groups: &[usize],
    ) -> Result<RunColumns, ParquetError> {
        let meta = file.metadata();
        let wanted = column_indices(meta, &RUN_COLUMNS)?;
        let starts = row_group_starts(meta);
        let mut groups = Vec::with_capacity(row_groups.len());
        for &rg in row_groups {
            let v = read_columns(file, rg, &wanted)?;
            let statuses = (0..v[4].len())
                .map(|i| status_of(&v[4], i, starts[rg] + i as u64))
                .collect::<Result<_, _>>()?;
            groups.push((v, statuses));
        }
        Ok(RunColumns { groups })
    }

    /// Every row, in order.
    pub fn runs(&self) -> impl Iterator<Item = Run<'_>> {
        self.groups.iter().flat_map(|(v, statuses)| {
            statuses.iter().enumerate().map(move |(i, &status)| Run {
                file: v[0].text(i).unwrap_or_default(),
                suite: v[1].text(i).unwrap_or_default(),
                classname: v[2].text(i).unwrap_or_default(),
                name: v[3].text(i).unwrap_or_default(),
                status,
                attempts: v[5].i64(i).and_then(|a| u32::try_from(a).ok()).unwrap_or(1),
                duration_s: v[6].f64(i),
            })
        })
    }
}

/// Row `i`'s status.
fn status_of(status: &Values, i: usize, row: u64) -> Result<Status, ParquetError> {
    match status {
        Values::Text(v) => parse_status(
            v.get(i).and_then(Option::as_ref).map_or(&[], |b| b.data()),
            row,
        ),
        _ => parse_status(&[], row),
    }
}

/// A status column's value; an error names the row and a value this version does not know.
pub(super) fn parse_status(bytes: &[u8], row: u64) -> Result<Status, ParquetError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(Status::from_name)
        .ok_or_else(|| {
            ParquetError::General(format!(
                "row {row}: status {:?} is not one this version knows: upgrade ci-test-metrics",
                String::from_utf8_lossy(bytes)
            ))
        })
}

/// The index in the file of each row group's first row.
pub fn row_group_starts(meta: &ParquetMetaData) -> Vec<u64> {
    let mut at = 0u64;
    meta.row_groups()
        .iter()
        .map(|rg| {
            let start = at;
            at += u64::try_from(rg.num_rows()).unwrap_or(0);
            start
        })
        .collect()
}

/// The row groups that hold rows `first..first + rows`.
pub fn row_groups_of(starts: &[u64], meta: &ParquetMetaData, first: u64, rows: u64) -> Vec<usize> {
    let end = first + rows;
    (0..starts.len())
        .filter(|&rg| {
            let rg_end = starts[rg] + u64::try_from(meta.row_group(rg).num_rows()).unwrap_or(0);
            rows > 0 && starts[rg] < end && rg_end > first
        })
        .collect()
}
