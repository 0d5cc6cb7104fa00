//! Pure decoding of one SQS message body (an S3 event notification) into the builds it names.
//!
//! S3 sends `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":…},
//! "object":{"key":…}}}]}` for each new object, and once, when the notification is configured,
//! `{"Event":"s3:TestEvent",…}` that names no object. Object keys arrive URL-encoded the way HTML
//! forms are (`+` for a space, `%XX` for other bytes), so Jenkins' branch encoding `feature%2Ffoo`
//! arrives as `feature%252Ffoo`. [`decode_key`] undoes that exactly once: `%252F` becomes `%2F`,
//! which is how the key layout stores the branch, and stays so.
//!
//! What a message can hold, and what the handler does with it:
//!
//! | body | result | handler |
//! |---|---|---|
//! | `s3:TestEvent` | [`Skip::TestEvent`] | acknowledge |
//! | a record for `…/{build}/context.json` in the store's bucket and prefix | a [`BuildId`] | process the build |
//! | another file, another bucket, outside the prefix, under the reserved prefix, not an `ObjectCreated` event | a [`Skip`] with the key | acknowledge, log at debug (warn for another bucket) |
//! | a key that does not decode or is not a build's key | [`Skip::BadKey`] | acknowledge, log a warning: no retry can make it valid |
//! | not JSON, or JSON of neither shape | [`BadMessage`] | acknowledge, log an error: it would fail on every retry and only reach the dead-letter queue later |

use crate::layout::{self, BuildId, CONTEXT_FILE};
use serde_json::Value;
use thiserror::Error;

/// The part of a bucket the function serves: the store's bucket and prefix (empty or ending
/// with `/`), from `s3://BUCKET[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub bucket: String,
    pub prefix: String,
}

/// Why a record names no build to process. Each one is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// S3's `s3:TestEvent`, sent once when the notification is configured.
    TestEvent,
    /// Not an `ObjectCreated:*` event (the template subscribes to no other).
    NotCreated { event: String, key: String },
    /// An object in a bucket other than the store's.
    OtherBucket { bucket: String, key: String },
    /// An object outside the store's prefix.
    OutsidePrefix { key: String },
    /// An object under the aggregator's reserved prefix.
    Reserved { key: String },
    /// Another file than `context.json`.
    NotContext { key: String },
    /// A key that does not decode, or a `context.json` that is not at a build's place.
    BadKey { key: String, reason: String },
}

/// A body that is not an S3 notification at all.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("not an S3 event notification: {0}")]
pub struct BadMessage(pub String);

/// What one message names: its builds (in record order, without repeats) and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    pub builds: Vec<BuildId>,
    pub skipped: Vec<Skip>,
}

impl Scope {
    /// The scope of an `s3://BUCKET[/PREFIX]` store URL.
    pub fn of_store_url(url: &str) -> Result<Scope, crate::store::StoreError> {
        let (bucket, prefix) = crate::store::s3::parse_url(url)?;
        Ok(Scope { bucket, prefix })
    }
}

/// Decodes one message body.
pub fn decode_message(body: &str, scope: &Scope) -> Result<Decoded, BadMessage> {
    let value: Value = serde_json::from_str(body).map_err(|e| BadMessage(format!("{e}")))?;
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Decoded {
            builds: Vec::new(),
            skipped: vec![Skip::TestEvent],
        });
    }
    let records = value
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| BadMessage("no \"Records\" array and not an s3:TestEvent".into()))?;
    let mut out = Decoded::default();
    for (i, record) in records.iter().enumerate() {
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(record, |v, k| v.get(*k))
                .and_then(Value::as_str)
                .ok_or_else(|| BadMessage(format!("record {i} has no string {}", path.join("."))))
        };
        let event = text(&["eventName"])?;
        let bucket = text(&["s3", "bucket", "name"])?;
        let raw_key = text(&["s3", "object", "key"])?;
        match decode_record(event, bucket, raw_key, scope) {
            Ok(build) if !out.builds.contains(&build) => out.builds.push(build),
            Ok(_) => {}
            Err(skip) => out.skipped.push(skip),
        }
    }
    Ok(out)
}

