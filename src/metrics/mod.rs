//! The metric model, the pure encoding of build summaries into datums, and the sinks that
//! publish them: CloudWatch (`cloudwatch`), or Embedded Metric Format lines to a file or stdout (`emf`).

pub mod cloudwatch;
pub mod emf;
pub mod encode;

use thiserror::Error;
use time::OffsetDateTime;

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("invalid sink {spec:?}: {reason}")]
    InvalidSink { spec: String, reason: String },
    #[error("invalid datum {name}: {reason}")]
    InvalidDatum { name: String, reason: String },
    #[error("publishing to {sink} failed: {message}")]
    Publish { sink: String, message: String },
}

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Publishes datums in as few requests as the limits allow; all or an error.
    pub async fn publish(&mut self, datums: &[Datum]) -> Result<PublishReport, MetricsError> {
        match self {
            Sink::CloudWatch(s) => s.publish(datums).await,
            Sink::Emf(s) => s.publish(datums),
        }
    }

    /// Whether a build's `Builds` datum (job, branch class, build time) already arrived, for
    /// recovering builds an interrupted run sent but did not record. Placeholder.
    pub async fn contains_build(
        &mut self,
        _job: &str,
        _branch_class: &str,
        _timestamp: OffsetDateTime,
    ) -> Result<bool, MetricsError> {
        Err(MetricsError::Publish {
            sink: "sink".into(),
            message: "cannot tell yet".into(),
        })
    }
}
