//! `ci-test-metrics parse`: read JUnit XML files and print what the parser sees, as JSON Lines
//! for tools or as a table for people.

use crate::error::exit;
use crate::junit::{self, Status, StreamSummary, TestCase};
use clap::ValueEnum;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Parse JUnit XML result files and print their tests, statuses and times.
///
/// Reads pytest, nose, googletest, Surefire/Ant, go-junit-report, jest-junit, PHPUnit, CTest,
/// Catch2, cargo-nextest and NUnit/TRX/xUnit.net conversions, in UTF-8, UTF-16 or a declared
/// single-byte encoding. Totals are counted from the <testcase> elements, never taken from the
/// declared attributes; a disagreement is logged as a warning.
///
/// JSON Lines output (the default) prints one object per file:
///
///   {"file":"report.xml","cases":[{"suite":"pytest","classname":"tests.test_a",
///    "name":"test_x","time":0.5,"status":"passed"}, ...],"tests":3,"passed":1,"failures":1,
///    "errors":0,"skipped":1,"time":1.5,"error":null,"partial":false}
///
/// Cases are written as they are read, so memory stays small whatever the file's size; the
/// totals follow them, at the end of the object.
///
/// `time` is the sum of the known case times in seconds; a case's `time` is null when the file
/// gives none (or an unusable one). `status` is passed, skipped, failed or error. When a file
/// cannot be read to its end, `error` says where (file:line:column: message), the cases read
/// before it are still listed, and `partial` is true if there were any.
///
/// Exit status: 0 when every file parsed, 2 when any file failed (the others are still printed),
/// 1 for a usage error.
///
/// Examples:
///
///   ci-test-metrics parse examples/junit/*.xml
///
///   ci-test-metrics parse --format table build/test-results/**/*.xml
///
///   ci-test-metrics parse report.xml | jq -c '.cases[] | select(.status=="failed")'
///
///   gunzip -c report.xml.gz | ci-test-metrics parse -
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output format: `json` prints one JSON object per file (JSON Lines); `table` prints
    /// per-file totals and the ten slowest tests over all files.
    #[arg(long, short, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// JUnit XML files to read; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// How `parse` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per file, one per line.
    Json,
    /// Per-file totals, then the ten slowest tests.
    Table,
}

pub fn run(args: Args) -> crate::Result<u8> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 << 10, stdout.lock());
    let mut failed = false;
    let mut table = Table::default();
    for path in &args.files {
        let stdin = path.as_os_str() == "-";
        let summary = match args.format {
            Format::Json => {
                let mut json = JsonFile::start(
                    &mut out,
                    if stdin {
                        "-".into()
                    } else {
                        path.display().to_string()
                    },
                );
                let summary = read(path, stdin, |case| json.case(case));
                json.finish(&summary).map(|()| summary)
            }
            Format::Table => {
                let file = table.rows.len();
                let summary = read(path, stdin, |case| table.offer(case, file));
                table.add(&summary);
                Ok(summary)
            }
        }
        .map_err(write_error)?;
        for warning in &summary.warnings {
            tracing::warn!("{}: {warning}", summary.file);
        }
        if let Some(e) = &summary.error {
            failed = true;
            tracing::error!("{e}");
        }
    }
    if args.format == Format::Table {
        table.print(&mut out).map_err(write_error)?;
    }
    out.flush().map_err(write_error)?;
    Ok(if failed { exit::INPUT } else { exit::OK })
}

/// Streams one file's cases to `on_case`; `-` is standard input.
fn read(path: &std::path::Path, stdin: bool, on_case: impl FnMut(&TestCase)) -> StreamSummary {
    if stdin {
        junit::parse_stream_ref("-", io::stdin().lock(), on_case)
    } else {
        junit::stream_path(path, on_case)
    }
}

fn write_error(source: io::Error) -> crate::Error {
    crate::Error::Io {
        context: "writing to standard output".into(),
        source,
    }
}

/// One file's JSON object, written as its cases arrive: `{"file":…,"cases":[…` first, the
/// totals after the last case. The first write error is kept and ends the writing.
struct JsonFile<'w, W: Write> {
    out: &'w mut W,
    cases: usize,
    error: Option<io::Error>,
}

#[derive(Serialize)]
struct CaseJson<'a> {
    suite: &'a str,
    classname: &'a str,
    name: &'a str,
    time: Option<f64>,
    status: Status,
}

/// The fields after the cases.
#[derive(Serialize)]
struct TotalsJson {
    tests: usize,
    passed: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    time: f64,
    error: Option<String>,
    partial: bool,
}

impl<'w, W: Write> JsonFile<'w, W> {
    fn start(out: &'w mut W, file: String) -> Self {
        let mut json = JsonFile {
            out,
            cases: 0,
            error: None,
        };
        json.write(|out| {
            out.write_all(b"{\"file\":")?;
            serde_json::to_writer(&mut *out, &file).map_err(io::Error::from)?;
            out.write_all(b",\"cases\":[")?;
            Ok(())
        });
        json
    }

    fn case(&mut self, c: &TestCase) {
        let first = self.cases == 0;
        self.cases += 1;
        self.write(|out| {
            if !first {
                out.write_all(b",")?;
            }
            let case = CaseJson {
                suite: &c.suite,
                classname: &c.classname,
                name: &c.name,
                time: c.time.map(seconds),
                status: c.status,
            };
            serde_json::to_writer(out, &case).map_err(io::Error::from)
        });
    }

