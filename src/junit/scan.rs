//! The tag scanner: finds a tag's `name="value"` attributes (and, in a buffer, where the tag
//! ends) in one pass, without quick-xml.
//!
//! The bytes that give a tag its structure (`"`, `'`, `=`, `<`, `>`, `&`) are found 64 at a
//! time as a bit mask ([`Structural`]); everything between them is only looked at where it
//! must be (attribute names, and the few bytes around `=` and after a value). Anything the
//! scanner does not accept is left to quick-xml, whose verdict counts; see [`attributes`].

use std::ops::Range;

/// One attribute found by [`attributes`], as offsets into the scanned bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pair {
    /// The name without its namespace prefix.
    pub(crate) local: Range<usize>,
    pub(crate) value: Range<usize>,
    /// Whether the value contains `&`.
    pub(crate) amp: bool,
    /// Whether the value is known to be ASCII (so UTF-8); false when it may not be.
    pub(crate) ascii: bool,
}

/// How the attributes scanned by [`attributes`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// At the end of the bytes (attributes only, as quick-xml hands them out).
    Bytes,
    /// At `/>`, which starts at this offset: an empty element.
    Empty(usize),
    /// At `>`, at this offset: a start tag.
    Start(usize),
}

/// Scans `name="value"` pairs separated by whitespace, handing each to `f` as soon as it is
/// complete, and returns how they ended. Returns `None` at the first thing that is not such a
/// pair (including a `<` anywhere, and a tag not complete within `raw`); the pairs before it have
/// been handed out.
///
/// With `in_tag`, `raw` is the rest of a tag just after its element name: the scan ends at
/// `>` or `/>` outside a value, and a `/` in a name is refused (it may end the tag). Without,
/// `raw` is the attribute bytes of a tag that quick-xml read, and the scan ends at their end.
/// A value must be followed by whitespace, the end, or with `in_tag` also `/` or `>`.
pub(crate) fn attributes(raw: &[u8], in_tag: bool, mut f: impl FnMut(Pair)) -> Option<End> {
    let mut marks = Structural::new(raw);
    // Where the text before the next `=` (an attribute name) or the tag's end starts.
    let mut from = 0;
    loop {
        let Some(at) = marks.next() else {
            // The end of the bytes: only whitespace may follow the last pair.
            return (!in_tag && is_space(&raw[from..])).then_some(End::Bytes);
        };
        match raw[at] {
            b'=' => {
                let local = name(&raw[from..at], in_tag)?;
                let local = local.start + from..local.end + from;
                let open = marks.next()?;
                let quote = raw[open];
                if !matches!(quote, b'"' | b'\'') || !is_space(&raw[at + 1..open]) {
                    return None;
                }
                let mut amp = false;
                let close = loop {
                    let i = marks.next()?;
                    match raw[i] {
                        b'<' => return None,
                        b'&' => amp = true,
                        b if b == quote => break i,
                        _ => {}
                    }
                };
                match raw.get(close + 1) {
                    None => {}
                    Some(b) if b.is_ascii_whitespace() => {}
                    Some(b'/' | b'>') if in_tag => {}
                    Some(_) => return None,
                }
                f(Pair {
                    local,
                    value: open + 1..close,
                    amp,
                    ascii: marks.ascii,
                });
                from = close + 1;
            }
            b'>' if in_tag => {
                let before = &raw[from..at];
                return match before.split_last() {
                    Some((b'/', rest)) if is_space(rest) => Some(End::Empty(at - 1)),
                    _ if is_space(before) => Some(End::Start(at)),
                    _ => None,
                };
            }
            // `&` is an ordinary byte in a name; a quote or `<` outside a value is refused.
            b'&' => {}
            _ => return None,
        }
    }
}

/// XML whitespace, which ends an element name for quick-xml (unlike a form feed).
pub(crate) fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trailing XML whitespace removed, as quick-xml trims the name in an end tag: only after a
/// name, so a name of nothing but whitespace (`</ >`) stays as it is.
pub(crate) fn trim_xml_end(bytes: &[u8]) -> &[u8] {
    let len = bytes
        .iter()
        .rposition(|&b| !is_xml_space(b))
        .map_or(bytes.len(), |i| i + 1);
    &bytes[..len]
}

