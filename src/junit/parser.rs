//! The streaming parser: tags in, [`TestCase`]s out through a callback. This module owns what
//! the elements mean (root, suites, cases, statuses, declared totals, warnings); [`markup`]
//! reads the tags.
//!
//! Only tags and their attributes are read. Text, CDATA and comments are skipped in the byte
//! stream with `memchr`, so `<system-out>` bodies are never buffered. Tags inside the root
//! that are wholly in the buffer and plainly written are read straight from it
//! ([`super::scan`]); everything else (the prolog, DOCTYPE, the root tag, anything odd or
//! crossing the buffer's end) goes through quick-xml, and both give the same results. Memory
//! is bounded by the largest single tag ([`MAX_EVENT`]) plus the cases the caller keeps.
//!
//! Decisions a reader of the results should know:
//! - **Root**: `<testsuites>` or `<testsuite>`; any other root element is an error.
//! - **Suite**: the `name` of the innermost enclosing `<testsuite>` ("" outside any).
//! - **Status**: the most severe of the direct `<error>`, `<failure>` and `<skipped>` children,
//!   and of the attributes `status="notrun|not_run|disabled|skipped|skip|ignored"` (googletest,
//!   CTest, tst, NUnit conversions; any case) and `result="skipped|suppressed"` (googletest).
//!   Surefire's retry children (`flakyFailure`, `flakyError`, `rerunFailure`, `rerunError`) count
//!   as attempts and make a passed case [`Status::Flaky`]; [`super::retry`] has the rules. Each
//!   case is handed out as read: repeated cases of one test are merged afterwards, by
//!   [`super::retry::Repeats`].
//! - **Entities**: a `<!DOCTYPE>` is read as one bounded event and ignored, so no entity is
//!   ever declared, expanded or fetched (XXE and billion-laughs documents stay inert). In attribute values the five XML entities and
//!   character references are decoded; any other `&name;` is kept verbatim with a warning.
//!   Entity references in text are skipped like all text.
//! - **Lengths**: one tag (with its attributes) or declaration may span at most [`MAX_EVENT`]
//!   bytes, otherwise the file is an error; kept attribute values are cut at [`MAX_VALUE`] bytes.
//! - **Totals** are counted from the cases; declared totals only produce warnings.
//! - **Well-formedness**: besides quick-xml's checks (closed tags, comments and CDATA), an end
//!   tag that does not close the innermost open element (checked by the parser, with
//!   quick-xml's message), a `<` inside a tag, text or a second element outside the root, and
//!   an end of input with open elements are errors.

mod markup;

use super::encoding;
pub(crate) use super::limits::Failure;
use super::limits::Warnings;
pub use super::limits::{MAX_EVENT, MAX_VALUE};
use super::model::{Declared, Report, Status, TestCase};
use super::retry::{RetryElement, Tally};
use super::scan::Pair;
use super::source::Source;
use super::tag::{text, Tag};
use super::time::parse_seconds;
use markup::Names;
use quick_xml::Reader;
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// Why a file could not be read to its end. Names the file and the line:column (1-based; the
/// column counts bytes of the UTF-8 text, after a BOM is dropped and UTF-16 or a declared
/// single-byte encoding is decoded), or `0:0` when the file could not be opened at all.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// What [`parse_stream`] returns: totals of the cases it passed on, and how reading ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSummary {
    /// The file's name as given to the parser.
    pub file: String,
    /// Cases per [`Status`], indexed by `Status as usize`.
    counts: [usize; 5],
    /// Sum of the known case times (saturating at `Duration::MAX`).
    pub time: Duration,
    /// Totals the file claims about itself.
    pub declared: Declared,
    /// Set when the file could not be read to its end.
    pub error: Option<ParseError>,
    /// Non-fatal problems: unusable times, unknown entities, declared totals that disagree.
    pub warnings: Vec<String>,
}

impl StreamSummary {
    /// Number of `<testcase>` elements read.
    pub fn tests(&self) -> usize {
        self.counts.iter().sum()
    }
    pub fn count(&self, status: Status) -> usize {
        self.counts[status as usize]
    }
    /// True when an error stopped reading after some cases were read.
    pub fn partial(&self) -> bool {
        self.error.is_some() && self.tests() > 0
    }
}

/// Parses a whole file from disk, streaming, and keeps the cases.
pub fn parse_path(path: &Path) -> Report {
    let mut cases = Vec::new();
    let summary = stream_path(path, |case| cases.push(case.clone()));
    report(summary, cases)
}

