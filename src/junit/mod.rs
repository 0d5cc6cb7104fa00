//! JUnit XML: the model of a result file and a streaming parser for every common dialect.
//!
//! The parser reads tags with its own scanner where they are plain and with quick-xml
//! elsewhere, and never builds a DOM. It never resolves DTDs or
//! entities, bounds attribute and text lengths, and turns every malformed input into a
//! [`ParseError`] that names the file and the line:column, keeping the cases read before it.
//! [`parse_stream`] hands cases to a callback and keeps none, for files of any size; the other
//! entry points collect them into a [`Report`]. See [`parser`] for the dialect decisions.

mod encoding;
mod limits;
mod model;
pub mod parser;
pub mod retry;
mod scan;
mod source;
mod tag;
mod time;

pub use model::{identity_hash, identity_hashes, Declared, Report, Status, TestCase};
pub use parser::{
    parse_bytes, parse_path, parse_reader, parse_stream, parse_stream_ref, stream_path, ParseError,
    StreamSummary,
};
pub use retry::{merge_repeats, Order, RepeatStats, Repeats, Run};

/// A small deterministic generator (xorshift64) for the tests' random inputs.
#[cfg(test)]
fn test_rng() -> impl FnMut() -> u64 {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
