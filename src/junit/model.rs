//! The model: a test case, its status, and a parsed file's report with totals computed from cases.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The outcome of one `<testcase>`. With several result children the most severe wins:
/// error > failed > skipped > passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Skipped,
    Failed,
    Error,
}

impl Status {
    /// The lowercase name, as JSON and the history tables spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Error => "error",
        }
    }

    /// The status a name gives, if it is one.
    pub fn from_name(name: &str) -> Option<Status> {
        [
            Status::Passed,
            Status::Skipped,
            Status::Failed,
            Status::Error,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// One `<testcase>` element.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    /// Name of the innermost enclosing `<testsuite>` (empty when there is none).
    pub suite: String,
    pub classname: String,
    pub name: String,
    pub file: Option<String>,
    /// `None` when the file gives no usable time.
    pub time: Option<Duration>,
    pub status: Status,
}

/// The result of parsing one file: the cases read, and the error that stopped reading, if any.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The file's name as given to the parser.
    pub file: String,
    pub cases: Vec<TestCase>,
    /// Set when the file could not be read to its end; `cases` holds what was read before.
    pub error: Option<super::ParseError>,
    /// Non-fatal problems: unusable times, declared totals that disagree with the cases.
    pub warnings: Vec<String>,
    /// Totals the file claims about itself (only used for warnings).
    pub declared: Declared,
}

/// Totals a file declares on its root (or, under a bare `<testsuites>`, the sum over its
/// top-level suites). `skipped` includes nose's `skip` and `disabled`. Counts used anywhere are
/// computed from the cases; these only produce warnings when they disagree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Declared {
    pub tests: Option<u64>,
    pub failures: Option<u64>,
    pub errors: Option<u64>,
    pub skipped: Option<u64>,
}

impl Declared {
    /// Adds another suite's declared totals (a missing value stays missing only if both are).
    pub(crate) fn add(&mut self, other: &Declared) {
        fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
            }
        }
        self.tests = sum(self.tests, other.tests);
        self.failures = sum(self.failures, other.failures);
        self.errors = sum(self.errors, other.errors);
        self.skipped = sum(self.skipped, other.skipped);
    }
}

impl Report {
    /// True when an error stopped reading after some cases were read.
    pub fn partial(&self) -> bool {
        self.error.is_some() && !self.cases.is_empty()
    }
    pub fn tests(&self) -> usize {
        self.cases.len()
    }
    pub fn count(&self, status: Status) -> usize {
        self.cases.iter().filter(|c| c.status == status).count()
    }
    /// Sum of the known case times, saturating at `Duration::MAX` (a plain sum panics on
    /// overflow, and a file may claim any time).
    pub fn time(&self) -> Duration {
        self.cases
            .iter()
            .filter_map(|c| c.time)
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}
