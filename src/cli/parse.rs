//! `ci-test-metrics parse`: read JUnit XML files and print what the parser sees, as JSON Lines
//! for tools or as a table for people.

use crate::error::exit;
use crate::junit::{self, Report, Status};
use clap::ValueEnum;
use serde::Serialize;
use std::io::{self, Write};
use std::path::PathBuf;

/// Parse JUnit XML result files and print their tests, statuses and times.
///
/// Reads pytest, nose, googletest, Surefire/Ant, go-junit-report, jest-junit, PHPUnit, CTest,
/// Catch2, cargo-nextest and NUnit/TRX/xUnit.net conversions, in UTF-8, UTF-16 or a declared
/// single-byte encoding. Totals are counted from the <testcase> elements, never taken from the
/// declared attributes; a disagreement is logged as a warning.
///
/// JSON Lines output (the default) prints one object per file:
///
///   {"file":"report.xml","tests":3,"passed":1,"failures":1,"errors":0,"skipped":1,"time":1.5,
///    "cases":[{"suite":"pytest","classname":"tests.test_a","name":"test_x","time":0.5,
///    "status":"passed"}, ...],"error":null,"partial":false}
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
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failed = false;
    let mut table = Table::default();
    for path in &args.files {
        let report = if path.as_os_str() == "-" {
            junit::parse_reader("-", io::stdin().lock())
        } else {
            junit::parse_path(path)
        };
        for warning in &report.warnings {
            tracing::warn!("{}: {warning}", report.file);
        }
        if let Some(e) = &report.error {
            failed = true;
            tracing::error!("{e}");
        }
        let written = match args.format {
            Format::Json => serde_json::to_writer(&mut out, &FileJson::from(&report))
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            Format::Table => {
                table.add(report);
                Ok(())
            }
        };
        written.map_err(write_error)?;
    }
    if args.format == Format::Table {
        table.print(&mut out).map_err(write_error)?;
    }
    out.flush().map_err(write_error)?;
    Ok(if failed { exit::INPUT } else { exit::OK })
}

fn write_error(source: io::Error) -> crate::Error {
    crate::Error::Io {
        context: "writing to standard output".into(),
        source,
    }
}

/// One line of JSON output.
#[derive(Serialize)]
struct FileJson<'a> {
    file: &'a str,
    tests: usize,
    passed: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    time: f64,
    cases: Vec<CaseJson<'a>>,
    error: Option<String>,
    partial: bool,
}

#[derive(Serialize)]
struct CaseJson<'a> {
    suite: &'a str,
    classname: &'a str,
    name: &'a str,
    time: Option<f64>,
    status: Status,
}

impl<'a> From<&'a Report> for FileJson<'a> {
    fn from(r: &'a Report) -> Self {
        FileJson {
            file: &r.file,
            tests: r.tests(),
            passed: r.count(Status::Passed),
            failures: r.count(Status::Failed),
            errors: r.count(Status::Error),
            skipped: r.count(Status::Skipped),
            time: seconds(r.time()),
            cases: r
                .cases
                .iter()
                .map(|c| CaseJson {
                    suite: &c.suite,
                    classname: &c.classname,
                    name: &c.name,
                    time: c.time.map(seconds),
                    status: c.status,
                })
                .collect(),
            error: r.error.as_ref().map(|e| e.to_string()),
            partial: r.partial(),
        }
    }
}

/// Seconds as a float without the binary noise of `as_secs_f64` (1.934, not 1.9340000000000002).
fn seconds(d: std::time::Duration) -> f64 {
    d.as_nanos() as f64 / 1e9
}

/// Per-file totals and the slowest tests seen so far.
#[derive(Default)]
struct Table {
    rows: Vec<[String; 8]>,
    /// (seconds, status, test, file), at most [`SLOWEST`] after each file.
    slowest: Vec<(f64, Status, String, String)>,
}

const SLOWEST: usize = 10;

impl Table {
    fn add(&mut self, r: Report) {
        let note = match (&r.error, r.partial()) {
            (None, _) => "ok".to_string(),
            (Some(_), true) => "partial (error)".to_string(),
            (Some(_), false) => "error".to_string(),
        };
        self.rows.push([
            r.file.clone(),
            r.tests().to_string(),
            r.count(Status::Passed).to_string(),
            r.count(Status::Failed).to_string(),
            r.count(Status::Error).to_string(),
            r.count(Status::Skipped).to_string(),
            format!("{:.3}s", seconds(r.time())),
            note,
        ]);
        for c in r.cases {
            let Some(t) = c.time else { continue };
            let mut test = String::new();
            let suite = (c.suite != c.classname).then_some(&c.suite);
            for part in suite.into_iter().chain([&c.classname]) {
                if !part.is_empty() && !c.name.starts_with(part.as_str()) {
                    test.push_str(part);
                    test.push_str(" › ");
                }
            }
            test.push_str(&c.name);
            self.slowest
                .push((seconds(t), c.status, test, r.file.clone()));
            if self.slowest.len() >= 4 * SLOWEST {
                self.trim();
            }
        }
        self.trim();
    }

    fn trim(&mut self) {
        self.slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.slowest.truncate(SLOWEST);
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
        if self.slowest.is_empty() {
            writeln!(out, "No test has a known time.")?;
            return Ok(());
        }
        writeln!(out, "Slowest tests:")?;
        writeln!(out, "{:>10}  {:<7}  TEST", "TIME", "STATUS")?;
        for (secs, status, test, file) in &self.slowest {
            let status = match status {
                Status::Passed => "passed",
                Status::Skipped => "skipped",
                Status::Failed => "failed",
                Status::Error => "error",
            };
            writeln!(out, "{:>9.3}s  {status:<7}  {test}  ({file})", secs)?;
        }
        Ok(())
    }
}
