//! The S3 key layout `{prefix}{job}/{branch}/{build}/{file}`, its parsing, and name sanitising.
//!
//! Keys handled here are relative to the store's root (the store adds its own prefix).
//! Parse keys from the right: file, build, branch, then the rest is the job.
//!
//! # Name rules (nothing is silently rewritten except the branch encoding)
//!
//! Every name that becomes part of a key is checked, and a bad one is **rejected** with an error
//! that says which name and why; nothing is guessed or silently normalised:
//!
//! - A **segment** (one `/`-separated part) is 1 to [`MAX_SEGMENT_BYTES`] bytes of UTF-8, is not
//!   `.` or `..`, and holds no control character (U+0000–U+001F, U+007F–U+009F) and no
//!   backslash (a Windows path separator).
//! - A **job** is one or more segments joined by `/` (Jenkins folders): no leading or trailing
//!   `/`, no empty segment (`a//b`), at most [`MAX_JOB_BYTES`] bytes, and its first segment is not
//!   `_ci-test-metrics` in any letter case (the reserved prefix [`RESERVED_PREFIX`]).
//! - A **branch** is first encoded as Jenkins' branch-api `NameEncoder` does ([`encode_branch`]:
//!   `%`, `/`, `\`, `?`, `#`, `[`, `]` become `%25`, `%2F`, `%5C`, `%3F`, `%23`, `%5B`, `%5D`;
//!   `""`, `.` and `..` become `%00`, `%2E` and `%2E.`), then the encoded form must be a segment.
//! - A **file** name is the uploaded file's path relative to its pattern's base, encoded into one
//!   segment by [`encode_file_path`] (`a/junit.xml` → `a%2Fjunit.xml`); it must be a segment and
//!   must not be [`CONTEXT_FILE`], which only the uploader writes.
//! - A whole relative **key** is at most [`MAX_KEY_BYTES`] bytes (S3's limit is 1024 including
//!   the store's prefix).

use thiserror::Error;

/// The reserved prefix for the aggregator's ledger and summaries. Uploads never write here.
pub const RESERVED_PREFIX: &str = "_ci-test-metrics/";
/// The arrivals index's top folder, beside the reserved prefix (the `arrivals` module writes and
/// parses its keys).
pub const ARRIVALS_PREFIX: &str = "_ci-test-metrics-arrivals/";
/// The per-build context file, written last: its presence marks the build's upload complete.
pub const CONTEXT_FILE: &str = "context.json";

#[derive(Debug, Clone, Error, PartialEq)]
pub enum LayoutError {
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },
}

/// The longest segment (a file system's file-name limit, with room for nothing else).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// The longest job name.
pub const MAX_JOB_BYTES: usize = 512;
/// The longest relative key.
pub const MAX_KEY_BYTES: usize = 1000;

/// One build: job (Jenkins full name without the branch leaf), encoded branch, build number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildId {
    pub job: String,
    /// Jenkins' encoded branch name (`feature%2Ffoo`).
    pub branch: String,
    pub build: u64,
}

impl BuildId {
    /// `{job}/{branch}/{build}/`
    pub fn prefix(&self) -> String {
        format!("{}/{}/{}/", self.job, self.branch, self.build)
    }
    /// The key of one file of this build.
    pub fn key(&self, file: &str) -> String {
        format!("{}{}", self.prefix(), file)
    }

    /// Reads `{job}/{branch}/{build}` (as [`BuildId`] displays), from the right, with the same
    /// checks as [`parse_key`].
    pub fn from_path(path: &str) -> Result<BuildId, LayoutError> {
        let key = format!("{path}/{CONTEXT_FILE}");
        parse_key(&key).map(|(id, _)| id).map_err(|e| match e {
            LayoutError::Invalid { what, reason, .. } => LayoutError::Invalid {
                what,
                value: path.to_string(),
                reason,
            },
        })
    }
}

impl std::fmt::Display for BuildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.job, self.branch, self.build)
    }
}

