//! Reading the markup: the loop that takes each tag from the buffer (the fast path) or from
//! quick-xml (everything else), skips text, comments and CDATA without buffering them, and
//! matches end tags against the open elements. What the elements mean is the parent's
//! business ([`Parser::open`], [`Parser::close`]).

use super::super::model::TestCase;
use super::super::scan::{self, element_name, trim_xml_end, End};
use super::super::source::Source;
use super::super::tag::Tag;
use super::{Failure, Parser, MAX_EVENT};
use quick_xml::events::Event;
use quick_xml::reader::BinaryStream;
use quick_xml::Reader;
use std::io::{BufRead, Read};

impl<F: FnMut(&TestCase)> Parser<F> {
    /// Reads the whole input, handing each element to [`Parser::open`] and [`Parser::end`];
    /// stops at the first error.
    pub(super) fn run<R: Read>(&mut self, xml: &mut Reader<Source<R>>) -> Result<(), Failure> {
        let mut buf = Vec::with_capacity(4096);
        loop {
            self.skip_text(xml)?;
            xml.get_mut().mark();
            if self.tag_in_buffer(xml)? {
                continue;
            }
            let at = xml.buffer_position();
            buf.clear();
            match xml.read_event_into(&mut buf) {
                Ok(Event::Start(e)) => {
                    self.open(e.name().as_ref(), Tag::Xml(&e), false, at)?;
                    self.names.push(e.name().as_ref());
                }
                Ok(Event::Empty(e)) => self.open(e.name().as_ref(), Tag::Xml(&e), true, at)?,
                Ok(Event::End(e)) => self.end(e.name().as_ref(), at)?,
                Ok(Event::Eof) => return self.eof(xml.buffer_position()),
                Ok(Event::Text(t))
                    if self.stack.is_empty() && !t.iter().all(u8::is_ascii_whitespace) =>
                {
                    return Err((at, self.outside_root_message()));
                }
                Ok(_) => {}
                Err(e) => {
                    let message = if xml.get_ref().over_limit {
                        format!(
                            "a single tag or declaration is longer than {} MiB",
                            MAX_EVENT >> 20
                        )
                    } else {
                        format!("malformed XML: {e}")
                    };
                    return Err((xml.error_position().max(at), message));
                }
            }
            if buf.capacity() > 1 << 20 {
                buf = Vec::with_capacity(4096);
            }
        }
    }

    /// Skips text, CDATA sections and comments up to the next other markup (or the end), without
    /// buffering them. Outside the root element only whitespace and comments are allowed.
    fn skip_text<R: Read>(&self, xml: &mut Reader<Source<R>>) -> Result<(), Failure> {
        let outside = self.stack.is_empty();
        let mut stream = xml.stream();
        loop {
            stream.get_mut().mark();
            let pos = stream.get_ref().position();
            let available = stream
                .fill_buf()
                .map_err(|e| (pos, format!("cannot read: {e}")))?;
            if available.is_empty() {
                return Ok(());
            }
            // Text between tags is mostly a line break and an indent: look at a few bytes
            // before calling memchr.
            let near = available.len().min(16);
            let text_len = match available[..near].iter().position(|&b| b == b'<') {
                Some(i) => i,
                None => {
                    memchr::memchr(b'<', &available[near..]).map_or(available.len(), |i| near + i)
                }
            };
            if outside {
                if let Some(i) = available[..text_len]
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                {
                    // Consume up to the offending byte so its line and column are known.
                    stream.consume(i);
                    return Err((pos + i as u64, self.outside_root_message()));
                }
            }
            let at_markup = text_len < available.len();
            // Only `<!` may start a comment or CDATA section.
            let plain_markup = available.get(text_len + 1).is_some_and(|&b| b != b'!');
            stream.consume(text_len);
            if !at_markup {
                continue;
            }
            if plain_markup {
                return Ok(());
            }
            let pos = stream.get_ref().position();
            let head = stream
                .get_mut()
                .peek(9)
                .map_err(|e| (pos, format!("cannot read: {e}")))?;
            let (open, close, what): (usize, &[u8], &str) = if head.starts_with(b"<![CDATA[") {
                if outside {
                    return Err((pos, self.outside_root_message()));
                }
                (
                    9,
                    b"]]>",
                    "CDATA section not closed: `]]>` not found before end of input",
                )
            } else if head.starts_with(b"<!--") {
                (
                    4,
                    b"-->",
                    "comment not closed: `-->` not found before end of input",
                )
            } else {
                return Ok(());
            };
            stream.consume(open);
            skip_past(&mut stream, close).map_err(|e| {
                (
                    pos,
                    e.map_or_else(
                        || format!("malformed XML: {what}"),
                        |e| format!("cannot read: {e}"),
                    ),
                )
            })?;
        }
    }

