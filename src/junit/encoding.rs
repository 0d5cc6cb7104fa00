//! Input encodings: everything is turned into UTF-8 before the XML reader sees it.
//!
//! A byte-order mark wins over the XML declaration (UTF-8, UTF-16 LE/BE). Without one, UTF-16 is
//! recognised from `<` followed or preceded by a zero byte, and an ASCII-compatible encoding named
//! in the declaration (ISO-8859-1, windows-1252, Shift_JIS, …) is decoded as declared. Anything
//! else is read as UTF-8; invalid sequences become U+FFFD when attribute values are taken.

use encoding_rs::Encoding;
use encoding_rs_io::DecodeReaderBytesBuilder;
use std::io::{self, Cursor, Read};

/// How many leading bytes are examined for a BOM and an XML declaration.
const SNIFF: usize = 1024;

/// Wraps `reader` so that it yields UTF-8 without a BOM.
pub(crate) fn utf8_reader<'a, R: Read + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = Vec::with_capacity(SNIFF);
    (&mut reader).take(SNIFF as u64).read_to_end(&mut head)?;
    match detect(&head) {
        Detected::Utf8 { bom } => {
            let rest = Cursor::new(head).chain(reader);
            let mut rest = Box::new(rest) as Box<dyn Read + 'a>;
            if bom {
                io::copy(&mut (&mut rest).take(3), &mut io::sink())?;
            }
            Ok(rest)
        }
        Detected::Other(encoding) => Ok(Box::new(
            DecodeReaderBytesBuilder::new()
                .encoding(Some(encoding))
                .bom_override(true)
                .build(Cursor::new(head).chain(reader)),
        )),
    }
}

#[derive(Debug, PartialEq)]
enum Detected {
    Utf8 { bom: bool },
    Other(&'static Encoding),
}

fn detect(head: &[u8]) -> Detected {
    if head.starts_with(b"\xEF\xBB\xBF") {
        return Detected::Utf8 { bom: true };
    }
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\x3C\x00") {
        return Detected::Other(encoding_rs::UTF_16LE);
    }
    if head.starts_with(b"\xFE\xFF") || head.starts_with(b"\x00\x3C") {
        return Detected::Other(encoding_rs::UTF_16BE);
    }
    match declared_encoding(head).and_then(Encoding::for_label) {
        Some(enc)
            if enc != encoding_rs::UTF_8
                && enc != encoding_rs::UTF_16LE
                && enc != encoding_rs::UTF_16BE
                && enc.is_ascii_compatible() =>
        {
            Detected::Other(enc)
        }
        _ => Detected::Utf8 { bom: false },
    }
}

/// The `encoding` pseudo-attribute of a leading `<?xml …?>` declaration.
fn declared_encoding(head: &[u8]) -> Option<&[u8]> {
    let head = head.strip_prefix(b"<?xml")?;
    let decl = &head[..memchr::memmem::find(head, b"?>")?];
    let at = memchr::memmem::find(decl, b"encoding")?;
    let rest = decl[at + 8..].trim_ascii_start().strip_prefix(b"=")?;
    let rest = rest.trim_ascii_start();
    let quote = *rest.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let rest = &rest[1..];
    Some(&rest[..memchr::memchr(quote, rest)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> String {
        let mut out = String::new();
        utf8_reader(bytes)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if big_endian {
                [0xFE, 0xFF]
            } else {
                [0xFF, 0xFE]
            });
        }
        for unit in text.encode_utf16() {
            out.extend(if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            });
        }
        out
    }

    #[test]
    fn table() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a n=\"é✓\"/>";
        let latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?><a n='\xE9'/>";
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("utf8", b"<a/>".to_vec(), "<a/>"),
            ("utf8 bom", b"\xEF\xBB\xBF<a/>".to_vec(), "<a/>"),
            ("utf16le bom", utf16(doc, false, true), doc),
            ("utf16be bom", utf16(doc, true, true), doc),
            ("utf16le no bom", utf16(doc, false, false), doc),
            ("utf16be no bom", utf16(doc, true, false), doc),
            (
                "latin1",
                latin1.to_vec(),
                "<?xml version='1.0' encoding='ISO-8859-1'?><a n='é'/>",
            ),
            // A declaration that lies about UTF-16 in an ASCII file: read as UTF-8.
            ("utf16 declared, utf8 bytes", doc.as_bytes().to_vec(), doc),
            ("empty", vec![], ""),
        ];
        for (what, input, want) in cases {
            assert_eq!(decode(&input), want, "{what}");
        }
    }

    #[test]
    fn declaration() {
        assert_eq!(
            declared_encoding(b"<?xml version=\"1.0\" encoding = 'latin1' ?><a/>"),
            Some(&b"latin1"[..])
        );
        assert_eq!(declared_encoding(b"<?xml version=\"1.0\"?><a/>"), None);
        assert_eq!(declared_encoding(b"<a/>"), None);
        assert_eq!(declared_encoding(b"<?xml encoding="), None);
    }
}
