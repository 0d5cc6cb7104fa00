//! The one integration-test binary. Each module owns one area; `common` finds the local servers.

mod common;
#[path = "../support/synth.rs"]
pub mod synth;

mod aggregate;
mod analyze;
mod analyze_flaky;
mod attribution;
mod ci;
mod concurrency;
mod dashboard;
mod examples;
mod history;
mod lambda;
mod metrics;
mod parse;
mod tls;
mod upload;