    /// An end tag named `qname` (trailing whitespace trimmed), read at `at`. It must close the
    /// innermost open element; the errors are quick-xml's own, which no longer checks this
    /// (see [`parse_stream_ref`]) since the parser reads most tags without it.
    fn end(&mut self, qname: &[u8], at: u64) -> Result<(), Failure> {
        use quick_xml::errors::{Error, IllFormedError};
        let decode = |b: &[u8]| std::str::from_utf8(b).unwrap_or_default().to_owned();
        let error = match self.names.top() {
            Some(open) if open == qname => {
                self.close();
                return Ok(());
            }
            Some(open) => IllFormedError::MismatchedEndTag {
                expected: decode(open),
                found: decode(qname),
            },
            None => IllFormedError::UnmatchedEndTag(decode(qname)),
        };
        Err((at, format!("malformed XML: {}", Error::IllFormed(error))))
    }

    /// The common case, read without quick-xml: a start, empty or end tag inside the root
    /// element, wholly in the buffer, that the [`scan`] accepts (and for an end tag, one that
    /// closes the innermost element). Does what the general path does for it, in one pass over
    /// the tag instead of quick-xml's and then the attribute scan. Returns false, having
    /// consumed and changed nothing, for anything else; the general path then reads it.
    pub(super) fn tag_in_buffer<R: Read>(
        &mut self,
        xml: &mut Reader<Source<R>>,
    ) -> Result<bool, Failure> {
        if self.stack.is_empty() || !self.fast {
            return Ok(false);
        }
        let mut stream = xml.stream();
        let at = stream.get_ref().position();
        let Ok(buf) = stream.fill_buf() else {
            return Ok(false);
        };
        let Some(markup) = buf.strip_prefix(b"<") else {
            return Ok(false);
        };
        if let Some(end) = markup.strip_prefix(b"/") {
            let Some(len) = memchr::memchr(b'>', end) else {
                return Ok(false);
            };
            let qname = trim_xml_end(&end[..len]);
            if self.names.top() != Some(qname) {
                return Ok(false); // the general path names the mismatch
            }
            self.close();
            stream.consume(len + 3);
            return Ok(true);
        }
        let Some((qname, rest)) = element_name(markup) else {
            return Ok(false);
        };
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.clear();
        let end = match rest.first() {
            Some(b'>') => Some(End::Start(0)),
            Some(b'/') => rest.get(1).filter(|&&b| b == b'>').map(|_| End::Empty(0)),
            _ => scan::attributes(rest, true, |p| pairs.push(p)),
        };
        let (empty, len) = match end {
            Some(End::Empty(len)) => (true, len + 2),
            Some(End::Start(len)) => (false, len + 1),
            _ => {
                self.pairs = pairs;
                return Ok(false);
            }
        };
        let tag = Tag::Scanned {
            bytes: rest,
            pairs: &pairs,
        };
        let opened = self.open(qname, tag, empty, at);
        if opened.is_ok() && !empty {
            self.names.push(qname);
        }
        self.pairs = pairs;
        opened?;
        let len = 1 + qname.len() + len;
        stream.consume(len);
        Ok(true)
    }
}

/// The names of the open elements, as written, innermost last (quick-xml's own check of end
/// tags is off: most tags never reach it).
#[derive(Default)]
pub(super) struct Names {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl Names {
    pub(super) fn push(&mut self, name: &[u8]) {
        self.starts.push(self.bytes.len());
        self.bytes.extend_from_slice(name);
    }

    pub(super) fn pop(&mut self) {
        if let Some(start) = self.starts.pop() {
            self.bytes.truncate(start);
        }
    }

    pub(super) fn top(&self) -> Option<&[u8]> {
        self.starts.last().map(|&start| &self.bytes[start..])
    }
}

/// Consumes input up to and including `pattern`. `Err(None)` when the input ends first.
fn skip_past<R: Read>(
    stream: &mut BinaryStream<'_, Source<R>>,
    pattern: &[u8],
) -> Result<(), Option<std::io::Error>> {
    loop {
        stream.get_mut().mark();
        let available = stream.get_mut().peek(pattern.len()).map_err(Some)?;
        if available.len() < pattern.len() {
            return Err(None);
        }
        if let Some(i) = memchr::memmem::find(available, pattern) {
            stream.consume(i + pattern.len());
            return Ok(());
        }
        // Keep the last bytes: they may start a match that the next chunk completes.
        let n = available.len() - (pattern.len() - 1);
        stream.consume(n);
    }
}