/// The element name at the start of `markup` (just after `<`) and what follows it: XML
/// whitespace, `>` or `/`. `None` for a declaration, comment, processing instruction or end
/// tag, a name with a byte that would make quick-xml read the tag differently (quotes, `<`,
/// `=`, `&`, a form feed), or a name that runs to the end of the buffer.
pub(crate) fn element_name(markup: &[u8]) -> Option<(&[u8], &[u8])> {
    /// Per byte: 0 in a name, 1 ends it, 2 refused.
    const CLASS: [u8; 256] = {
        let mut class = [0u8; 256];
        let mut ends: &[u8] = b" \t\r\n/>";
        while let [b, rest @ ..] = ends {
            class[*b as usize] = 1;
            ends = rest;
        }
        let mut refused: &[u8] = b"\"'<=&\x0c";
        while let [b, rest @ ..] = refused {
            class[*b as usize] = 2;
            refused = rest;
        }
        class
    };
    if matches!(markup.first(), Some(b'!' | b'?')) {
        return None;
    }
    let len = markup.iter().position(|&b| CLASS[b as usize] != 0)?;
    (len > 0 && CLASS[markup[len] as usize] == 1).then(|| markup.split_at(len))
}

/// The local name (after any `prefix:`) of an attribute written as `text` before its `=`:
/// optional leading and trailing whitespace around a non-empty name without whitespace,
/// quotes or `<` (the caller has seen none of those), nor, with `in_tag`, a `/`.
#[inline(always)]
fn name(text: &[u8], in_tag: bool) -> Option<Range<usize>> {
    let mut i = 0;
    while i < text.len() && text[i].is_ascii_whitespace() {
        i += 1;
    }
    if i == text.len() {
        return None;
    }
    let mut local = i;
    while i < text.len() {
        match text[i] {
            b if b.is_ascii_whitespace() => break,
            b'/' if in_tag => return None,
            b':' => local = i + 1,
            _ => {}
        }
        i += 1;
    }
    if i < text.len() && !is_space(&text[i..]) {
        return None; // whitespace inside the name
    }
    Some(local..i)
}

#[inline(always)]
fn is_space(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// The offsets of the structural bytes `"`, `'`, `=`, `<`, `>` and `&` in a slice, in order.
/// Classifies 64 bytes at a time, and only as far as it is asked to go.
struct Structural<'a> {
    bytes: &'a [u8],
    /// Offset of the block that `mask` describes.
    block: usize,
    /// The structural bytes of that block not yet handed out, bit `i` for `block + i`.
    mask: u64,
    /// Whether all the blocks classified so far (everything before `block + 64`) are ASCII.
    ascii: bool,
}

impl<'a> Structural<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let (mask, ascii) = classify(bytes);
        Structural {
            bytes,
            block: 0,
            mask,
            ascii,
        }
    }
}

impl Iterator for Structural<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.block += 64;
            if self.block >= self.bytes.len() {
                return None;
            }
            let (mask, ascii) = classify(&self.bytes[self.block..]);
            self.mask = mask;
            self.ascii &= ascii;
        }
        let i = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.block + i)
    }
}

/// The structural bytes among the first 64 of `bytes` (fewer at the end) as a bit mask, and
/// whether those 64 bytes are all ASCII.
#[inline]
fn classify(bytes: &[u8]) -> (u64, bool) {
    match bytes.first_chunk::<64>() {
        Some(block) => classify_block(block),
        None => {
            let mut block = [0u8; 64]; // NUL is not structural
            block[..bytes.len()].copy_from_slice(bytes);
            classify_block(&block)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn classify_block(block: &[u8; 64]) -> (u64, bool) {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64; each load reads 16 of the block's 64 bytes, and `loadu`
    // needs no alignment.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let apos = _mm_set1_epi8(b'\'' as i8);
        let equals = _mm_set1_epi8(b'=' as i8);
        let lt = _mm_set1_epi8(b'<' as i8);
        let gt = _mm_set1_epi8(b'>' as i8);
        let amp = _mm_set1_epi8(b'&' as i8);
        let p = block.as_ptr();
        let bits = |k: usize| {
            let v = _mm_loadu_si128(p.add(16 * k).cast());
            let hits = _mm_or_si128(
                _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, apos)),
                    _mm_cmpeq_epi8(v, equals),
                ),
                _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, lt), _mm_cmpeq_epi8(v, gt)),
                    _mm_cmpeq_epi8(v, amp),
                ),
            );
            (
                u64::from(_mm_movemask_epi8(hits) as u16) << (16 * k),
                _mm_movemask_epi8(v),
            )
        };
        let (m0, h0) = bits(0);
        let (m1, h1) = bits(1);
        let (m2, h2) = bits(2);
        let (m3, h3) = bits(3);
        (m0 | m1 | m2 | m3, (h0 | h1 | h2 | h3) == 0)
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn classify_block(block: &[u8; 64]) -> (u64, bool) {
    classify_block_plain(block)
}

