//! JUnit XML: the model of a result file and a streaming parser for every common dialect.
//!
//! The parser reads events with quick-xml and never builds a DOM. It never resolves DTDs or
//! entities, bounds attribute and text lengths, and turns every malformed input into a
//! [`ParseError`] that names the file and the line:column, keeping the cases read before it.

mod model;
mod parser;

pub use model::{Report, Status, TestCase};
pub use parser::{parse_bytes, parse_path, parse_reader, ParseError};
