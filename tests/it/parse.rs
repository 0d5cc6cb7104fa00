//! Integration tests: the parser over the shared real-world corpus and the fixtures, and the
//! `parse` command's output contract and exit codes.

use crate::common;
use ci_test_metrics::junit::{self, Report, Status};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Corpus files whose expectation (from EnricoMi/publish-unit-test-result-action, i.e.
/// junitparser + lxml) we deliberately do not follow, with the reason.
const DELIBERATE: &[(&str, &str)] = &[
    (
        "junit-xml/no-attributes.xml",
        "it drops <testcase> elements without a name; we count every <testcase> element (4)",
    ),
    (
        "xunit/mstest/jenkinsci/testcase3.junit-xml",
        "it reads time=\"0,014\" as 14 s (comma dropped); a single comma is a decimal comma: 0.014 s",
    ),
];

/// `.exception` expectations whose subject is not in the corpus: they describe the original
/// NUnit XML, of which only the `.junit-xml` conversion was copied (and that one parses, as its
/// `.results` says).
const EXCEPTION_SUBJECT_ABSENT: &[&str] = &["NUnit-sec1752-file", "NUnit-sec1752-https"];

fn fixtures() -> PathBuf {
    common::repo().join("tests/fixtures/junit")
}

/// Every file under `dir` (recursively) whose name ends with one of `exts`, sorted.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if exts.iter().any(|x| path.to_string_lossy().ends_with(x)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `dir/stem.ext` → `dir/stem` (the expectations' base name).
fn base(path: &Path) -> PathBuf {
    path.with_extension("")
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parse_no_panic(path: &Path) -> Result<Report, String> {
    std::panic::catch_unwind(|| junit::parse_path(path)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn corpus_agrees_with_expectations() {
    let corpus = common::corpus();
    if !corpus.is_dir() {
        let msg = format!(
            "corpus: {} is absent, so the corpus test did not run",
            corpus.display()
        );
        if std::env::var_os("CI").is_some() {
            panic!("{msg} (CI is set, so this is a failure)");
        }
        eprintln!("{msg}");
        return;
    }
    let inputs = files(&corpus, &[".xml", ".junit-xml", ".trx"]);
    assert!(
        inputs.len() >= 150,
        "corpus: only {} files found",
        inputs.len()
    );

    let mut panics = Vec::new();
    let mut reports = BTreeMap::new();
    for path in &inputs {
        match parse_no_panic(path) {
            Ok(r) => {
                reports.insert(path.clone(), r);
            }
            Err(msg) => panics.push(format!("{}: {msg}", path.display())),
        }
    }

    let mut problems = Vec::new();
    let mut deliberate_seen = Vec::new();
    let (mut expectations, mut agreed) = (0, 0);
    let (mut cases_total, mut cases_status, mut cases_time) = (0, 0, 0);
    let mut errors_expected = 0;
    let mut errors_reported = 0;

    // `.results`: counts, statuses and times of the cases, or an expected error.
    for results in files(&corpus, &[".results"]) {
        let b = base(&results);
        let Some((input, report)) = [".xml", ".junit-xml"]
            .iter()
            .map(|x| with_suffix(&b, x))
            .find_map(|p| reports.get(&p).map(|r| (p, r)))
        else {
            continue; // the subject panicked (already counted) or is absent
        };
        expectations += 1;
        let text = std::fs::read_to_string(&results).unwrap();
        let expected = py::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", results.display()));
        let short = input.strip_prefix(&corpus).unwrap().display().to_string();
        let mut diffs = Vec::new();
        let expected_errors = expected.field("errors").map_or(0, |e| e.list().len());
        if expected_errors > 0 {
            errors_expected += 1;
            if report.error.is_some() {
                errors_reported += 1;
            } else {
                diffs.push("expected an error, got none".to_string());
            }
        } else if let Some(e) = &report.error {
            diffs.push(format!("unexpected error: {e}"));
        }
        let want = expected.field("cases").map(|c| c.list()).unwrap_or(&[]);
        cases_total += want.len();
        if want.len() != report.cases.len() {
            diffs.push(format!(
                "{} cases expected, {} read",
                want.len(),
                report.cases.len()
            ));
        }
        // Order is not part of a report's meaning (the NUnit conversions reorder cases), so both
        // sides are sorted by identity, then by outcome for repeated identities.
        let mut want: Vec<(String, String, Status, Option<f64>)> = want
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let text = |k: &str| w.field(k).and_then(|v| v.str()).unwrap_or("").to_string();
                let status = match w.field("result").and_then(|r| r.str()) {
                    Some("success") => Status::Passed,
                    Some("skipped") | Some("disabled") => Status::Skipped,
                    Some("failure") => Status::Failed,
                    Some("error") => Status::Error,
                    other => panic!("{}: case {i}: unknown result {other:?}", results.display()),
                };
                let time = w.field("time").and_then(|t| t.num());
                (text("class_name"), text("test_name"), status, time)
            })
            .collect();
        let mut got: Vec<(String, String, Status, Option<f64>)> = report
            .cases
            .iter()
            .map(|c| {
                let time = c.time.map(|t| t.as_secs_f64());
                (c.classname.clone(), c.name.clone(), c.status, time)
            })
            .collect();
        let order = |a: &(String, String, Status, Option<f64>),
                     b: &(String, String, Status, Option<f64>)| {
            (&a.0, &a.1, a.2)
                .cmp(&(&b.0, &b.1, b.2))
                .then(a.3.unwrap_or(-1.0).total_cmp(&b.3.unwrap_or(-1.0)))
        };
        want.sort_by(order);
        got.sort_by(order);
        for (w, g) in want.iter().zip(&got) {
            let case = format!("{}::{}", w.0, w.1);
            if (&w.0, &w.1) != (&g.0, &g.1) {
                diffs.push(format!("case {case}: {}::{} read in its place", g.0, g.1));
            }
            if w.2 == g.2 {
                cases_status += 1;
            } else {
                diffs.push(format!(
                    "case {case}: status {:?} expected, {:?} read",
                    w.2, g.2
                ));
            }
            let (want_time, got_time) = (w.3, g.3);
            let same = match (want_time, got_time) {
                (None, None) => true,
                (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * a.abs().max(1.0),
                _ => false,
            };
            if same {
                cases_time += 1;
            } else {
                diffs.push(format!(
                    "case {case}: time {want_time:?} expected, {got_time:?} read"
                ));
            }
        }
        match DELIBERATE.iter().find(|(f, _)| short.ends_with(f)) {
            Some((f, why)) => {
                deliberate_seen.push(*f);
                if diffs.is_empty() {
                    problems.push(format!("{short}: listed as deliberate ({why}) but agrees"));
                }
            }
            None if diffs.is_empty() => agreed += 1,
            None => problems.push(format!("{short}:\n    {}", diffs.join("\n    "))),
        }
    }

    // `.exception`: an error must be reported.
    let mut exceptions = 0;
    let mut exceptions_absent = 0;
    for exception in files(&corpus, &[".exception"]) {
        let b = base(&exception);
        let subject = with_suffix(&b, ".xml");
        let stem = b.file_name().unwrap().to_string_lossy().to_string();
        if !subject.exists() {
            assert!(
                EXCEPTION_SUBJECT_ABSENT.contains(&stem.as_str()),
                "{}: subject {} missing and not listed",
                exception.display(),
                subject.display()
            );
            exceptions_absent += 1;
            continue;
        }
        exceptions += 1;
        match reports.get(&subject) {
            Some(r) if r.error.is_some() => {}
            Some(_) => problems.push(format!(
                "{}: expected an error (see {}), got none",
                subject.display(),
                exception.display()
            )),
            None => {} // panicked: counted above
        }
    }

    // dorny/test-reporter's rendered reports: per-file passed / failed (their failed includes
    // our error) / skipped, in rows like `|[fixtures/x.xml](#r0)|4207 ✅|2 ❌|30 ⚪|166s|`.
    let dorny = corpus.join("dorny-test-reporter/__tests__");
    let (mut rows, mut rows_agree, mut rows_absent) = (0, 0, 0);
    for md in files(&dorny.join("__outputs__"), &[".md"]) {
        for line in std::fs::read_to_string(&md).unwrap().lines() {
            let Some(rest) = line.strip_prefix("|[") else {
                continue;
            };
            let Some((path, cells)) = rest.split_once("](") else {
                continue;
            };
            let cells: Vec<&str> = cells.split('|').collect();
            if !path.starts_with("fixtures/") || cells.len() < 4 {
                continue;
            }
            let subject = dorny.join(path);
            let Some(r) = reports.get(&subject) else {
                rows_absent += 1;
                continue;
            };
            rows += 1;
            let n = |cell: &str| -> usize {
                let digits: String = cell.chars().filter(char::is_ascii_digit).collect();
                digits.parse().unwrap_or(0)
            };
            let want = [n(cells[1]), n(cells[2]), n(cells[3])];
            let got = [
                r.count(Status::Passed),
                r.count(Status::Failed) + r.count(Status::Error),
                r.count(Status::Skipped),
            ];
            if want == got && r.error.is_none() {
                rows_agree += 1;
            } else {
                problems.push(format!(
                    "{} ({}): passed/failed/skipped {want:?} expected, {got:?} read",
                    path,
                    md.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }

    for (f, why) in DELIBERATE {
        assert!(
            deliberate_seen.contains(f),
            "deliberate difference {f} ({why}) matched no file"
        );
    }
    let parsed_ok = reports.values().filter(|r| r.error.is_none()).count();
    let summary = format!(
        "corpus: {} files, {} panics, {} parsed without error, {} with errors\n\
         corpus: {agreed}/{expectations} .results expectations agree ({} deliberate differences); \
         cases {cases_total}: status {cases_status}/{cases_total}, time {cases_time}/{cases_total}; \
         expected errors reported {errors_reported}/{errors_expected}\n\
         corpus: {exceptions} .exception expectations checked ({exceptions_absent} skipped: subject not in the corpus)\n\
         corpus: {rows_agree}/{rows} dorny-test-reporter report rows agree on passed/failed/skipped \
         ({rows_absent} rows name files not in the corpus)",
        inputs.len(),
        panics.len(),
        parsed_ok,
        reports.len() - parsed_ok,
        DELIBERATE.len(),
    );
    // Written past the test harness's capture, so the figures always show.
    let _ = writeln!(std::io::stderr(), "{summary}");
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A tolerant reader of the Python `repr` in `.results` files: calls with keyword arguments,
/// lists, tuples, strings (adjacent ones joined), numbers, `None`; other names are kept as names. Only what the test needs.
mod py {
    #[derive(Debug)]
    pub enum Value {
        None,
        Num(f64),
        Str(String),
        List(Vec<Value>),
        Call(Vec<(Option<String>, Value)>),
        Name(String),
    }

    impl Value {
        pub fn field(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Call(args) => args
                    .iter()
                    .find(|(k, _)| k.as_deref() == Some(key))
                    .map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn list(&self) -> &[Value] {
            match self {
                Value::List(v) => v,
                _ => &[],
            }
        }
        pub fn str(&self) -> Option<&str> {
            match self {
                Value::Str(s) => Some(s),
                _ => None,
            }
        }
        pub fn num(&self) -> Option<f64> {
            match self {
                Value::Num(n) => Some(*n),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = P {
            s: text.chars().collect(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing text at {}", p.i));
        }
        Ok(v)
    }

    struct P {
        s: Vec<char>,
        i: usize,
    }

    impl P {
        fn peek(&self) -> Option<char> {
            self.s.get(self.i).copied()
        }
        fn ws(&mut self) {
            while self.peek().is_some_and(char::is_whitespace) {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: char) -> bool {
            self.ws();
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn value(&mut self) -> Result<Value, String> {
            self.ws();
            match self.peek() {
                Some('[') => {
                    self.i += 1;
                    Ok(Value::List(self.items(']')?))
                }
                Some('(') => {
                    self.i += 1;
                    Ok(Value::List(self.items(')')?))
                }
                Some('\'') | Some('"') => {
                    // Adjacent literals concatenate, as in Python.
                    let mut out = self.string()?;
                    while {
                        self.ws();
                        matches!(self.peek(), Some('\'') | Some('"'))
                    } {
                        out.push_str(&self.string()?);
                    }
                    Ok(Value::Str(out))
                }
                Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                    let start = self.i;
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    {
                        self.i += 1;
                    }
                    let t: String = self.s[start..self.i].iter().collect();
                    t.parse()
                        .map(Value::Num)
                        .map_err(|_| format!("bad number {t:?}"))
                }
                Some(c) if c.is_alphabetic() || c == '_' => {
                    let start = self.i;
                    while self
                        .peek()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                    {
                        self.i += 1;
                    }
                    let name: String = self.s[start..self.i].iter().collect();
                    if matches!(self.peek(), Some('\'') | Some('"'))
                        && ["b", "r", "u", "rb", "br"].contains(&name.as_str())
                    {
                        return Ok(Value::Str(self.string()?));
                    }
                    if self.peek() == Some('(') {
                        self.i += 1;
                        return Ok(Value::Call(self.args()?));
                    }
                    Ok(match name.as_str() {
                        "None" => Value::None,
                        "inf" => Value::Num(f64::INFINITY),
                        "nan" => Value::Num(f64::NAN),
                        _ => Value::Name(name),
                    })
                }
                other => Err(format!("unexpected {other:?} at {}", self.i)),
            }
        }
        fn items(&mut self, close: char) -> Result<Vec<Value>, String> {
            let mut out = Vec::new();
            loop {
                if self.eat(close) {
                    return Ok(out);
                }
                out.push(self.value()?);
                if !self.eat(',') {
                    return if self.eat(close) {
                        Ok(out)
                    } else {
                        Err(format!("expected {close:?} at {}", self.i))
                    };
                }
            }
        }
        fn args(&mut self) -> Result<Vec<(Option<String>, Value)>, String> {
            let mut out = Vec::new();
            loop {
                if self.eat(')') {
                    return Ok(out);
                }
                let v = self.value()?;
                let arg = match v {
                    Value::Name(k) if self.eat('=') => (Some(k), self.value()?),
                    v => (None, v),
                };
                out.push(arg);
                if !self.eat(',') {
                    return if self.eat(')') {
                        Ok(out)
                    } else {
                        Err(format!("expected ')' at {}", self.i))
                    };
                }
            }
        }
        fn string(&mut self) -> Result<String, String> {
            let quote = self.s[self.i];
            self.i += 1;
            let mut out = String::new();
            loop {
                let c = self.peek().ok_or("unterminated string")?;
                self.i += 1;
                match c {
                    c if c == quote => return Ok(out),
                    '\\' => {
                        let e = self.peek().ok_or("unterminated escape")?;
                        self.i += 1;
                        let hex = |p: &mut P, n: usize| -> Result<char, String> {
                            let h: String =
                                p.s.get(p.i..p.i + n)
                                    .ok_or("short escape")?
                                    .iter()
                                    .collect();
                            p.i += n;
                            u32::from_str_radix(&h, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or(format!("bad escape {h:?}"))
                        };
                        out.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            '0' => '\0',
                            'x' => hex(self, 2)?,
                            'u' => hex(self, 4)?,
                            'U' => hex(self, 8)?,
                            other => other,
                        });
                    }
                    c => out.push(c),
                }
            }
        }
    }

    #[test]
    fn reads_results_repr() {
        let v = parse(
            "a.B(files=1, errors=[], cases=[a.C(name='it\\'s' \"!\", t=None, time=0.5, x=(1, 'b'))])",
        )
        .unwrap();
        let case = &v.field("cases").unwrap().list()[0];
        assert_eq!(case.field("name").unwrap().str(), Some("it's!"));
        assert_eq!(case.field("time").unwrap().num(), Some(0.5));
        assert!(matches!(case.field("t"), Some(Value::None)));
        assert_eq!(v.field("errors").unwrap().list().len(), 0);
    }
}

/// What a fixture must parse to: counts per status, summed time, and the error, if any.
struct Expect {
    file: &'static str,
    /// passed, failed, error, skipped
    counts: [usize; 4],
    time: f64,
    /// `line:column: message fragment` of the expected error.
    error: Option<&'static str>,
}

const FIXTURES: &[Expect] = &[
    Expect {
        file: "pytest-xunit1.xml",
        counts: [2, 1, 1, 2],
        time: 3.217,
        error: None,
    },
    Expect {
        file: "pytest-xunit2.xml",
        counts: [2, 1, 0, 1],
        time: 12.402,
        error: None,
    },
    Expect {
        file: "nose.xml",
        counts: [2, 1, 1, 1],
        time: 1.266,
        error: None,
    },
    Expect {
        file: "googletest.xml",
        counts: [3, 1, 0, 2],
        time: 3.001,
        error: None,
    },
    Expect {
        // Two flaky tests (junit::retry) are in none of the four counts.
        file: "surefire.xml",
        counts: [1, 1, 1, 1],
        time: 4.37,
        error: None,
    },
    Expect {
        file: "ant-nested.xml",
        counts: [4, 1, 0, 0],
        time: 2503.1,
        error: None,
    },
    Expect {
        file: "go-junit-report.xml",
        counts: [2, 1, 1, 1],
        time: 1.211,
        error: None,
    },
    Expect {
        file: "jest-junit.xml",
        counts: [2, 1, 0, 1],
        time: 1.26,
        error: None,
    },
    Expect {
        file: "phpunit.xml",
        counts: [2, 1, 0, 1],
        time: 0.052341,
        error: None,
    },
    Expect {
        file: "ctest.xml",
        counts: [2, 1, 0, 2],
        time: 0.9997,
        error: None,
    },
    Expect {
        file: "catch2.xml",
        counts: [2, 1, 1, 1],
        time: 0.012345,
        error: None,
    },
    Expect {
        file: "nextest.xml",
        counts: [3, 1, 0, 0],
        time: 1.934,
        error: None,
    },
    Expect {
        file: "nunit-converted.xml",
        counts: [1, 0, 0, 2],
        time: 0.001,
        error: None,
    },
    Expect {
        file: "trx-converted.xml",
        counts: [5, 5, 0, 1],
        time: 0.1180096,
        error: None,
    },
    Expect {
        file: "xunitnet-converted.xml",
        counts: [1, 1, 0, 1],
        time: 0.024,
        error: None,
    },
    Expect {
        file: "utf8-bom.xml",
        counts: [1, 1, 0, 0],
        time: 2.0,
        error: None,
    },
    Expect {
        file: "utf16le-bom.xml",
        counts: [1, 1, 0, 0],
        time: 2.0,
        error: None,
    },
    Expect {
        file: "utf16be-bom.xml",
        counts: [1, 1, 0, 0],
        time: 2.0,
        error: None,
    },
    Expect {
        file: "latin1.xml",
        counts: [1, 1, 0, 0],
        time: 2.0,
        error: None,
    },
    Expect {
        file: "times.xml",
        counts: [14, 0, 0, 0],
        time: 2509.938,
        error: None,
    },
    Expect {
        // Each rerun attempt is a case of its own until merged (junit::retry).
        file: "pytest-rerunfailures.xml",
        counts: [12, 1, 0, 1],
        time: 0.003,
        error: None,
    },
    Expect {
        file: "gradle-retry.xml",
        counts: [2, 4, 0, 0],
        time: 1.912,
        error: None,
    },
    Expect {
        file: "gradle-merge-reruns.xml",
        counts: [1, 1, 0, 1],
        time: 0.815,
        error: None,
    },
    Expect {
        file: "retry-odd-cases.xml",
        counts: [1, 2, 2, 1],
        time: 4.125,
        error: None,
    },
    Expect {
        file: "status-precedence.xml",
        counts: [2, 3, 2, 3],
        time: 0.0,
        error: None,
    },
    Expect {
        // The sum of its times saturates at Duration::MAX instead of panicking.
        file: "huge-times.xml",
        counts: [3, 0, 0, 0],
        time: 18_446_744_073_709_551_615.999_999_999,
        error: None,
    },
    Expect {
        file: "xxe.xml",
        counts: [1, 1, 0, 0],
        time: 0.3,
        error: None,
    },
    Expect {
        file: "billion-laughs.xml",
        counts: [1, 0, 0, 0],
        time: 1.0,
        error: None,
    },
    Expect {
        file: "truncated.xml",
        counts: [2, 0, 0, 0],
        time: 0.3,
        error: Some("6:5: malformed XML: syntax error: tag not closed"),
    },
    Expect {
        file: "mismatched.xml",
        counts: [1, 0, 0, 0],
        time: 1.0,
        error: Some("5:3: malformed XML: ill-formed document: expected `</testcase>`"),
    },
    Expect {
        // Found by the fuzzer: the fast path read `</ >` as closing an element named "".
        file: "fuzz-blank-end-tag.xml",
        counts: [0; 4],
        time: 0.0,
        error: Some(
            "1:14: malformed XML: ill-formed document: expected `</>`, but `</ >` was found",
        ),
    },
    Expect {
        file: "empty.xml",
        counts: [0; 4],
        time: 0.0,
        error: Some("1:1: empty file"),
    },
    Expect {
        file: "binary.xml",
        counts: [0; 4],
        time: 0.0,
        error: Some("1:1: not XML"),
    },
    Expect {
        file: "not-junit.xml",
        counts: [0; 4],
        time: 0.0,
        error: Some("2:1: not a JUnit report: the root element is <suites>"),
    },
];

#[test]
fn fixtures_parse_as_expected() {
    let mut listed: Vec<&str> = FIXTURES.iter().map(|e| e.file).collect();
    listed.sort();
    let mut present: Vec<String> = files(&fixtures(), &[".xml"])
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(listed, present, "every fixture has an expectation");

    for e in FIXTURES {
        let path = fixtures().join(e.file);
        let r = junit::parse_path(&path);
        let counts = [
            Status::Passed,
            Status::Failed,
            Status::Error,
            Status::Skipped,
        ]
        .map(|s| r.count(s));
        assert_eq!(
            counts, e.counts,
            "{}: passed, failed, error, skipped",
            e.file
        );
        let time = r.time().as_secs_f64();
        assert!(
            (time - e.time).abs() < 1e-9,
            "{}: time {time} != {}",
            e.file,
            e.time
        );
        match (e.error, &r.error) {
            (None, None) => {}
            (Some(want), Some(got)) => {
                let text = got.to_string();
                assert!(
                    text.starts_with(&path.display().to_string()),
                    "{text}: names the file"
                );
                assert!(
                    text.contains(want),
                    "{}: {text:?} does not contain {want:?}",
                    e.file
                );
                assert_eq!(r.partial(), !r.cases.is_empty(), "{}: partial", e.file);
            }
            (want, got) => panic!("{}: error {got:?}, expected {want:?}", e.file),
        }
    }
}

/// The case named `name` (the first one) in a fixture.
fn case(r: &Report, name: &str) -> junit::TestCase {
    r.cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{}: no case {name:?}", r.file))
        .clone()
}

#[test]
fn dialect_details() {
    let parse = |f: &str| junit::parse_path(&fixtures().join(f));

    // pytest: a call failure plus a teardown error are two testcases of the same test.
    let r = parse("pytest-xunit1.xml");
    let twins: Vec<Status> = r
        .cases
        .iter()
        .filter(|c| c.name == "test_update_user")
        .map(|c| c.status)
        .collect();
    assert_eq!(twins, [Status::Failed, Status::Error]);
    assert_eq!(
        case(&r, "test_get_user").file.as_deref(),
        Some("tests/test_api.py")
    );
    assert_eq!(case(&r, "test_get_user").suite, "pytest");

    // nose: bare <testsuite name="nosetests"> root, CDATA bodies with `<` and `&`.
    let r = parse("nose.xml");
    assert!(r.cases.iter().all(|c| c.suite == "nosetests"));
    assert_eq!(case(&r, "test_fetch").status, Status::Skipped);

    // googletest: "3." and "0." times; notrun/suppressed and result="skipped" are skipped.
    let r = parse("googletest.xml");
    assert_eq!(case(&r, "DividesByZero").time.unwrap().as_secs_f64(), 3.0);
    assert_eq!(case(&r, "Adds").time.unwrap().as_secs_f64(), 0.0);
    assert_eq!(case(&r, "NeedsGpu").status, Status::Skipped);
    assert_eq!(case(&r, "DISABLED_Slow").status, Status::Skipped);
    assert_eq!(case(&r, "Parses/1").suite, "Params/ParserTest");

    // Surefire: failed, then passed on a rerun is flaky; failed every rerun keeps its status
    // and counts the reruns as attempts.
    let r = parse("surefire.xml");
    assert_eq!(case(&r, "retriesPayment").status, Status::Flaky);
    assert_eq!(case(&r, "cachesPrices").status, Status::Flaky);
    assert_eq!(case(&r, "rejectsEmptyCart").status, Status::Failed);
    assert_eq!(case(&r, "rejectsEmptyCart").attempts, 3);
    assert_eq!(case(&r, "loadsLegacyOrders").status, Status::Error);
    assert_eq!(
        case(&r, "createsOrder").suite,
        "com.example.orders.OrderServiceTest"
    );
    let r = parse("nextest.xml");
    assert_eq!(
        case(&r, "pricing::tests::rounds_half_even").status,
        Status::Flaky
    );

    // Nested suites: the innermost enclosing suite names the case.
    let r = parse("ant-nested.xml");
    assert_eq!(
        case(&r, "migratesSchema").suite,
        "com.example.it.DatabaseIT"
    );
    assert_eq!(case(&r, "starts").suite, "com.example.it");
    assert_eq!(
        case(&r, "migratesSchema").time.unwrap().as_secs_f64(),
        1500.25
    );
    let r = parse("phpunit.xml");
    assert_eq!(
        case(&r, "testTransliterates with data set \"czech\"").suite,
        "App\\Tests\\Unit\\SlugTest::testTransliterates"
    );
    assert_eq!(case(&r, "testIntl").suite, "App\\Tests\\Unit\\SlugTest");

    // CTest: status="disabled" and "notrun".
    let r = parse("ctest.xml");
    assert_eq!(case(&r, "bench_smoke").status, Status::Skipped);
    assert_eq!(case(&r, "gpu_kernels").status, Status::Skipped);

    // Encodings all decode to the same names.
    for f in ["utf8-bom.xml", "utf16le-bom.xml", "utf16be-bom.xml"] {
        let r = parse(f);
        assert_eq!(r.cases[0].name, "test_naïve_café_✓", "{f}");
        assert_eq!(r.cases[1].name, "test_日本語", "{f}");
    }
    assert_eq!(parse("latin1.xml").cases[1].name, "test_gruß");

    // Times: odd spellings parse; bad ones are unknown, with a warning each.
    let r = parse("times.xml");
    let times: Vec<Option<f64>> = r
        .cases
        .iter()
        .map(|c| c.time.map(|t| t.as_secs_f64()))
        .collect();
    let want = [
        Some(1.25),
        Some(3.0),
        Some(0.25),
        Some(2503.1),
        Some(0.288),
        Some(1.2),
        Some(0.35),
        Some(0.5),
        None,
        None,
        None,
        None,
        None,
        None,
    ];
    for ((got, want), c) in times.iter().zip(want).zip(&r.cases) {
        match (got, want) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{}: {g} != {w}", c.name),
            (g, w) => assert_eq!(*g, w, "{}", c.name),
        }
    }
    assert_eq!(
        r.warnings
            .iter()
            .filter(|w| w.contains("taken as unknown"))
            .count(),
        4
    );

    // Status precedence: error > failure > skipped > passed, whatever the order of children.
    let r = parse("status-precedence.xml");
    let got: Vec<(&str, Status)> = r
        .cases
        .iter()
        .map(|c| (c.name.as_str(), c.status))
        .collect();
    assert_eq!(
        got,
        [
            ("skipped_failure_error", Status::Error),
            ("error_then_skipped", Status::Error),
            ("skipped_failure", Status::Failed),
            ("failure_then_skipped", Status::Failed),
            ("skipped", Status::Skipped),
            ("passed", Status::Passed),
            ("notrun_attr", Status::Skipped),
            ("suppressed_attr", Status::Skipped),
            ("disabled_attr_with_failure", Status::Failed),
            ("failure_in_grandchild", Status::Passed),
        ]
    );

    // Entities: DTD entities are never expanded or fetched; they stay as written.
    let r = parse("xxe.xml");
    assert_eq!(r.cases[0].name, "reads &xxe;");
    assert_eq!(r.cases[0].suite, "xxe &xxe;");
    assert_eq!(r.cases[1].name, "plain & ☺");
    assert!(!r.cases.iter().any(|c| c.name.contains("root:")));
    let r = parse("billion-laughs.xml");
    assert_eq!(r.cases[0].name, "&lol9;");

    // Declared totals that disagree give a warning; counts come from the cases.
    let r = junit::parse_bytes(
        "declared.xml",
        br#"<testsuite tests="9" failures="0"><testcase name="a"><failure/></testcase></testsuite>"#,
    );
    assert_eq!(r.tests(), 1);
    assert_eq!(r.declared.tests, Some(9));
    assert!(
        r.warnings.iter().any(|w| w.contains("tests=9")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("failures=0")),
        "{:?}",
        r.warnings
    );
}

/// Runs `parse` with `args` and returns (exit code, stdout, stderr).
fn run_parse(args: &[&str]) -> (i32, String, String) {
    let out = common::bin()
        .arg("parse")
        .args(args)
        .current_dir(fixtures())
        .output()
        .expect("run ci-test-metrics");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One JSON object per line of `parse`'s output.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn parse_command_json_lines() {
    let (code, stdout, stderr) = run_parse(&["pytest-xunit1.xml", "googletest.xml"]);
    assert_eq!(code, 0, "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 2);
    let keys: Vec<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "file", "tests", "passed", "failures", "errors", "skipped", "flaky", "retries", "time",
        "cases", "error", "partial",
    ];
    want.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, want);
    let first = &lines[0];
    assert_eq!(first["file"], "pytest-xunit1.xml");
    // test_update_user's call failure and teardown error are two cases in the file and one
    // test (junit::retry): error, as the most severe, with both times.
    assert_eq!(first["tests"], 5);
    assert_eq!(first["passed"], 2);
    assert_eq!(first["failures"], 0);
    assert_eq!(first["errors"], 1);
    assert_eq!(first["skipped"], 2);
    assert_eq!(first["flaky"], 0);
    assert_eq!(first["retries"], 0);
    assert_eq!(first["time"], 3.217);
    assert_eq!(first["error"], serde_json::Value::Null);
    assert_eq!(first["partial"], false);
    let cases = first["cases"].as_array().unwrap();
    let case = cases
        .iter()
        .find(|c| c["name"] == "test_update_user")
        .unwrap();
    let mut case_keys: Vec<&str> = case
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    case_keys.sort();
    assert_eq!(
        case_keys,
        ["attempts", "classname", "name", "status", "suite", "time"]
    );
    assert_eq!(case["suite"], "pytest");
    assert_eq!(case["classname"], "tests.test_api");
    assert_eq!(case["time"], 1.734);
    assert_eq!(case["status"], "error");
    assert_eq!(case["attempts"], 1);
    // pytest-rerunfailures: a bare case per rerun attempt is a failed attempt, not a pass.
    let (_, stdout, _) = run_parse(&["pytest-rerunfailures.xml"]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let counts = ["tests", "passed", "failures", "skipped", "flaky", "retries"].map(|k| &v[k]);
    assert_eq!(counts, [7, 1, 1, 1, 4, 7]);
    // googletest: time "0." is zero, not null; a missing time is null.
    assert_eq!(lines[1]["cases"][0]["time"], 0.0);
    let (_, stdout, _) = run_parse(&["times.xml"]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["cases"][8]["name"], "missing");
    assert_eq!(v["cases"][8]["time"], serde_json::Value::Null);
}

#[test]
fn parse_command_reports_broken_files_and_goes_on() {
    let (code, stdout, stderr) = run_parse(&["truncated.xml", "no-such-file.xml", "nose.xml"]);
    assert_eq!(code, 2, "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 3, "every file is printed");
    let truncated = &lines[0];
    assert_eq!(truncated["tests"], 2);
    assert_eq!(truncated["partial"], true);
    let error = truncated["error"].as_str().unwrap();
    assert!(error.starts_with("truncated.xml:6:5: "), "{error}");
    assert_eq!(lines[1]["partial"], false);
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("no-such-file.xml:"));
    assert_eq!(lines[2]["error"], serde_json::Value::Null);
    assert!(
        stderr.contains("truncated.xml:6:5"),
        "errors are logged too: {stderr}"
    );
}

#[test]
fn parse_command_table_and_usage() {
    let (code, stdout, stderr) =
        run_parse(&["--format", "table", "ant-nested.xml", "pytest-xunit2.xml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("FILE"), "{stdout}");
    assert!(stdout.contains("ant-nested.xml"), "{stdout}");
    assert!(stdout.contains("2503.100s"), "{stdout}");
    let slowest: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Slowest tests:"))
        .skip(2)
        .collect();
    assert_eq!(
        slowest.len(),
        9,
        "all nine timed cases (ten at most): {stdout}"
    );
    assert!(
        slowest[0].contains("com.example.it.DatabaseIT › migratesSchema  (ant-nested.xml)"),
        "{stdout}"
    );
    let (_, stdout, _) = run_parse(&[
        "--format",
        "table",
        "trx-converted.xml",
        "pytest-xunit1.xml",
    ]);
    let slowest = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Slowest tests:"))
        .skip(2);
    assert_eq!(slowest.count(), 10, "ten of 17 timed cases: {stdout}");

    for bad in [&[][..], &["--format", "xml", "nose.xml"][..]] {
        let (code, _, stderr) = run_parse(bad);
        assert_eq!(code, 1, "usage error for {bad:?}: {stderr}");
    }
    let (code, stdout, _) = run_parse(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("Examples:") && stdout.contains("--format"),
        "{stdout}"
    );
}

/// A generated file of `n` cases in one suite, case `i` taking `time(i)` seconds.
fn generated(dir: &Path, n: usize, time: impl Fn(usize) -> f64) -> PathBuf {
    let mut xml = String::from("<testsuite name='gen'>\n");
    for i in 0..n {
        let status = if i % 7 == 3 { "<failure/>" } else { "" };
        xml.push_str(&format!(
            "  <testcase classname='c{}' name='t{i}' time='{:.3}'>{status}</testcase>\n",
            i % 5,
            time(i)
        ));
    }
    xml.push_str("</testsuite>\n");
    let path = dir.join(format!("gen-{n}.xml"));
    std::fs::write(&path, xml).unwrap();
    path
}

#[test]
fn parse_command_streams_json_cases_in_order() {
    // Enough cases that the output crosses many buffer flushes.
    let dir = tempfile::tempdir().unwrap();
    let path = generated(dir.path(), 20_000, |i| (i % 1000) as f64 / 100.0);
    let (code, stdout, stderr) = run_parse(&[path.to_str().unwrap(), "huge-times.xml"]);
    assert_eq!(code, 0, "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 2);
    let cases = lines[0]["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 20_000);
    assert_eq!(lines[0]["tests"], 20_000);
    let failed = cases.iter().filter(|c| c["status"] == "failed").count();
    assert_eq!(lines[0]["failures"], failed);
    assert_eq!(failed, (0..20_000).filter(|i| i % 7 == 3).count());
    // Passed tests in file order as read; failed ones (which a retry further down might have
    // followed) at the end, in file order too.
    let want: Vec<String> = (0..20_000)
        .filter(|i| i % 7 != 3)
        .chain((0..20_000).filter(|i| i % 7 == 3))
        .map(|i| format!("t{i}"))
        .collect();
    let got: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(got, want, "cases in file order, failed ones last");
    // Times near Duration::MAX: printed, and their sum saturates instead of panicking.
    assert_eq!(lines[1]["tests"], 3);
    assert!(lines[1]["time"].as_f64().unwrap() > 1.8e19, "{}", lines[1]);
}

#[test]
fn parse_command_table_keeps_the_slowest_first_read_on_ties() {
    // 30 cases: t10..t19 share the top time; of 15 equal times the first ten read are kept.
    let dir = tempfile::tempdir().unwrap();
    let path = generated(dir.path(), 30, |i| match i {
        10..=24 => 9.0,
        _ => i as f64 / 100.0,
    });
    let (code, stdout, stderr) = run_parse(&["--format", "table", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let slowest: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Slowest tests:"))
        .skip(2)
        .collect();
    let names: Vec<String> = slowest
        .iter()
        .map(|l| {
            l.split(" › ")
                .nth(2)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<String> = (10..20).map(|i| format!("t{i}")).collect();
    assert_eq!(names, want, "{stdout}");
    assert!(
        slowest.iter().all(|l| l.trim_start().starts_with("9.000s")),
        "{stdout}"
    );
    assert!(stdout.contains("      30      26       4"), "{stdout}");
}

#[test]
fn parse_command_reads_stdin() {
    use std::process::Stdio;
    let mut child = common::bin()
        .args(["parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(fixtures().join("nose.xml")).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["file"], "-");
    assert_eq!(v["tests"], 5);
}

#[test]
fn bundled_examples_parse_cleanly() {
    let examples = files(&common::repo().join("examples/junit"), &[".xml"]);
    let names: Vec<String> = examples
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["googletest.xml", "nose.xml", "pytest.xml"] {
        assert!(
            names.iter().any(|n| n == want),
            "examples/junit/{want} is missing"
        );
    }
    for path in &examples {
        let r = junit::parse_path(path);
        assert!(r.error.is_none(), "{:?}", r.error);
        assert!(
            r.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            r.warnings
        );
        assert!(
            r.tests() >= 3 && r.count(Status::Passed) >= 2,
            "{}",
            path.display()
        );
    }
}
