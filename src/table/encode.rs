//! Rows to Parquet, in memory (pure): zstd, dictionary encoding, column statistics, and row
//! groups of at most [`ROW_GROUP_ROWS`] rows. Values are buffered per column for one row group
//! (the low-level writer takes a column at a time), so memory follows the row group, not the file.

use super::schema::{
    self, BuildRow, Column, Kind, Run, BUILDS_COLUMNS, BUILDS_METADATA_KEY, TEST_RUNS_COLUMNS,
};
use super::{BUILDS, TEST_RUNS};
use bytes::Bytes;
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use std::sync::Arc;

/// Rows per row group: small enough that `analyze --last` skips what it does not need and that
/// the writer's buffer stays near 20 MB, large enough for engines to read column chunks in bulk.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// A row group is also closed when its text reaches this many bytes.
const ROW_GROUP_TEXT_BYTES: usize = 64 << 20;
/// Values handed to a column writer at once.
const BATCH: usize = 8192;

/// One column's values for the open row group.
enum Buf {
    /// Text as spans of one buffer; a value equal to the one before it reuses its span.
    Text {
        data: Vec<u8>,
        spans: Vec<(u32, u32)>,
    },
    I32(Vec<i32>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
}

impl Buf {
    fn new(kind: Kind) -> Buf {
        match kind {
            Kind::Text => Buf::Text {
                data: Vec::new(),
                spans: Vec::new(),
            },
            Kind::Int32 => Buf::I32(Vec::new()),
            Kind::Int64 | Kind::Timestamp => Buf::I64(Vec::new()),
            Kind::Double => Buf::F64(Vec::new()),
            Kind::Bool => Buf::Bool(Vec::new()),
        }
    }
}

/// A Parquet file being written into memory, row by row.
pub struct TableWriter {
    columns: &'static [Column],
    bufs: Vec<Buf>,
    /// Definition levels of nullable columns (1 = present), by column.
    defs: Vec<Vec<i16>>,
    rows: usize,
    /// Rows per row group.
    group_rows: usize,
    text_bytes: usize,
    written: u64,
    writer: SerializedFileWriter<Vec<u8>>,
}

/// How a file is written: for engines (the public tables), or as quickly as possible (a
/// staged build, read back only by `ci-test-metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum For {
    /// zstd level 3, dictionary encoding, page and column-chunk statistics.
    Engines,
    /// zstd level 1, plain encoding, no statistics.
    Staging,
}

pub(super) fn properties(purpose: For) -> Arc<WriterProperties> {
    let builder = WriterProperties::builder()
        .set_created_by(format!("ci-test-metrics {}", env!("CARGO_PKG_VERSION")));
    let builder = match purpose {
        For::Engines => builder
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("3 is a zstd level"),
            ))
            .set_dictionary_enabled(true),
        // Test ids are random bits: compressing them would only cost time.
        For::Staging => builder
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).expect("1 is a zstd level"),
            ))
            .set_column_compression(ColumnPath::from("test_id"), Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None),
    };
    Arc::new(builder.build())
}

impl TableWriter {
    pub fn new(
        table: &str,
        columns: &'static [Column],
        purpose: For,
    ) -> Result<TableWriter, ParquetError> {
        let schema =
            parquet::schema::parser::parse_message_type(&schema::message_type(table, columns))?;
        let writer = SerializedFileWriter::new(Vec::new(), Arc::new(schema), properties(purpose))?;
        Ok(TableWriter {
            columns,
            bufs: columns.iter().map(|c| Buf::new(c.kind)).collect(),
            defs: columns.iter().map(|_| Vec::new()).collect(),
            rows: 0,
            group_rows: ROW_GROUP_ROWS,
            text_bytes: 0,
            written: 0,
            writer,
        })
    }

    /// Rows written so far (the next row's index in the file).
    pub fn rows(&self) -> u64 {
        self.written + self.rows as u64
    }

