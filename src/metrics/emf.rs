//! The EMF sink: CloudWatch Embedded Metric Format JSON lines, appended to a file or written to
//! stdout. CloudWatch Logs (and the CloudWatch agent) turn such lines into metrics.
//!
//! One line per timestamp and dimension set, with at most [`MAX_METRICS_PER_LINE`] metrics:
//!
//! ```json
//! {"_aws":{"Timestamp":1795860000000,"CloudWatchMetrics":[{"Namespace":"CI/Tests",
//!   "Dimensions":[["Job","BranchClass"]],"Metrics":[{"Name":"Tests","Unit":"Count"},
//!   {"Name":"TestDuration","Unit":"Seconds"}]}]},"Job":"a/b","BranchClass":"pr","Tests":12,
//!   "TestDuration":{"Values":[0.25,1.0],"Counts":[3,1],"Min":0.25,"Max":1.0,"Count":4,"Sum":1.75}}
//! ```
//!
//! EMF's limits, and how this encoder keeps them:
//!
//! - **At most [`MAX_METRICS_PER_LINE`] metrics per document** (the MetricDirective's `Metrics`
//!   array): a fuller line continues on the next one. A metric name appears once per line, so a
//!   repeated name also starts a new line.
//! - **At most [`MAX_VALUES_PER_METRIC`] values per array.** A longer distribution continues on
//!   the next line with the same timestamp and dimensions; CloudWatch adds the pieces up.
//! - **No counts in the documented form.** The specification's metric value is a number or an
//!   array of numbers, each counted once, so 2,000 test durations could not fit in 100 values.
//!   Distributions therefore use the histogram object that AWS's own EMF libraries write
//!   (aws-embedded-metrics-java's `Histogram`, awslabs/metrique's EMF format): `Values` with
//!   integer `Counts` of the same length, plus `Min`, `Max`, `Count` and `Sum`, which CloudWatch
//!   Logs extracts with percentiles intact. A bin with count 0 is left out (it holds no sample and
//!   must not move `Min` or `Max`), and a distribution with no samples writes nothing.
//!
//! Datums are validated like every sink's ([`super::validate`]): invalid ones are an error and
//! nothing is written; ones outside CloudWatch's timestamp window are written (the file is the
//! record). Each such write is logged at `-v`; [`EmfSink::outside_window`] sums them up in one
//! line, with an example, for the command to print once per run.

use super::{validate_all, Datum, MetricsError, PublishReport, Value};
use serde_json::{json, Map};
use std::io::Write;
use time::OffsetDateTime;

/// A datum outside the window, for people: `Builds (Job=a, BranchClass=master) at
/// 2026-11-01T10:00:00Z: 700 h older than CloudWatch's 2-week window`.
fn example(d: &Datum, why: &super::Verdict) -> String {
    let dims: Vec<String> = d
        .dimensions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let at = d
        .timestamp
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!("{} ({}) at {at}: {why}", d.name, dims.join(", "))
}

/// Metrics per EMF line (the format's limit).
pub const MAX_METRICS_PER_LINE: usize = 100;
/// Values per EMF metric (the format's limit for value arrays).
pub const MAX_VALUES_PER_METRIC: usize = 100;

#[derive(Debug)]
pub struct EmfSink {
    namespace: String,
    path: Option<String>,
    window: Outside,
}

/// The datums written outside CloudWatch's timestamp window so far, and the first of them.
#[derive(Debug, Default)]
struct Outside {
    datums: usize,
    written: usize,
    example: Option<String>,
}

impl EmfSink {
    pub fn stdout(namespace: &str) -> EmfSink {
        EmfSink {
            namespace: namespace.into(),
            path: None,
            window: Outside::default(),
        }
    }

