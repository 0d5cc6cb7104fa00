//! Per-job alarms, specified purely: for each job and branch class, one alarm on
//! `TotalTestTime` (Average) and one on `TestDuration` p90, each against a CloudWatch
//! anomaly-detection band (`ANOMALY_DETECTION_BAND(m1, BAND)`): the alarm fires when a period's
//! value is above the band's upper edge, i.e. slower than the job's own history predicts. No
//! baseline has to be computed or maintained, and the band follows daily and weekly patterns.
//!
//! Idempotence: every alarm's description ends with a fingerprint of its whole specification
//! (`[ctm:0123456789ab]`); deploy skips alarms whose fingerprint is already there.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// How to build the alarms.
#[derive(Debug, Clone)]
pub struct AlarmOptions {
    /// Alarm names start with this (`ci-test-metrics` → `ci-test-metrics/JOB/CLASS/TotalTestTime`).
    pub prefix: String,
    pub namespace: String,
    /// A concrete branch class (`master` by default); alarms need one metric each.
    pub branch_class: String,
    /// Notified when an alarm fires (and when it is OK again).
    pub sns_topic: Option<String>,
    /// Width of the anomaly band in standard deviations.
    pub band: f64,
    /// Period in seconds.
    pub period: i32,
    /// Periods evaluated, and how many of them must breach.
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
}

impl Default for AlarmOptions {
    fn default() -> Self {
        AlarmOptions {
            prefix: "ci-test-metrics".into(),
            namespace: "CITestMetrics".into(),
            branch_class: "master".into(),
            sns_topic: None,
            band: 2.0,
            period: 3600,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
        }
    }
}

/// One alarm, everything PutMetricAlarm needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmSpec {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric: String,
    pub stat: String,
    pub dimensions: Vec<(String, String)>,
    /// `ANOMALY_DETECTION_BAND(m1, BAND)`; the alarm compares `m1` with it.
    pub band_expression: String,
    pub comparison: String,
    pub period: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    pub treat_missing_data: String,
    pub actions: Vec<String>,
}

/// The alarms for `jobs`; an error names what CloudWatch would refuse.
pub fn alarm_specs(jobs: &[String], opts: &AlarmOptions) -> Result<Vec<AlarmSpec>, String> {
    if opts.branch_class == "all" || opts.branch_class.is_empty() {
        return Err("alarms need a concrete --branch-class (master, pr, ...), not all".into());
    }
    if !(opts.band.is_finite() && opts.band > 0.0) {
        return Err(format!("--band {} must be a positive number", opts.band));
    }
    if opts.period < 60 || opts.period % 60 != 0 {
        return Err(format!("--period {} must be a multiple of 60", opts.period));
    }
    if opts.datapoints_to_alarm < 1 || opts.datapoints_to_alarm > opts.evaluation_periods {
        return Err("need 1 <= datapoints to alarm <= evaluation periods".into());
    }
    let mut out = Vec::new();
    for job in jobs {
        for (metric, stat, what) in [
            ("TotalTestTime", "Average", "total test time per build"),
            ("TestDuration", "p90", "p90 test duration"),
        ] {
            let name = format!("{}/{job}/{}/{metric}", opts.prefix, opts.branch_class);
            if name.len() > 255 {
                return Err(format!("alarm name longer than 255 bytes: {name}"));
            }
            let mut spec = AlarmSpec {
                name,
                description: format!(
                    "{job} ({}): {what} above its anomaly-detection band ({} std dev). \
                     Created by ci-test-metrics alarms deploy.",
                    opts.branch_class, opts.band
                ),
                namespace: opts.namespace.clone(),
                metric: metric.into(),
                stat: stat.into(),
                dimensions: vec![
                    ("Job".into(), job.clone()),
                    ("BranchClass".into(), opts.branch_class.clone()),
                ],
                band_expression: format!("ANOMALY_DETECTION_BAND(m1, {})", opts.band),
                comparison: "GreaterThanUpperThreshold".into(),
                period: opts.period,
                evaluation_periods: opts.evaluation_periods,
                datapoints_to_alarm: opts.datapoints_to_alarm,
                treat_missing_data: "notBreaching".into(),
                actions: opts.sns_topic.iter().cloned().collect(),
            };
            spec.description = format!("{} [ctm:{}]", spec.description, spec.fingerprint());
            out.push(spec);
        }
    }
    Ok(out)
}

impl AlarmSpec {
    /// 12 hex digits of SHA-256 over the specification (description excluded).
    pub fn fingerprint(&self) -> String {
        let mut s = self.clone();
        s.description.clear();
        let json = serde_json::to_vec(&s).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..6])
    }

    /// The `[ctm:...]` marker its description carries.
    pub fn marker(&self) -> String {
        format!("[ctm:{}]", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_alarms_per_job_with_stable_fingerprints() {
        let jobs = vec!["a/b".to_string(), "c".to_string()];
        let specs = alarm_specs(&jobs, &AlarmOptions::default()).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "ci-test-metrics/a/b/master/TotalTestTime",
                "ci-test-metrics/a/b/master/TestDuration",
                "ci-test-metrics/c/master/TotalTestTime",
                "ci-test-metrics/c/master/TestDuration",
            ]
        );
        assert_eq!(specs[1].stat, "p90");
        assert_eq!(specs[0].band_expression, "ANOMALY_DETECTION_BAND(m1, 2)");
        assert!(specs[0].description.ends_with(&specs[0].marker()));
        // Same input, same fingerprints; any change, another.
        assert_eq!(specs, alarm_specs(&jobs, &AlarmOptions::default()).unwrap());
        let wider = AlarmOptions {
            band: 3.0,
            ..Default::default()
        };
        let other = alarm_specs(&jobs, &wider).unwrap();
        assert_ne!(other[0].fingerprint(), specs[0].fingerprint());
        let topic = AlarmOptions {
            sns_topic: Some("arn:aws:sns:us-east-1:123456789012:ci".into()),
            ..Default::default()
        };
        let with_topic = alarm_specs(&jobs, &topic).unwrap();
        assert_eq!(with_topic[0].actions.len(), 1);
        assert_ne!(with_topic[0].fingerprint(), specs[0].fingerprint());
    }

    #[test]
    fn refusals() {
        let jobs = vec!["a".to_string()];
        for opts in [
            AlarmOptions {
                branch_class: "all".into(),
                ..Default::default()
            },
            AlarmOptions {
                band: f64::NAN,
                ..Default::default()
            },
            AlarmOptions {
                period: 90,
                ..Default::default()
            },
            AlarmOptions {
                datapoints_to_alarm: 2,
                ..Default::default()
            },
        ] {
            assert!(alarm_specs(&jobs, &opts).is_err(), "{opts:?}");
        }
        assert!(alarm_specs(&["x".repeat(300)], &AlarmOptions::default()).is_err());
    }
}