    /// Bytes of the file so far (closed row groups only).
    pub fn bytes_written(&self) -> usize {
        self.writer.bytes_written()
    }

    /// Starts a row: give every column a value, in order, then call [`Row::end`].
    pub fn row(&mut self) -> Row<'_> {
        Row { w: self, at: 0 }
    }

    fn flush(&mut self) -> Result<(), ParquetError> {
        if self.rows == 0 {
            return Ok(());
        }
        let fresh = self.columns.iter().map(|c| Buf::new(c.kind)).collect();
        let mut bufs = std::mem::replace(&mut self.bufs, fresh).into_iter();
        let mut group = self.writer.next_row_group()?;
        let mut i = 0;
        while let Some(mut column) = group.next_column()? {
            let defs = self.columns[i].nullable.then_some(&self.defs[i][..]);
            let buf = bufs
                .next()
                .ok_or_else(|| ParquetError::General("more columns than buffers".into()))?;
            write_column(column.untyped(), buf, defs)?;
            column.close()?;
            i += 1;
        }
        group.close()?;
        self.defs.iter_mut().for_each(Vec::clear);
        self.written += self.rows as u64;
        self.rows = 0;
        self.text_bytes = 0;
        Ok(())
    }

    /// Closes the file with `metadata` in its footer and returns its bytes.
    pub fn finish(mut self, metadata: Vec<KeyValue>) -> Result<Vec<u8>, ParquetError> {
        self.flush()?;
        for kv in metadata {
            self.writer.append_key_value_metadata(kv);
        }
        self.writer.into_inner()
    }
}

/// Writes one column chunk in batches, so the `ByteArray`s made for it stay few.
fn write_column(
    w: &mut ColumnWriter<'_>,
    buf: Buf,
    defs: Option<&[i16]>,
) -> Result<(), ParquetError> {
    let (text, total) = match &buf {
        Buf::Text { spans, .. } => (None::<Bytes>, spans.len()),
        Buf::I32(v) => (None, v.len()),
        Buf::I64(v) => (None, v.len()),
        Buf::F64(v) => (None, v.len()),
        Buf::Bool(v) => (None, v.len()),
    };
    let (text, buf) = match buf {
        Buf::Text { data, spans } => (
            Some(Bytes::from(data)),
            Buf::Text {
                data: Vec::new(),
                spans,
            },
        ),
        other => (text, other),
    };
    // Batches follow the definition levels when the column is nullable.
    let batches: Vec<(Option<&[i16]>, usize)> = match defs {
        Some(d) => d
            .chunks(BATCH)
            .map(|c| (Some(c), c.iter().filter(|l| **l == 1).count()))
            .collect(),
        None => (0..total)
            .step_by(BATCH)
            .map(|s| (None, BATCH.min(total - s)))
            .collect(),
    };
    let mut at = 0;
    for (batch_defs, n) in batches {
        let range = at..at + n;
        at += n;
        match (&mut *w, &buf) {
            (ColumnWriter::ByteArrayColumnWriter(w), Buf::Text { spans, .. }) => {
                let text = text.as_ref().expect("a text column has its buffer");
                let values: Vec<ByteArray> = spans[range]
                    .iter()
                    .map(|&(start, len)| {
                        ByteArray::from(text.slice(start as usize..(start + len) as usize))
                    })
                    .collect();
                w.write_batch(&values, batch_defs, None)?;
            }
            (ColumnWriter::Int32ColumnWriter(w), Buf::I32(v)) => {
                w.write_batch(&v[range], batch_defs, None)?;
            }
            (ColumnWriter::Int64ColumnWriter(w), Buf::I64(v)) => {
                w.write_batch(&v[range], batch_defs, None)?;
            }
            (ColumnWriter::DoubleColumnWriter(w), Buf::F64(v)) => {
                w.write_batch(&v[range], batch_defs, None)?;
            }
            (ColumnWriter::BoolColumnWriter(w), Buf::Bool(v)) => {
                w.write_batch(&v[range], batch_defs, None)?;
            }
            _ => return Err(ParquetError::General("column type mismatch".into())),
        }
    }
    Ok(())
}