    /// Appends to `path`, creating it and its folder; fails early when it cannot be opened.
    pub fn file(namespace: &str, path: &str) -> Result<EmfSink, MetricsError> {
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| MetricsError::InvalidSink {
                spec: format!("emf:{path}"),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        open_append(path)?;
        Ok(EmfSink {
            namespace: namespace.into(),
            path: Some(path.into()),
            window: Outside::default(),
        })
    }

    /// Validates, encodes and writes all datums in one write (and fsync for files).
    pub fn publish(&mut self, datums: &[Datum]) -> Result<PublishReport, MetricsError> {
        let outside = validate_all(datums, OffsetDateTime::now_utc())?;
        if let Some((first, verdict)) = outside.first() {
            let example = example(first, verdict);
            tracing::info!(
                "{} of {} datums lie outside CloudWatch's timestamp window, e.g. {example}",
                outside.len(),
                datums.len()
            );
            self.window.example.get_or_insert(example);
        }
        self.window.datums += outside.len();
        self.window.written += datums.len();
        let lines = encode_lines(&self.namespace, datums);
        let mut text = String::new();
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        let written = match &self.path {
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|_| out.flush())
            }
            Some(path) => {
                let mut f = open_append(path)?;
                f.write_all(text.as_bytes()).and_then(|_| f.sync_data())
            }
        };
        written.map_err(|e| self.error(e.to_string()))?;
        Ok(PublishReport {
            datums: datums.len(),
            requests: lines.len(),
        })
    }

    /// Whether the file holds a `Builds` metric for (job, branch class) at exactly `timestamp`'s
    /// millisecond. Stdout cannot answer.
    pub fn contains_build(
        &self,
        job: &str,
        branch_class: &str,
        timestamp: OffsetDateTime,
    ) -> Result<bool, MetricsError> {
        let Some(path) = &self.path else {
            return Err(self.error("stdout cannot be read back".into()));
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.error(e.to_string())),
        };
        let ms = millis(timestamp);
        Ok(text.lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
                v["_aws"]["Timestamp"].as_i64() == Some(ms)
                    && v["Job"] == job
                    && v["BranchClass"] == branch_class
                    && v.get("Builds").is_some_and(|b| b.is_number())
            })
        }))
    }

    /// One line for the whole run when datums were written outside CloudWatch's timestamp
    /// window (each write is logged at `-v`).
    pub fn outside_window(&self) -> Option<String> {
        let w = &self.window;
        let example = w.example.as_ref().filter(|_| w.datums > 0)?;
        Some(format!(
            "{} of the {} datums written to {} lie outside CloudWatch's timestamp window (2 weeks \
             back, 2 h ahead), e.g. {example}; CloudWatch Logs will not turn those into metrics \
             (-v lists each write)",
            w.datums,
            w.written,
            self.describe()
        ))
    }

    /// `stdout` or `emf:PATH`.
    pub fn describe(&self) -> String {
        self.path
            .as_deref()
            .map_or("stdout".into(), |p| format!("emf:{p}"))
    }

    fn error(&self, message: String) -> MetricsError {
        MetricsError::Publish {
            sink: self.describe(),
            message,
        }
    }
}

fn open_append(path: &str) -> Result<std::fs::File, MetricsError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| MetricsError::InvalidSink {
            spec: format!("emf:{path}"),
            reason: e.to_string(),
        })
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// One line being filled: its timestamp and dimensions, and the metrics so far.
struct Line<'a> {
    millis: i64,
    dimensions: &'a [(String, String)],
    metrics: Vec<(&'a str, &'static str, serde_json::Value)>,
}

/// Encodes datums as EMF JSON lines (pure). Consecutive datums with the same timestamp and
/// dimensions share lines.
pub fn encode_lines(namespace: &str, datums: &[Datum]) -> Vec<String> {
    let mut lines: Vec<Line> = Vec::new();
    for d in datums {
        for value in emf_values(&d.value) {
            let ms = millis(d.timestamp);
            let fits = lines.last().is_some_and(|l| {
                l.millis == ms
                    && l.dimensions == d.dimensions.as_slice()
                    && l.metrics.len() < MAX_METRICS_PER_LINE
                    && l.metrics.iter().all(|m| m.0 != d.name)
            });
            if !fits {
                lines.push(Line {
                    millis: ms,
                    dimensions: &d.dimensions,
                    metrics: Vec::new(),
                });
            }
            if let Some(line) = lines.last_mut() {
                line.metrics.push((&d.name, d.unit.as_str(), value));
            }
        }
    }
    lines.iter().map(|l| render(namespace, l)).collect()
}

