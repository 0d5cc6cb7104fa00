//! What a configuration costs on CloudWatch: the distinct custom metrics a set of datums creates
//! and an estimated monthly bill.
//!
//! Assumptions (CloudWatch list prices, us-east-1, as published in 2025; check your region):
//! - a custom metric is one unique namespace + name + dimension set; every one is billed as if it
//!   received data in every hour of the month (CloudWatch prorates by the hour, so this is an
//!   upper bound): $0.30 per metric-month for the first 10,000, $0.10 for the next 240,000,
//!   $0.05 for the next 750,000 and $0.02 above 1,000,000;
//! - PutMetricData costs $0.01 per 1,000 requests (the free tier is ignored);
//! - dashboards ($3 each a month beyond three) and alarms are not included.
//!
//! The estimate counts the metrics the encoded datums actually touch; [`METRICS_PER_JOB_CLASS`]
//! and [`METRICS_PER_SUITE`] say what to expect per job, branch class and suite.

use super::Datum;

/// Custom metrics one job creates per branch class with builds in it: `TestDuration`,
/// `TotalTestTime`, `Tests`, `Failures`, `Errors`, `Skipped`, `FlakyTests`, `Retries`,
/// `SlowestTest`, `Builds`, `ParseErrors` ([`super::encode`]). `FlakyTests` and `Retries` are
/// sent for every build, 0 included, like `Failures`: two more metrics per job and class.
pub const METRICS_PER_JOB_CLASS: u64 = 11;
/// What `--per-suite` adds per result file: the same but `Builds` and `ParseErrors`.
pub const METRICS_PER_SUITE: u64 = 9;
use std::collections::BTreeSet;

/// Price tiers: (metrics in the tier, USD per metric-month).
const METRIC_TIERS: [(u64, f64); 4] = [
    (10_000, 0.30),
    (240_000, 0.10),
    (750_000, 0.05),
    (u64::MAX, 0.02),
];
/// USD per 1,000 PutMetricData requests.
const PER_1000_REQUESTS: f64 = 0.01;

/// The assumptions behind [`estimate`], to print beside it.
pub const ASSUMPTIONS: &str = "CloudWatch us-east-1 list prices: $0.30/metric-month for the \
first 10k metrics ($0.10 next 240k, $0.05 next 750k, $0.02 beyond), every metric billed for the \
whole month (an upper bound; CloudWatch prorates by hour), $0.01 per 1,000 PutMetricData \
requests; free tier, dashboards and alarms not included";

/// The custom metrics a set of datums touches: unique (name, sorted dimensions).
pub fn distinct_metrics(datums: &[Datum]) -> usize {
    datums
        .iter()
        .map(|d| {
            let mut dims: Vec<&(String, String)> = d.dimensions.iter().collect();
            dims.sort();
            (d.name.as_str(), dims)
        })
        .collect::<BTreeSet<_>>()
        .len()
}

/// An estimated monthly bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub metrics: u64,
    pub requests_per_month: u64,
    pub metrics_usd: f64,
    pub requests_usd: f64,
    pub total_usd: f64,
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} custom metrics ${:.2} + {} PutMetricData requests ${:.2} = ${:.2}/month",
            self.metrics,
            self.metrics_usd,
            self.requests_per_month,
            self.requests_usd,
            self.total_usd
        )
    }
}

/// The monthly cost of `metrics` custom metrics fed by `requests_per_month` PutMetricData calls.
pub fn estimate(metrics: u64, requests_per_month: u64) -> Estimate {
    let (mut left, mut metrics_usd) = (metrics, 0.0);
    for (size, price) in METRIC_TIERS {
        let n = left.min(size);
        metrics_usd += n as f64 * price;
        left -= n;
    }
    let requests_usd = requests_per_month as f64 / 1000.0 * PER_1000_REQUESTS;
    Estimate {
        metrics,
        requests_per_month,
        metrics_usd,
        requests_usd,
        total_usd: metrics_usd + requests_usd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Unit, Value};

    #[test]
    fn tiers() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        for (metrics, requests, want) in [
            (0, 0, 0.0),
            (10, 0, 3.0),
            (10_000, 0, 3_000.0),
            (10_001, 0, 3_000.10),
            (250_000, 0, 3_000.0 + 24_000.0),
            (1_000_000, 0, 3_000.0 + 24_000.0 + 37_500.0),
            (1_000_010, 0, 64_500.0 + 0.2),
            (0, 1_000, 0.01),
            (90, 43_200, 27.0 + 0.432),
        ] {
            let e = estimate(metrics, requests);
            assert!(close(e.total_usd, want), "{metrics} {requests}: {e}");
        }
    }

    #[test]
    fn distinct_ignores_dimension_order_and_time() {
        let d = |name: &str, dims: &[(&str, &str)]| Datum {
            name: name.into(),
            unit: Unit::Count,
            dimensions: dims
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
            value: Value::Scalar(1.0),
        };
        let datums = [
            d("Tests", &[("Job", "a"), ("BranchClass", "pr")]),
            d("Tests", &[("BranchClass", "pr"), ("Job", "a")]),
            d("Tests", &[("Job", "a"), ("BranchClass", "master")]),
            d("Builds", &[("Job", "a"), ("BranchClass", "pr")]),
            d("Tests", &[("Job", "a")]),
        ];
        assert_eq!(distinct_metrics(&datums), 4);
    }
}
