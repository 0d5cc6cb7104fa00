//! Discovery benchmark: what one `aggregate` run costs when it finds 5 new builds over a history
//! of 500, 2,000, 8,000 and 16,000 recorded builds in SeaweedFS. Prints LIST requests, other
//! requests and wall time for the arrivals-index run (the default) and, for contrast, for a
//! `--full` sweep over the same bucket, and the 16,000 / 500 ratios.
//!
//!     scripts/test.sh --run cargo run --release --example bench_discovery [-- SIZES...]
//!
//! The history is written straight to the bucket as a recorded one looks: each build's result
//! file, context.json, arrival marker (spread over the last 30 days) and `done` marker. The new
//! builds go through the real upload code. Each measured run publishes to an EMF file.

#[path = "support/s3.rs"]
mod support;
use bytes::Bytes;
use ci_test_metrics::aggregate::ledger::Destination;
use ci_test_metrics::aggregate::{self, branches::BranchRules, Mode, OldBuilds, Options};
use ci_test_metrics::arrivals;
use ci_test_metrics::context::Context;
use ci_test_metrics::layout::BuildId;
use ci_test_metrics::metrics::{encode::EncodeOptions, Sink};
use ci_test_metrics::store::Store;
use futures::StreamExt;
use std::time::{Duration, Instant};
use support::create_bucket;

const NEW: u64 = 5;
const XML: &str = r#"<testsuite name="s"><testcase classname="c" name="a" time="0.5"/><testcase classname="c" name="b" time="1.5"/></testsuite>"#;

fn main() {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let Ok(endpoint) = std::env::var("CTM_TEST_S3_ENDPOINT") else {
        eprintln!("run it under scripts/test.sh --run, which starts SeaweedFS");
        std::process::exit(1);
    };
    std::env::set_var("AWS_ENDPOINT_URL_S3", endpoint);
    let mut sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![500, 2000, 8000, 16000];
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(&sizes));
}

/// One measured row.
struct Row {
    history: u64,
    lists: u64,
    others: u64,
    secs: f64,
    full_lists: u64,
    full_others: u64,
    full_secs: f64,
}

async fn bench(sizes: &[u64]) {
    let bucket = format!("ctm-bench-discovery-{}", std::process::id());
    create_bucket(&bucket).await;
    let store = Store::open(&format!("s3://{bucket}")).await.expect("store");
    let tmp = tempfile::tempdir().expect("temp dir");
    let emf = tmp.path().join("bench.emf");
    let spec = format!("emf:{}", emf.display());
    let dest = Destination::for_sink(&spec, "Bench", false);
    let mut sink = Sink::open(&spec, "Bench").await.expect("sink");
    let max = *sizes.iter().max().unwrap_or(&0);
    let (mut written, mut next_new) = (0u64, 1_000_000u64);
    let mut rows = Vec::new();
    let mut first = true;
    for &size in sizes {
        let started = Instant::now();
        write_history(&store, &dest, written, size, max).await;
        written = size;
        eprintln!(
            "history of {size} builds written in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        if first {
            // The destination's first run sweeps once and leaves its cursor.
            let opts = options(&dest, Mode::Arrivals);
            aggregate::run(&store, Some(&mut sink), &opts, &())
                .await
                .expect("first run");
            first = false;
        }
        upload_new(&store, tmp.path(), next_new).await;
        next_new += NEW;
        let opts = options(&dest, Mode::Arrivals);
        let started = Instant::now();
        let outcome = aggregate::run(&store, Some(&mut sink), &opts, &())
            .await
            .expect("run");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(
            outcome.builds.len() as u64,
            NEW,
            "the run found the new builds"
        );
        assert_eq!(outcome.discovery, "arrivals");
        let full = options(&dest, Mode::Full);
        let started = Instant::now();
        let swept = aggregate::run(&store, Some(&mut sink), &full, &())
            .await
            .expect("full");
        let full_secs = started.elapsed().as_secs_f64();
        assert!(swept.builds.is_empty(), "nothing left for the sweep");
        eprintln!(
            "history {size}: arrivals run {} LIST + {} other requests in {secs:.3}s; full sweep {} LIST + {} other in {full_secs:.3}s",
            outcome.store_requests.lists,
            outcome.store_requests.others(),
            swept.store_requests.lists,
            swept.store_requests.others()
        );
        rows.push(Row {
            history: size,
            lists: outcome.store_requests.lists,
            others: outcome.store_requests.others(),
            secs,
            full_lists: swept.store_requests.lists,
            full_others: swept.store_requests.others(),
            full_secs,
        });
    }
    println!("\nOne aggregate run that finds {NEW} new builds (SeaweedFS on loopback):\n");
    println!(
        "{:>8}  {:>6} {:>7} {:>8}   {:>10} {:>11} {:>9}",
        "HISTORY", "LISTS", "OTHERS", "TIME", "FULL LISTS", "FULL OTHERS", "FULL TIME"
    );
    for r in &rows {
        println!(
            "{:>8}  {:>6} {:>7} {:>7.3}s   {:>10} {:>11} {:>8.3}s",
            r.history, r.lists, r.others, r.secs, r.full_lists, r.full_others, r.full_secs
        );
    }
    if let (Some(a), Some(b)) = (rows.first(), rows.last()) {
        println!(
            "\n{} / {} history: requests {:.2}x, time {:.2}x (arrivals index); full sweep: LIST pages {:.2}x, time {:.2}x",
            b.history,
            a.history,
            (b.lists + b.others) as f64 / (a.lists + a.others) as f64,
            b.secs / a.secs,
            b.full_lists as f64 / a.full_lists.max(1) as f64,
            b.full_secs / a.full_secs
        );
    }
}

