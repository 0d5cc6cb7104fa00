//! CloudWatch dashboards and alarms: typed bodies rendered from the templates in dashboards/, deployed with PutDashboard.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DashboardError {
    #[error("{0}")]
    Invalid(String),
}
