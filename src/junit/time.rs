//! `time` attribute values as tools really write them.
//!
//! Accepted: plain decimals (`1.25`, `3.`, `.5`), exponents (`1e-3`), thousands commas
//! (`2,503.1` or `1,234,567`), a single decimal comma (`0,288`), and a unit suffix (`1.2s`,
//! `350ms`, `12us`). Surrounding whitespace is ignored; an empty value counts as missing.

use std::time::Duration;

/// Why a time value could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadTime {
    Negative,
    NotFinite,
    Unparseable,
}

impl std::fmt::Display for BadTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadTime::Negative => "negative",
            BadTime::NotFinite => "not a finite number",
            BadTime::Unparseable => "not a number",
        })
    }
}

/// Parses a time value in seconds. `Ok(None)` for an empty value.
#[inline]
pub(crate) fn parse_seconds(raw: &str) -> Result<Option<Duration>, BadTime> {
    match plain_decimal(raw.as_bytes()) {
        Some(d) => Ok(Some(d)),
        None => parse_other(raw),
    }
}

/// [`parse_seconds`] for anything but a plain decimal.
#[inline(never)]
fn parse_other(raw: &str) -> Result<Option<Duration>, BadTime> {
    let b = raw.as_bytes();
    // Digits with at most one dot, too long for `plain_decimal`.
    if !b.is_empty()
        && b.len() <= 24
        && b.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        && b.iter().filter(|c| **c == b'.').count() <= 1
        && b != b"."
    {
        let seconds: f64 = raw.parse().map_err(|_| BadTime::Unparseable)?;
        return Duration::try_from_secs_f64(seconds)
            .map(Some)
            .map_err(|_| BadTime::NotFinite);
    }
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("sec").or_else(|| s.strip_suffix('s')) {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let number = number.trim_end();
    // Reject what Rust's float parser would accept but no tool means: "inf", "NaN", "infinity".
    if !number
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b',' | b'e' | b'E' | b'+' | b'-'))
    {
        return Err(
            if number.eq_ignore_ascii_case("nan") || number.to_ascii_lowercase().contains("inf") {
                BadTime::NotFinite
            } else {
                BadTime::Unparseable
            },
        );
    }
    let value: f64 = if number.contains(',') {
        let commas = number.matches(',').count();
        if number.contains('.') || commas > 1 {
            if !thousands_grouped(number) {
                return Err(BadTime::Unparseable);
            }
            number.replace(',', "").parse()
        } else {
            number.replacen(',', ".", 1).parse()
        }
    } else {
        number.parse()
    }
    .map_err(|_| BadTime::Unparseable)?;
    let seconds = value * scale;
    if !seconds.is_finite() {
        Err(BadTime::NotFinite)
    } else if seconds < 0.0 {
        // -0 is zero, not negative.
        if seconds == 0.0 {
            Ok(Some(Duration::ZERO))
        } else {
            Err(BadTime::Negative)
        }
    } else {
        Duration::try_from_secs_f64(seconds)
            .map(Some)
            .map_err(|_| BadTime::NotFinite)
    }
}

/// What nearly every tool writes, read without a float: up to 6 integer digits, optionally a
/// dot and up to 9 fractional digits (`1.503`, `0.`, `.5`, `12`). Exact in nanoseconds, and
/// the same value as through `f64`, which is exact to the nanosecond below 10^6 s.
#[inline(always)]
fn plain_decimal(b: &[u8]) -> Option<Duration> {
    // Values are a few bytes long: a plain search beats memchr's call.
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b""[..]),
    };
    if int.len() > 6 || frac.len() > 9 || int.len() + frac.len() == 0 {
        return None;
    }
    let mut secs = 0u64;
    for &d in int {
        if !d.is_ascii_digit() {
            return None;
        }
        secs = secs * 10 + u64::from(d - b'0');
    }
    let mut nanos = 0u32;
    for &d in frac {
        if !d.is_ascii_digit() {
            return None;
        }
        nanos = nanos * 10 + u32::from(d - b'0');
    }
    const SCALE: [u32; 10] = [
        1_000_000_000,
        100_000_000,
        10_000_000,
        1_000_000,
        100_000,
        10_000,
        1_000,
        100,
        10,
        1,
    ];
    Some(Duration::new(secs, nanos * SCALE[frac.len()]))
}