/// Splits a relative key into its build and file name, from the right.
pub fn parse_key(key: &str) -> Result<(BuildId, &str), LayoutError> {
    let invalid = |reason: &str| LayoutError::Invalid {
        what: "key",
        value: key.to_string(),
        reason: reason.to_string(),
    };
    let mut parts = key.rsplitn(4, '/');
    let file = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("no file name"))?;
    let build = parts.next().ok_or_else(|| invalid("no build number"))?;
    let branch = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("no branch"))?;
    let job = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("no job"))?;
    // Digits only: `+5` or ` 5` would name build 5 but not its key.
    let build = Some(build)
        .filter(|b| b.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|b| b.parse::<u64>().ok())
        .ok_or_else(|| invalid("build is not a number"))?;
    Ok((
        BuildId {
            job: job.to_string(),
            branch: branch.to_string(),
            build,
        },
        file,
    ))
}

fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> LayoutError {
    LayoutError::Invalid {
        what,
        value: shorten(value),
        reason: reason.into(),
    }
}

/// Keeps error messages readable when someone passes a 2000-character name.
fn shorten(value: &str) -> String {
    const MAX: usize = 80;
    match value.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

/// Checks one `/`-free part of a key (see the module's rules).
pub fn check_segment(what: &'static str, value: &str) -> Result<(), LayoutError> {
    if value.is_empty() {
        return Err(invalid(what, value, "it is empty"));
    }
    if value == "." || value == ".." {
        return Err(invalid(what, value, "`.` and `..` are not names"));
    }
    if value.len() > MAX_SEGMENT_BYTES {
        return Err(invalid(
            what,
            value,
            format!(
                "it is {} bytes long; the limit is {MAX_SEGMENT_BYTES}",
                value.len()
            ),
        ));
    }
    if value.contains('/') {
        return Err(invalid(what, value, "it contains `/`"));
    }
    if value.contains('\\') {
        return Err(invalid(
            what,
            value,
            "it contains a backslash (a Windows path separator)",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(what, value, "it contains a control character"));
    }
    Ok(())
}

/// Checks a job name: `/`-separated Jenkins folders, none of them reserved.
pub fn check_job(job: &str) -> Result<(), LayoutError> {
    if job.starts_with('/') {
        return Err(invalid("job", job, "it starts with `/`"));
    }
    if job.ends_with('/') {
        return Err(invalid("job", job, "it ends with `/`"));
    }
    if job.len() > MAX_JOB_BYTES {
        return Err(invalid(
            "job",
            job,
            format!(
                "it is {} bytes long; the limit is {MAX_JOB_BYTES}",
                job.len()
            ),
        ));
    }
    for segment in job.split('/') {
        check_segment("job", segment).map_err(|e| match e {
            LayoutError::Invalid { reason, .. } => {
                invalid("job", job, format!("segment {segment:?}: {reason}"))
            }
        })?;
    }
    if is_reserved(job) {
        return Err(invalid(
            "job",
            job,
            format!("{RESERVED_PREFIX} is reserved for the aggregator"),
        ));
    }
    Ok(())
}

/// True when `key` lies under [`RESERVED_PREFIX`] or the arrivals index
/// ([`ARRIVALS_PREFIX`]), in any letter case (a case-insensitive file system
/// would put `_CI-Test-Metrics/` in the same place).
pub fn is_reserved(key: &str) -> bool {
    let first = key.split('/').next().unwrap_or("");
    [RESERVED_PREFIX, ARRIVALS_PREFIX]
        .iter()
        .any(|p| first.eq_ignore_ascii_case(p.trim_end_matches('/')))
}

/// True when a path segment starts with `_ci-test-metrics`, in any letter case: the tool's own
/// areas (`_ci-test-metrics/` and any later sibling such as an arrivals index). A store whose
/// prefix or directory has such a segment would put uploads inside another store's reserved area.
pub fn is_reserved_segment(segment: &str) -> bool {
    let reserved = RESERVED_PREFIX.trim_end_matches('/');
    segment
        .get(..reserved.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(reserved))
}

/// Jenkins' branch-api `NameEncoder`: the form multibranch projects use for branch jobs
/// (`feature/foo` → `feature%2Ffoo`). Only `%`, `/`, `\`, `?`, `#`, `[` and `]` are escaped;
/// the empty name, `.` and `..` get just enough escaping to stop being path segments.
pub fn encode_branch(raw: &str) -> String {
    match raw {
        "" => return "%00".into(),
        "." => return "%2E".into(),
        ".." => return "%2E.".into(),
        _ => {}
    }
    let mut out = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        match c {
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '?' => out.push_str("%3F"),
            '[' => out.push_str("%5B"),
            '\\' => out.push_str("%5C"),
            ']' => out.push_str("%5D"),
            c => out.push(c),
        }
    }
    out
}

/// A result file's stored name: its path relative to the pattern's base, as one key segment.
/// `%` becomes `%25` and `/` becomes `%2F`, as Jenkins encodes branches, so `a/junit.xml` and
/// `b/junit.xml` are `a%2Fjunit.xml` and `b%2Fjunit.xml`, a flat `r.xml` stays `r.xml`, and no two
/// paths share a name. Each part must be a segment (no `.`, `..`, backslash or control
/// character); the result must be a valid file name ([`check_file_name`]).
pub fn encode_file_path(parts: &[&str]) -> Result<String, LayoutError> {
    let joined = parts.join("/");
    if parts.is_empty() {
        return Err(invalid("file name", &joined, "it is empty"));
    }
    for part in parts {
        check_segment("file name", part).map_err(|e| match e {
            LayoutError::Invalid { reason, .. } => {
                invalid("file name", &joined, format!("part {part:?}: {reason}"))
            }
        })?;
    }
    let name = parts
        .iter()
        .map(|p| p.replace('%', "%25"))
        .collect::<Vec<_>>()
        .join("%2F");
    check_file_name(&name)?;
    Ok(name)
}

/// Checks a result file's base name.
pub fn check_file_name(name: &str) -> Result<(), LayoutError> {
    check_segment("file name", name)?;
    if name == CONTEXT_FILE {
        return Err(invalid(
            "file name",
            name,
            format!("{CONTEXT_FILE} is written by the uploader itself; rename the result file"),
        ));
    }
    Ok(())
}

impl BuildId {
    /// A checked build from a job, a **raw** branch name (encoded here) and a build number.
    pub fn new(job: &str, raw_branch: &str, build: u64) -> Result<BuildId, LayoutError> {
        check_job(job)?;
        let branch = encode_branch(raw_branch);
        check_segment("branch", &branch)?;
        Ok(BuildId {
            job: job.to_string(),
            branch,
            build,
        })
    }

    /// The key of one result file, with its name checked.
    pub fn file_key(&self, name: &str) -> Result<String, LayoutError> {
        check_file_name(name)?;
        let key = self.key(name);
        if key.len() > MAX_KEY_BYTES {
            return Err(invalid(
                "key",
                &key,
                format!(
                    "it is {} bytes long; the limit is {MAX_KEY_BYTES}",
                    key.len()
                ),
            ));
        }
        Ok(key)
    }

    /// The key of this build's `context.json`.
    pub fn context_key(&self) -> String {
        self.key(CONTEXT_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_branch_like_jenkins() {
        let table = [
            ("master", "master"),
            ("PR-16336", "PR-16336"),
            ("feature/foo", "feature%2Ffoo"),
            ("a%2Fb", "a%252Fb"),
            ("x?y#z", "x%3Fy%23z"),
            ("[v]", "%5Bv%5D"),
            ("a\\b", "a%5Cb"),
            ("", "%00"),
            (".", "%2E"),
            ("..", "%2E."),
            ("...", "..."),
            ("../x", "..%2Fx"),
            ("ünï:cødé", "ünï:cødé"),
        ];
        for (raw, want) in table {
            assert_eq!(encode_branch(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn jobs() {
        let long = "j".repeat(2000);
        let ok = [
            "mxnet-validation/unix-cpu",
            "a",
            "a b/c.d",
            "_ci-test-metrics-x/y",
        ];
        for job in ok {
            assert_eq!(check_job(job), Ok(()), "{job:?}");
        }
        let bad = [
            "",
            "/abs",
            "a/",
            "a//b",
            "../x",
            "a/../b",
            "a/./b",
            "..",
            "a\\b",
            "a\u{0}b",
            "a\nb",
            "a\u{7f}",
            "a\u{85}",
            "_ci-test-metrics",
            "_ci-test-metrics/summaries",
            "_CI-Test-Metrics/x",
            long.as_str(),
        ];
        for job in bad {
            assert!(check_job(job).is_err(), "{job:?} should be rejected");
        }
    }

    #[test]
    fn file_names() {
        let ok = [
            "results.xml",
            "nosetests_unittest.xml",
            ".hidden",
            "a..b",
            "é.xml",
        ];
        for name in ok {
            assert_eq!(check_file_name(name), Ok(()), "{name:?}");
        }
        let long = "f".repeat(2000);
        let bad = [
            "",
            ".",
            "..",
            "a/b",
            "/abs",
            "a\\b",
            "C:\\x.xml",
            "a\tb",
            "context.json",
            long.as_str(),
        ];
        for name in bad {
            assert!(
                check_file_name(name).is_err(),
                "{name:?} should be rejected"
            );
        }
    }

    #[test]
    fn file_paths_are_one_segment() {
        let ok: &[(&[&str], &str)] = &[
            (&["r.xml"], "r.xml"),
            (&["a", "junit.xml"], "a%2Fjunit.xml"),
            (&["a", "b", "junit.xml"], "a%2Fb%2Fjunit.xml"),
            (&["100%", "r.xml"], "100%25%2Fr.xml"),
            (&["a%2Fjunit.xml"], "a%252Fjunit.xml"),
            (&["sub", "context.json"], "sub%2Fcontext.json"),
            (&["é", "r.xml"], "é%2Fr.xml"),
        ];
        for (parts, want) in ok {
            assert_eq!(encode_file_path(parts).as_deref(), Ok(*want), "{parts:?}");
        }
        // Distinct paths never share a name.
        assert_ne!(
            encode_file_path(&["a%2Fb"]).unwrap(),
            encode_file_path(&["a", "b"]).unwrap()
        );
        let long = "d".repeat(200);
        let bad: &[&[&str]] = &[
            &[],
            &["context.json"],
            &["..", "r.xml"],
            &[".", "r.xml"],
            &["a", ""],
            &["a\\b", "r.xml"],
            &["a\tb", "r.xml"],
            &[long.as_str(), long.as_str()],
        ];
        for parts in bad {
            let encoded = encode_file_path(parts);
            assert!(encoded.is_err(), "{parts:?} should be rejected");
            if let Ok(name) = encoded {
                assert!(!name.contains('/'));
            }
        }
    }

    #[test]
    fn reserved_segments() {
        for s in [
            "_ci-test-metrics",
            "_CI-Test-Metrics",
            "_ci-test-metrics-arrivals",
        ] {
            assert!(is_reserved_segment(s), "{s}");
        }
        for s in ["ci-test-metrics", "x_ci-test-metrics", "_ci-test", ""] {
            assert!(!is_reserved_segment(s), "{s}");
        }
    }

    #[test]
    fn build_ids_and_keys() {
        let b = BuildId::new("mxnet-validation/unix-cpu", "feature/foo", 7).unwrap();
        assert_eq!(b.branch, "feature%2Ffoo");
        assert_eq!(
            b.file_key("r.xml").unwrap(),
            "mxnet-validation/unix-cpu/feature%2Ffoo/7/r.xml"
        );
        assert_eq!(
            b.context_key(),
            "mxnet-validation/unix-cpu/feature%2Ffoo/7/context.json"
        );
        // Branches cannot escape: `..` and `/` are encoded.
        let b = BuildId::new("j", "..", 1).unwrap();
        assert_eq!(b.key("f"), "j/%2E./1/f");
        let b = BuildId::new("j", "../../etc", 1).unwrap();
        assert_eq!(b.key("f"), "j/..%2F..%2Fetc/1/f");
        assert!(BuildId::new("j", "a\nb", 1).is_err());
        assert!(BuildId::new("j", &"b".repeat(300), 1).is_err());
        assert!(BuildId::new("_ci-test-metrics", "b", 1).is_err());
        // A key stays under the limit.
        let b = BuildId::new(
            &["j".repeat(250), "k".repeat(250)].join("/"),
            &"b".repeat(250),
            1,
        )
        .unwrap();
        assert!(b.file_key(&"f".repeat(250)).is_err());
        // Parsing from the right gives the same build back.
        let b = BuildId::new("a/b/c", "feature/x", 12).unwrap();
        let key = b.file_key("r.xml").unwrap();
        assert_eq!(parse_key(&key).unwrap(), (b, "r.xml"));
    }

    #[test]
    fn reserved_prefix() {
        for key in [
            "_ci-test-metrics/x",
            "_CI-TEST-METRICS/x",
            "_ci-test-metrics",
            "_ci-test-metrics-arrivals/2026/x",
        ] {
            assert!(is_reserved(key), "{key}");
        }
        for key in [
            "x/_ci-test-metrics/y",
            "_ci-test-metricsx/y",
            "ci-test-metrics/x",
        ] {
            assert!(!is_reserved(key), "{key}");
        }
    }
}