/// One record: the build whose `context.json` it names, or why it names none.
fn decode_record(event: &str, bucket: &str, raw_key: &str, scope: &Scope) -> Result<BuildId, Skip> {
    let key = decode_key(raw_key).map_err(|reason| Skip::BadKey {
        key: raw_key.to_string(),
        reason,
    })?;
    if !event
        .trim_start_matches("s3:")
        .starts_with("ObjectCreated:")
    {
        return Err(Skip::NotCreated {
            event: event.to_string(),
            key,
        });
    }
    if bucket != scope.bucket {
        return Err(Skip::OtherBucket {
            bucket: bucket.to_string(),
            key,
        });
    }
    let Some(relative) = key.strip_prefix(&scope.prefix) else {
        return Err(Skip::OutsidePrefix { key });
    };
    if layout::is_reserved(relative) {
        return Err(Skip::Reserved { key });
    }
    if relative.rsplit('/').next() != Some(CONTEXT_FILE) {
        return Err(Skip::NotContext { key });
    }
    let bad = |reason: String| Skip::BadKey {
        key: key.clone(),
        reason,
    };
    crate::store::check_key(relative).map_err(|e| bad(e.to_string()))?;
    let (build, _) = layout::parse_key(relative).map_err(|e| bad(e.to_string()))?;
    layout::check_job(&build.job).map_err(|e| bad(e.to_string()))?;
    layout::check_segment("branch", &build.branch).map_err(|e| bad(e.to_string()))?;
    Ok(build)
}

