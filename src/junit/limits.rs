//! What the parser and the attribute reader ([`super::tag`]) share, below both: the length
//! limits, a failure at a byte offset, and a file's bounded list of warnings.

/// Largest number of bytes one tag or declaration may span.
pub const MAX_EVENT: u64 = 16 << 20;
/// Bytes kept of one attribute value (names, classnames, files).
pub const MAX_VALUE: usize = 4096;
/// Warnings kept per file; further ones are only counted.
const MAX_WARNINGS: usize = 50;

/// A failure at a byte offset, with its message.
pub(crate) type Failure = (u64, String);

/// Warnings of one file, at most [`MAX_WARNINGS`] kept.
#[derive(Default)]
pub(crate) struct Warnings {
    kept: Vec<String>,
    suppressed: usize,
}

impl Warnings {
    pub(crate) fn push(&mut self, message: String) {
        if self.kept.len() < MAX_WARNINGS {
            self.kept.push(message);
        } else {
            self.suppressed += 1;
        }
    }

    /// The kept warnings, and a last line counting the others when some were dropped.
    pub(crate) fn into_lines(self) -> Vec<String> {
        let mut lines = self.kept;
        if self.suppressed > 0 {
            lines.push(format!("… and {} more warnings", self.suppressed));
        }
        lines
    }
}