/// One row being written: values go to the columns in order.
pub struct Row<'a> {
    w: &'a mut TableWriter,
    at: usize,
}

impl Row<'_> {
    fn next(&mut self, present: bool) -> usize {
        let i = self.at;
        self.at += 1;
        debug_assert!(i < self.w.columns.len(), "more values than columns");
        if self.w.columns[i].nullable {
            self.w.defs[i].push(i16::from(present));
        } else {
            debug_assert!(present, "{} is required", self.w.columns[i].name);
        }
        i
    }

    pub fn text(&mut self, value: Option<&str>) -> &mut Self {
        let i = self.next(value.is_some());
        let Some(value) = value else { return self };
        let Buf::Text { data, spans } = &mut self.w.bufs[i] else {
            panic!("{} is not text", self.w.columns[i].name)
        };
        let same = spans
            .last()
            .filter(|&&(s, l)| &data[s as usize..(s + l) as usize] == value.as_bytes());
        let span = match same {
            Some(&span) => span,
            None => {
                let start = data.len() as u32;
                data.extend_from_slice(value.as_bytes());
                self.w.text_bytes += value.len();
                (start, value.len() as u32)
            }
        };
        spans.push(span);
        self
    }

    pub fn i32(&mut self, value: Option<i32>) -> &mut Self {
        let i = self.next(value.is_some());
        if let (Some(v), Buf::I32(values)) = (value, &mut self.w.bufs[i]) {
            values.push(v);
        }
        self
    }

    pub fn i64(&mut self, value: Option<i64>) -> &mut Self {
        let i = self.next(value.is_some());
        if let (Some(v), Buf::I64(values)) = (value, &mut self.w.bufs[i]) {
            values.push(v);
        }
        self
    }

    pub fn f64(&mut self, value: Option<f64>) -> &mut Self {
        let i = self.next(value.is_some());
        if let (Some(v), Buf::F64(values)) = (value, &mut self.w.bufs[i]) {
            values.push(v);
        }
        self
    }

    pub fn bool(&mut self, value: bool) -> &mut Self {
        let i = self.next(true);
        if let Buf::Bool(values) = &mut self.w.bufs[i] {
            values.push(value);
        }
        self
    }

    /// Ends the row; closes the row group when it is full.
    pub fn end(&mut self) -> Result<(), ParquetError> {
        debug_assert_eq!(self.at, self.w.columns.len(), "fewer values than columns");
        self.w.rows += 1;
        if self.w.rows >= self.w.group_rows || self.w.text_bytes >= ROW_GROUP_TEXT_BYTES {
            self.w.flush()?;
        }
        Ok(())
    }
}

/// A `test_runs` file: builds' rows, in the order given, and the builds in its footer.
pub struct RunsWriter {
    w: TableWriter,
    builds: Vec<BuildRow>,
    /// The build being written: its row, who, and its time in milliseconds.
    open: Option<(BuildRow, Option<String>, i64)>,
}

impl RunsWriter {
    pub fn new() -> Result<RunsWriter, ParquetError> {
        RunsWriter::with_row_groups(ROW_GROUP_ROWS)
    }

    /// A writer whose row groups hold `rows` rows (at least one).
    pub fn with_row_groups(rows: usize) -> Result<RunsWriter, ParquetError> {
        let mut w = TableWriter::new(TEST_RUNS, &TEST_RUNS_COLUMNS, For::Engines)?;
        w.group_rows = rows.max(1);
        Ok(RunsWriter {
            w,
            builds: Vec::new(),
            open: None,
        })
    }

