//! The network edge of dashboards and alarms: job discovery with ListMetrics, idempotent
//! PutDashboard (GetDashboard first; an identical body is left alone) and idempotent
//! PutMetricAlarm (DescribeAlarms first; an alarm carrying the same fingerprint is left alone).
//! With `dry_run` the reads still happen (to say what would change) but nothing is written.

use super::alarms::AlarmSpec;
use super::template::Rendered;
use super::DashboardError;
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat,
};
use aws_sdk_cloudwatch::Client;
use std::collections::{BTreeMap, BTreeSet};

/// What deploy did (or, in a dry run, would do) to one dashboard or alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Unchanged,
}

impl Action {
    pub fn describe(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Action::Created, false) => "created",
            (Action::Created, true) => "would create",
            (Action::Updated, false) => "updated",
            (Action::Updated, true) => "would update",
            (Action::Unchanged, _) => "unchanged",
        }
    }
}

fn aws<E: std::error::Error>(call: &'static str) -> impl FnOnce(E) -> DashboardError {
    move |e| DashboardError::Aws {
        call,
        message: crate::aws::describe(&e),
    }
}

/// The jobs that published `Builds` in `namespace` (for `branch_class`, or any class for
/// `all`), from ListMetrics, all pages. Only the `{Job, BranchClass}` metrics count, not the
/// per-suite or per-test ones. Sorted, distinct.
pub async fn discover_jobs(
    client: &Client,
    namespace: &str,
    branch_class: &str,
) -> Result<Vec<String>, DashboardError> {
    let class = DimensionFilter::builder().name("BranchClass");
    let class = if branch_class == "all" {
        class
    } else {
        class.value(branch_class)
    };
    let mut pages = client
        .list_metrics()
        .namespace(namespace)
        .metric_name("Builds")
        .dimensions(DimensionFilter::builder().name("Job").build())
        .dimensions(class.build())
        .into_paginator()
        .send();
    let mut jobs = BTreeSet::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws("ListMetrics"))?;
        for metric in page.metrics() {
            let dims = metric.dimensions();
            if dims.len() != 2 {
                continue;
            }
            if let Some(job) = dims.iter().find(|d| d.name() == Some("Job")) {
                if let Some(v) = job.value() {
                    jobs.insert(v.to_string());
                }
            }
        }
    }
    Ok(jobs.into_iter().collect())
}

/// The body of a deployed dashboard, if there is one.
pub async fn current_body(client: &Client, name: &str) -> Result<Option<String>, DashboardError> {
    match client.get_dashboard().dashboard_name(name).send().await {
        Ok(out) => Ok(out.dashboard_body().map(String::from)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_dashboard_not_found_error())
                || matches!(
                    e.code(),
                    Some("ResourceNotFound" | "ResourceNotFoundException")
                ) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws("GetDashboard")(e)),
    }
}

/// Deploys one rendered dashboard unless the same body is already there.
pub async fn deploy_dashboard(
    client: &Client,
    dashboard: &Rendered,
    dry_run: bool,
) -> Result<Action, DashboardError> {
    let body = dashboard.json();
    let action = match current_body(client, &dashboard.name).await? {
        None => Action::Created,
        Some(old) if same_json(&old, &body) => return Ok(Action::Unchanged),
        Some(_) => Action::Updated,
    };
    if dry_run {
        return Ok(action);
    }
    let out = client
        .put_dashboard()
        .dashboard_name(&dashboard.name)
        .dashboard_body(&body)
        .send()
        .await
        .map_err(aws("PutDashboard"))?;
    let messages: Vec<String> = out
        .dashboard_validation_messages()
        .iter()
        .map(|m| {
            format!(
                "{}: {}",
                m.data_path().unwrap_or("$"),
                m.message().unwrap_or("")
            )
        })
        .collect();
    if !messages.is_empty() {
        return Err(DashboardError::Refused {
            dashboard: dashboard.name.clone(),
            messages,
        });
    }
    Ok(action)
}

/// Two JSON texts with the same value (formatting aside).
pub fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Deploys alarms whose fingerprint is not already in place; returns each one's action.
pub async fn deploy_alarms(
    client: &Client,
    specs: &[AlarmSpec],
    dry_run: bool,
) -> Result<Vec<(String, Action)>, DashboardError> {
    // name → description of the alarms that exist.
    let mut existing: BTreeMap<String, String> = BTreeMap::new();
    for chunk in specs.chunks(100) {
        let names: Vec<String> = chunk.iter().map(|s| s.name.clone()).collect();
        let out = client
            .describe_alarms()
            .set_alarm_names(Some(names))
            .max_records(100)
            .send()
            .await
            .map_err(aws("DescribeAlarms"))?;
        for a in out.metric_alarms() {
            if let Some(name) = a.alarm_name() {
                existing.insert(
                    name.to_string(),
                    a.alarm_description().unwrap_or("").to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    for spec in specs {
        let action = match existing.get(&spec.name) {
            Some(desc) if desc.contains(&spec.marker()) => Action::Unchanged,
            Some(_) => Action::Updated,
            None => Action::Created,
        };
        if action != Action::Unchanged && !dry_run {
            put_alarm(client, spec).await?;
        }
        out.push((spec.name.clone(), action));
    }
    Ok(out)
}

async fn put_alarm(client: &Client, spec: &AlarmSpec) -> Result<(), DashboardError> {
    let metric = Metric::builder()
        .namespace(&spec.namespace)
        .metric_name(&spec.metric)
        .set_dimensions(Some(
            spec.dimensions
                .iter()
                .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                .collect(),
        ))
        .build();
    let m1 = MetricDataQuery::builder()
        .id("m1")
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(spec.period)
                .stat(&spec.stat)
                .build(),
        )
        .return_data(true)
        .build();
    let band = MetricDataQuery::builder()
        .id("ad1")
        .expression(&spec.band_expression)
        .label("expected")
        .return_data(true)
        .build();
    client
        .put_metric_alarm()
        .alarm_name(&spec.name)
        .alarm_description(&spec.description)
        .actions_enabled(true)
        .set_alarm_actions(Some(spec.actions.clone()))
        .set_ok_actions(Some(spec.actions.clone()))
        .metrics(m1)
        .metrics(band)
        .threshold_metric_id("ad1")
        .comparison_operator(ComparisonOperator::from(spec.comparison.as_str()))
        .evaluation_periods(spec.evaluation_periods)
        .datapoints_to_alarm(spec.datapoints_to_alarm)
        .treat_missing_data(&spec.treat_missing_data)
        .send()
        .await
        .map_err(aws("PutMetricAlarm"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_json_ignores_formatting_only() {
        assert!(super::same_json("{\"a\": [1, 2]}", "{\"a\":[1,2]}"));
        assert!(!super::same_json("{\"a\": [1, 2]}", "{\"a\":[2,1]}"));
        assert!(!super::same_json("not json", "{}"));
    }
}
