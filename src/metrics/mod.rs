//! The metric model, the pure encoding of build summaries into datums ([`encode`]), the one
//! validation every sink applies ([`validate`]), a cost estimate ([`cost`]), and the sinks that
//! publish datums: CloudWatch PutMetricData ([`cloudwatch`]) or Embedded Metric Format JSON lines
//! to a file or stdout ([`emf`]).
//!
//! Sinks never drop a datum silently: a datum that breaks CloudWatch's rules is an error
//! ([`MetricsError::InvalidDatum`]); one outside CloudWatch's timestamp window is an error for
//! the CloudWatch sink ([`MetricsError::OutOfWindow`]) and a logged warning for EMF. Callers that
//! want to skip or warn first ask [`validate`] for the [`Verdict`].

pub mod cloudwatch;
pub mod cost;
pub mod emf;
pub mod encode;

use thiserror::Error;
use time::{Duration, OffsetDateTime};

/// Dimensions per datum CloudWatch accepts.
pub const MAX_DIMENSIONS: usize = 30;
/// Distinct values per Values/Counts datum CloudWatch accepts.
pub const MAX_VALUES: usize = 150;
/// How far in the past CloudWatch accepts a timestamp.
pub const MAX_AGE: Duration = Duration::weeks(2);
/// How far in the future CloudWatch accepts a timestamp.
pub const MAX_AHEAD: Duration = Duration::hours(2);
/// CloudWatch rejects values outside ±2^360.
const MAX_MAGNITUDE: f64 = 2.348_542_582_773_833_3e108;

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("invalid sink {spec:?}: {reason}")]
    InvalidSink { spec: String, reason: String },
    #[error("invalid datum {name}: {reason}")]
    InvalidDatum { name: String, reason: String },
    #[error("datum {name} at {timestamp}: {verdict}; CloudWatch would reject it")]
    OutOfWindow {
        name: String,
        timestamp: OffsetDateTime,
        verdict: Verdict,
    },
    #[error("publishing to {sink} failed: {message}")]
    Publish { sink: String, message: String },
}

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    Seconds,
    Count,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "Seconds",
            Unit::Count => "Count",
            Unit::None => "None",
        }
    }
}

/// A datum's value: one number, or a distribution as CloudWatch Values/Counts (≤ 150 values).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Distribution { values: Vec<f64>, counts: Vec<f64> },
}

/// One metric datum, ready for any sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub name: String,
    pub unit: Unit,
    /// (name, value) pairs, at most 30.
    pub dimensions: Vec<(String, String)>,
    pub timestamp: OffsetDateTime,
    pub value: Value,
}