    fn finish(mut self, s: &StreamSummary) -> io::Result<()> {
        let totals = TotalsJson {
            tests: s.tests(),
            passed: s.count(Status::Passed),
            failures: s.count(Status::Failed),
            errors: s.count(Status::Error),
            skipped: s.count(Status::Skipped),
            time: seconds(s.time),
            error: s.error.as_ref().map(|e| e.to_string()),
            partial: s.partial(),
        };
        self.write(|out| {
            // The totals object without its `{`, appended to this one.
            let totals = serde_json::to_vec(&totals).map_err(io::Error::from)?;
            out.write_all(b"],")?;
            out.write_all(&totals[1..])?;
            out.write_all(b"\n")?;
            Ok(())
        });
        self.error.map_or(Ok(()), Err)
    }

    fn write(&mut self, f: impl FnOnce(&mut W) -> io::Result<()>) {
        if self.error.is_none() {
            if let Err(e) = f(self.out) {
                self.error = Some(e);
            }
        }
    }
}

/// Seconds as a float without the binary noise of `as_secs_f64` (1.934, not 1.9340000000000002).
fn seconds(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e9
}

const SLOWEST: usize = 10;

/// Per-file totals and the [`SLOWEST`] slowest tests seen so far: O(files) memory, never
/// O(cases). A case's display name is only built when it enters the top.
#[derive(Default)]
struct Table {
    rows: Vec<[String; 8]>,
    /// The slowest cases so far, the fastest of them on top; see [`Slow`].
    slowest: BinaryHeap<Reverse<Slow>>,
    /// Cases offered so far: ties in time go to the case read first.
    seen: u64,
}

/// One of the slowest cases. Ordered by time, then later-read first, so that the heap's
/// minimum is the one to drop.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Slow {
    time: Duration,
    order: Reverse<u64>,
    status: Status,
    test: String,
    /// Index into [`Table::rows`].
    file: usize,
}

impl Table {
    /// Considers one case of the file that will be row `file`.
    fn offer(&mut self, c: &TestCase, file: usize) {
        let Some(time) = c.time else { return };
        self.seen += 1;
        if self.slowest.len() >= SLOWEST {
            match self.slowest.peek() {
                Some(Reverse(min)) if time > min.time => {
                    self.slowest.pop();
                }
                _ => return,
            }
        }
        self.slowest.push(Reverse(Slow {
            time,
            order: Reverse(self.seen),
            status: c.status,
            test: display_name(c),
            file,
        }));
    }

    fn add(&mut self, s: &StreamSummary) {
        let note = match (&s.error, s.partial()) {
            (None, _) => "ok",
            (Some(_), true) => "partial (error)",
            (Some(_), false) => "error",
        };
        self.rows.push([
            s.file.clone(),
            s.tests().to_string(),
            s.count(Status::Passed).to_string(),
            s.count(Status::Failed).to_string(),
            s.count(Status::Error).to_string(),
            s.count(Status::Skipped).to_string(),
            format!("{:.3}s", seconds(s.time)),
            note.to_string(),
        ]);
    }
    fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let header = [
            "FILE", "TESTS", "PASSED", "FAILED", "ERRORS", "SKIPPED", "TIME", "RESULT",
        ];
        let file_width = self
            .rows
            .iter()
            .map(|r| r[0].chars().count())
            .chain([4])
            .max()
            .unwrap_or(4);
        let line = |out: &mut dyn Write, r: [&str; 8]| {
            writeln!(
                out,
                "{:<fw$}  {:>6}  {:>6}  {:>6}  {:>6}  {:>7}  {:>10}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                fw = file_width
            )
        };
        line(out, header)?;
        for r in &self.rows {
            line(out, r.each_ref().map(String::as_str))?;
        }
        writeln!(out)?;
        let mut slowest: Vec<&Slow> = self.slowest.iter().map(|Reverse(s)| s).collect();
        slowest.sort_by(|a, b| b.cmp(a));
        if slowest.is_empty() {
            writeln!(out, "No test has a known time.")?;
            return Ok(());
        }
        writeln!(out, "Slowest tests:")?;
        writeln!(out, "{:>10}  {:<7}  TEST", "TIME", "STATUS")?;
        for slow in slowest {
            let status = match slow.status {
                Status::Passed => "passed",
                Status::Skipped => "skipped",
                Status::Failed => "failed",
                Status::Error => "error",
            };
            let (secs, test, file) = (seconds(slow.time), &slow.test, &self.rows[slow.file][0]);
            writeln!(out, "{secs:>9.3}s  {status:<7}  {test}  ({file})")?;
        }
        Ok(())
    }
}

/// `suite › classname › name`, leaving out a part that is empty, repeats the suite, or that the
/// name already starts with.
fn display_name(c: &TestCase) -> String {
    let mut test = String::new();
    let suite = (c.suite != c.classname).then_some(&c.suite);
    for part in suite.into_iter().chain([&c.classname]) {
        if !part.is_empty() && !c.name.starts_with(part.as_str()) {
            test.push_str(part);
            test.push_str(" › ");
        }
    }
    test.push_str(&c.name);
    test
}
