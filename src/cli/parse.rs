//! `ci-test-metrics parse`: read JUnit XML files and print what the parser sees, as JSON Lines
//! for tools or as a table for people.

use crate::error::exit;
use crate::junit::{self, Repeats, Status, StreamSummary, TestCase};
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
///    "name":"test_x","time":0.5,"status":"passed","attempts":1}, ...],"tests":3,"passed":1,
///    "failures":1,"errors":0,"skipped":1,"flaky":0,"retries":0,"time":1.5,"error":null,
///    "partial":false}
///
/// Cases are written as they are read, so memory stays small whatever the file's size; the
/// totals follow them, at the end of the object. Retries are merged: a test that ran several
/// times (Surefire's flaky and rerun elements, or repeated <testcase> elements as Gradle and
/// pytest-rerunfailures write them) is one case with its final `status` and its `attempts`.
/// Since a failed test may be retried further down the file, failed and errored tests are
/// written when their retry comes, or at the end of the file (in file order); the others in
/// file order as they are read. `flaky` counts tests that failed and then passed on a retry, `retries` the extra runs.
///
/// `time` is the sum of the known case times in seconds; a case's `time` is null when the file
/// gives none (or an unusable one); a retried test's time is its last run's if it passed,
/// its first run's if it failed every time. `status` is passed, skipped, failed, error or
/// flaky. When a file
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
        let mut merged = Merged::default();
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
                let summary = read(path, stdin, |case| merged.push(case, |_, c| json.case(c)));
                let totals = merged.finish(&summary.file, |_, c| json.case(c));
                json.finish(&summary, &totals).map(|()| summary)
            }
            Format::Table => {
                let file = table.rows.len();
                let summary = read(path, stdin, |case| {
                    merged.push(case, |seq, c| table.offer(c, file, seq))
                });
                let totals = merged.finish(&summary.file, |seq, c| table.offer(c, file, seq));
                table.add(&summary, &totals);
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

/// One file's cases with their retries merged ([`junit::retry`]), and the totals of the merged
/// cases. Copies each lent case into a recycled one, so merging allocates nothing per case
/// except for failed tests, which wait for a possible retry.
#[derive(Default)]
struct Merged {
    repeats: Repeats<TestCase>,
    /// The case passed on last, whose strings the next case is copied into.
    spare: Option<TestCase>,
    read: u64,
    totals: Totals,
}

/// Totals of the merged cases of one file.
#[derive(Default)]
struct Totals {
    /// Tests per [`Status`], indexed by `Status as usize`.
    counts: [usize; 5],
    retries: u64,
    time: Duration,
}

impl Totals {
    fn tests(&self) -> usize {
        self.counts.iter().sum()
    }
    fn count(&self, status: Status) -> usize {
        self.counts[status as usize]
    }
}

impl Merged {
    /// Takes the next case read; `out` gets each merged test with the number of its first run.
    fn push(&mut self, case: &TestCase, mut out: impl FnMut(u64, &TestCase)) {
        let owned = match self.spare.take() {
            Some(mut spare) => {
                spare.clone_from(case);
                spare
            }
            None => case.clone(),
        };
        let Merged {
            repeats,
            spare,
            totals,
            ..
        } = self;
        repeats.push(owned, self.read, true, &mut |seq, c| {
            totals.add(&c);
            out(seq, &c);
            *spare = Some(c);
        });
        self.read += 1;
    }

    /// Passes on the cases still held and returns the totals.
    fn finish(self, file: &str, mut out: impl FnMut(u64, &TestCase)) -> Totals {
        let mut totals = self.totals;
        let stats = self.repeats.finish(&mut |seq, c| {
            totals.add(&c);
            out(seq, &c);
        });
        if stats.released > 0 {
            tracing::warn!(
                "{file}: more than {} failed tests waited for a retry; {} were reported without \
                 merging later retries",
                junit::retry::MAX_HELD,
                stats.released
            );
        }
        totals
    }
}

impl Totals {
    fn add(&mut self, c: &TestCase) {
        self.counts[c.status as usize] += 1;
        self.retries += u64::from(c.attempts - 1);
        if let Some(t) = c.time {
            self.time = self.time.saturating_add(t);
        }
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
    attempts: u32,
}

/// The fields after the cases.
#[derive(Serialize)]
struct TotalsJson {
    tests: usize,
    passed: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    flaky: usize,
    retries: u64,
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
                attempts: c.attempts,
            };
            serde_json::to_writer(out, &case).map_err(io::Error::from)
        });
    }

    fn finish(mut self, s: &StreamSummary, t: &Totals) -> io::Result<()> {
        let totals = TotalsJson {
            tests: t.tests(),
            passed: t.count(Status::Passed),
            failures: t.count(Status::Failed),
            errors: t.count(Status::Error),
            skipped: t.count(Status::Skipped),
            flaky: t.count(Status::Flaky),
            retries: t.retries,
            time: seconds(t.time),
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
    rows: Vec<[String; 10]>,
    /// The slowest cases so far, the fastest of them on top; see [`Slow`].
    slowest: BinaryHeap<Reverse<Slow>>,
}

/// One of the slowest cases. Ordered by time, then later-read first, so that the heap's
/// minimum is the one to drop.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Slow {
    time: Duration,
    /// (file, number of the test's first case in it): ties in time go to the test read first.
    order: Reverse<(usize, u64)>,
    status: Status,
    test: String,
    /// Index into [`Table::rows`].
    file: usize,
}

impl Table {
    /// Considers one test of the file that will be row `file`, whose first case was the
    /// `seq`th read.
    fn offer(&mut self, c: &TestCase, file: usize, seq: u64) {
        let Some(time) = c.time else { return };
        if self.slowest.len() >= SLOWEST {
            let order = Reverse((file, seq));
            match self.slowest.peek() {
                Some(Reverse(min)) if (time, order) > (min.time, min.order) => {
                    self.slowest.pop();
                }
                _ => return,
            }
        }
        self.slowest.push(Reverse(Slow {
            time,
            order: Reverse((file, seq)),
            status: c.status,
            test: display_name(c),
            file,
        }));
    }

    fn add(&mut self, s: &StreamSummary, t: &Totals) {
        let note = match (&s.error, s.partial()) {
            (None, _) => "ok",
            (Some(_), true) => "partial (error)",
            (Some(_), false) => "error",
        };
        self.rows.push([
            s.file.clone(),
            t.tests().to_string(),
            t.count(Status::Passed).to_string(),
            t.count(Status::Failed).to_string(),
            t.count(Status::Error).to_string(),
            t.count(Status::Skipped).to_string(),
            t.count(Status::Flaky).to_string(),
            t.retries.to_string(),
            format!("{:.3}s", seconds(t.time)),
            note.to_string(),
        ]);
    }
    fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let header = [
            "FILE", "TESTS", "PASSED", "FAILED", "ERRORS", "SKIPPED", "FLAKY", "RETRIES", "TIME",
            "RESULT",
        ];
        let file_width = self
            .rows
            .iter()
            .map(|r| r[0].chars().count())
            .chain([4])
            .max()
            .unwrap_or(4);
        let line = |out: &mut dyn Write, r: [&str; 10]| {
            writeln!(
                out,
                "{:<fw$}  {:>6}  {:>6}  {:>6}  {:>6}  {:>7}  {:>5}  {:>7}  {:>10}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                r[9],
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
            let status = slow.status.as_str();
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