    /// Appends one build and its test cases.
    pub fn push<'a>(
        &mut self,
        build: BuildRow,
        runs: impl IntoIterator<Item = Run<'a>>,
    ) -> Result<(), ParquetError> {
        self.begin(build);
        for run in runs {
            self.run(run)?;
        }
        self.end();
        Ok(())
    }

    /// Starts a build: its test cases follow with [`RunsWriter::run`], then [`RunsWriter::end`].
    pub fn begin(&mut self, mut build: BuildRow) {
        self.end();
        build.first_row = self.w.rows();
        build.rows = 0;
        let who = build.context.who();
        let time = schema::millis(build.context.timestamp);
        self.open = Some((build, who, time));
    }

    /// One test case of the build begun.
    pub fn run(&mut self, run: Run<'_>) -> Result<(), ParquetError> {
        let Some((build, who, time)) = &mut self.open else {
            return Err(ParquetError::General("a test case outside a build".into()));
        };
        let c = &build.context;
        let mut row = self.w.row();
        row.text(Some(&c.job))
            .text(Some(&c.branch))
            .text(Some(&build.branch_class))
            .i64(Some(c.build as i64))
            .i64(Some(*time))
            .text(c.commit.as_deref())
            .text(who.as_deref())
            .i64(c.pr.map(|p| p as i64))
            .text(Some(run.file))
            .text(Some(run.suite))
            .text(Some(run.classname))
            .text(Some(run.name))
            .i64(Some(schema::test_id(run.suite, run.classname, run.name)))
            .text(Some(run.status.as_str()))
            .i32(Some(i32::try_from(run.attempts).unwrap_or(i32::MAX)))
            .f64(run.duration_s.filter(|d| d.is_finite()));
        row.end()?;
        build.rows += 1;
        Ok(())
    }

    /// Ends the build begun (if any).
    pub fn end(&mut self) {
        if let Some((build, _, _)) = self.open.take() {
            self.builds.push(build);
        }
    }

    /// Bytes written so far (closed row groups).
    pub fn bytes_written(&self) -> usize {
        self.w.bytes_written()
    }

    /// The file's bytes and its builds.
    pub fn finish(mut self) -> Result<(Vec<u8>, Vec<BuildRow>), ParquetError> {
        self.end();
        let list = serde_json::to_string(&self.builds)
            .map_err(|e| ParquetError::General(e.to_string()))?;
        let bytes = self
            .w
            .finish(vec![KeyValue::new(BUILDS_METADATA_KEY.to_string(), list)])?;
        Ok((bytes, self.builds))
    }
}

/// The `builds` table file of these builds, in the order given.
pub fn builds_file(builds: &[BuildRow]) -> Result<Vec<u8>, ParquetError> {
    let mut w = TableWriter::new(BUILDS, &BUILDS_COLUMNS, For::Engines)?;
    for b in builds {
        let c = &b.context;
        let commit_time = c
            .commit_time
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(schema::millis);
        let n = |v: u64| Some(i64::try_from(v).unwrap_or(i64::MAX));
        let mut row = w.row();
        row.text(Some(&c.job))
            .text(Some(&c.branch))
            .text(Some(&b.branch_class))
            .i64(n(c.build))
            .i64(Some(schema::millis(c.timestamp)))
            .text(c.commit.as_deref())
            .text(c.who().as_deref())
            .i64(c.pr.and_then(n))
            .text(c.build_url.as_deref())
            .text(c.repo_url.as_deref())
            .text(c.source_branch.as_deref())
            .text(c.target_branch.as_deref())
            .text(c.node.as_deref())
            .i64(commit_time)
            .bool(b.published)
            .i64(n(b.tests))
            .i64(n(b.passed))
            .i64(n(b.failed))
            .i64(n(b.errors))
            .i64(n(b.skipped))
            .i64(n(b.flaky))
            .i64(n(b.retries))
            .f64(Some(b.total_time_s))
            .i32(Some(i32::try_from(b.parse_errors).unwrap_or(i32::MAX)))
            .i32(Some(i32::try_from(b.files).unwrap_or(i32::MAX)));
        row.end()?;
    }
    w.finish(Vec::new())
}