/// A datum's value in EMF form: one for a scalar; for a distribution one histogram object per
/// [`MAX_VALUES_PER_METRIC`] bins that hold samples, none when no bin does.
fn emf_values(value: &Value) -> Vec<serde_json::Value> {
    match value {
        Value::Scalar(v) => vec![json!(v)],
        Value::Distribution { values, counts } => {
            let bins: Vec<(f64, f64)> = values
                .iter()
                .zip(counts)
                .filter(|(_, c)| **c > 0.0)
                .map(|(v, c)| (*v, *c))
                .collect();
            bins.chunks(MAX_VALUES_PER_METRIC)
                .map(|chunk| {
                    let min = chunk.iter().map(|b| b.0).fold(f64::INFINITY, f64::min);
                    let max = chunk.iter().map(|b| b.0).fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = chunk.iter().map(|(v, c)| v * c).sum();
                    let count: f64 = chunk.iter().map(|b| b.1).sum();
                    let values: Vec<f64> = chunk.iter().map(|b| b.0).collect();
                    let counts: Vec<serde_json::Value> =
                        chunk.iter().map(|b| count_json(b.1)).collect();
                    json!({"Values": values, "Counts": counts, "Min": min, "Max": max,
                           "Count": count_json(count), "Sum": sum})
                })
                .collect()
        }
    }
}

/// A count as AWS's EMF libraries write it: an integer when it is one (they always are for
/// test durations), else the number as it is.
fn count_json(c: f64) -> serde_json::Value {
    if c.fract() == 0.0 && c <= u64::MAX as f64 {
        json!(c as u64)
    } else {
        json!(c)
    }
}

