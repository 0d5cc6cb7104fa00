//! Retries within one build: a test's final outcome and attempt count when it ran more than
//! once. Tools record retries in two ways, and this module owns both:
//!
//! - **Inside one `<testcase>`** (Surefire, and Gradle with `mergeReruns`): `flakyFailure` and
//!   `flakyError` are failed attempts of a test that then passed; `rerunFailure` and
//!   `rerunError` are reruns of a test that failed every time (beside its `<failure>` or
//!   `<error>`). [`Tally`] counts them while the parser reads the case.
//! - **As repeated test cases** with one identity (suite, classname, name): Gradle without
//!   `mergeReruns`, pytest-rerunfailures, and runners that write reruns to a second file.
//!   [`Repeats`] merges them as they stream by; [`merge_repeats`] merges a list.
//!
//! The rules, and why (the user-facing version is in the README's "Retries" section):
//! - A later run continues a test's group of attempts when the group's last run **failed or
//!   errored** (the rule Gradle uses to group executions for `mergeReruns`), or when it
//!   **passed and the later run comes right after it in the same file**: pytest-rerunfailures
//!   writes each rerun attempt as a bare `<testcase/>` immediately before the next attempt (its
//!   `"rerun"` outcome is neither passed, failed nor skipped to pytest's junitxml, which then
//!   writes no result child), so a bare case followed at once by the same test is a failed
//!   attempt, not a pass. A passed or skipped test seen again later, not right after, is a
//!   separate test (a whole class rerun, or one test run twice), as before.
//! - One exception to both: pytest writes a call failure and a teardown error of one run as two
//!   cases, `<failure>` then `<error>`, one right after the other. Such a pair is one run: error
//!   (the most severe, as within one case), one attempt for the two, the two times added up.
//! - Earlier attempts of a group count as failed. The final status is the last run's, except
//!   that a last run that passed makes the test [`Status::Flaky`]. A last run that was skipped
//!   leaves it skipped (Gradle writes a failure followed by a skipped rerun that way).
//! - `attempts` adds up (saturating at `u32::MAX`, so huge rerun counts stay a number).
//! - **Time**, as Surefire documents and Gradle's `mergeReruns` copies: a flaky test reports the
//!   running time of its last (successful) run, a test that failed every attempt the time of its
//!   first failing run. Durations therefore describe one run of the test, comparable from build
//!   to build, and retries never look like a slowdown; the time spent on retries is not in
//!   `TotalTestTime`.
//!
//! Memory: [`Repeats`] keeps the newest group and the groups whose last run failed (they may
//! still be retried later in the input), at most [`MAX_HELD`] of them; beyond that the oldest is
//! passed on unmerged and counted in [`RepeatStats::released`]. Thousands of repeats of one test
//! are one group; nothing is kept per attempt.

use super::model::{Status, TestCase};
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// Failed groups [`Repeats`] waits for a retry of, at most.
pub const MAX_HELD: usize = 65_536;

/// A Surefire retry element, read as a direct child of `<testcase>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryElement {
    /// `flakyFailure` or `flakyError`: a failed attempt before a pass.
    Flaky,
    /// `rerunFailure`: a failed rerun of a failed test.
    RerunFailure,
    /// `rerunError`: an errored rerun.
    RerunError,
}

impl RetryElement {
    /// The retry element a local name names, if any.
    #[inline]
    pub(crate) fn of(local_name: &[u8]) -> Option<RetryElement> {
        match local_name {
            b"flakyFailure" | b"flakyError" => Some(RetryElement::Flaky),
            b"rerunFailure" => Some(RetryElement::RerunFailure),
            b"rerunError" => Some(RetryElement::RerunError),
            _ => None,
        }
    }
}

/// The retry elements of one `<testcase>`, counted as they are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    flaky: u32,
    reruns: u32,
    /// The most severe rerun element: `Failed` or `Error`.
    rerun_status: Option<Status>,
}

impl Tally {
    #[inline]
    pub(crate) fn count(&mut self, element: RetryElement) {
        match element {
            RetryElement::Flaky => self.flaky = self.flaky.saturating_add(1),
            RetryElement::RerunFailure | RetryElement::RerunError => {
                self.reruns = self.reruns.saturating_add(1);
                let status = if element == RetryElement::RerunError {
                    Status::Error
                } else {
                    Status::Failed
                };
                self.rerun_status = self.rerun_status.max(Some(status));
            }
        }
    }