/// Like [`parse_stream_ref`], for a file on disk. A file that cannot be opened is an error at
/// `0:0` naming the file.
pub fn stream_path<F: FnMut(&TestCase)>(path: &Path, on_case: F) -> StreamSummary {
    let name = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(f) => parse_stream_ref(&name, f, on_case),
        Err(e) => StreamSummary {
            file: name.clone(),
            error: Some(ParseError {
                file: name,
                line: 0,
                column: 0,
                message: format!("cannot open: {e}"),
            }),
            ..StreamSummary::default()
        },
    }
}

/// Parses bytes already in memory.
pub fn parse_bytes(name: &str, bytes: &[u8]) -> Report {
    parse_reader(name, bytes)
}

/// Parses any reader, streaming, and keeps the cases.
pub fn parse_reader<R: Read>(name: &str, reader: R) -> Report {
    let mut cases = Vec::new();
    let summary = parse_stream(name, reader, |case| cases.push(case));
    report(summary, cases)
}

fn report(summary: StreamSummary, cases: Vec<TestCase>) -> Report {
    Report {
        file: summary.file,
        cases,
        error: summary.error,
        warnings: summary.warnings,
        declared: summary.declared,
    }
}

/// Parses any reader, streaming, and hands each case to `on_case` as soon as its element ends.
/// Keeps no cases, so memory stays bounded whatever the file's size.
pub fn parse_stream<R: Read, F: FnMut(TestCase)>(
    name: &str,
    reader: R,
    mut on_case: F,
) -> StreamSummary {
    parse_stream_ref(name, reader, |case| on_case(case.clone()))
}

/// Like [`parse_stream`], but lends each case instead of giving it away: the parser reuses one
/// [`TestCase`] and its strings, so reading allocates nothing per case. The fastest way to
/// compute totals or distributions; clone what you need to keep.
pub fn parse_stream_ref<R: Read, F: FnMut(&TestCase)>(
    name: &str,
    reader: R,
    on_case: F,
) -> StreamSummary {
    stream(name, reader, on_case, true)
}

/// Like [`parse_reader`], with every tag read by quick-xml: the parser's fast path
/// ([`Parser::tag_in_buffer`]) turned off. The reference the fast path is checked against, by
/// the tests and the fuzz target; small reads are no such reference, since the encoding sniffer
/// and the look-ahead for comments put whole short tags in the buffer anyway.
#[allow(dead_code)] // used by tests and by fuzz/, which compiles these sources on its own
pub(crate) fn parse_reader_general<R: Read>(name: &str, reader: R) -> Report {
    let mut cases = Vec::new();
    let summary = stream(name, reader, |case| cases.push(case.clone()), false);
    report(summary, cases)
}

/// [`parse_stream_ref`], with the fast path on or off.
fn stream<R: Read, F: FnMut(&TestCase)>(
    name: &str,
    reader: R,
    on_case: F,
    fast: bool,
) -> StreamSummary {
    let mut parser = Parser {
        fast,
        summary: StreamSummary {
            file: name.to_string(),
            ..StreamSummary::default()
        },
        on_case,
        stack: Vec::new(),
        suites: Vec::new(),
        suite_set: false,
        case: TestCase {
            suite: String::new(),
            classname: String::new(),
            name: String::new(),
            file: None,
            time: None,
            status: Status::Passed,
            attempts: 1,
        },
        tally: Tally::default(),
        in_case: false,
        root_seen: false,
        root_declared: Declared::default(),
        child_declared: Declared::default(),
        warnings: Warnings::default(),
        names: Names::default(),
        pairs: Vec::new(),
    };
    let outcome = match encoding::utf8_reader(reader) {
        Ok(input) => {
            let mut xml = Reader::from_reader(Source::new(input, MAX_EVENT));
            // The parser matches end tags itself ([`Parser::end`]): most are read without
            // quick-xml, whose own element stack would not know them.
            xml.config_mut().check_end_names = false;
            xml.config_mut().allow_unmatched_ends = true;
            let outcome = parser.run(&mut xml);
            outcome.map_err(|(offset, message)| {
                let (line, column) = xml.get_ref().line_col(offset);
                (line, column, message)
            })
        }
        Err(e) => Err((1, 1, format!("cannot read: {e}"))),
    };
    if let Err((line, column, message)) = outcome {
        parser.summary.error = Some(ParseError {
            file: name.to_string(),
            line,
            column,
            message,
        });
    }
    parser.finish()
}

/// What an open element is, as far as the parser cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Suites,
    Suite,
    Case,
    Other,
}

