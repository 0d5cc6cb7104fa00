//! The streaming parser (placeholder until the parser lands).

use super::Report;
use std::io::Read;
use std::path::Path;
use thiserror::Error;

/// Why a file could not be read to its end. Names the file and, where known, the line:column.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Parses a whole file from disk, streaming.
pub fn parse_path(path: &Path) -> Report {
    let name = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(f) => parse_reader(&name, f),
        Err(e) => Report {
            file: name.clone(),
            error: Some(ParseError {
                file: name,
                line: 0,
                column: 0,
                message: e.to_string(),
            }),
            ..Report::default()
        },
    }
}

/// Parses bytes already in memory.
pub fn parse_bytes(name: &str, bytes: &[u8]) -> Report {
    parse_reader(name, bytes)
}

/// Parses any reader, streaming.
pub fn parse_reader<R: Read>(name: &str, _reader: R) -> Report {
    Report {
        file: name.to_string(),
        error: Some(ParseError {
            file: name.into(),
            line: 0,
            column: 0,
            message: "parser not implemented".into(),
        }),
        ..Report::default()
    }
}
