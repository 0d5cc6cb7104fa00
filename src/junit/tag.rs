//! A start tag's attributes as the parser reads them: from the [`scan`] of a tag in the
//! buffer, or from an event quick-xml read (whose attribute parser has the last word on
//! anything the scan refuses), as [`Value`]s turned into bounded, entity-decoded text.

use super::limits::{Failure, Warnings, MAX_VALUE};
use super::scan::{self, Pair};
use quick_xml::events::BytesStart;
use std::borrow::Cow;

/// A start tag's attributes: scanned from the buffer by the parser's fast path, or in an
/// event quick-xml read.
pub(crate) enum Tag<'a> {
    Scanned { bytes: &'a [u8], pairs: &'a [Pair] },
    Xml(&'a BytesStart<'a>),
}

impl Tag<'_> {
    /// Calls `f(local name, value)` for each attribute.
    #[inline]
    pub(crate) fn attributes(
        &self,
        at: u64,
        mut f: impl FnMut(&[u8], Value<'_>),
    ) -> Result<(), Failure> {
        match self {
            Tag::Scanned { bytes, pairs } => {
                for p in *pairs {
                    f(&bytes[p.local.clone()], Value::of(bytes, p));
                }
                Ok(())
            }
            Tag::Xml(e) => attributes(e, at, f),
        }
    }

    /// Refuses a `<` in the tag (the scan already has).
    pub(crate) fn no_lt(&self, at: u64) -> Result<(), Failure> {
        match self {
            Tag::Scanned { .. } => Ok(()),
            Tag::Xml(e) => no_lt_in_tag(e, at),
        }
    }
}

/// An attribute value as written, and what the scan learnt about it.
#[derive(Clone, Copy)]
pub(crate) struct Value<'v> {
    pub(crate) raw: &'v [u8],
    /// Whether `raw` contains `&`.
    amp: bool,
    /// True only when `raw` is known to be ASCII.
    ascii: bool,
}

impl<'v> Value<'v> {
    pub(crate) fn of(bytes: &'v [u8], p: &Pair) -> Self {
        Value {
            raw: &bytes[p.value.clone()],
            amp: p.amp,
            ascii: p.ascii,
        }
    }
}

/// An attribute value as text: entities decoded, cut at [`MAX_VALUE`] bytes, invalid UTF-8
/// replaced. Borrows when it can: no allocation for plain UTF-8 without references.
#[inline(always)]
pub(crate) fn text<'v>(warnings: &mut Warnings, value: Value<'v>) -> Cow<'v, str> {
    let raw = &value.raw[..value.raw.len().min(MAX_VALUE)];
    let text = if value.ascii {
        debug_assert!(raw.is_ascii());
        // SAFETY: `Value::ascii` promises ASCII, which is UTF-8. (Validating again is the
        // largest single cost of reading a case, since these values are short.)
        Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(raw) })
    } else {
        match std::str::from_utf8(raw) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(raw),
        }
    };
    if !value.amp {
        return text;
    }
    match quick_xml::escape::unescape(&text) {
        Ok(Cow::Borrowed(_)) => text,
        Ok(Cow::Owned(unescaped)) => Cow::Owned(unescaped),
        Err(e) => {
            warnings.push(format!("attribute value {text:?} kept as written: {e}"));
            text
        }
    }
}

/// Calls `f(local name, value)` for each attribute of a tag. The
/// [`scan`] handles the well-formed case quickly; anything it does not accept goes through
/// quick-xml's attribute parser, whose verdict (and error message) counts.
fn attributes<F: FnMut(&[u8], Value<'_>)>(
    e: &BytesStart,
    at: u64,
    mut f: F,
) -> Result<(), Failure> {
    let raw = e.attributes_raw();
    let scanned = scan::attributes(raw, false, |p| {
        f(&raw[p.local.clone()], Value::of(raw, &p));
    });
    if scanned.is_some() {
        return Ok(());
    }
    no_lt_in_tag(e, at)?;
    for attr in e.attributes().with_checks(false) {
        let attr = attr.map_err(|err| (at, format!("malformed XML: {err}")))?;
        let value = Value {
            raw: &attr.value,
            amp: memchr::memchr(b'&', &attr.value).is_some(),
            ascii: false,
        };
        f(attr.key.local_name().as_ref(), value);
    }
    Ok(())
}

/// quick-xml accepts `<` inside a quoted attribute value; XML does not.
fn no_lt_in_tag(e: &BytesStart, at: u64) -> Result<(), Failure> {
    match memchr::memchr(b'<', e) {
        Some(i) => Err((
            at + 1 + i as u64,
            "malformed XML: `<` inside a tag (not allowed in attribute values)".into(),
        )),
        None => Ok(()),
    }
}
