//! Fuzzes the JUnit parser with arbitrary bytes. Beyond "never panics", every input must keep
//! the parser's promises:
//! - the totals count exactly the cases handed out, per status, and their time is the
//!   (saturating) sum of the cases' times, each finite and non-negative;
//! - owned and lent cases, whole input and small reads, all see the same cases and the same
//!   verdict (error or not);
//! - the fast path that reads tags from the buffer and the general path (every tag through
//!   quick-xml, `parse_reader_general`) see the same cases, warnings and error, to the column;
//! - no entity is expanded: the names read never hold more text than the input could spell
//!   out (3 UTF-8 bytes per input byte at most, what decoding and U+FFFD replacement can grow);
//! - an error names a position (line and column from 1);
//! - retries (issue 18, item 7): every case ran at least once, a flaky case at least twice, and
//!   no case claims more attempts than the input has bytes (huge rerun counts stay bounded
//!   numbers); merging repeated cases keeps every attempt (sum of attempts, saturating; a pytest
//!   failure + teardown error pair is one), never
//!   adds a case, keeps identities, and merging the result again across files changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Read;
use std::time::Duration;

// The parser's own sources, compiled here without the rest of the crate (see Cargo.toml).
#[path = "../../src/junit/mod.rs"]
#[allow(dead_code, unused_imports)]
mod junit;

use junit::{Status, TestCase};
use junit::retry::{merge_repeats, Order};

/// Hands out at most `n` bytes per read, to cross every buffer boundary.
struct Chunks<'a>(&'a [u8], usize);

impl Read for Chunks<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(out.len()).min(self.1);
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lent: Vec<TestCase> = Vec::new();
    let mut counts = [0usize; 5];
    let mut time = Duration::ZERO;
    let summary = junit::parse_stream_ref("fuzz.xml", data, |c| {
        counts[c.status as usize] += 1;
        if let Some(t) = c.time {
            assert!(
                t.as_secs_f64().is_finite() && t.as_secs_f64() >= 0.0,
                "{t:?}"
            );
            time = time.saturating_add(t);
        }
        assert!(c.attempts >= 1, "{c:?}");
        assert!(c.status != Status::Flaky || c.attempts >= 2, "{c:?}");
        assert!(c.attempts as usize <= 1 + data.len(), "{c:?}");
        lent.push(c.clone());
    });

    // Counts equal cases.
    assert_eq!(summary.tests(), lent.len());
    for status in Status::ALL {
        assert_eq!(summary.count(status), counts[status as usize], "{status:?}");
    }
    assert_eq!(summary.time, time);
    assert_eq!(
        summary.partial(),
        summary.error.is_some() && !lent.is_empty()
    );

    // No entity expansion: every kept string comes from the input's own bytes.
    let budget = 3 * data.len();
    let spelled: usize = lent
        .iter()
        .map(|c| c.name.len() + c.classname.len() + c.file.as_ref().map_or(0, String::len))
        .sum();
    assert!(
        spelled <= budget,
        "{spelled} bytes of names from {} bytes",
        data.len()
    );
    for c in &lent {
        assert!(c.suite.len() <= budget, "suite of {} bytes", c.suite.len());
    }

    if let Some(e) = &summary.error {
        assert!(e.line >= 1 && e.column >= 1, "{e}");
        assert_eq!(e.file, "fuzz.xml");
    }

    // The owning API and small reads agree with the lent, whole-input run.
    let owned = junit::parse_bytes("fuzz.xml", data);
    assert_eq!(owned.cases, lent);
    assert_eq!(owned.error, summary.error);
    assert_eq!(owned.time(), summary.time);
    let general = junit::parser::parse_reader_general("fuzz.xml", data);
    assert_eq!(general.cases, lent, "fast path vs quick-xml alone");
    assert_eq!(general.error, summary.error, "fast path vs quick-xml alone");
    assert_eq!(
        general.warnings, summary.warnings,
        "fast path vs quick-xml alone"
    );
    // Merging repeats: nothing lost, nothing added, and a second merge is a no-op.
    let mut merged = lent.clone();
    merge_repeats(&mut merged, Order::OneFile);
    assert!(merged.len() <= lent.len());
    let attempts = |cases: &[TestCase]| {
        cases
            .iter()
            .fold(0u64, |n, c| n.saturating_add(u64::from(c.attempts)))
    };
    // Equal, but for pytest's failure + teardown error pairs: two cases, one run.
    assert!(attempts(&merged) <= attempts(&lent));
    assert!(attempts(&merged) >= attempts(&lent) - (lent.len() - merged.len()) as u64);
    assert_eq!(merged.is_empty(), lent.is_empty());
    for c in &merged {
        assert!(c.attempts >= 1 && (c.status != Status::Flaky || c.attempts >= 2), "{c:?}");
        assert!(lent.iter().any(|l| (&l.suite, &l.classname, &l.name) == (&c.suite, &c.classname, &c.name)));
    }
    let mut again = merged.clone();
    merge_repeats(&mut again, Order::AcrossFiles);
    assert_eq!(again, merged, "merging across files after merging the file");

    let chunk = 1 + data.first().map_or(0, |b| usize::from(b % 8));
    let chunked = junit::parse_reader("fuzz.xml", Chunks(data, chunk));
    assert_eq!(chunked.cases, lent, "read {chunk} bytes at a time");
    assert_eq!(
        chunked.error.is_some(),
        summary.error.is_some(),
        "read {chunk} bytes at a time: {:?} vs {:?}",
        chunked.error,
        summary.error
    );
});
