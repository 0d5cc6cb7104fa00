//! The model: a test case, its status, and a parsed file's report with totals computed from cases.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The final outcome of a test in a build. With several result children the most severe wins:
/// error > failed > skipped > passed (the order of the first four variants). [`Status::Flaky`]
/// sorts last; it is never the result of that comparison but of retries (see [`super::retry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Skipped,
    Failed,
    Error,
    /// Failed or errored, then passed on a retry within the same build.
    Flaky,
}

impl Status {
    /// Every status, in `Status as usize` order.
    pub const ALL: [Status; 5] = [
        Status::Passed,
        Status::Skipped,
        Status::Failed,
        Status::Error,
        Status::Flaky,
    ];

    /// The lowercase name, as in JSON: `passed`, `skipped`, `failed`, `error`, `flaky`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Flaky => "flaky",
        }
    }

    /// The status a name gives, if it is one.
    pub fn from_name(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Failed or error: the final attempt did not pass.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::Error)
    }
}

/// FNV-1a (64-bit) of a test's suite, classname and name joined by NUL bytes: its identity as
/// one number (the history tables' `test_id`).
pub fn identity_hash(suite: &str, classname: &str, name: &str) -> u64 {
    let mut h = fnv(FNV_BASIS, suite.as_bytes()).wrapping_mul(FNV_PRIME);
    h = fnv(h, classname.as_bytes()).wrapping_mul(FNV_PRIME);
    fnv(h, name.as_bytes())
}

/// [`identity_hash`] of each identity, in order. FNV-1a is one multiply per byte, each waiting
/// for the one before; hashing four identities side by side keeps the multiplier busy, about
/// three times as fast on every build's path.
pub fn identity_hashes<'a>(ids: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> Vec<u64> {
    let mut ids = ids.into_iter();
    let mut out = Vec::with_capacity(ids.size_hint().0);
    loop {
        match std::array::from_fn::<_, 4, _>(|_| ids.next()) {
            [Some(a), Some(b), Some(c), Some(d)] => {
                let four = [a, b, c, d];
                let mut h = fnv4([FNV_BASIS; 4], four.map(|id| id.0.as_bytes()));
                h = fnv4(
                    h.map(|h| h.wrapping_mul(FNV_PRIME)),
                    four.map(|id| id.1.as_bytes()),
                );
                h = fnv4(
                    h.map(|h| h.wrapping_mul(FNV_PRIME)),
                    four.map(|id| id.2.as_bytes()),
                );
                out.extend(h);
            }
            rest => {
                out.extend(
                    rest.into_iter()
                        .flatten()
                        .map(|(s, c, n)| identity_hash(s, c, n)),
                );
                return out;
            }
        }
    }
}

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// [`fnv`] of four byte strings at once: side by side for as long as the shortest, then each
/// on its own.
fn fnv4(mut h: [u64; 4], parts: [&[u8]; 4]) -> [u64; 4] {
    let n = parts.iter().map(|p| p.len()).min().unwrap_or(0);
    let [a, b, c, d] = parts.map(|p| &p[..n]);
    for (((&a, &b), &c), &d) in a.iter().zip(b).zip(c).zip(d) {
        h[0] = (h[0] ^ u64::from(a)).wrapping_mul(FNV_PRIME);
        h[1] = (h[1] ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        h[2] = (h[2] ^ u64::from(c)).wrapping_mul(FNV_PRIME);
        h[3] = (h[3] ^ u64::from(d)).wrapping_mul(FNV_PRIME);
    }
    std::array::from_fn(|l| fnv(h[l], &parts[l][n..]))
}

/// One `<testcase>` element.
#[derive(Debug, PartialEq)]
pub struct TestCase {
    /// Name of the innermost enclosing `<testsuite>` (empty when there is none).
    pub suite: String,
    pub classname: String,
    pub name: String,
    pub file: Option<String>,
    /// `None` when the file gives no usable time.
    pub time: Option<Duration>,
    /// The final outcome, after any retries within the build.
    pub status: Status,
    /// How many times the test ran in the build: 1 without retries (at least 1). See
    /// [`super::retry`] for how retries are counted and which run's `time` is kept.
    pub attempts: u32,
}

impl Clone for TestCase {
    fn clone(&self) -> Self {
        TestCase {
            suite: self.suite.clone(),
            classname: self.classname.clone(),
            name: self.name.clone(),
            file: self.file.clone(),
            time: self.time,
            status: self.status,
            attempts: self.attempts,
        }
    }

    /// Field by field, keeping the strings' allocations: copying lent cases allocates nothing.
    fn clone_from(&mut self, source: &Self) {
        self.suite.clone_from(&source.suite);
        self.classname.clone_from(&source.classname);
        self.name.clone_from(&source.name);
        self.file.clone_from(&source.file);
        self.time = source.time;
        self.status = source.status;
        self.attempts = source.attempts;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_hashes_equal_one_at_a_time() {
        // Lengths that differ within each group of four, and counts that leave 0 to 3 over.
        let names: Vec<String> = (0..11)
            .map(|i| "x".repeat(i * 7 % 5) + &i.to_string())
            .collect();
        let ids: Vec<(&str, &str, &str)> = (0..names.len())
            .map(|i| {
                (
                    &names[i][..],
                    &names[(i + 3) % 11][..],
                    &names[(i * 5) % 11][..],
                )
            })
            .collect();
        for n in 0..=ids.len() {
            let one_by_one: Vec<u64> = ids[..n]
                .iter()
                .map(|&(s, c, m)| identity_hash(s, c, m))
                .collect();
            assert_eq!(
                identity_hashes(ids[..n].iter().copied()),
                one_by_one,
                "{n} identities"
            );
        }
        // The documented value: FNV-1a 64 of "\0\0".
        assert_eq!(identity_hashes([("", "", ""); 5])[4], 0x0832_8807_b4eb_6fed);
    }
}