impl Datum {
    /// The value of dimension `name`, if the datum has it.
    pub fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What [`validate`] says about one datum.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Verdict {
    /// CloudWatch accepts it.
    #[error("ok")]
    Ok,
    /// Older than CloudWatch's two weeks: it would be rejected. Skip it with a reason, or
    /// publish it to a sink that keeps it (EMF) with a warning.
    #[error("{} h older than CloudWatch's 2-week window", .age.whole_hours())]
    TooOld { age: Duration },
    /// More than two hours ahead of now (a skewed clock).
    #[error("{} min ahead of now, more than CloudWatch's 2 hours", .ahead.whole_minutes())]
    TooNew { ahead: Duration },
    /// Breaks CloudWatch's rules whatever the time: a bug or bad input, never sent.
    #[error("{0}")]
    Invalid(String),
}

/// Validates every datum: the first one that breaks CloudWatch's rules is an error; the datums
/// outside the timestamp window are returned with their verdicts, for the sink to refuse or warn.
pub fn validate_all(
    datums: &[Datum],
    now: OffsetDateTime,
) -> Result<Vec<(&Datum, Verdict)>, MetricsError> {
    let mut outside = Vec::new();
    for d in datums {
        match validate(d, now) {
            Verdict::Ok => {}
            Verdict::Invalid(reason) => {
                return Err(MetricsError::InvalidDatum {
                    name: d.name.clone(),
                    reason,
                })
            }
            verdict => outside.push((d, verdict)),
        }
    }
    Ok(outside)
}

/// Checks one datum against CloudWatch's rules, relative to `now`: name, at most 30 dimensions
/// with distinct, non-empty names and non-empty values, finite values within ±2^360, a distribution's values and
/// counts of the same non-zero length (≤ 150) with non-negative counts, and the timestamp window
/// (≤ 2 weeks past, ≤ 2 h future). Structural problems win over the timestamp.
pub fn validate(datum: &Datum, now: OffsetDateTime) -> Verdict {
    let invalid = |reason: String| Verdict::Invalid(reason);
    if datum.name.is_empty() || datum.name.len() > 255 {
        return invalid(format!(
            "metric name must have 1 to 255 bytes: {:?}",
            datum.name
        ));
    }
    if datum.dimensions.len() > MAX_DIMENSIONS {
        return invalid(format!(
            "{} dimensions, CloudWatch allows {MAX_DIMENSIONS}",
            datum.dimensions.len()
        ));
    }
    for (name, value) in &datum.dimensions {
        if name.is_empty() || name.len() > 255 || value.is_empty() || value.len() > 1024 {
            return invalid(format!(
                "dimension {name:?}={value:?}: names need 1-255 bytes, values 1-1024"
            ));
        }
        if name.starts_with(':') {
            return invalid(format!("dimension name {name:?} must not start with ':'"));
        }
    }
    for (i, (name, _)) in datum.dimensions.iter().enumerate() {
        if datum.dimensions[..i].iter().any(|(n, _)| n == name) {
            return invalid(format!("dimension {name:?} appears twice"));
        }
    }
    let finite = |v: f64| v.is_finite() && v.abs() <= MAX_MAGNITUDE;
    match &datum.value {
        Value::Scalar(v) if !finite(*v) => return invalid(format!("value {v} is not finite")),
        Value::Scalar(_) => {}
        Value::Distribution { values, counts } => {
            if values.len() != counts.len() {
                return invalid(format!(
                    "{} values but {} counts",
                    values.len(),
                    counts.len()
                ));
            }
            if values.is_empty() || values.len() > MAX_VALUES {
                return invalid(format!(
                    "{} values; a distribution needs 1 to {MAX_VALUES}",
                    values.len()
                ));
            }
            if let Some(v) = values.iter().find(|v| !finite(**v)) {
                return invalid(format!("value {v} is not finite"));
            }
            if let Some(c) = counts.iter().find(|c| !c.is_finite() || **c < 0.0) {
                return invalid(format!("count {c} is not a finite non-negative number"));
            }
        }
    }
    let age = now - datum.timestamp;
    if age > MAX_AGE {
        Verdict::TooOld { age }
    } else if -age > MAX_AHEAD {
        Verdict::TooNew { ahead: -age }
    } else {
        Verdict::Ok
    }
}

/// Where datums go.
#[derive(Debug)]
pub enum Sink {
    CloudWatch(cloudwatch::CloudWatchSink),
    Emf(emf::EmfSink),
}

/// What one publish call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishReport {
    pub datums: usize,
    pub requests: usize,
}

impl Sink {
    /// Opens `cloudwatch`, `emf:PATH` or `stdout`.
    pub async fn open(spec: &str, namespace: &str) -> Result<Sink, MetricsError> {
        if namespace.is_empty() || namespace.len() > 255 || namespace.starts_with(':') {
            return Err(MetricsError::InvalidSink {
                spec: spec.to_string(),
                reason: format!("namespace {namespace:?} must have 1-255 bytes"),
            });
        }
        match spec {
            "cloudwatch" => Ok(Sink::CloudWatch(
                cloudwatch::CloudWatchSink::new(namespace).await,
            )),
            "stdout" => Ok(Sink::Emf(emf::EmfSink::stdout(namespace))),
            _ => match spec.strip_prefix("emf:") {
                Some(path) if !path.is_empty() => {
                    Ok(Sink::Emf(emf::EmfSink::file(namespace, path)?))
                }
                _ => Err(MetricsError::InvalidSink {
                    spec: spec.to_string(),
                    reason: "use cloudwatch, emf:PATH or stdout".to_string(),
                }),
            },
        }
    }

    /// The sink as `--sink` names it: `cloudwatch`, `emf:PATH` or `stdout`.
    pub fn describe(&self) -> String {
        match self {
            Sink::CloudWatch(_) => "cloudwatch".into(),
            Sink::Emf(s) => s.describe(),
        }
    }

