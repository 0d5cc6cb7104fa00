//! One build's staged file, written column by column straight from its summary (pure). This
//! runs for every build `aggregate` reads, so it skips the row buffer of
//! [`super::encode::TableWriter`]: each column is handed to Parquet in batches, and text is
//! copied once, into a batch buffer that the next batch reuses.

use super::encode::{properties, For};
use super::schema::{self, BuildRow, BUILDS_METADATA_KEY, STAGED_COLUMNS};
use super::{TableError, TEST_RUNS};
use crate::layout::BuildId;
use crate::summary::{BuildSummary, CaseSummary};
use bytes::{Bytes, BytesMut};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::writer::SerializedFileWriter;
use std::sync::Arc;

/// Values handed to a column writer at once.
const BATCH: usize = 8192;

/// One staged build: its `test_runs` rows ([`STAGED_COLUMNS`]), with its build row in the footer.
pub fn staged(
    id: &BuildId,
    summary: &BuildSummary,
    problems: &[String],
) -> Result<Vec<u8>, TableError> {
    write(id, summary, problems).map_err(|source| TableError::Parquet {
        key: id.to_string(),
        source,
    })
}

fn write(
    id: &BuildId,
    summary: &BuildSummary,
    problems: &[String],
) -> Result<Vec<u8>, ParquetError> {
    let schema = parquet::schema::parser::parse_message_type(&schema::message_type(
        TEST_RUNS,
        &STAGED_COLUMNS,
    ))?;
    let rows: usize = summary.files.iter().map(|f| f.cases.len()).sum();
    // About 10 bytes a row once compressed: room enough that the file is rarely copied to grow.
    let out = Vec::with_capacity(16 * rows + 4096);
    let mut file = SerializedFileWriter::new(out, Arc::new(schema), properties(For::Staging))?;
    let cases = || {
        summary
            .files
            .iter()
            .flat_map(|f| f.cases.iter().map(move |c| (f.name.as_str(), c)))
    };
    let case = || cases().map(|(_, c)| c);
    let mut group = file.next_row_group()?;
    for column in &STAGED_COLUMNS {
        let mut writer = group
            .next_column()?
            .ok_or_else(|| ParquetError::General("fewer columns than the schema".into()))?;
        let w = writer.untyped();
        match column.name {
            "file" => text(w, cases().map(|(file, _)| file))?,
            "suite" => text(w, case().map(|c| c.suite.as_str()))?,
            "classname" => text(w, case().map(|c| c.classname.as_str()))?,
            "name" => text(w, case().map(|c| c.name.as_str()))?,
            "test_id" => {
                let ids = crate::junit::identity_hashes(
                    case().map(|c| (c.suite.as_str(), c.classname.as_str(), c.name.as_str())),
                );
                int64(w, ids.into_iter().map(|id| id as i64))?
            }
            "status" => statuses(w, case())?,
            "attempts" => int32(
                w,
                case().map(|c| i32::try_from(c.attempts).unwrap_or(i32::MAX)),
            )?,
            "duration_s" => durations(w, case().map(|c| c.time.filter(|t| t.is_finite())))?,
            other => {
                return Err(ParquetError::General(format!(
                    "no staged writer for column {other}"
                )))
            }
        }
        writer.close()?;
    }
    group.close()?;
    let mut build = BuildRow::of(id, summary, problems);
    build.first_row = 0;
    build.rows = rows as u64;
    let list = serde_json::to_string(&[build]).map_err(|e| ParquetError::General(e.to_string()))?;
    file.append_key_value_metadata(KeyValue::new(BUILDS_METADATA_KEY.to_string(), list));
    file.into_inner()
}

/// Hands `values` to `write` in batches of at most [`BATCH`], through one reused buffer.
fn batches<T>(
    values: impl Iterator<Item = T>,
    mut write: impl FnMut(&[T]) -> Result<(), ParquetError>,
) -> Result<(), ParquetError> {
    let mut batch = Vec::with_capacity(BATCH);
    for v in values {
        batch.push(v);
        if batch.len() == BATCH {
            write(&batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        write(&batch)?;
    }
    Ok(())
}

fn mismatch() -> ParquetError {
    ParquetError::General("staged column type mismatch".into())
}

/// A required text column: each batch's text is copied into one buffer, and its values are
/// slices of it.
fn text<'a>(
    w: &mut ColumnWriter<'_>,
    values: impl Iterator<Item = &'a str>,
) -> Result<(), ParquetError> {
    let ColumnWriter::ByteArrayColumnWriter(w) = w else {
        return Err(mismatch());
    };
    let mut buf = BytesMut::new();
    let mut arrays: Vec<ByteArray> = Vec::with_capacity(BATCH);
    batches(values, |batch| {
        buf.reserve(batch.iter().map(|v| v.len()).sum());
        for v in batch {
            buf.extend_from_slice(v.as_bytes());
        }
        let data: Bytes = buf.split().freeze();
        let mut at = 0;
        arrays.extend(batch.iter().map(|v| {
            at += v.len();
            ByteArray::from(data.slice(at - v.len()..at))
        }));
        w.write_batch(&arrays, None, None)?;
        // Once the slices and `data` are dropped, `buf` owns its allocation alone again, and the
        // next batch's `reserve` reuses it.
        arrays.clear();
        Ok(())
    })
}

/// Statuses: static text, so no copy and no reference counting.
fn statuses<'a>(
    w: &mut ColumnWriter<'_>,
    cases: impl Iterator<Item = &'a CaseSummary>,
) -> Result<(), ParquetError> {
    let ColumnWriter::ByteArrayColumnWriter(w) = w else {
        return Err(mismatch());
    };
    let values = cases.map(|c| ByteArray::from(Bytes::from_static(c.status.as_str().as_bytes())));
    batches(values, |batch| w.write_batch(batch, None, None).map(drop))
}

fn int64(w: &mut ColumnWriter<'_>, values: impl Iterator<Item = i64>) -> Result<(), ParquetError> {
    let ColumnWriter::Int64ColumnWriter(w) = w else {
        return Err(mismatch());
    };
    batches(values, |batch| w.write_batch(batch, None, None).map(drop))
}

fn int32(w: &mut ColumnWriter<'_>, values: impl Iterator<Item = i32>) -> Result<(), ParquetError> {
    let ColumnWriter::Int32ColumnWriter(w) = w else {
        return Err(mismatch());
    };
    batches(values, |batch| w.write_batch(batch, None, None).map(drop))
}

/// An optional double column: definition levels beside the values present.
fn durations(
    w: &mut ColumnWriter<'_>,
    values: impl Iterator<Item = Option<f64>>,
) -> Result<(), ParquetError> {
    let ColumnWriter::DoubleColumnWriter(w) = w else {
        return Err(mismatch());
    };
    let mut present = Vec::with_capacity(BATCH);
    let mut defs = Vec::with_capacity(BATCH);
    batches(values, |batch| {
        present.clear();
        defs.clear();
        for v in batch {
            defs.push(i16::from(v.is_some()));
            present.extend(*v);
        }
        w.write_batch(&present, Some(&defs), None).map(drop)
    })
}
