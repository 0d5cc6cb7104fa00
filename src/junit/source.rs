//! The byte source under the XML reader: a buffered reader that knows line numbers, can peek a few
//! bytes ahead, and refuses single events larger than a limit so memory stays bounded.
//!
//! Lines are counted in bulk, only for bytes that leave the buffer; an error position is resolved
//! from the buffer itself, which keeps the last [`KEEP`] consumed bytes across refills. Further
//! back than that (a tag of more than [`KEEP`] bytes) the line is exact at the window's start.

use std::io::{self, BufRead, Read};

/// Buffer size.
const CAP: usize = 256 * 1024;
/// Bytes of already-consumed input kept in the buffer to resolve error positions.
const KEEP: usize = 8 * 1024;

/// A buffered reader with line tracking and a per-event size limit.
pub(crate) struct Source<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Next unconsumed byte.
    start: usize,
    /// End of valid data.
    end: usize,
    /// Absolute offset of `buf[0]`.
    base: u64,
    /// Newlines in the input before `base`.
    lines: u64,
    /// Absolute offset just after the last newline before `base`.
    line_start: u64,
    /// Absolute offset where the current event started; see [`Source::mark`].
    mark: u64,
    /// Largest number of bytes one event may span.
    limit: u64,
    /// Set when the limit was hit, so the caller can name the cause.
    pub(crate) over_limit: bool,
    eof: bool,
}

impl<R: Read> Source<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Source {
            inner,
            buf: vec![0; CAP].into_boxed_slice(),
            start: 0,
            end: 0,
            base: 0,
            lines: 0,
            line_start: 0,
            mark: 0,
            limit,
            over_limit: false,
            eof: false,
        }
    }

    /// Absolute offset of the next unconsumed byte.
    pub(crate) fn position(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Starts a new event: the size limit counts from here.
    pub(crate) fn mark(&mut self) {
        self.mark = self.position();
    }

    /// Reads until at least `n` unconsumed bytes are buffered or the input ends.
    /// Returns the unconsumed bytes (fewer than `n` only at the end of input).
    pub(crate) fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        debug_assert!(n <= CAP - KEEP);
        while self.end - self.start < n && !self.eof {
            self.refill()?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Reads once into the free space after the buffered bytes; when less than half the buffer
    /// is free, first moves the kept window and the unconsumed bytes to the front. (Moving them
    /// on every read made a reader that hands out a few bytes at a time copy the kept window
    /// once per read: a 16 KiB input read byte by byte moved about 100 MB.)
    fn refill(&mut self) -> io::Result<()> {
        let keep_from = self.start.saturating_sub(KEEP);
        if keep_from > 0 && self.buf.len() - self.end < CAP / 2 {
            let leaving = &self.buf[..keep_from];
            if let Some(i) = memchr::memrchr(b'\n', leaving) {
                self.lines += count_newlines(leaving);
                self.line_start = self.base + i as u64 + 1;
            }
            self.buf.copy_within(keep_from..self.end, 0);
            self.base += keep_from as u64;
            self.start -= keep_from;
            self.end -= keep_from;
        }
        if self.end == self.buf.len() {
            // Only possible when a peek asks for more than the buffer holds; never in practice.
            return Ok(());
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// 1-based line and column (in bytes) of an absolute offset at or before the consumed end.
    pub(crate) fn line_col(&self, offset: u64) -> (u64, u64) {
        let offset = offset.min(self.position());
        if offset < self.base {
            // Out of the kept window: the best we know is the window's start.
            return (self.lines + 1, 1);
        }
        let at = (offset - self.base) as usize;
        let before = &self.buf[..at];
        let line = self.lines + count_newlines(before) + 1;
        let column = match memchr::memrchr(b'\n', before) {
            Some(i) => (at - i) as u64,
            None => offset - self.line_start + 1,
        };
        (line, column)
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    // memchr counts without searching match by match (AVX2 or SSE2 where it can).
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Source<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.position() - self.mark > self.limit {
            self.over_limit = true;
            return Err(io::Error::other(format!(
                "a single element or declaration is longer than {} MiB",
                self.limit >> 20
            )));
        }
        if self.start == self.end && !self.eof {
            self.refill()?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, amt: usize) {
        self.start = (self.start + amt).min(self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_tracks_consumed_bytes_and_looks_back() {
        let text = b"ab\ncd\nef";
        let mut s = Source::new(&text[..], 1 << 20);
        let n = s.fill_buf().unwrap().len();
        s.consume(n);
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(4), (2, 2));
        assert_eq!(s.line_col(7), (3, 2));
        assert_eq!(s.line_col(8), (3, 3));
    }

    #[test]
    fn line_col_across_refills() {
        let text: Vec<u8> = (0..200_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let mut s = Source::new(&text[..], u64::MAX);
        loop {
            let n = s.fill_buf().unwrap().len();
            if n == 0 {
                break;
            }
            s.consume(n);
        }
        let at = text.len() as u64 - 6; // the 7th byte of "line 199999\n", the last line
        assert_eq!(s.line_col(at), (200_000, 7));
        assert_eq!(s.line_col(text.len() as u64), (200_001, 1));
    }

    #[test]
    fn event_limit_is_an_error() {
        let text = [b'x'; 100];
        let mut s = Source::new(&text[..], 10);
        s.mark();
        let n = s.fill_buf().unwrap().len();
        s.consume(n);
        assert!(s.fill_buf().is_err());
        assert!(s.over_limit);
    }

    #[test]
    fn peek_across_small_reads() {
        // A reader that hands out one byte at a time.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || out.is_empty() {
                    return Ok(0);
                }
                out[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut s = Source::new(OneByte(b"<![CDATA[x]]>"), 1 << 20);
        assert_eq!(s.peek(9).unwrap(), b"<![CDATA[");
        assert_eq!(s.peek(100).unwrap(), b"<![CDATA[x]]>");
    }
}