    /// The final status and attempts of a case whose result children and attributes gave
    /// `status`, and a warning when the elements contradict each other.
    pub(crate) fn settle(&self, status: Status) -> (Status, u32, Option<&'static str>) {
        let attempts = 1u32.saturating_add(self.flaky).saturating_add(self.reruns);
        let (status, warning) = match (self.rerun_status, self.flaky > 0) {
            (None, false) => (status, None),
            (None, true) => match status {
                Status::Passed => (Status::Flaky, None),
                // Gradle's mergeReruns writes a failure followed by a skipped rerun this way.
                Status::Skipped => (Status::Skipped, None),
                _ => (
                    status,
                    Some("has flaky elements beside a failure or error; kept as failed"),
                ),
            },
            (Some(rerun), flaky) if status.is_failure() => {
                let warning = flaky.then_some(
                    "has both flaky and rerun elements; kept as failed (the reruns failed too)",
                );
                (status.max(rerun), warning)
            }
            (Some(rerun), _) => (
                rerun,
                Some(
                    "has rerunFailure/rerunError without a failure or error; taken as failed \
                     (Surefire writes reruns only when every run failed)",
                ),
            ),
        };
        (status, attempts, warning)
    }
}

/// What merging needs of a test case.
pub trait Run {
    /// Suite, classname and name.
    fn identity(&self) -> (&str, &str, &str);
    fn status(&self) -> Status;
    fn attempts(&self) -> u32;
    /// Sets the merged outcome.
    fn set_outcome(&mut self, status: Status, attempts: u32);
    /// Takes the duration of `later`, a later run of the same test.
    fn take_time(&mut self, later: &Self);
    /// Adds the duration of `other`, another part of the same run.
    fn add_time(&mut self, other: &Self);
}

/// Implements [`Run`] for a case type with the fields `suite`, `classname`, `name`,
/// `status`, `attempts` and `time: Option<_>` (a time that implements [`Time`]).
macro_rules! impl_run {
    ($case:ty) => {
        impl $crate::junit::retry::Run for $case {
            fn identity(&self) -> (&str, &str, &str) {
                (&self.suite, &self.classname, &self.name)
            }
            fn status(&self) -> $crate::junit::Status {
                self.status
            }
            fn attempts(&self) -> u32 {
                self.attempts
            }
            fn set_outcome(&mut self, status: $crate::junit::Status, attempts: u32) {
                self.status = status;
                self.attempts = attempts;
            }
            fn take_time(&mut self, later: &Self) {
                self.time = later.time;
            }
            fn add_time(&mut self, other: &Self) {
                self.time = match (self.time, other.time) {
                    (Some(a), Some(b)) => Some($crate::junit::retry::Time::plus(a, b)),
                    (a, b) => a.or(b),
                };
            }
        }
    };
}
pub(crate) use impl_run;

/// A duration as a case type keeps it.
pub trait Time: Copy {
    /// The sum, saturating where the type can overflow.
    fn plus(self, other: Self) -> Self;
}

impl Time for std::time::Duration {
    fn plus(self, other: Self) -> Self {
        self.saturating_add(other)
    }
}

impl Time for f64 {
    fn plus(self, other: Self) -> Self {
        self + other
    }
}

impl_run!(TestCase);

/// Whether two runs are of the same test (the name first: it differs most often).
#[inline]
fn same_test<T: Run>(a: &T, b: &T) -> bool {
    let (a, b) = (a.identity(), b.identity());
    a.2 == b.2 && a.1 == b.1 && a.0 == b.0
}

/// Folds `later`, a retry of the test whose attempts so far are `group`, into `group`. The
/// group keeps its first run's time; [`Open::settle`] takes the last run's when it did not fail.
fn fold<T: Run>(group: &mut T, later: &T) {
    let attempts = group.attempts().saturating_add(later.attempts());
    let status = match later.status() {
        Status::Passed => Status::Flaky,
        status => status,
    };
    group.set_outcome(status, attempts);
}

/// What the order of a list of runs says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The runs of one result file, as written: every rule applies.
    OneFile,
    /// Runs of several files, each merged already with [`Order::OneFile`]: only a run after a
    /// failure continues a test (the "right after" rules are about one file's writing order).
    AcrossFiles,
}

/// Merges repeated runs of one test in a list, keeping each merged test at its first run's
/// place. See the module documentation for the rules. Merging a list with
/// [`Order::AcrossFiles`] after it was merged once changes nothing.
pub fn merge_repeats<T: Run>(cases: &mut Vec<T>, order: Order) -> RepeatStats {
    if all_distinct(cases.iter().map(Run::identity)) {
        return RepeatStats::default();
    }
    let mut repeats = Repeats::new();
    let mut out: Vec<(u64, T)> = Vec::with_capacity(cases.len());
    let follows = order == Order::OneFile;
    for (i, case) in cases.drain(..).enumerate() {
        repeats.push(case, i as u64, follows, &mut |seq, t| out.push((seq, t)));
    }
    let stats = repeats.finish(&mut |seq, t| out.push((seq, t)));
    out.sort_unstable_by_key(|(seq, _)| *seq);
    cases.extend(out.into_iter().map(|(_, t)| t));
    stats
}