/// Decodes an S3 notification key once: `+` is a space, `%XX` a byte; the bytes must be UTF-8.
pub fn decode_key(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("`%` at byte {i} is not followed by two hex digits"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "it does not decode to UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope(prefix: &str) -> Scope {
        Scope {
            bucket: "results".into(),
            prefix: prefix.into(),
        }
    }

    fn build(job: &str, branch: &str, n: u64) -> BuildId {
        BuildId {
            job: job.into(),
            branch: branch.into(),
            build: n,
        }
    }

    fn body(records: &[(&str, &str, &str)]) -> String {
        let records: Vec<_> = records
            .iter()
            .map(|(event, bucket, key)| {
                json!({"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": event,
                       "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}}})
            })
            .collect();
        json!({ "Records": records }).to_string()
    }

    #[test]
    fn keys_decode_exactly_once() {
        let cases = [
            ("a/b/1/context.json", Ok("a/b/1/context.json")),
            ("my+job/b/1/x", Ok("my job/b/1/x")),
            ("a/feature%252Ffoo/1/x", Ok("a/feature%2Ffoo/1/x")),
            ("a/feature%2Ffoo/1/x", Ok("a/feature/foo/1/x")),
            ("a%2Bb/c", Ok("a+b/c")),
            ("caf%C3%A9/x", Ok("café/x")),
            ("%25252F", Ok("%252F")),
            ("bad%2", Err(())),
            ("bad%zz", Err(())),
            ("bad%FF", Err(())),
        ];
        for (raw, want) in cases {
            let got = decode_key(raw).map_err(|_| ());
            assert_eq!(got.as_deref().map_err(|_| ()), want, "{raw}");
        }
    }

    #[test]
    fn messages_name_builds_or_say_why_not() {
        type Want = Result<(Vec<BuildId>, Vec<Skip>), ()>;
        let created = "ObjectCreated:Put";
        let cases: Vec<(&str, String, &str, Want)> = vec![
            (
                "a context.json",
                body(&[(created, "results", "ci/mxnet/unix-cpu/PR-1/7/context.json")]),
                "ci/",
                Ok((vec![build("mxnet/unix-cpu", "PR-1", 7)], vec![])),
            ),
            (
                "branch with %2F arrives as %252F and keeps %2F",
                body(&[(created, "results", "j/feature%252Ffoo/3/context.json")]),
                "",
                Ok((vec![build("j", "feature%2Ffoo", 3)], vec![])),
            ),
            (
                "a space in the job arrives as +",
                body(&[("ObjectCreated:CompleteMultipartUpload", "results", "my+job/main/1/context.json")]),
                "",
                Ok((vec![build("my job", "main", 1)], vec![])),
            ),
            (
                "the s3: prefix on the event name is accepted",
                body(&[("s3:ObjectCreated:Copy", "results", "j/main/2/context.json")]),
                "",
                Ok((vec![build("j", "main", 2)], vec![])),
            ),
            (
                "test event",
                json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "results"}).to_string(),
                "",
                Ok((vec![], vec![Skip::TestEvent])),
            ),
            (
                "result file",
                body(&[(created, "results", "j/main/2/nose.xml")]),
                "",
                Ok((vec![], vec![Skip::NotContext { key: "j/main/2/nose.xml".into() }])),
            ),
            (
                "outside the prefix",
                body(&[(created, "results", "other/j/main/2/context.json")]),
                "ci/",
                Ok((vec![], vec![Skip::OutsidePrefix { key: "other/j/main/2/context.json".into() }])),
            ),
            (
                "another bucket",
                body(&[(created, "elsewhere", "j/main/2/context.json")]),
                "",
                Ok((vec![], vec![Skip::OtherBucket { bucket: "elsewhere".into(), key: "j/main/2/context.json".into() }])),
            ),
            (
                "reserved prefix",
                body(&[(created, "results", "ci/_ci-test-metrics/x/main/1/context.json")]),
                "ci/",
                Ok((vec![], vec![Skip::Reserved { key: "ci/_ci-test-metrics/x/main/1/context.json".into() }])),
            ),
            (
                "removed",
                body(&[("ObjectRemoved:Delete", "results", "j/main/2/context.json")]),
                "",
                Ok((vec![], vec![Skip::NotCreated { event: "ObjectRemoved:Delete".into(), key: "j/main/2/context.json".into() }])),
            ),
            (
                "two records, one build twice, one other file",
                body(&[
                    (created, "results", "j/main/2/context.json"),
                    (created, "results", "j/main/2/context.json"),
                    (created, "results", "j/main/3/context.json"),
                    (created, "results", "j/main/3/r.xml"),
                ]),
                "",
                Ok((
                    vec![build("j", "main", 2), build("j", "main", 3)],
                    vec![Skip::NotContext { key: "j/main/3/r.xml".into() }],
                )),
            ),
            ("not JSON", "{nope".into(), "", Err(())),
            ("JSON without Records", json!({"hello": 1}).to_string(), "", Err(())),
            ("a record without a key", json!({"Records": [{"eventName": created, "s3": {"bucket": {"name": "results"}, "object": {}}}]}).to_string(), "", Err(())),
        ];
        for (what, body, prefix, want) in cases {
            let got = decode_message(&body, &scope(prefix))
                .map(|d| (d.builds, d.skipped))
                .map_err(|_| ());
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn bad_keys_are_skipped_with_a_reason() {
        for key in [
            "j/main/notanumber/context.json",
            "main/1/context.json",
            "j/main/1/%zz/context.json",
            "j/../main/1/context.json",
            "j//1/context.json",
            "a%0Ab/main/1/context.json",
        ] {
            let d = decode_message(&body(&[("ObjectCreated:Put", "results", key)]), &scope(""))
                .unwrap();
            assert!(d.builds.is_empty(), "{key}");
            assert!(
                matches!(d.skipped.as_slice(), [Skip::BadKey { .. }]),
                "{key}: {:?}",
                d.skipped
            );
        }
    }

    #[test]
    fn scope_from_store_url() {
        assert_eq!(
            Scope::of_store_url("s3://results/ci").unwrap(),
            scope("ci/")
        );
        assert_eq!(Scope::of_store_url("s3://results").unwrap(), scope(""));
        assert!(Scope::of_store_url("/tmp/store").is_err());
    }
}
