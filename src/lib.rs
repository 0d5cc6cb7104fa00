//! # ci-test-metrics
//!
//! CI unit tests get slower one commit at a time. This crate turns every CI build's JUnit results,
//! uploaded to S3 (or a local directory) as `{prefix}{job}/{branch}/{build}/{file}` plus a
//! `context.json`, into per-job CloudWatch metrics and dashboards, and names the tests — and the
//! changes — that made a job slower.
//!
//! ```text
//! upload ──▶ store ──▶ aggregate ──▶ parse ──▶ build summary ──▶ metrics ──▶ CloudWatch | EMF
//!                                                  │
//!                                                  └──▶ history tables (Parquet, per day)
//!                                                          │
//!       analyze ◀── one series at a time ──────────────────┘──▶ change points ──▶ report
//! ```
//!
//! The core is pure and synchronous: [`junit`] (streaming parser), [`layout`] (key layout),
//! [`context`], [`metrics::encode`], [`table::encode`] and [`table::decode`] (Parquet),
//! [`dashboard`] bodies and [`analyze`] statistics. Only the edges are async and touch the network:
//! [`store`] (local directory or S3), the metric sinks in [`metrics`], and the table reads and
//! publishing in [`table::fetch`] and [`table::publish`].

pub mod aggregate;
pub mod analyze;
pub mod arrivals;
pub mod aws;
pub mod cli;
pub mod context;
pub mod dashboard;
pub mod error;
pub mod git;
pub mod junit;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod layout;
pub mod metrics;
pub mod store;
pub mod summary;
pub mod table;
pub mod upload;

pub use error::{Error, Result};

/// The test support under `tests/support/`, for the library's own unit tests too: it names this
/// crate `ci_test_metrics`, as the integration tests, benchmarks and examples that share it do.
#[cfg(test)]
extern crate self as ci_test_metrics;
#[cfg(test)]
#[path = "../tests/support/synth.rs"]
#[allow(dead_code)]
mod test_synth;
