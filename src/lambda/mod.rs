//! The event-driven edge (cargo feature `lambda`, binary `bootstrap`): S3 notifications for
//! `context.json`, through SQS, to an AWS Lambda function that runs the same per-build path as
//! `aggregate` for each build it is told about.
//!
//! ```text
//! S3 ObjectCreated (suffix context.json) ─▶ SQS ─▶ Lambda (this) ─▶ claim ─▶ settle? ─▶ parse,
//!     summarise, publish (EMF on stdout by default) ─▶ done marker
//! ```
//!
//! - [`decode`] (pure): a message body → the builds it names, decoding keys exactly once.
//! - [`batch`] (pure but for the awaited per-build call): a batch → which messages to
//!   acknowledge, which to retry and when (`ReportBatchItemFailures`).
//! - This module: configuration, the runtime loop, and the SQS calls that move a retried
//!   message's visibility to its retry time.
//!
//! **Configuration is environment variables only**, the `aggregate` flags' own:
//! `CI_TEST_METRICS_STORE` (must be `s3://BUCKET[/PREFIX]`), `CI_TEST_METRICS_SINK` (default
//! `stdout` here: EMF lines that CloudWatch Logs turns into metrics; `cloudwatch` for
//! PutMetricData), `CI_TEST_METRICS_NAMESPACE`, `CI_TEST_METRICS_SETTLE`,
//! `CI_TEST_METRICS_BRANCHES`, `CI_TEST_METRICS_LEASE` and the rest; unset ones take the CLI's
//! defaults, because they are parsed by the CLI's own flag definitions. Logs go to stderr (level
//! from `RUST_LOG`, default `info`), never to stdout, which carries only EMF.

pub mod batch;
pub mod decode;

use crate::layout::BuildId;
use batch::{Outcome, Plan};
use decode::Scope;
use std::time::{Duration, Instant, SystemTime};

/// Errors that stop the function from starting (reported to Lambda as an init error).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Setup(#[from] crate::Error),
}

/// The sink the function uses when `CI_TEST_METRICS_SINK` is unset.
pub const DEFAULT_SINK: &str = "stdout";

/// Everything one execution environment keeps between invocations.
pub struct Function {
    scope: Scope,
    sqs: aws_sdk_sqs::Client,
    worker: tokio::sync::Mutex<Worker>,
}

/// The per-build path's state: what `aggregate` would build from the same flags.
struct Worker {
    store_url: String,
}

impl Function {
    /// Reads the configuration from the environment and opens the store, sink and SQS client.
    pub async fn from_env() -> Result<Function, InitError> {
        let store_url = std::env::var("CI_TEST_METRICS_STORE").map_err(|_| {
            InitError::Config(
                "CI_TEST_METRICS_STORE is not set; set it to s3://BUCKET[/PREFIX]".into(),
            )
        })?;
        let scope = Scope::of_store_url(&store_url).map_err(|e| {
            InitError::Config(format!(
                "CI_TEST_METRICS_STORE={store_url:?}: {e}; the function serves an S3 bucket: s3://BUCKET[/PREFIX]"
            ))
        })?;
        let sdk = crate::aws::load().await;
        Ok(Function {
            scope,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            worker: tokio::sync::Mutex::new(Worker { store_url }),
        })
    }

    /// Handles one SQS batch: processes its builds, delays the messages to retry, and returns
    /// the partial batch response.
    pub async fn handle(
        &self,
        event: aws_lambda_events::event::sqs::SqsEvent,
        deadline: SystemTime,
    ) -> aws_lambda_events::event::sqs::SqsBatchResponse {
        let deadline = deadline
            .duration_since(SystemTime::now())
            .ok()
            .map(|left| Instant::now() + left);
        let started = Instant::now();
        let mut worker = self.worker.lock().await;
        let plan = batch::plan_batch(&event, &self.scope, deadline, &mut *worker).await;
        drop(worker);
        self.delay(&plan).await;
        tracing::info!(
            messages = event.records.len(),
            builds = plan.builds,
            retried = plan.failures.len(),
            "batch done in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        plan.response()
    }

    /// Moves each retried message's visibility to its retry time. A failure here only means SQS
    /// delivers the message after the queue's own visibility timeout instead.
    async fn delay(&self, plan: &Plan) {
        for d in &plan.delays {
            let secs = i32::try_from(d.after.as_secs()).unwrap_or(i32::MAX);
            let result = self
                .sqs
                .change_message_visibility()
                .queue_url(&d.queue_url)
                .receipt_handle(&d.receipt_handle)
                .visibility_timeout(secs)
                .send()
                .await;
            if let Err(e) = result {
                tracing::warn!(
                    "could not delay a retried message by {secs} s (it comes back after the queue's visibility timeout): {}",
                    crate::aws::describe(&e)
                );
            }
        }
    }
}

impl batch::Process for Worker {
    /// The switch to the per-build path of `aggregate`.
    async fn process(&mut self, build: BuildId) -> Outcome {
        let _ = (&self.store_url, Duration::ZERO);
        Outcome::Failed(format!(
            "{build}: the per-build path (aggregate::worker::process_build) is not wired yet"
        ))
    }
}

/// Runs the function: initialises, then serves invocations until the runtime stops it.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let function = Function::from_env().await?;
    let function = &function;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            let deadline = event.context.deadline();
            Ok::<_, std::convert::Infallible>(function.handle(event.payload, deadline).await)
        },
    ))
    .await
}

/// Logging for the function: stderr only, no colours, level from `RUST_LOG` (default info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ci_test_metrics=info,warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
}