    /// One line for the run when an EMF sink wrote datums CloudWatch would not take (outside its
    /// timestamp window); CloudWatch itself is never sent such datums.
    pub fn outside_window(&self) -> Option<String> {
        match self {
            Sink::CloudWatch(_) => None,
            Sink::Emf(s) => s.outside_window(),
        }
    }

    /// Publishes datums in as few requests as the limits allow; all or an error.
    pub async fn publish(&mut self, datums: &[Datum]) -> Result<PublishReport, MetricsError> {
        match self {
            Sink::CloudWatch(s) => s.publish(datums).await,
            Sink::Emf(s) => s.publish(datums),
        }
    }

    /// Whether a build's `Builds` datum (job, branch class, build time) already arrived, for
    /// recovering builds an interrupted run sent but did not record. CloudWatch answers at its
    /// one-minute resolution (another build of the same job and class in the same minute also
    /// counts); the EMF file answers exactly; stdout cannot answer (an error).
    pub async fn contains_build(
        &mut self,
        job: &str,
        branch_class: &str,
        timestamp: OffsetDateTime,
    ) -> Result<bool, MetricsError> {
        match self {
            Sink::CloudWatch(s) => s.contains_build(job, branch_class, timestamp).await,
            Sink::Emf(s) => s.contains_build(job, branch_class, timestamp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    fn datum(value: Value) -> Datum {
        Datum {
            name: "TestDuration".into(),
            unit: Unit::Seconds,
            dimensions: vec![("Job".into(), "a/b".into())],
            timestamp: NOW,
            value,
        }
    }

    #[test]
    fn verdicts() {
        let dist = |n: usize, m: usize| Value::Distribution {
            values: (0..n).map(|i| i as f64).collect(),
            counts: vec![1.0; m],
        };
        let ok = datum(Value::Scalar(1.0));
        let mut many_dims = ok.clone();
        many_dims.dimensions = (0..31).map(|i| (format!("D{i}"), "v".into())).collect();
        let mut thirty = ok.clone();
        thirty.dimensions = (0..30).map(|i| (format!("D{i}"), "v".into())).collect();
        let mut empty_dim = ok.clone();
        empty_dim.dimensions = vec![("Job".into(), String::new())];
        let mut twice = ok.clone();
        twice.dimensions.push(("Job".into(), "other".into()));
        let at = |ts: OffsetDateTime| Datum {
            timestamp: ts,
            ..ok.clone()
        };
        let cases: Vec<(&str, Datum, &str)> = vec![
            ("scalar", ok.clone(), "ok"),
            ("nan", datum(Value::Scalar(f64::NAN)), "invalid"),
            ("inf", datum(Value::Scalar(f64::INFINITY)), "invalid"),
            ("huge", datum(Value::Scalar(1e200)), "invalid"),
            ("150 values", datum(dist(150, 150)), "ok"),
            ("151 values", datum(dist(151, 151)), "invalid"),
            ("no values", datum(dist(0, 0)), "invalid"),
            ("mismatch", datum(dist(3, 2)), "invalid"),
            ("30 dims", thirty, "ok"),
            ("31 dims", many_dims, "invalid"),
            ("empty dim value", empty_dim, "invalid"),
            ("repeated dim", twice, "invalid"),
            ("13 days old", at(NOW - Duration::days(13)), "ok"),
            ("15 days old", at(NOW - Duration::days(15)), "old"),
            ("1 h ahead", at(NOW + Duration::hours(1)), "ok"),
            ("3 h ahead", at(NOW + Duration::hours(3)), "new"),
            (
                "invalid wins over old",
                Datum {
                    timestamp: NOW - Duration::days(30),
                    ..datum(Value::Scalar(f64::NAN))
                },
                "invalid",
            ),
        ];
        for (what, d, want) in cases {
            let got = match validate(&d, NOW) {
                Verdict::Ok => "ok",
                Verdict::TooOld { .. } => "old",
                Verdict::TooNew { .. } => "new",
                Verdict::Invalid(_) => "invalid",
            };
            assert_eq!(got, want, "{what}");
        }
    }
}
