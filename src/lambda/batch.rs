//! One SQS batch: decode each message, process each build it names once, and decide per
//! message whether SQS deletes it or delivers it again, and when.
//!
//! The processing itself is passed in (the per-build path of `aggregate`), so this module is
//! pure apart from awaiting it, and is tested with plain tables. The decisions:
//!
//! - A message is **acknowledged** (deleted by SQS) when every build it names is done, already
//!   done, or incomplete (no `context.json`), and when it names none (test event, other file,
//!   other prefix, bad key) or does not decode at all (logged as an error: it would fail the same
//!   way on every delivery).
//! - It is **retried** (a batch item failure) when any of its builds must wait: still settling,
//!   claimed by another worker, or a transient failure. Each retry says when: the settle time's
//!   rest, or an exponential backoff for a claim and for failures ([`retry_after`]). The caller moves the message's visibility to that time, so SQS delivers it
//!   again then instead of after the queue's whole visibility timeout. A message that fails every
//!   delivery reaches the dead-letter queue after the queue's `maxReceiveCount`.
//! - A build named by several messages of one batch (parallel stages rewriting `context.json`) is
//!   processed once; every message naming it shares the outcome.
//! - When the invocation's time runs short, builds not yet started are retried at once rather
//!   than cut off by the function timeout.

use super::decode::{decode_message, Scope, Skip};
use crate::layout::BuildId;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a message waits before SQS delivers it again, at most (SQS's limit is 12 hours).
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600 - 60);
/// The first wait for a build claimed by another worker; it doubles with each delivery, up to
/// [`MAX_BACKOFF`]. A live holder usually finishes within the first wait, so the message goes
/// soon after ("already done"); a dead holder's claim runs out with its lease (default 10 m on
/// Lambda), which the doubling waits reach in 6 deliveries (10+20+…+320 s = 630 s), fewer than the
/// template's `MaxReceiveCount` of 10, so the message is not sent to the dead-letter queue.
pub const CLAIM_WAIT: Duration = Duration::from_secs(10);
/// The first wait after a transient failure; it doubles with each delivery, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest wait for a claim or after a transient failure.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Builds are not started with less than this left before the deadline.
pub const MIN_TIME_LEFT: Duration = Duration::from_secs(5);

/// What became of one build, as far as its message is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done, already done, or nothing to do: the message may go.
    Finished,
    /// Still settling: try again in this long.
    Settling(Duration),
    /// Another worker holds the claim.
    Claimed,
    /// A transient store or sink failure.
    Failed(String),
}

/// When SQS should deliver a message again after `outcome`, on its `receive_count`-th delivery
/// (1 for the first); `None` when the message is done with.
pub fn retry_after(outcome: &Outcome, receive_count: u32) -> Option<Duration> {
    match outcome {
        Outcome::Finished => None,
        Outcome::Settling(rest) => Some((*rest + Duration::from_secs(1)).min(MAX_DELAY)),
        Outcome::Claimed => Some(doubling(CLAIM_WAIT, receive_count)),
        Outcome::Failed(_) => Some(doubling(FIRST_BACKOFF, receive_count)),
    }
}

/// `first`, doubled for each delivery after the first, at most [`MAX_BACKOFF`].
fn doubling(first: Duration, receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    (first * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// Moving one message's visibility, so SQS delivers it again after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delay {
    pub queue_url: String,
    pub receipt_handle: String,
    pub after: Duration,
}

/// What to answer for a batch, and which messages to delay.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The message ids to report as batch item failures.
    pub failures: Vec<String>,
    pub delays: Vec<Delay>,
    /// Builds processed (each once), for the invocation's log line.
    pub builds: usize,
}

impl Plan {
    /// The answer SQS's event source mapping reads (`ReportBatchItemFailures`).
    pub fn response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for id in &self.failures {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.clone();
            response.batch_item_failures.push(failure);
        }
        response
    }
}