struct Parser<F> {
    /// Whether tags may be read from the buffer without quick-xml (always, but in tests).
    fast: bool,
    summary: StreamSummary,
    on_case: F,
    /// Open elements, outermost first.
    stack: Vec<Kind>,
    /// Names of the open `<testsuite>` elements.
    suites: Vec<String>,
    /// Whether `case.suite` holds the innermost suite's name (cleared when `suites` changes).
    suite_set: bool,
    /// The open `<testcase>` when `in_case` (nested testcases are ignored); reused.
    case: TestCase,
    /// The retry elements of the open `<testcase>`.
    tally: Tally,
    in_case: bool,
    root_seen: bool,
    /// Totals declared on the root element.
    root_declared: Declared,
    /// Totals declared on the suites directly under a `<testsuites>` root.
    child_declared: Declared,
    warnings: Warnings,
    /// The names of the open elements, for matching end tags.
    names: Names,
    /// The attributes of the tag [`Parser::tag_in_buffer`] is reading; reused.
    pairs: Vec<Pair>,
}

impl<F: FnMut(&TestCase)> Parser<F> {
    fn outside_root_message(&self) -> String {
        if self.root_seen {
            "content after the root element".into()
        } else {
            "not XML: text before the first element".into()
        }
    }

    /// An element starts: `qname` is its name as written, `tag` gives its attributes.
    fn open(&mut self, qname: &[u8], tag: Tag<'_>, empty: bool, at: u64) -> Result<(), Failure> {
        // The local name, after the first `:`, as quick-xml's `local_name`. (Names are short:
        // a plain search beats memchr's call.)
        let name = match qname.iter().position(|&b| b == b':') {
            Some(i) => &qname[i + 1..],
            None => qname,
        };
        let parent = self.stack.last().copied();
        if parent.is_none() {
            if self.root_seen {
                return Err((at, "content after the root element".into()));
            }
            if name != b"testsuites" && name != b"testsuite" {
                return Err((
                    at,
                    format!(
                        "not a JUnit report: the root element is <{}>, expected <testsuites> or <testsuite>",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
            self.root_seen = true;
        }
        let kind = match name {
            b"testsuite" => {
                let (suite, declared) = self.suite_attributes(&tag, at)?;
                match parent {
                    None => self.root_declared = declared,
                    Some(Kind::Suites) if self.stack.len() == 1 => {
                        self.child_declared.add(&declared)
                    }
                    _ => {}
                }
                self.suites.push(suite);
                self.suite_set = false;
                Kind::Suite
            }
            b"testsuites" if parent.is_none() => {
                self.root_declared = self.suite_attributes(&tag, at)?.1;
                Kind::Suites
            }
            b"testcase" if !self.in_case => {
                self.read_case(&tag, at)?;
                self.in_case = true;
                Kind::Case
            }
            _ => {
                // Attributes not read here are still checked for what quick-xml lets through.
                tag.no_lt(at)?;
                match name {
                    b"testsuites" => Kind::Suites,
                    b"error" | b"failure" | b"skipped" if parent == Some(Kind::Case) => {
                        let status = match name {
                            b"error" => Status::Error,
                            b"failure" => Status::Failed,
                            _ => Status::Skipped,
                        };
                        self.case.status = self.case.status.max(status);
                        Kind::Other
                    }
                    _ => {
                        if let Some(element) = RetryElement::of(name) {
                            if parent == Some(Kind::Case) {
                                self.tally.count(element);
                            } else if !self.in_case {
                                self.warnings.push(format!(
                                    "<{}> outside a <testcase> ignored",
                                    String::from_utf8_lossy(name)
                                ));
                            }
                        }
                        Kind::Other
                    }
                }
            }
        };
        if empty {
            self.closed(kind);
        } else {
            self.stack.push(kind);
        }
        Ok(())
    }

    /// Closes the innermost open element, whose end tag matched.
    fn close(&mut self) {
        self.names.pop();
        if let Some(kind) = self.stack.pop() {
            self.closed(kind);
        }
    }

    fn closed(&mut self, kind: Kind) {
        match kind {
            Kind::Suite => {
                self.suites.pop();
                self.suite_set = false;
            }
            Kind::Case => {
                if self.in_case {
                    self.in_case = false;
                    if self.tally != Tally::default() {
                        let (status, attempts, warning) = self.tally.settle(self.case.status);
                        (self.case.status, self.case.attempts) = (status, attempts);
                        if let Some(warning) = warning {
                            let name = &self.case.name;
                            self.warnings.push(format!("testcase {name:?} {warning}"));
                        }
                    }
                    self.summary.counts[self.case.status as usize] += 1;
                    if let Some(t) = self.case.time {
                        // Saturating: two times near `Duration::MAX` must not panic.
                        self.summary.time = self.summary.time.saturating_add(t);
                    }
                    (self.on_case)(&self.case);
                }
            }
            Kind::Suites | Kind::Other => {}
        }
    }

    fn eof(&self, at: u64) -> Result<(), Failure> {
        if !self.root_seen {
            let message = if at == 0 {
                "empty file"
            } else {
                "no root element: not a JUnit XML file"
            };
            return Err((at, message.into()));
        }
        match self.stack.last() {
            None => Ok(()),
            Some(kind) => {
                let what = match kind {
                    Kind::Suites => "<testsuites>",
                    Kind::Suite => "<testsuite>",
                    Kind::Case => "<testcase>",
                    Kind::Other => "an element",
                };
                Err((
                    at,
                    format!(
                        "unexpected end of file: {what} and {} enclosing element(s) not closed",
                        self.stack.len() - 1
                    ),
                ))
            }
        }
    }

    fn suite_attributes(&mut self, tag: &Tag<'_>, at: u64) -> Result<(String, Declared), Failure> {
        let mut name = String::new();
        let mut declared = Declared::default();
        let mut skipped = None::<u64>;
        let mut disabled = None::<u64>;
        tag.attributes(at, |key, value| {
            let count = || {
                std::str::from_utf8(value.raw)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            match key {
                b"name" => name = text(&mut self.warnings, value).into_owned(),
                b"tests" => declared.tests = count(),
                b"failures" => declared.failures = count(),
                b"errors" => declared.errors = count(),
                b"skipped" | b"skip" => skipped = count(),
                b"disabled" => disabled = count(),
                _ => {}
            }
        })?;
        declared.skipped = match (skipped, disabled) {
            (None, None) => None,
            (s, d) => Some(s.unwrap_or(0) + d.unwrap_or(0)),
        };
        Ok((name, declared))
    }

    /// Resets the reused case and fills it from the attributes `each` hands to its callback.
    fn read_case(&mut self, tag: &Tag<'_>, at: u64) -> Result<(), Failure> {
        let Parser {
            case,
            warnings,
            suites,
            suite_set,
            ..
        } = self;
        if !*suite_set {
            set(&mut case.suite, suites.last().map_or("", String::as_str));
            *suite_set = true;
        }
        case.classname.clear();
        case.name.clear();
        let mut has_file = false;
        case.time = None;
        case.status = Status::Passed;
        case.attempts = 1;
        self.tally = Tally::default();
        let mut bad_time = None;
        tag.attributes(at, |key, value| match key {
            b"name" => set(&mut case.name, &text(warnings, value)),
            b"classname" => set(&mut case.classname, &text(warnings, value)),
            b"file" => {
                let value = text(warnings, value);
                match &mut case.file {
                    Some(file) => set(file, &value),
                    None => case.file = Some(value.into_owned()),
                }
                has_file = true;
            }
            b"time" => {
                let raw = text(warnings, value);
                match parse_seconds(&raw) {
                    Ok(t) => case.time = t,
                    Err(bad) => bad_time = Some((raw.into_owned(), bad)),
                }
            }
            b"status" if skipped_status(value.raw) => case.status = Status::Skipped,
            b"result"
                if value.raw.eq_ignore_ascii_case(b"skipped")
                    || value.raw.eq_ignore_ascii_case(b"suppressed") =>
            {
                case.status = Status::Skipped
            }
            _ => {}
        })?;
        if !has_file {
            case.file = None;
        }
        if let Some((raw, bad)) = bad_time {
            warnings.push(format!(
                "testcase {:?}: time {raw:?} is {bad}; taken as unknown",
                case.name
            ));
        }
        Ok(())
    }

    fn finish(mut self) -> StreamSummary {
        let d = &self.root_declared;
        let c = &self.child_declared;
        self.summary.declared = Declared {
            tests: d.tests.or(c.tests),
            failures: d.failures.or(c.failures),
            errors: d.errors.or(c.errors),
            skipped: d.skipped.or(c.skipped),
        };
        if self.summary.error.is_none() {
            let s = &self.summary;
            let checks = [
                ("tests", s.declared.tests, s.tests()),
                ("failures", s.declared.failures, s.count(Status::Failed)),
                ("errors", s.declared.errors, s.count(Status::Error)),
                ("skipped", s.declared.skipped, s.count(Status::Skipped)),
            ];
            for (what, declared, counted) in checks {
                if let Some(declared) = declared.filter(|&d| d != counted as u64) {
                    self.warnings.push(format!(
                        "the file declares {what}={declared} but {counted} were read; using {counted}"
                    ));
                }
            }
        }
        self.summary.warnings = self.warnings.into_lines();
        self.summary
    }
}

/// Replaces `target`'s text, keeping its allocation.
#[inline(always)]
fn set(target: &mut String, value: &str) {
    target.clear();
    target.push_str(value);
}

/// `status` attribute values that mean the test did not run.
fn skipped_status(value: &[u8]) -> bool {
    [
        &b"notrun"[..],
        b"not_run",
        b"disabled",
        b"skipped",
        b"skip",
        b"ignored",
    ]
    .iter()
    .any(|s| value.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn parse(xml: &str) -> Report {
        parse_bytes("t.xml", xml.as_bytes())
    }

    fn statuses(r: &Report) -> Vec<Status> {
        r.cases.iter().map(|c| c.status).collect()
    }

    #[test]
    fn status_precedence_table() {
        use Status::*;
        let table: &[(&str, Status)] = &[
            ("", Passed),
            ("<skipped/>", Skipped),
            ("<failure/>", Failed),
            ("<error/>", Error),
            ("<skipped/><failure/>", Failed),
            ("<failure/><skipped/>", Failed),
            ("<error/><failure/><skipped/>", Error),
            ("<skipped/><failure/><error/>", Error),
            (
                "<failure>text</failure><error message='m'><![CDATA[x]]></error>",
                Error,
            ),
            // Retries (junit::retry): reruns without a failure still failed; flaky ones passed.
            ("<rerunFailure/><rerunFailure/>", Failed),
            ("<rerunError/>", Error),
            ("<flakyFailure/><flakyError/>", Flaky),
            ("<skipped/><flakyFailure/>", Skipped),
            ("<failure/><rerunFailure/>", Failed),
            ("<system-out><failure/></system-out>", Passed),
            (
                "<properties><property name='skipped' value='1'/></properties>",
                Passed,
            ),
        ];
        for (children, want) in table {
            let r = parse(&format!(
                "<testsuite><testcase name='x'>{children}</testcase></testsuite>"
            ));
            assert_eq!(statuses(&r), [*want], "{children}");
        }
        let attrs: &[(&str, Status)] = &[
            ("status='run' result='completed'", Passed),
            ("status='notrun'", Skipped),
            ("status='NotRun'", Skipped),
            ("status='disabled'", Skipped),
            ("status='Ignored'", Skipped),
            ("result='skipped'", Skipped),
            ("result='suppressed'", Skipped),
            ("status='run'", Passed),
            ("status='failed'", Passed),
        ];
        for (attr, want) in attrs {
            let r = parse(&format!(
                "<testsuite><testcase name='x' {attr}/></testsuite>"
            ));
            assert_eq!(statuses(&r), [*want], "{attr}");
        }
    }

    #[test]
    fn errors_name_file_and_line_column() {
        let table: &[(&str, &str)] = &[
            ("", "t.xml:1:1: empty file"),
            ("   \n  ", "t.xml:2:3: no root element"),
            ("hello", "t.xml:1:1: not XML"),
            (
                "<?xml version='1.0'?>\n<suites/>",
                "t.xml:2:1: not a JUnit report",
            ),
            (
                "<testsuite>\n  <testcase name='a'>\n",
                "t.xml:3:1: unexpected end of file",
            ),
            (
                "<testsuite>\n<testcase name='a'/>\n<testcase name",
                "t.xml:3:1: malformed XML",
            ),
            (
                "<testsuite>\n  <a></b>\n</testsuite>",
                "t.xml:2:6: malformed XML: ill-formed document",
            ),
            (
                "<testsuite/>\n<testsuite/>",
                "t.xml:2:1: content after the root element",
            ),
            (
                "<testsuite/>\ntrailing",
                "t.xml:2:1: content after the root element",
            ),
            (
                "<testsuite>\n<![CDATA[ never closed",
                "t.xml:2:1: malformed XML: CDATA section not closed",
            ),
            (
                "<testsuite>\n<!-- never closed",
                "t.xml:2:1: malformed XML: comment not closed",
            ),
            (
                "<testsuite>\n<testcase name='a<b'/>",
                "t.xml:2:18: malformed XML: `<` inside a tag",
            ),
            (
                "<testsuite><testcase name=a/></testsuite>",
                "t.xml:1:12: malformed XML",
            ),
            ("\u{FEFF}<x/>", "t.xml:1:1: not a JUnit report"),
            // End tags are matched by the parser, with quick-xml's messages.
            (
                "<testsuite>\n <testcase name='a'></testcases >",
                "t.xml:2:21: malformed XML: ill-formed document: expected `</testcase>`, but `</testcases>` was found",
            ),
            (
                "<testsuite></testsuite></x>",
                "t.xml:1:24: malformed XML: ill-formed document: close tag `</x>` does not match any open tag",
            ),
        ];
        for (xml, want) in table {
            let r = parse(xml);
            let got = r.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                got.starts_with(want),
                "{xml:?}: {got:?} does not start with {want:?}"
            );
            assert_eq!(r.partial(), !r.cases.is_empty());
        }
        // Cases before the error are kept and the report is partial.
        let r =
            parse("<testsuite><testcase name='a'/><testcase name='b'><failure/></testcase><oops");
        assert_eq!(r.tests(), 2);
        assert!(r.partial());
        let r = parse_path(Path::new("/nonexistent/dir/report.xml"));
        let e = r.error.unwrap().to_string();
        assert!(
            e.starts_with("/nonexistent/dir/report.xml:0:0: cannot open"),
            "{e}"
        );
    }

    #[test]
    fn suites_and_attributes() {
        let r = parse(
            "<testsuites name='all'><testcase name='orphan'/>\
             <testsuite name='outer &amp; co'><testsuite name='inner'><testcase classname='C' name='a' file='f.py'/>\
             </testsuite><testcase name='b'/></testsuite></testsuites>",
        );
        let got: Vec<(&str, &str)> = r
            .cases
            .iter()
            .map(|c| (c.suite.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(got, [("", "orphan"), ("inner", "a"), ("outer & co", "b")]);
        assert_eq!(r.cases[1].classname, "C");
        assert_eq!(r.cases[1].file.as_deref(), Some("f.py"));
        assert_eq!(r.cases[0].file, None);
        // Namespaced elements are matched by local name.
        let r = parse("<j:testsuite xmlns:j='urn:x'><j:testcase name='a'><j:failure/></j:testcase></j:testsuite>");
        assert_eq!(statuses(&r), [Status::Failed]);
        // Values are cut at MAX_VALUE bytes.
        let long = "n".repeat(MAX_VALUE * 3);
        let r = parse(&format!("<testsuite><testcase name='{long}'/></testsuite>"));
        assert_eq!(r.cases[0].name.len(), MAX_VALUE);
    }

    #[test]
    fn entities_are_never_expanded() {
        // External entities: the DTD is skipped; references stay literal, with a warning.
        let xxe = "<?xml version='1.0'?>\n<!DOCTYPE t [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>\n\
                   <testsuite name='&x;'><testcase name='a&x;b' time='&x;'>&x;</testcase></testsuite>";
        let r = parse(xxe);
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.cases[0].name, "a&x;b");
        assert_eq!(r.cases[0].suite, "&x;");
        assert_eq!(r.cases[0].time, None);
        assert!(
            r.warnings.iter().any(|w| w.contains("unrecognized entity")),
            "{:?}",
            r.warnings
        );

        // Billion laughs with a large expansion: reading stays small and fast, names stay literal.
        let mut dtd = String::from("<!ENTITY a0 'lollollollollollollollollollol'>");
        for i in 1..=30 {
            dtd.push_str(&format!(
                "<!ENTITY a{i} '{}'>",
                format!("&a{};", i - 1).repeat(10)
            ));
        }
        let doc = format!(
            "<!DOCTYPE l [{dtd}]><testsuite><testcase name='&a30;'>&a30;&a30;</testcase></testsuite>"
        );
        let r = parse(&doc);
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.cases[0].name, "&a30;");

        // Predefined and character references are decoded.
        let r = parse(
            "<testsuite><testcase name='&lt;&amp;&gt;&quot;&apos;&#65;&#x263A;'/></testsuite>",
        );
        assert_eq!(r.cases[0].name, "<&>\"'A☺");
    }

    /// A reader that yields `n` bytes at a time, to cross every buffer boundary.
    struct Chunks<'a>(&'a [u8], usize);
    impl Read for Chunks<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(out.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn text_cdata_and_comments_are_skipped_unbuffered() {
        // 40 MiB of output in each kind of body: well over MAX_EVENT, so buffering would fail.
        let big = "x".repeat(40 << 20);
        let doc = format!(
            "<testsuite><testcase name='a'><system-out>{big}</system-out>\
             <system-err><![CDATA[{big} ]] ]]]]></system-err><!--{big}- -- ->--></testcase>\
             <testcase name='b'><failure>]]&gt; &amp; {big}</failure></testcase></testsuite>"
        );
        let r = parse_reader("big.xml", Chunks(doc.as_bytes(), 1 << 16));
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(statuses(&r), [Status::Passed, Status::Failed]);

        // One tag larger than MAX_EVENT is refused, not buffered without end.
        let doc = format!(
            "<testsuite><testcase name='{}'/></testsuite>",
            "y".repeat(2 * MAX_EVENT as usize)
        );
        let r = parse(&doc);
        let e = r.error.expect("too large").to_string();
        assert!(e.contains("longer than 16 MiB"), "{e}");
    }

    fn fixture_files() -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit");
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        out.sort();
        assert!(out.len() >= 20);
        out
    }

    #[test]
    fn byte_at_a_time_reads_the_same() {
        for (name, bytes) in fixture_files() {
            let whole = parse_bytes(&name, &bytes);
            for chunk in [1, 2, 3, 7, 64] {
                let r = parse_reader(&name, Chunks(&bytes, chunk));
                assert_eq!(r.cases, whole.cases, "{name} in chunks of {chunk}");
                assert_eq!(r.error, whole.error, "{name} in chunks of {chunk}");
            }
        }
    }

    /// A deterministic stand-in for fuzzing: every truncation of every fixture and thousands of
    /// random byte flips. Nothing may panic; a cut file is an error unless only trailing
    /// whitespace was cut; the cases of a cut file are a prefix of the whole file's cases.
    #[test]
    fn truncations_and_byte_flips_never_panic() {
        let mut rand = super::super::test_rng();
        let mut runs = 0;
        for (name, bytes) in fixture_files() {
            let whole = parse_bytes(&name, &bytes);
            let end = if name.starts_with("utf16") {
                bytes.len() - 2 // one UTF-16 newline at the end
            } else {
                let last = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
                last.map_or(0, |i| i + 1)
            };
            let step = (bytes.len() / 400).max(1);
            for cut in (0..bytes.len()).step_by(step) {
                let r = parse_bytes(&name, &bytes[..cut]);
                runs += 1;
                if whole.error.is_none() && cut < end {
                    assert!(r.error.is_some(), "{name} cut at {cut}: no error");
                }
                assert!(r.cases.len() <= whole.cases.len(), "{name} cut at {cut}");
                let n = r.cases.len().saturating_sub(1); // the last one may differ in cut details
                assert_eq!(r.cases[..n], whole.cases[..n], "{name} cut at {cut}");
                if let Some(e) = &r.error {
                    assert!(e.line >= 1 && e.column >= 1, "{name} cut at {cut}: {e}");
                }
            }
            for _ in 0..200 {
                let mut flipped = bytes.clone();
                for _ in 0..1 + rand() % 4 {
                    if flipped.is_empty() {
                        break;
                    }
                    let at = (rand() % flipped.len() as u64) as usize;
                    flipped[at] = (rand() % 256) as u8;
                }
                let r = parse_bytes(&name, &flipped);
                runs += 1;
                if let Some(e) = &r.error {
                    assert!(e.line >= 1 && e.column >= 1, "{name} flipped: {e}");
                }
            }
        }
        assert!(runs > 10_000, "{runs}");
    }

    #[test]
    fn tags_in_buffer_read_like_the_general_path() {
        // Tags inside the root take the fast path unless it is turned off; then every one takes
        // the general path (quick-xml). Both must agree on odd tags too, which the fast path
        // must hand over untouched, and on every fixture.
        for (name, bytes) in fixture_files() {
            let fast = parse_bytes(&name, &bytes);
            let general = parse_reader_general(&name, &bytes[..]);
            assert_eq!(fast.cases, general.cases, "{name}");
            assert_eq!(fast.error, general.error, "{name}");
            assert_eq!(fast.warnings, general.warnings, "{name}");
        }
        let tags = [
            r#"<testcase name="a"></testcase >"#,
            "<testcase name=\"a\"><failure/></testcase\n>",
            r#"<testcase name="a"><j:failure m="1"/></testcase>"#,
            r#"<j:testcase name="a"><error></error ></j:testcase>"#,
            r#"<testcase name="a"></testcas>"#,
            r#"<testcase name="a"></testcase x>"#,
            r#"<testcase name="a"></ testcase>"#,
            r#"<testcase name="a"><skipped></failure></testcase>"#,
            r#"<testcase name="a"><a/ ></testcase>"#,
            r#"<testcase name="a"><a"b/></testcase>"#,
            "<testcase name=\"a\"><a\x0cb='1'/></testcase>",
            r#"<testcase name="a"><a=b/></testcase>"#,
            r#"<testcase><failure message="x>y" type='&lt;'></failure></testcase>"#,
            r#"<testcase name="a"></>"#,
            // Found by the fuzzer (scripts/fuzz.sh, 600 s): an element named "" closed by `</ >`,
            // whose name quick-xml does not trim to "".
            r#"<></ >"#,
            "<>\t</\t\n>",
            r#"</testsuite></testsuite>"#,
            r#"<testcase name="a" classname='c' time="1.5" file="f.py" line="3"/>"#,
            r#"<testcase  name = "a"  time = '2' />"#,
            "<testcase\n\tname=\"a\"\r\n/>",
            r#"<testcase name="a>b" classname="x/y"/>"#,
            r#"<testcase name="it's" classname='say "hi"'/>"#,
            r#"<testcase name="&lt;&amp;&#65;" classname="&x;"/>"#,
            r#"<testcase j:name="a" a/b="1"/>"#,
            r#"<testcase name="a" time="-1"/>"#,
            r#"<testcase name="a" status="notrun"/>"#,
            r#"<testcase name="a" result="suppressed"/>"#,
            r#"<testcase name="a">x</testcase>"#,
            r#"<testcase name="a" ><skipped/></testcase>"#,
            r#"<testcase name="a"/ >"#,
            r#"<testcase name="a"b="c"/>"#,
            r#"<testcase name=a/>"#,
            r#"<testcase name="a" b/>"#,
            r#"<testcase name="a<b"/>"#,
            r#"<testcase name="a" < />"#,
            "<testcase\x0cname=\"a\"/>",
            "<testcase name=\"é☺\" classname='ü'/>",
            r#"<testcase/>"#,
            r#"<testcase />"#,
            r#"<testcases name="a"/>"#,
        ];
        for tag in tags {
            for wrap in [
                "<testsuite name='s'>{}<testcase name='next'/></testsuite>",
                "<testsuites><testcase name='x'>{}</testcase></testsuites>",
                "<testsuite>{}",
            ] {
                let doc = wrap.replace("{}", tag);
                let whole = parse(&doc);
                let slow = parse_reader_general("t.xml", doc.as_bytes());
                assert_eq!(whole.cases, slow.cases, "{doc}");
                assert_eq!(whole.error, slow.error, "{doc}");
                assert_eq!(whole.warnings, slow.warnings, "{doc}");
            }
        }
        let first = r#"<testcase name="a" classname='c' time="1.5" file="f.py" line="3"/>"#;
        assert!(tags.contains(&first));
        let r = parse(&format!("<testsuite name='s'>{first}</testsuite>"));
        assert_eq!(r.cases[0].name, "a");
        assert_eq!(r.cases[0].classname, "c");
        assert_eq!(r.cases[0].time, Some(Duration::from_millis(1500)));
        assert_eq!(r.cases[0].file.as_deref(), Some("f.py"));
    }

    #[test]
    fn lent_cases_match_owned_ones() {
        // The reused case must not carry a file, time or status over to the next case.
        for (name, bytes) in fixture_files() {
            let owned = parse_bytes(&name, &bytes);
            let mut lent = Vec::new();
            let s = parse_stream_ref(&name, &bytes[..], |c| lent.push(c.clone()));
            assert_eq!(lent, owned.cases, "{name}");
            assert_eq!(s.error, owned.error, "{name}");
        }
        let r = parse(
            "<testsuite name='s'><testcase name='a' file='f' time='1'><failure/></testcase>\
             <testcase name='b'/></testsuite>",
        );
        assert_eq!(r.cases[1].file, None);
        assert_eq!(r.cases[1].time, None);
        assert_eq!(r.cases[1].status, Status::Passed);
        assert_eq!(r.cases[1].classname, "");
    }

    #[test]
    fn stream_keeps_no_cases() {
        let mut n = 0;
        let s = parse_stream(
            "s.xml",
            &b"<testsuite><testcase name='a' time='1'/><testcase name='b' time='2'><error/></testcase></testsuite>"[..],
            |_| n += 1,
        );
        assert_eq!(n, 2);
        assert_eq!(s.tests(), 2);
        assert_eq!(s.count(Status::Error), 1);
        assert_eq!(s.time, Duration::from_secs(3));
        assert!(!s.partial());
    }
}
