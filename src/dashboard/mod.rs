//! CloudWatch dashboards and alarms for the per-job metrics.
//!
//! - [`body`]: the dashboard body as typed serde structs;
//! - [`template`]: versioned templates from `dashboards/`, rendered purely into bodies (split
//!   into several dashboards when the jobs do not fit one);
//! - [`validate`]: the structure and limit checks every rendered body passes before it leaves;
//! - [`alarms`]: per-job anomaly-detection alarm specifications (pure);
//! - [`deploy`]: the network edge: ListMetrics discovery, idempotent PutDashboard and
//!   PutMetricAlarm.

pub mod alarms;
pub mod body;
pub mod deploy;
pub mod template;
pub mod validate;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DashboardError {
    /// A rendered body broke the dashboard structure or limits.
    #[error("dashboard {dashboard}: invalid body: {}", .problems.join("; "))]
    Invalid {
        dashboard: String,
        problems: Vec<String>,
    },
    /// A template could not be read, parsed or rendered.
    #[error("template {template}: {reason}")]
    Template { template: String, reason: String },
    /// Alarm options CloudWatch would refuse.
    #[error("alarms: {0}")]
    Alarm(String),
    /// A dashboard name CloudWatch would refuse.
    #[error("dashboard name {0:?}: use 1-255 of A-Z, a-z, 0-9, - and _")]
    Name(String),
    /// Nothing to render: no jobs given or discovered.
    #[error("no jobs: {0}")]
    NoJobs(String),
    /// A CloudWatch call failed.
    #[error("{call} failed: {message}")]
    Aws { call: &'static str, message: String },
    /// CloudWatch answered PutDashboard with validation messages.
    #[error("dashboard {dashboard}: CloudWatch refused the body: {}", .messages.join("; "))]
    Refused {
        dashboard: String,
        messages: Vec<String>,
    },
}