/// Whether no identity repeats: then there is nothing to merge (the common case, found by
/// sorting hashes instead of holding cases). A word-at-a-time hash, not the byte-at-a-time
/// FNV of [`super::identity_hash`]: this runs for every file and every build, and two
/// identities that collide only send the list down the exact path.
pub fn all_distinct<'a>(ids: impl Iterator<Item = (&'a str, &'a str, &'a str)>) -> bool {
    use std::hash::BuildHasher;
    let state = foldhash::fast::FixedState::with_seed(0);
    let mut hashes: Vec<u64> = ids.map(|id| state.hash_one(id)).collect();
    hashes.sort_unstable();
    hashes.windows(2).all(|w| w[0] != w[1])
}

/// How merging went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepeatStats {
    /// Failed tests passed on unmerged because more than [`MAX_HELD`] were waiting for a retry;
    /// a later retry of one of them counts as a test of its own.
    pub released: u64,
}

/// A streaming merger of repeated runs: [`Repeats::push`] each case in input order, then
/// [`Repeats::finish`]. Merged tests come out through `emit` with the sequence number of their
/// first run, as soon as no later run can change them: a test whose last run did not fail once
/// another test comes along, a failed one when the input ends (or when more than [`MAX_HELD`]
/// wait).
pub struct Repeats<T> {
    /// The newest group of attempts (kept in separate fields: this is the path every case
    /// takes, and moving a struct of them around was a tenth of `parse --format table`) …
    open: Option<T>,
    /// … the number of its first run …
    open_seq: u64,
    /// … the status of its last run …
    open_last: Status,
    /// … and its last run, when it has more than one.
    latest: Option<T>,
    /// Groups whose last run failed, oldest first; `None` once taken or released.
    held: Vec<Option<(u64, T)>>,
    /// Index of the oldest entry of `held` that may still be live.
    oldest: usize,
    live: usize,
    limit: usize,
    /// Identity hash → index into `held`.
    index: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
    hasher: RandomState,
    /// A cheap filter over the names of held tests, so that most lookups need no hashing of
    /// the whole identity: a bit per [`name_bit`] of the name, cleared when nothing is held.
    /// It grows with the held tests (16 bits each, up to [`NAME_BITS`]).
    names: Vec<u64>,
    stats: RepeatStats,
}

/// Bits in [`Repeats::names`], at most and at first.
const NAME_BITS: usize = 1 << 20;
const FIRST_NAME_BITS: usize = 1 << 12;

impl<T: Run> Default for Repeats<T> {
    fn default() -> Self {
        Repeats::with_limit(MAX_HELD)
    }
}