/// True when the commas in the integer part separate groups of three digits (`2,503.1`).
fn thousands_grouped(number: &str) -> bool {
    let int = number.split(['.', 'e', 'E']).next().unwrap_or("");
    let int = int.trim_start_matches(['+', '-']);
    let mut groups = int.split(',');
    let first = groups.next().unwrap_or("");
    (1..=3).contains(&first.len()) && groups.all(|g| g.len() == 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok: &[(&str, Option<f64>)] = &[
            ("", None),
            ("   ", None),
            ("0", Some(0.0)),
            ("1.25", Some(1.25)),
            (" 1.25 ", Some(1.25)),
            ("0.", Some(0.0)),
            ("3.", Some(3.0)),
            (".5", Some(0.5)),
            ("1e-3", Some(0.001)),
            ("1.5E+2", Some(150.0)),
            ("2,503.1", Some(2503.1)),
            ("1,234,567", Some(1234567.0)),
            ("0,288", Some(0.288)),
            ("1.2s", Some(1.2)),
            ("1.2 s", Some(1.2)),
            ("350ms", Some(0.35)),
            ("12us", Some(0.000012)),
            ("2sec", Some(2.0)),
            ("-0", Some(0.0)),
            ("+4", Some(4.0)),
            ("12345678901234567890.5", Some(12345678901234567890.5)),
        ];
        for (raw, want) in ok {
            let got = parse_seconds(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            let got = got.map(|d| d.as_secs_f64());
            match (got, want) {
                (None, None) => {}
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{raw:?}: {g} != {w}"),
                _ => panic!("{raw:?}: {got:?} != {want:?}"),
            }
        }
        let bad: &[(&str, BadTime)] = &[
            ("-1", BadTime::Negative),
            ("-0.5ms", BadTime::Negative),
            ("NaN", BadTime::NotFinite),
            ("inf", BadTime::NotFinite),
            ("-Infinity", BadTime::NotFinite),
            ("1e400", BadTime::NotFinite),
            ("abc", BadTime::Unparseable),
            ("<<computed>>", BadTime::Unparseable),
            ("1.2.3", BadTime::Unparseable),
            ("12,34,5", BadTime::Unparseable),
            ("1,2,3.4", BadTime::Unparseable),
            ("ms", BadTime::Unparseable),
            ("1h", BadTime::Unparseable),
            (".", BadTime::Unparseable),
            ("1e999999", BadTime::NotFinite),
        ];
        for (raw, want) in bad {
            assert_eq!(parse_seconds(raw), Err(want.clone()), "{raw:?}");
        }
    }

    #[test]
    fn plain_decimals_read_as_through_f64() {
        // The float-free fast path must give the nanosecond the float path gives.
        let mut rand = super::super::test_rng();
        for _ in 0..100_000 {
            let int = rand() % 1_000_000;
            let digits = (rand() % 10) as usize;
            let frac = rand() % 10u64.pow(digits as u32);
            let raw = match (digits, rand() % 3) {
                (0, 0) => format!("{int}"),
                (0, 1) => format!("{int}."),
                (0, _) => format!(".{}", int % 1000),
                _ => format!("{int}.{frac:0digits$}"),
            };
            let fast = plain_decimal(raw.as_bytes()).unwrap_or_else(|| panic!("{raw:?}"));
            let float = Duration::try_from_secs_f64(raw.parse::<f64>().unwrap()).unwrap();
            assert_eq!(fast, float, "{raw:?}");
        }
        for slow in [
            "1234567.5",
            "0.1234567891",
            ".",
            "",
            "1e3",
            "1.2.3",
            "+1",
            " 1",
        ] {
            assert_eq!(plain_decimal(slow.as_bytes()), None, "{slow:?}");
        }
    }
}
