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

use crate::aggregate::worker::{process_build, BuildVerdict};
use crate::aggregate::Options;
use crate::layout::BuildId;
use crate::metrics::Sink;
use crate::store::Store;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batch::{Outcome, Plan};
use decode::Scope;
use std::time::{Instant, SystemTime};

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

/// The `aggregate` flags, read from their `CI_TEST_METRICS_*` variables only.
#[derive(Debug, clap::Parser)]
#[command(name = "bootstrap", no_binary_name = true)]
struct EnvArgs {
    #[command(flatten)]
    args: crate::cli::aggregate::Args,
}

/// The `aggregate` flags from the environment (no command line), with the function's default
/// sink; refuses what makes no sense on Lambda.
fn args_from_env() -> Result<crate::cli::aggregate::Args, InitError> {
    use clap::Parser;
    let mut args = EnvArgs::try_parse_from(std::iter::empty::<String>())
        .map_err(|e| InitError::Config(e.to_string()))?
        .args;
    args.sink.get_or_insert_with(|| DEFAULT_SINK.to_string());
    if args.dry_run || args.republish || args.full {
        return Err(InitError::Config(
            "CI_TEST_METRICS_DRY_RUN, _REPUBLISH and _FULL are for the aggregate command; the \
             function processes the builds it is notified of"
                .into(),
        ));
    }
    Ok(args)
}

/// Everything one execution environment keeps between invocations.
pub struct Function {
    scope: Scope,
    sqs: aws_sdk_sqs::Client,
    worker: tokio::sync::Mutex<Worker>,
}

/// The per-build path's state: what `aggregate` builds from the same flags.
struct Worker {
    store: Store,
    sink: Sink,
    opts: Options,
}

impl Function {
    /// Reads the configuration from the environment and opens the store, sink and SQS client.
    pub async fn from_env() -> Result<Function, InitError> {
        let args = args_from_env()?;
        let store_url = crate::cli::store_url(args.store.as_deref(), |n| std::env::var(n).ok())?;
        let scope = Scope::of_store_url(&store_url).map_err(|e| {
            InitError::Config(format!(
                "CI_TEST_METRICS_STORE={store_url:?}: {e}; the function serves an S3 bucket: s3://BUCKET[/PREFIX]"
            ))
        })?;
        let (store, sink, mut opts) = crate::cli::aggregate::setup(&args).await?;
        let sink = sink.ok_or_else(|| InitError::Config("no sink".into()))?;
        // Unique per execution environment (several start in the same second with the same pid).
        if let Ok(stream) = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME") {
            opts.run_id = format!("lambda-{stream}");
        }
        tracing::info!(
            store = %store.describe(),
            destination = %opts.destination.id,
            settle_s = opts.settle.as_secs(),
            lease_s = opts.lease.as_secs(),
            "ready"
        );
        let sdk = crate::aws::load().await;
        Ok(Function {
            scope,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            worker: tokio::sync::Mutex::new(Worker { store, sink, opts }),
        })
    }

    /// Handles one SQS batch: processes its builds, delays the messages to retry, and returns
    /// the partial batch response.
    pub async fn handle(&self, event: SqsEvent, deadline: SystemTime) -> SqsBatchResponse {
        let deadline = deadline
            .duration_since(SystemTime::now())
            .ok()
            .map(|left| Instant::now() + left);
        let started = Instant::now();
        let mut worker = self.worker.lock().await;
        let plan = batch::plan_batch(&event, &self.scope, deadline, &mut *worker).await;
        // Then the history tables: whatever days are due (cheap when none is: one listing).
        let tables = crate::table::publish::PublishOptions {
            now: time::OffsetDateTime::now_utc(),
            ..worker.opts.tables.clone()
        };
        // Boxed: the publishing future is deep, and the runtime's would be deeper still.
        match Box::pin(crate::table::publish::publish(&worker.store, &tables)).await {
            Ok(p) => {
                for w in &p.warnings {
                    tracing::warn!("{w}");
                }
                if !p.parts.is_empty() {
                    tracing::info!(
                        builds = p.builds,
                        parts = p.parts.len(),
                        "history tables published"
                    );
                }
            }
            Err(e) => tracing::warn!(
                "history tables not published this time (the builds stay staged): {e}"
            ),
        }
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
    async fn process(&mut self, build: BuildId) -> Outcome {
        // Boxed: the per-build path's future is deep, and the runtime's would be deeper still.
        let verdict = Box::pin(process_build(
            &self.store,
            &mut self.sink,
            &build,
            &self.opts,
        ))
        .await;
        outcome(&build, verdict)
    }
}

/// What a verdict means for the message, logged once per build.
fn outcome(build: &BuildId, verdict: BuildVerdict) -> Outcome {
    match verdict {
        BuildVerdict::Done(done) => {
            let what = if done.published {
                format!("{} datums sent", done.datums)
            } else {
                format!(
                    "not sent: {}",
                    done.reason.as_deref().unwrap_or("not published")
                )
            };
            if done.problems.is_empty() {
                tracing::info!(%build, tests = done.tests, "done: {what}");
            } else {
                tracing::warn!(
                    %build,
                    tests = done.tests,
                    parse_errors = done.parse_errors,
                    "done with data problems (recorded, not retried): {}; {what}",
                    done.problems.join("; ")
                );
            }
            Outcome::Finished
        }
        BuildVerdict::AlreadyDone => {
            tracing::info!(%build, "already done for this destination; nothing sent");
            Outcome::Finished
        }
        BuildVerdict::Incomplete => {
            tracing::info!(%build, "no context.json (gone, or never written); nothing to do");
            Outcome::Finished
        }
        BuildVerdict::Settling { retry_in } => {
            tracing::info!(%build, "settling: uploaded to recently; again in {} s", retry_in.as_secs());
            Outcome::Settling(retry_in)
        }
        BuildVerdict::Claimed { owner } => {
            tracing::info!(%build, "claimed by {owner}; again later");
            Outcome::Claimed
        }
        BuildVerdict::Failed(message) => {
            tracing::warn!(%build, "failed, will be retried: {message}");
            Outcome::Failed(message)
        }
    }
}

/// Runs the function: initialises, then serves invocations until the runtime stops it.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let function = Function::from_env().await?;
    let function = &function;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
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
