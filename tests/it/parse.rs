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
         corpus: {exceptions} .exception expectations checked ({exceptions_absent} skipped: subject not in the corpus)",
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