/// The queue URL of a queue ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`), in the form SQS accepts in
/// every region; an endpoint override (`AWS_ENDPOINT_URL`) still decides where the call goes.
pub fn queue_url(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sqs", region, account, name]
            if !region.is_empty() && !account.is_empty() && !name.is_empty() =>
        {
            let domain = match *partition {
                "aws-cn" => "amazonaws.com.cn",
                _ => "amazonaws.com",
            };
            Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
        }
        _ => None,
    }
}

/// The per-build path, as the batch sees it.
pub trait Process {
    /// Runs one build through claim, settle, parse, publish and done marker.
    fn process(&mut self, build: BuildId) -> impl std::future::Future<Output = Outcome>;
}

/// Plans one batch: `worker` runs the per-build path for one build; `deadline` is when the
/// invocation is cut off.
pub async fn plan_batch(
    event: &SqsEvent,
    scope: &Scope,
    deadline: Option<Instant>,
    worker: &mut impl Process,
) -> Plan {
    let mut plan = Plan::default();
    let mut seen: HashMap<BuildId, Outcome> = HashMap::new();
    let mut longest = Duration::ZERO;
    for message in &event.records {
        let Some(id) = message.message_id.clone() else {
            tracing::error!("a message without a messageId cannot be answered; skipped");
            continue;
        };
        let body = message.body.as_deref().unwrap_or("");
        let decoded = match decode_message(body, scope) {
            Ok(d) => d,
            Err(e) => {
                let shown: String = body.chars().take(200).collect();
                tracing::error!(
                    message_id = %id,
                    "acknowledged without processing, it would fail the same way on every \
                     delivery: {e}; body starts {shown:?}"
                );
                continue;
            }
        };
        for skip in &decoded.skipped {
            log_skip(&id, skip);
        }
        let receive_count: u32 = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let mut wait: Option<Duration> = None;
        for build in decoded.builds {
            let outcome = match seen.get(&build) {
                Some(o) => o.clone(),
                None => {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    let outcome = if left.is_some_and(|l| l < MIN_TIME_LEFT.max(longest * 2)) {
                        tracing::warn!(%build, "too little time left in this invocation; retried at once");
                        Outcome::Settling(Duration::ZERO)
                    } else {
                        let started = Instant::now();
                        let o = worker.process(build.clone()).await;
                        longest = longest.max(started.elapsed());
                        plan.builds += 1;
                        o
                    };
                    seen.insert(build.clone(), outcome.clone());
                    outcome
                }
            };
            if let Some(after) = retry_after(&outcome, receive_count) {
                wait = Some(wait.map_or(after, |w| w.max(after)));
            }
        }
        if let Some(after) = wait {
            plan.failures.push(id.clone());
            let queue = message.event_source_arn.as_deref().and_then(queue_url);
            match (queue, message.receipt_handle.clone()) {
                (Some(queue_url), Some(receipt_handle)) => plan.delays.push(Delay {
                    queue_url,
                    receipt_handle,
                    after,
                }),
                _ => tracing::warn!(
                    message_id = %id,
                    "no queue ARN or receipt handle; SQS delivers it again after the queue's visibility timeout"
                ),
            }
        }
    }
    plan
}