/// [`classify_block`] one byte at a time: the portable version, and the reference in tests.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn classify_block_plain(block: &[u8; 64]) -> (u64, bool) {
    let mask = block.iter().enumerate().fold(0, |mask, (i, b)| {
        let hit = matches!(b, b'"' | b'\'' | b'=' | b'<' | b'>' | b'&');
        mask | (u64::from(hit) << i)
    });
    (mask, block.is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(raw: &str, in_tag: bool) -> (Vec<(String, String, bool)>, Option<End>) {
        let mut pairs = Vec::new();
        let end = attributes(raw.as_bytes(), in_tag, |p| {
            pairs.push((raw[p.local].to_string(), raw[p.value].to_string(), p.amp))
        });
        (pairs, end)
    }

    #[test]
    fn classify_matches_the_plain_version() {
        let mut rand = super::super::test_rng();
        let alphabet = b"\"'=<>&/ a\n\x00\xff";
        for n in 0..2000 {
            let mut block = [0u8; 64];
            for b in &mut block {
                let r = rand();
                *b = if n % 2 == 0 && r & 0x80 != 0 {
                    b'x' // wholly ASCII blocks too
                } else if r.is_multiple_of(3) {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                } else {
                    (r >> 16) as u8
                };
            }
            assert_eq!(classify_block(&block), classify_block_plain(&block));
        }
    }

    #[test]
    fn structural_offsets_cross_blocks() {
        let text = format!("{}=\"{}'>{}", " ".repeat(63), "x".repeat(70), "<");
        let got: Vec<usize> = Structural::new(text.as_bytes()).collect();
        assert_eq!(got, [63, 64, 135, 136, 137]);
    }

    #[test]
    fn tags_and_attribute_bytes() {
        let own = |s: &[(&str, &str, bool)]| -> Vec<(String, String, bool)> {
            s.iter()
                .map(|(k, v, a)| (k.to_string(), v.to_string(), *a))
                .collect()
        };
        assert_eq!(
            scan(" a='1' j:b = \"x>y'&amp;\"\t/>rest", true),
            (
                own(&[("a", "1", false), ("b", "x>y'&amp;", true)]),
                Some(End::Empty(25))
            )
        );
        assert_eq!(
            scan(" a='1'>", true),
            (own(&[("a", "1", false)]), Some(End::Start(6)))
        );
        assert_eq!(scan(" >", true), (own(&[]), Some(End::Start(1))));
        assert_eq!(
            scan(" a='1' ", false),
            (own(&[("a", "1", false)]), Some(End::Bytes))
        );
        assert_eq!(
            scan(" a/b='1'", false),
            (own(&[("a/b", "1", false)]), Some(End::Bytes))
        );
        assert_eq!(scan(" a&b='1'", false).1, Some(End::Bytes));
        // Refused, after handing out the pairs before the problem.
        for (raw, in_tag, handed) in [
            (" a='1' b/>", true, 1),
            (" a='1' / >", true, 1),
            (" a/b='1'/>", true, 0),
            (" a='1'b='2'/>", true, 0),
            (" a=1/>", true, 0),
            (" a b='1'/>", true, 0),
            (" ='1'/>", true, 0),
            (" a='1<'/>", true, 0),
            (" a='1' < />", true, 1),
            (" a='1' \"/>", true, 1),
            (" a='1'/x", true, 1),
            (" a='1' b='2", true, 1),
            (" a='1'", true, 1),
            (" a='1' b", false, 1),
            (" a='1'/", false, 0),
        ] {
            let (pairs, end) = scan(raw, in_tag);
            assert_eq!((pairs.len(), end), (handed, None), "{raw:?}");
        }
    }
}
