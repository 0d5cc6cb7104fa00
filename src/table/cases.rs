//! A duration series' reading of `test_runs` rows (pure): each row's test id, status and
//! duration, in batches of a few thousand rows, with the test's names only in batches that hold
//! a test the reader has not seen. Memory is a batch, whatever the row group's size.

use super::decode::column_indices;
use super::schema::test_id;
use crate::junit::Status;
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, FileReader};
use parquet::file::serialized_reader::SerializedFileReader;

/// Rows read at once.
const BATCH: usize = 4096;

/// One row as a duration series reads it: the test's id, its names when they were read, the
/// status and the duration.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    pub test_id: i64,
    /// (suite, classname, name); read only in batches where a test id was new to the reader.
    pub names: Option<(&'a str, &'a str, &'a str)>,
    pub status: Status,
    pub duration_s: Option<f64>,
}

/// What takes a series' cases: which test ids it knows, and each case.
pub trait Cases {
    fn knows(&self, test_id: i64) -> bool;
    fn case(&mut self, row: u64, case: Case<'_>);
}

/// The columns [`for_each_case`] reads always, and those it reads when a test id is new.
pub const CASE_COLUMNS: [&str; 3] = ["test_id", "status", "duration_s"];
pub const NAME_COLUMNS: [&str; 3] = ["suite", "classname", "name"];

/// A column reader of the type a column must have, or an error naming it.
fn typed<T: DataType>(
    reader: ColumnReader,
    name: &str,
    pick: fn(ColumnReader) -> Option<ColumnReaderImpl<T>>,
) -> Result<ColumnReaderImpl<T>, ParquetError> {
    pick(reader).ok_or_else(|| ParquetError::General(format!("column {name} has another type")))
}

/// Reads exactly `n` records of a flat column into `values` (and `defs` when it is nullable).
fn read_exact<T: DataType>(
    r: &mut ColumnReaderImpl<T>,
    n: usize,
    mut defs: Option<&mut Vec<i16>>,
    values: &mut Vec<T::T>,
) -> Result<(), ParquetError>
where
    Vec<T::T>: Default,
{
    let mut got = 0;
    while got < n {
        let (records, _, _) = r.read_records(n - got, defs.as_deref_mut(), None, values)?;
        if records == 0 {
            return Err(ParquetError::General(format!(
                "{got} of {n} rows could be read"
            )));
        }
        got += records;
    }
    Ok(())
}

/// A text value (empty when it is not UTF-8, which this crate never writes).
fn text(b: &ByteArray) -> &str {
    std::str::from_utf8(b.data()).unwrap_or_default()
}

/// Hands each row of the chosen row groups to `to` as a [`Case`], a batch at a time. A
/// batch's names are read only when it holds a test id `to` does not know yet (most batches of
/// a series repeat tests it has seen), and skipped otherwise.
pub fn for_each_case<R: ChunkReader + 'static>(
    file: &SerializedFileReader<R>,
    row_groups: &[usize],
    to: &mut impl Cases,
) -> Result<(), ParquetError> {
    let meta = file.metadata();
    // Files without test ids (none are written so, but one may be copied in) compute them.
    let id_col = column_indices(meta, &CASE_COLUMNS[..1]).ok().map(|c| c[0]);
    let [status_col, duration_col] = column_indices(meta, &CASE_COLUMNS[1..])?[..] else {
        return Err(ParquetError::General("a column is missing".into()));
    };
    let name_cols = column_indices(meta, &NAME_COLUMNS)?;
    let starts = super::decode::row_group_starts(meta);
    let (mut ids, mut statuses, mut durations, mut defs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut names: [Vec<ByteArray>; 3] = Default::default();
    for &rg in row_groups {
        let group = file.get_row_group(rg)?;
        let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
        let duration_def = group
            .metadata()
            .column(duration_col)
            .column_descr()
            .max_def_level();
        let mut id_reader = match id_col {
            Some(c) => Some(typed::<Int64Type>(
                group.get_column_reader(c)?,
                "test_id",
                |r| match r {
                    ColumnReader::Int64ColumnReader(r) => Some(r),
                    _ => None,
                },
            )?),
            None => None,
        };
        let bytes = |r: ColumnReader| match r {
            ColumnReader::ByteArrayColumnReader(r) => Some(r),
            _ => None,
        };
        let mut status_reader =
            typed::<ByteArrayType>(group.get_column_reader(status_col)?, "status", bytes)?;
        let mut duration_reader = typed::<DoubleType>(
            group.get_column_reader(duration_col)?,
            "duration_s",
            |r| match r {
                ColumnReader::DoubleColumnReader(r) => Some(r),
                _ => None,
            },
        )?;
        let mut name_readers = Vec::with_capacity(3);
        for (&c, name) in name_cols.iter().zip(NAME_COLUMNS) {
            name_readers.push(typed::<ByteArrayType>(
                group.get_column_reader(c)?,
                name,
                bytes,
            )?);
        }
        let mut done = 0;
        while done < rows {
            let n = BATCH.min(rows - done);
            ids.clear();
            statuses.clear();
            durations.clear();
            defs.clear();
            if let Some(r) = &mut id_reader {
                read_exact(r, n, None, &mut ids)?;
            }
            read_exact(&mut status_reader, n, None, &mut statuses)?;
            read_exact(
                &mut duration_reader,
                n,
                (duration_def > 0).then_some(&mut defs),
                &mut durations,
            )?;
            let need_names = id_reader.is_none() || ids.iter().any(|id| !to.knows(*id));
            for (r, buf) in name_readers.iter_mut().zip(names.iter_mut()) {
                buf.clear();
                if need_names {
                    read_exact(r, n, None, buf)?;
                } else if r.skip_records(n)? != n {
                    return Err(ParquetError::General("a names column ends early".into()));
                }
            }
            let mut value = 0;
            let mut last_status: Option<(&[u8], Status)> = None;
            for i in 0..n {
                let row = starts[rg] + (done + i) as u64;
                let names = need_names
                    .then(|| (text(&names[0][i]), text(&names[1][i]), text(&names[2][i])));
                let test_id = match (ids.get(i), names) {
                    (Some(&id), _) => id,
                    (None, Some((s, c, name))) => test_id(s, c, name),
                    (None, None) => {
                        return Err(ParquetError::General(format!("row {row}: no test_id")))
                    }
                };
                let bytes = statuses[i].data();
                let status = match last_status {
                    Some((b, s)) if b == bytes => s,
                    _ => {
                        let s = super::decode::parse_status(bytes, row)?;
                        last_status = Some((bytes, s));
                        s
                    }
                };
                let duration_s = if duration_def == 0 || defs[i] == duration_def {
                    value += 1;
                    durations.get(value - 1).copied()
                } else {
                    None
                };
                to.case(
                    row,
                    Case {
                        test_id,
                        names,
                        status,
                        duration_s,
                    },
                );
            }
            done += n;
        }
    }
    Ok(())
}