impl<T: Run> Repeats<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A merger that waits for the retries of at most `limit` failed tests.
    pub fn with_limit(limit: usize) -> Self {
        Repeats {
            open: None,
            open_seq: 0,
            open_last: Status::Passed,
            latest: None,
            held: Vec::new(),
            oldest: 0,
            live: 0,
            limit: limit.max(1),
            index: HashMap::default(),
            hasher: RandomState::new(),
            names: Vec::new(),
            stats: RepeatStats::default(),
        }
    }

    /// Takes the next run, numbered `seq` (passed back with the merged test). `follows` says
    /// that it comes right after the previous run in the same result file, as written: only
    /// then do the pytest rules apply (a bare rerun, a teardown error's second case).
    pub fn push(&mut self, run: T, seq: u64, follows: bool, emit: &mut impl FnMut(u64, T)) {
        if let Some(open) = &mut self.open {
            if same_test(open, &run) {
                let last = self.open_last;
                if follows && last == Status::Failed && run.status() == Status::Error {
                    // pytest's call failure and teardown error: one run (any retries counted on
                    // either side are kept).
                    let attempts = open.attempts().saturating_add(run.attempts()) - 1;
                    open.add_time(&run);
                    let status = open.status().max(Status::Error);
                    open.set_outcome(status, attempts);
                    self.open_last = Status::Error;
                    return;
                }
                if last.is_failure() || (follows && last == Status::Passed) {
                    fold(open, &run);
                    self.open_last = run.status();
                    self.latest = Some(run);
                    return;
                }
            }
        }
        self.close_open(emit);
        self.open_last = run.status();
        if self.live > 0 {
            if let Some((first, mut group)) = self.take_held(&run) {
                fold(&mut group, &run);
                self.open = Some(group);
                self.open_seq = first;
                self.latest = Some(run);
                return;
            }
        }
        self.open = Some(run);
        self.open_seq = seq;
    }

    /// Passes on every test still kept.
    pub fn finish(mut self, emit: &mut impl FnMut(u64, T)) -> RepeatStats {
        self.close_open(emit);
        for (seq, run) in self.held.drain(self.oldest..).flatten() {
            emit(seq, run);
        }
        self.stats
    }

    /// Passes the open group on, or holds it when its last run failed.
    fn close_open(&mut self, emit: &mut impl FnMut(u64, T)) {
        let Some(mut run) = self.open.take() else {
            return;
        };
        let seq = self.open_seq;
        // The merged test takes its last run's time unless every run failed.
        if let Some(latest) = self.latest.take() {
            if !run.status().is_failure() {
                run.take_time(&latest);
            }
        }
        if !self.open_last.is_failure() {
            return emit(seq, run);
        }
        let key = self.key(&run);
        if self.index.contains_key(&key) {
            // Another held test has the same 64-bit hash (never in practice): not mergeable.
            return emit(seq, run);
        }
        if self.live >= self.limit {
            self.release_oldest(emit);
        }
        let bits = self.names.len() * 64;
        if bits == 0 || (self.live * 16 > bits && bits < NAME_BITS) {
            self.names = vec![0; (bits * 4).clamp(FIRST_NAME_BITS, NAME_BITS) / 64];
            for (_, held) in self.held[self.oldest..].iter().flatten() {
                set_bit(&mut self.names, held.identity().2);
            }
        }
        set_bit(&mut self.names, run.identity().2);
        self.index.insert(key, self.held.len());
        self.held.push(Some((seq, run)));
        self.live += 1;
    }

    /// The held group of `run`'s test, removed from the held ones.
    fn take_held(&mut self, run: &T) -> Option<(u64, T)> {
        if self.live == 0 {
            return None;
        }
        let bit = name_bit(run.identity().2, self.names.len() * 64);
        if self.names[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        let key = self.key(run);
        let &i = self.index.get(&key)?;
        let same = matches!(&self.held[i], Some((_, t)) if same_test(t, run));
        if !same {
            return None;
        }
        self.index.remove(&key);
        let taken = self.held[i].take();
        self.forget_one();
        taken
    }

    /// Passes on the oldest held group unmerged, to stay within the limit.
    fn release_oldest(&mut self, emit: &mut impl FnMut(u64, T)) {
        while self.oldest < self.held.len() {
            let i = self.oldest;
            self.oldest += 1;
            if let Some((seq, run)) = self.held[i].take() {
                let key = self.key(&run);
                self.index.remove(&key);
                self.stats.released += 1;
                self.forget_one();
                return emit(seq, run);
            }
        }
    }

    /// Bookkeeping after a held group left: starts over when none is left, and compacts the
    /// list when most of it is empty, so its length follows the live groups.
    fn forget_one(&mut self) {
        self.live -= 1;
        if self.live == 0 {
            self.held.clear();
            self.index.clear();
            self.oldest = 0;
            self.names.iter_mut().for_each(|w| *w = 0);
        } else if self.held.len() > 1024 && self.held.len() > 4 * self.live {
            self.held.drain(..self.oldest);
            self.held.retain(Option::is_some);
            self.oldest = 0;
            self.index.clear();
            for (i, (_, run)) in self.held.iter().flatten().enumerate() {
                let key = self.hasher.hash_one(run.identity());
                self.index.insert(key, i);
            }
        }
    }

    fn key(&self, run: &T) -> u64 {
        self.hasher.hash_one(run.identity())
    }
}

fn set_bit(names: &mut [u64], name: &str) {
    let bit = name_bit(name, names.len() * 64);
    names[bit / 64] |= 1 << (bit % 64);
}

/// The bit of [`Repeats::names`] (of `bits`, a power of two) for a name: a multiply-rotate
/// hash of its bytes (not collision-resistant, which is fine for a filter: a false hit costs one
/// real lookup).
fn name_bit(name: &str, bits: usize) -> usize {
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    let bytes = name.as_bytes();
    let mut h = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        h = mix(h, u64::from_le_bytes(word.try_into().expect("8 bytes")));
    }
    let mut tail = 0u64;
    for (i, &b) in words.remainder().iter().enumerate() {
        tail |= u64::from(b) << (8 * i);
    }
    h = mix(h, tail);
    (h >> 40) as usize & (bits - 1)
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests;