fn options(dest: &Destination, mode: Mode) -> Options {
    Options {
        rules: BranchRules::new::<&str>(&[], "all").expect("rules"),
        since: None,
        settle: Duration::ZERO,
        concurrency: 8,
        dry_run: false,
        encode: EncodeOptions::default(),
        old_builds: OldBuilds::Publish,
        max_file_bytes: u64::MAX,
        run_id: format!("bench-{}", std::process::id()),
        now: time::OffsetDateTime::now_utc(),
        destination: dest.clone(),
        lease: Duration::from_secs(900),
        lookback: Duration::from_secs(300),
        mode,
        republish: false,
        tables: Default::default(),
    }
}

/// Builds `from..to` of a recorded history: objects, arrival marker and `done` marker.
async fn write_history(store: &Store, dest: &Destination, from: u64, to: u64, max: u64) {
    let now = time::OffsetDateTime::now_utc();
    let span = time::Duration::days(30);
    let puts = (from..to).flat_map(|i| {
        let id = BuildId {
            job: format!("bench/job{}", i % 10),
            branch: "master".into(),
            build: i + 1,
        };
        // Spread over the last 30 days, older than any new build.
        let at = now - span + span * (i as f64 / max.max(1) as f64) - time::Duration::hours(1);
        let context = Context::new(&id.job, "master", id.build, at).to_json();
        let done = format!(r#"{{"run":"history","at":"{at}","published":true,"datums":9}}"#);
        [
            (id.key("unit.xml"), Bytes::from_static(XML.as_bytes())),
            (id.key("context.json"), Bytes::from(context)),
            (arrivals::key(at, &id), Bytes::new()),
            (dest.done_key(&id), Bytes::from(done)),
        ]
    });
    let results: Vec<_> = futures::stream::iter(puts)
        .map(|(key, body)| async move { store.put(&key, body).await })
        .buffer_unordered(128)
        .collect()
        .await;
    for r in results {
        r.expect("put");
    }
}

/// New builds through the real upload code.
async fn upload_new(store: &Store, tmp: &std::path::Path, first: u64) {
    let path = tmp.join("unit.xml");
    std::fs::write(&path, XML).expect("write");
    for build in first..first + NEW {
        let context = Context::new(
            "bench/new",
            "master",
            build,
            time::OffsetDateTime::now_utc(),
        );
        let sources = vec![ci_test_metrics::upload::Source {
            path: path.clone(),
            name: "unit.xml".into(),
        }];
        ci_test_metrics::upload::upload(store, context, sources, 2, false)
            .await
            .expect("upload");
    }
}