fn render(namespace: &str, line: &Line) -> String {
    let dimension_names: Vec<&str> = line.dimensions.iter().map(|(n, _)| n.as_str()).collect();
    let definitions: Vec<serde_json::Value> = line
        .metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": line.millis,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimension_names],
                "Metrics": definitions,
            }]
        }),
    );
    for (name, value) in line.dimensions {
        root.insert(name.clone(), json!(value));
    }
    for (name, _, value) in &line.metrics {
        root.insert(name.to_string(), value.clone());
    }
    serde_json::Value::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Unit;
    use serde_json::Value as J;
    use time::macros::datetime;

    fn datum(name: &str, job: &str, value: Value) -> Datum {
        Datum {
            name: name.into(),
            unit: if name == "Tests" {
                Unit::Count
            } else {
                Unit::Seconds
            },
            dimensions: vec![
                ("Job".into(), job.into()),
                ("BranchClass".into(), "pr".into()),
            ],
            timestamp: datetime!(2026-11-28 10:00:00.123 UTC),
            value,
        }
    }

    fn parse(lines: &[String]) -> Vec<J> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("valid JSON"))
            .collect()
    }

    #[test]
    fn datums_outside_the_window_are_summed_up_once_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.emf");
        let mut sink = EmfSink::file("NS", path.to_str().unwrap()).unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let fresh = Datum {
            timestamp: now,
            ..datum("Tests", "a", Value::Scalar(1.0))
        };
        sink.publish(std::slice::from_ref(&fresh)).unwrap();
        assert_eq!(sink.outside_window(), None, "all inside: nothing to say");
        let old = |job: &str| Datum {
            timestamp: now - time::Duration::days(30),
            ..datum("Tests", job, Value::Scalar(1.0))
        };
        sink.publish(&[old("a"), fresh.clone()]).unwrap();
        sink.publish(&[old("b"), old("c")]).unwrap();
        let line = sink.outside_window().unwrap();
        assert!(
            line.starts_with("3 of the 5 datums written to emf:"),
            "{line}"
        );
        assert!(
            line.contains("e.g. Tests (Job=a, BranchClass=pr) at ")
                && line.contains("older than CloudWatch's 2-week window")
                && line.contains("-v"),
            "{line}"
        );
        // Everything was still written.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 5);
    }

    #[test]
    fn lines_parse_back_with_values() {
        let datums = vec![
            datum("Tests", "a/b", Value::Scalar(12.0)),
            datum(
                "TestDuration",
                "a/b",
                Value::Distribution {
                    values: vec![0.25, 1.0],
                    counts: vec![3.0, 1.0],
                },
            ),
            datum("Tests", "c", Value::Scalar(2.0)),
        ];
        let lines = parse(&encode_lines("CI/Tests", &datums));
        assert_eq!(lines.len(), 2);
        let first = &lines[0];
        assert_eq!(first["_aws"]["Timestamp"], 1_795_860_000_123i64);
        let directive = &first["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CI/Tests");
        assert_eq!(directive["Dimensions"], json!([["Job", "BranchClass"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Tests", "Unit": "Count"}, {"Name": "TestDuration", "Unit": "Seconds"}])
        );
        assert_eq!(first["Job"], "a/b");
        assert_eq!(first["BranchClass"], "pr");
        assert_eq!(first["Tests"], 12.0);
        assert_eq!(
            first["TestDuration"],
            json!({"Values": [0.25, 1.0], "Counts": [3, 1], "Min": 0.25, "Max": 1.0, "Count": 4, "Sum": 1.75})
        );
        assert_eq!(lines[1]["Job"], "c");
        assert_eq!(lines[1]["Tests"], 2.0);
    }

    #[test]
    fn splits_long_distributions_repeated_names_and_100_metrics() {
        let big = Value::Distribution {
            values: (0..150).map(|i| i as f64).collect(),
            counts: vec![2.0; 150],
        };
        let mut datums = vec![
            datum("TestDuration", "a", big.clone()),
            datum("TestDuration", "a", big),
        ];
        datums.extend((0..150).map(|i| datum(&format!("M{i}"), "a", Value::Scalar(i as f64))));
        let lines = parse(&encode_lines("NS", &datums));
        // 150 values → 100 + 50 on two lines (a name once a line), twice; then 150 scalars
        // join the last line (which holds one metric) and spill: 99 + 51.
        let per_line: Vec<usize> = lines
            .iter()
            .map(|l| {
                l["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(per_line, vec![1, 1, 1, 100, 51]);
        let samples: f64 = lines
            .iter()
            .filter_map(|l| l["TestDuration"]["Count"].as_f64())
            .sum();
        assert_eq!(samples, 600.0);
        let values: usize = lines
            .iter()
            .filter_map(|l| l["TestDuration"]["Values"].as_array().map(|v| v.len()))
            .sum();
        assert_eq!(values, 300);
        assert!(lines.iter().all(|l| l["TestDuration"]["Values"]
            .as_array()
            .is_none_or(|v| v.len() <= MAX_VALUES_PER_METRIC)));
    }

    /// Every line keeps EMF's limits, whatever the distribution: ≤ 100 metrics, ≤ 100 values an
    /// array, integer counts > 0 of the same length, Min/Max/Count/Sum that agree with the bins,
    /// and every sample (and no zero-count bin) written exactly once.
    #[test]
    fn distributions_keep_emf_limits() {
        let dist = |values: Vec<f64>, counts: Vec<f64>| Value::Distribution { values, counts };
        let ramp = |n: usize| (0..n).map(|i| i as f64 * 0.5).collect::<Vec<_>>();
        // (what, distribution, lines with a TestDuration, samples, Min of the first piece)
        let cases: Vec<(&str, Value, usize, f64, Option<f64>)> = vec![
            ("one bin", dist(vec![2.0], vec![7.0]), 1, 7.0, Some(2.0)),
            (
                "100 bins",
                dist(ramp(100), vec![1.0; 100]),
                1,
                100.0,
                Some(0.0),
            ),
            (
                "101 bins",
                dist(ramp(101), vec![1.0; 101]),
                2,
                101.0,
                Some(0.0),
            ),
            (
                "150 bins",
                dist(ramp(150), vec![3.0; 150]),
                2,
                450.0,
                Some(0.0),
            ),
            (
                "zero-count bins do not set Min or count as values",
                dist(vec![0.1, 5.0, 9.0], vec![0.0, 2.0, 0.0]),
                1,
                2.0,
                Some(5.0),
            ),
            (
                "zeros are dropped before splitting",
                dist(ramp(150), (0..150).map(|i| (i % 2) as f64).collect()),
                1,
                75.0,
                Some(0.5),
            ),
            (
                "no samples writes nothing",
                dist(vec![1.0, 2.0], vec![0.0, 0.0]),
                0,
                0.0,
                None,
            ),
        ];
        for (what, value, want_lines, want_samples, want_min) in cases {
            let (values, counts) = match &value {
                Value::Distribution { values, counts } => (values.clone(), counts.clone()),
                Value::Scalar(_) => unreachable!(),
            };
            let datums = vec![
                datum("Tests", "a", Value::Scalar(1.0)),
                datum("TestDuration", "a", value),
            ];
            let lines = parse(&encode_lines("NS", &datums));
            let pieces: Vec<&J> = lines.iter().filter_map(|l| l.get("TestDuration")).collect();
            assert_eq!(pieces.len(), want_lines, "{what}: lines");
            let mut samples = 0.0;
            let mut seen: Vec<(f64, u64)> = Vec::new();
            for line in &lines {
                let defs = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .unwrap();
                assert!(defs.len() <= MAX_METRICS_PER_LINE, "{what}");
                for def in defs {
                    assert!(line.get(def["Name"].as_str().unwrap()).is_some(), "{what}");
                }
            }
            for p in &pieces {
                let vs: Vec<f64> = p["Values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let cs: Vec<u64> = p["Counts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_u64().expect("integer count"))
                    .collect();
                assert!(
                    !vs.is_empty() && vs.len() <= MAX_VALUES_PER_METRIC,
                    "{what}: {} values",
                    vs.len()
                );
                assert_eq!(vs.len(), cs.len(), "{what}");
                assert!(cs.iter().all(|c| *c > 0), "{what}: zero count written");
                let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
                let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                assert_eq!(p["Min"].as_f64(), Some(min), "{what}");
                assert_eq!(p["Max"].as_f64(), Some(max), "{what}");
                assert_eq!(p["Count"].as_u64(), Some(cs.iter().sum::<u64>()), "{what}");
                let sum: f64 = vs.iter().zip(&cs).map(|(v, c)| v * *c as f64).sum();
                assert!((p["Sum"].as_f64().unwrap() - sum).abs() < 1e-9, "{what}");
                samples += cs.iter().sum::<u64>() as f64;
                seen.extend(vs.into_iter().zip(cs));
            }
            assert_eq!(samples, want_samples, "{what}: samples");
            assert_eq!(
                pieces.first().and_then(|p| p["Min"].as_f64()),
                want_min,
                "{what}: Min"
            );
            let want: Vec<(f64, u64)> = values
                .into_iter()
                .zip(counts)
                .filter(|(_, c)| *c > 0.0)
                .map(|(v, c)| (v, c as u64))
                .collect();
            assert_eq!(seen, want, "{what}: bins written once, in order");
        }
    }

    #[test]
    fn file_sink_appends_and_finds_builds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.emf");
        let path = path.to_str().unwrap();
        let mut sink = EmfSink::file("NS", path).unwrap();
        let now = OffsetDateTime::now_utc();
        let at = |name: &str, v: f64| Datum {
            timestamp: now,
            ..datum(name, "a/b", Value::Scalar(v))
        };
        assert!(!sink.contains_build("a/b", "pr", now).unwrap());
        let r = sink
            .publish(&[at("Builds", 1.0), at("Tests", 3.0)])
            .unwrap();
        assert_eq!(
            r,
            PublishReport {
                datums: 2,
                requests: 1
            }
        );
        sink.publish(&[at("Tests", 4.0)]).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(sink.contains_build("a/b", "pr", now).unwrap());
        assert!(!sink.contains_build("a/b", "master", now).unwrap());
        assert!(!sink
            .contains_build("a/b", "pr", now + time::Duration::seconds(1))
            .unwrap());
        // Invalid datums write nothing.
        let err = sink
            .publish(&[at("Tests", 1.0), at("Bad", f64::NAN)])
            .unwrap_err();
        assert!(matches!(err, MetricsError::InvalidDatum { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(path).unwrap(), text);
        assert!(EmfSink::stdout("NS")
            .contains_build("a", "pr", now)
            .is_err());
    }
}