fn log_skip(message_id: &str, skip: &Skip) {
    match skip {
        Skip::TestEvent => tracing::info!(message_id, "s3:TestEvent acknowledged"),
        Skip::OtherBucket { bucket, key } => tracing::warn!(
            message_id,
            "s3://{bucket}/{key} is not in this function's store; ignored (check the bucket notification)"
        ),
        Skip::BadKey { key, reason } => {
            tracing::warn!(message_id, "{key:?} is not a build's context.json: {reason}; ignored")
        }
        Skip::NotCreated { event, key } => tracing::debug!(message_id, "{event} {key}: ignored"),
        Skip::OutsidePrefix { key } | Skip::Reserved { key } | Skip::NotContext { key } => {
            tracing::debug!(message_id, "{key}: not a build's context.json under the store's prefix; ignored")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;
    use serde_json::json;

    const ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:ctm-builds";

    fn scope() -> Scope {
        Scope {
            bucket: "results".into(),
            prefix: String::new(),
        }
    }

    fn s3_body(keys: &[&str]) -> String {
        let records: Vec<_> = keys
            .iter()
            .map(|k| json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "results"}, "object": {"key": k}}}))
            .collect();
        json!({ "Records": records }).to_string()
    }

    fn message(id: &str, body: &str, receive_count: u32) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.receipt_handle = Some(format!("rh-{id}"));
        m.body = Some(body.into());
        m.event_source_arn = Some(ARN.into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        m
    }

    fn event(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = messages;
        e
    }

    /// Answers with outcomes looked up by build number (Finished when absent) and records the
    /// builds it was asked for, in order.
    struct Fake {
        outcomes: Vec<(u64, Outcome)>,
        calls: Vec<u64>,
    }

    impl Process for Fake {
        async fn process(&mut self, build: BuildId) -> Outcome {
            self.calls.push(build.build);
            self.outcomes
                .iter()
                .find(|(n, _)| *n == build.build)
                .map_or(Outcome::Finished, |(_, o)| o.clone())
        }
    }

    fn run(messages: Vec<SqsMessage>, outcomes: &[(u64, Outcome)]) -> (Plan, Vec<u64>) {
        let mut fake = Fake {
            outcomes: outcomes.to_vec(),
            calls: Vec::new(),
        };
        let plan =
            futures::executor::block_on(plan_batch(&event(messages), &scope(), None, &mut fake));
        (plan, fake.calls)
    }

    #[test]
    fn retry_times() {
        let s = Duration::from_secs;
        let cases = [
            (Outcome::Finished, 1, None),
            (Outcome::Settling(s(90)), 1, Some(s(91))),
            (Outcome::Settling(s(86_400)), 1, Some(MAX_DELAY)),
            (Outcome::Claimed, 1, Some(s(10))),
            (Outcome::Claimed, 3, Some(s(40))),
            (Outcome::Claimed, 7, Some(s(640))),
            (Outcome::Claimed, 8, Some(MAX_BACKOFF)),
            (Outcome::Failed("x".into()), 1, Some(s(30))),
            (Outcome::Failed("x".into()), 2, Some(s(60))),
            (Outcome::Failed("x".into()), 5, Some(s(480))),
            (Outcome::Failed("x".into()), 6, Some(MAX_BACKOFF)),
            (Outcome::Failed("x".into()), 1000, Some(MAX_BACKOFF)),
            (Outcome::Failed("x".into()), 0, Some(s(30))),
        ];
        for (outcome, n, want) in cases {
            assert_eq!(
                retry_after(&outcome, n),
                want,
                "{outcome:?} on delivery {n}"
            );
        }
    }

    #[test]
    fn messages_are_acknowledged_or_retried() {
        let s = Duration::from_secs;
        // (what, bodies, outcomes by build, failed message ids, delays, builds processed)
        type Case<'a> = (
            &'a str,
            Vec<String>,
            Vec<(u64, Outcome)>,
            Vec<&'a str>,
            Vec<u64>,
            Vec<u64>,
        );
        let cases: Vec<Case> = vec![
            (
                "done",
                vec![s3_body(&["j/main/1/context.json"])],
                vec![],
                vec![],
                vec![],
                vec![1],
            ),
            (
                "settling comes back after the rest of the settle time",
                vec![s3_body(&["j/main/1/context.json"])],
                vec![(1, Outcome::Settling(s(120)))],
                vec!["m0"],
                vec![121],
                vec![1],
            ),
            (
                "claimed and failed",
                vec![
                    s3_body(&["j/main/1/context.json"]),
                    s3_body(&["j/main/2/context.json"]),
                ],
                vec![(1, Outcome::Claimed), (2, Outcome::Failed("503".into()))],
                vec!["m0", "m1"],
                vec![10, 30],
                vec![1, 2],
            ),
            (
                "test event, other file, bad JSON: all acknowledged, nothing processed",
                vec![
                    json!({"Event": "s3:TestEvent", "Bucket": "results"}).to_string(),
                    s3_body(&["j/main/1/junit.xml"]),
                    "not json".into(),
                ],
                vec![],
                vec![],
                vec![],
                vec![],
            ),
            (
                "one build in three messages is processed once, and all three share its fate",
                vec![
                    s3_body(&["j/main/5/context.json"]),
                    s3_body(&["j/main/5/context.json"]),
                    s3_body(&["j/main/6/context.json", "j/main/5/context.json"]),
                ],
                vec![(5, Outcome::Settling(s(10)))],
                vec!["m0", "m1", "m2"],
                vec![11, 11, 11],
                vec![5, 6],
            ),
            (
                "a message waits for its slowest build",
                vec![s3_body(&["j/main/1/context.json", "j/main/2/context.json"])],
                vec![(1, Outcome::Settling(s(20))), (2, Outcome::Claimed)],
                vec!["m0"],
                vec![21],
                vec![1, 2],
            ),
        ];
        for (what, bodies, outcomes, want_failed, want_delays, want_calls) in cases {
            let messages = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| message(&format!("m{i}"), b, 1))
                .collect();
            let (plan, calls) = run(messages, &outcomes);
            assert_eq!(plan.failures, want_failed, "{what}: failures");
            let delays: Vec<u64> = plan.delays.iter().map(|d| d.after.as_secs()).collect();
            assert_eq!(delays, want_delays, "{what}: delays");
            assert_eq!(calls, want_calls, "{what}: builds processed");
            assert_eq!(plan.builds, want_calls.len(), "{what}");
            for d in &plan.delays {
                assert_eq!(
                    d.queue_url,
                    "https://sqs.eu-west-1.amazonaws.com/123456789012/ctm-builds"
                );
                assert!(d.receipt_handle.starts_with("rh-m"), "{what}");
            }
            let response = plan.response();
            let ids: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            assert_eq!(ids, want_failed, "{what}: response");
        }
    }

    #[test]
    fn backoff_follows_the_receive_count() {
        let (plan, _) = run(
            vec![message("m0", &s3_body(&["j/main/1/context.json"]), 4)],
            &[(1, Outcome::Failed("timeout".into()))],
        );
        assert_eq!(plan.delays[0].after, Duration::from_secs(240));
    }

    #[test]
    fn builds_not_started_near_the_deadline_are_retried_at_once() {
        let messages = vec![
            message("m0", &s3_body(&["j/main/1/context.json"]), 1),
            message("m1", &s3_body(&["j/main/2/context.json"]), 1),
        ];
        let mut fake = Fake {
            outcomes: Vec::new(),
            calls: Vec::new(),
        };
        let deadline = Some(Instant::now() + Duration::from_secs(2));
        let plan = futures::executor::block_on(plan_batch(
            &event(messages),
            &scope(),
            deadline,
            &mut fake,
        ));
        assert!(fake.calls.is_empty());
        assert_eq!(plan.failures, vec!["m0", "m1"]);
        assert!(plan
            .delays
            .iter()
            .all(|d| d.after == Duration::from_secs(1)));
    }

    #[test]
    fn queue_urls() {
        assert_eq!(
            queue_url(ARN).as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/ctm-builds")
        );
        assert_eq!(
            queue_url("arn:aws-cn:sqs:cn-north-1:1:q").as_deref(),
            Some("https://sqs.cn-north-1.amazonaws.com.cn/1/q")
        );
        assert_eq!(queue_url("arn:aws:sns:eu-west-1:1:t"), None);
        assert_eq!(queue_url("nonsense"), None);
    }
}
