//! `ci-test-metrics aggregate`: flags, progress, and the per-job summary (table or JSON).

use crate::aggregate::ledger::Destination;
use crate::aggregate::{
    self, branches::BranchRules, BuildOutcome, Mode, OldBuilds, Options, Outcome,
};
use crate::error::exit;
use crate::layout::BuildId;
use crate::metrics::encode::EncodeOptions;
use crate::metrics::{cost, Sink};
use crate::store::Store;
use crate::Error;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Turn newly uploaded builds into per-job metrics, once per build and destination.
///
/// Finds builds whose context.json exists, that had no upload for --settle, and that are not done
/// for this destination; claims each one (so any number of runs and Lambda workers can go at
/// once), parses its result files, stages its rows for the history tables, publishes per-job
/// metrics timestamped at the build's time, then records the build in the destination's ledger
/// (`_ci-test-metrics/dest/ID/`). Run it on a schedule; a rerun publishes nothing twice, and a
/// run that was killed is simply run again.
///
/// History: each run then writes the staged builds of finished days into the Parquet tables
/// test_runs and builds under `_ci-test-metrics/tables/` (see --seal), once per build, for
/// `analyze`, Athena, DuckDB and Spark (docs/history.md). A store written by a version that kept
/// JSON summaries is converted at the first run.
///
/// A run reads only the arrivals index that `upload` writes, after the destination's cursor, so it
/// costs what is new, not what is stored. The first run for a destination, and --full, sweep the
/// whole store: run --full now and then (e.g. daily) to pick up builds uploaded by older versions.
///
/// Each destination (sink and namespace) has its own ledger: a trial into an EMF file never hides
/// builds from CloudWatch. With an s3:// store there is no default sink: say --sink.
///
/// Metrics (dimensions Job and BranchClass; Suite with --per-suite): TestDuration (a distribution,
/// so CloudWatch percentiles work), TotalTestTime, Tests, Failures, Errors, Skipped, SlowestTest,
/// Builds, ParseErrors. Cost grows with jobs, never with tests.
///
/// Examples:
///
///   # the embedded default: a local directory store and an EMF file, no AWS account
///   ci-test-metrics aggregate --store examples/sample-store --sink emf:out/metrics.emf --settle 0
///
///   # production: S3 and CloudWatch, only master and release builds published
///   ci-test-metrics aggregate --store s3://my-bucket --sink cloudwatch --branches master,release
///
///   # the daily reconciliation: sweep the whole bucket
///   ci-test-metrics aggregate --store s3://my-bucket --sink cloudwatch --full
///
///   # send two builds (or everything of the last 2 days) again, on purpose
///   ci-test-metrics aggregate --store s3://my-bucket --sink cloudwatch --republish mxnet/unix-cpu/master/41 mxnet/unix-cpu/master/42
///   ci-test-metrics aggregate --store s3://my-bucket --sink cloudwatch --republish --since 2d
///
///   # what would it send, and what would it cost?
///   ci-test-metrics aggregate --store s3://my-bucket --sink cloudwatch --dry-run
///
/// Every flag can also be set by its variable, CI_TEST_METRICS_<FLAG> (e.g. CI_TEST_METRICS_SETTLE).
///
/// Exit codes: 0 ok (broken result files and contexts are reported and counted in ParseErrors,
/// not fatal), 1 bad flags or configuration, 4 something could not be published or recorded
/// (those builds are retried by the next run).
#[derive(Debug, Clone, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Where builds are: s3://BUCKET[/PREFIX] or a directory.
    /// [default: s3://$MXNET_CI_UNITTEST_ARTIFACT_BUCKET, else $CI_TEST_METRICS_STORE]
    #[arg(long)]
    pub store: Option<String>,

    /// Where metrics go: cloudwatch, emf:PATH (CloudWatch Embedded Metric Format lines) or stdout.
    /// [default: emf:ci-test-metrics.emf for a directory store; none for s3://, say which]
    #[arg(long, env = "CI_TEST_METRICS_SINK")]
    pub sink: Option<String>,

    /// CloudWatch namespace.
    #[arg(
        long,
        env = "CI_TEST_METRICS_NAMESPACE",
        default_value = "CITestMetrics"
    )]
    pub namespace: String,

    /// Name the destination's ledger yourself (letters, digits, `.`, `-`, `_`), e.g. when an EMF
    /// file is shipped to CloudWatch by an agent and must share the ledger of `--sink cloudwatch`
    /// (whose id is cloudwatch-NAMESPACE). [default: from the sink and namespace]
    #[arg(long, env = "CI_TEST_METRICS_DESTINATION", value_name = "ID")]
    pub destination: Option<String>,

    /// Which branches to publish: class names (master, release, pr, branch) or globs on the
    /// branch name, comma-separated; `!` excludes; `all` for everything. Builds not published are
    /// still kept in the history tables for `analyze`.
    #[arg(
        long,
        env = "CI_TEST_METRICS_BRANCHES",
        default_value = "all",
        value_name = "RULES"
    )]
    pub branches: String,

    /// A branch class rule CLASS=GLOB|GLOB (repeatable, or comma-separated; first match wins;
    /// replaces the defaults master=master|main, release=v*.x|release*, pr=PR-*; others are
    /// `branch`).
    #[arg(
        long = "branch-class",
        env = "CI_TEST_METRICS_BRANCH_CLASS",
        value_delimiter = ',',
        value_name = "CLASS=GLOBS"
    )]
    pub branch_class: Vec<String>,

    /// Sweep the whole store instead of reading the arrivals index: for backfill, builds from
    /// older uploaders, and a periodic reconciliation.
    #[arg(long, env = "CI_TEST_METRICS_FULL")]
    pub full: bool,

    /// Send builds again even if they are done for this destination: the builds named
    /// (JOB/BRANCH/NUMBER, branch as in the key, e.g. feature%2Ffoo), or with --since, every
    /// build uploaded within that time.
    #[arg(long)]
    pub republish: bool,

    /// The builds for --republish.
    #[arg(value_name = "BUILD", requires = "republish")]
    pub builds: Vec<String>,

    /// Only builds uploaded within this long, e.g. 2h, 3d, 90m (for --full and --republish).
    #[arg(long, env = "CI_TEST_METRICS_SINCE", value_parser = parse_duration, value_name = "DURATION")]
    pub since: Option<Duration>,

    /// Take a build only when nothing was written to it for this long. Parallel stages of one
    /// Jenkins build upload separately, each rewriting context.json; set this above the time
    /// between a build's first and last upload. 0 takes builds as soon as context.json exists.
    #[arg(long, env = "CI_TEST_METRICS_SETTLE", value_parser = parse_duration, default_value = "30m", value_name = "DURATION")]
    pub settle: Duration,

    /// How long a worker's claim on a build holds. Set it above the time the slowest build takes
    /// to read and publish (and above a Lambda function's timeout); a worker that dies holds its
    /// builds this long.
    #[arg(long, env = "CI_TEST_METRICS_LEASE", value_parser = parse_duration, default_value = "15m", value_name = "DURATION")]
    pub lease: Duration,

    /// How far before its cursor a run lists the arrivals index again, for uploaders whose clock
    /// runs behind or whose upload took long.
    #[arg(long, env = "CI_TEST_METRICS_LOOKBACK", value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    pub lookback: Duration,

    /// Builds read and parsed at the same time.
    #[arg(long, env = "CI_TEST_METRICS_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,

    /// Publish and record nothing; print what would be sent and what it would cost.
    #[arg(long, env = "CI_TEST_METRICS_DRY_RUN")]
    pub dry_run: bool,

    /// When a day's builds go into the history tables (_ci-test-metrics/tables/, Parquet):
    /// day-end writes one part per table and day once the day (UTC) is over and --seal-grace has
    /// passed, or as soon as its builds fill a 128 MB part; now writes a part at every run (fresh
    /// tables, small files). Until then builds wait, staged, where `analyze` reads them too.
    #[arg(
        long,
        env = "CI_TEST_METRICS_SEAL",
        value_enum,
        default_value = "day-end"
    )]
    pub seal: crate::table::publish::Seal,

    /// With --seal day-end: how long after a day ends its late builds are waited for.
    #[arg(long, env = "CI_TEST_METRICS_SEAL_GRACE", value_parser = parse_duration, default_value = "2h", value_name = "DURATION")]
    pub seal_grace: Duration,

    /// Add a Suite dimension (the result file's stem). Multiplies the custom metrics.
    #[arg(long, env = "CI_TEST_METRICS_PER_SUITE")]
    pub per_suite: bool,

    /// Also publish per-test TestDuration for the N slowest tests of each build: `top:N`.
    #[arg(long, env = "CI_TEST_METRICS_PER_TEST", value_parser = parse_top, value_name = "top:N")]
    pub per_test: Option<usize>,

    /// Builds older than CloudWatch accepts (2 weeks): skip them, or publish anyway.
    /// Default: skip for cloudwatch, publish for EMF files and stdout.
    #[arg(long, env = "CI_TEST_METRICS_OLD_BUILDS", value_enum)]
    pub old_builds: Option<OldBuilds>,

    /// Result files larger than this many bytes are reported, not parsed.
    #[arg(long, env = "CI_TEST_METRICS_MAX_FILE_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub max_file_bytes: u64,

    /// Output: a per-job table, or JSON for tools (on stdout; with --sink stdout the EMF lines
    /// take stdout, so the table goes to stderr and JSON is refused).
    #[arg(
        long,
        env = "CI_TEST_METRICS_FORMAT",
        value_enum,
        default_value = "table"
    )]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// The default sink for a directory store.
const LOCAL_DEFAULT_SINK: &str = "emf:ci-test-metrics.emf";

/// The sink spec to use: the flag, or the default a directory store has. An S3 store has none,
/// so a trial run never publishes somewhere unintended (a local file that then hides builds from
/// CloudWatch, or CloudWatch itself, which bills).
fn sink_spec(args: &Args, store_url: &str) -> crate::Result<String> {
    match &args.sink {
        Some(sink) => Ok(sink.clone()),
        None if !store_url.starts_with("s3://") => Ok(LOCAL_DEFAULT_SINK.into()),
        None if args.dry_run => Ok("cloudwatch".into()),
        None => Err(Error::Usage(format!(
            "aggregate --store {store_url}: say where the metrics go: --sink cloudwatch to publish, \
             --sink emf:FILE to try it out in a local file, or --dry-run to see what would be sent \
             (CI_TEST_METRICS_SINK sets it too)"
        ))),
    }
}

/// `JOB/BRANCH/NUMBER` as in the store's keys.
fn parse_build(s: &str) -> crate::Result<BuildId> {
    let key = format!(
        "{}/{}",
        s.trim_end_matches('/'),
        crate::layout::CONTEXT_FILE
    );
    crate::layout::parse_key(&key)
        .map(|(id, _)| id)
        .map_err(|e| {
            Error::Usage(format!(
                "--republish {s:?}: expected JOB/BRANCH/NUMBER: {e}"
            ))
        })
}

/// Opens the store and the sink (none in a dry run) and builds the run's options, exactly as the
/// command does; the Lambda handler calls this with flags taken from the environment.
pub async fn setup(args: &Args) -> crate::Result<(Store, Option<Sink>, Options)> {
    let store_url = super::store_url(args.store.as_deref(), |n| std::env::var(n).ok())?;
    let rules = BranchRules::new(&args.branch_class, &args.branches).map_err(Error::Usage)?;
    let spec = sink_spec(args, &store_url)?;
    let cloudwatch = spec == "cloudwatch";
    if cloudwatch && args.old_builds == Some(OldBuilds::Publish) {
        return Err(Error::Usage(
            "--old-builds publish: CloudWatch refuses datums older than 2 weeks; use an emf: sink for old builds".into(),
        ));
    }
    if spec == "stdout" && args.format == Format::Json {
        return Err(Error::Usage(
            "--sink stdout writes EMF lines to stdout, so the JSON report cannot go there too: \
             use --sink emf:FILE with --format json, or the table (which then goes to stderr)"
                .into(),
        ));
    }
    let mode = match (args.republish, args.builds.is_empty(), args.full) {
        (true, false, _) => Mode::Builds(
            args.builds
                .iter()
                .map(|b| parse_build(b))
                .collect::<crate::Result<_>>()?,
        ),
        (true, true, _) if args.since.is_none() => {
            return Err(Error::Usage(
                "--republish: name the builds (JOB/BRANCH/NUMBER) or give --since".into(),
            ))
        }
        (true, true, _) | (false, _, true) => Mode::Full,
        (false, _, false) => Mode::Arrivals,
    };
    let destination = match &args.destination {
        Some(id) => Destination::named(id).map_err(Error::Usage)?,
        None => Destination::for_sink(
            &spec,
            &args.namespace,
            std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
        ),
    };
    let store = Store::open(&store_url).await?;
    let old_builds = args.old_builds.unwrap_or(if cloudwatch {
        OldBuilds::Skip
    } else {
        OldBuilds::Publish
    });
    let now = time::OffsetDateTime::now_utc();
    let opts = Options {
        rules,
        since: args.since,
        settle: args.settle,
        concurrency: args.concurrency,
        dry_run: args.dry_run,
        encode: EncodeOptions {
            per_suite: args.per_suite,
            per_test_top: args.per_test,
        },
        old_builds,
        max_file_bytes: args.max_file_bytes,
        run_id: format!("{}-{}", now.unix_timestamp(), std::process::id()),
        now,
        destination,
        lease: args.lease,
        lookback: args.lookback,
        mode,
        republish: args.republish,
        tables: crate::table::publish::PublishOptions {
            now,
            seal: args.seal,
            grace: args.seal_grace,
            ..Default::default()
        },
    };
    let sink = if args.dry_run {
        None
    } else {
        Some(Sink::open(&spec, &args.namespace).await?)
    };
    Ok((store, sink, opts))
}

pub async fn run(args: Args) -> crate::Result<u8> {
    let (store, mut sink, opts) = setup(&args).await?;
    let progress = ProgressReport::new();
    let outcome = aggregate::run(&store, sink.as_mut(), &opts, &progress).await?;
    progress.finish();

    let jobs = per_job(&outcome);
    // A dry run opens no sink; setup then took the flag, or the store's default (sink_spec).
    let sink_name = match (&sink, &args.sink) {
        (Some(sink), _) => sink.describe(),
        (None, Some(flag)) => flag.clone(),
        (None, None) if matches!(store, Store::S3(_)) => "cloudwatch".into(),
        (None, None) => LOCAL_DEFAULT_SINK.into(),
    };
    let report = Report {
        outside_window: sink.as_ref().and_then(|s| s.outside_window()),
        outcome: &outcome,
        jobs: &jobs,
        args: &args,
        store: &store,
        sink: &sink_name,
        destination: &opts.destination.id,
    };
    let written = match (args.format, sink_name.as_str()) {
        (Format::Json, _) => writeln!(std::io::stdout().lock(), "{}", json(&report)),
        (Format::Table, "stdout") => write!(std::io::stderr().lock(), "{}", table(&report)),
        (Format::Table, _) => write!(std::io::stdout().lock(), "{}", table(&report)),
    };
    written.map_err(|e| Error::Io {
        context: "writing the report".into(),
        source: e,
    })?;
    Ok(if outcome.failures.is_empty() {
        exit::OK
    } else {
        exit::PUBLISH
    })
}

/// What the table and JSON report are made of.
struct Report<'a> {
    outcome: &'a Outcome,
    jobs: &'a BTreeMap<String, JobRow>,
    args: &'a Args,
    store: &'a Store,
    sink: &'a str,
    destination: &'a str,
    /// The EMF sink's line about datums outside CloudWatch's timestamp window.
    outside_window: Option<String>,
}

/// `90m`, `2h`, `3d`, `1w`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit, e.g. 90m, 2h, 3d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m, h, d or w")),
    };
    Ok(Duration::from_secs(n * secs))
}

/// `30m`, `2h`, `90s` for messages.
fn humantime(d: Duration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn parse_top(s: &str) -> Result<usize, String> {
    let n = s
        .strip_prefix("top:")
        .ok_or_else(|| format!("{s:?}: expected top:N, e.g. top:20"))?;
    match n.parse::<usize>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?}: N must be between 1 and 100 (each test is a billed custom metric)"
        )),
    }
}

/// Per-job totals over this run's builds.
#[derive(Debug, Default, serde::Serialize)]
struct JobRow {
    builds: usize,
    published: usize,
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    parse_errors: usize,
    mean_total_time: f64,
    p50_test: Option<f64>,
    p90_test: Option<f64>,
}

fn per_job(outcome: &Outcome) -> BTreeMap<String, JobRow> {
    let mut jobs: BTreeMap<String, (JobRow, f64)> = BTreeMap::new();
    for b in &outcome.builds {
        let (row, total) = jobs.entry(b.id.job.clone()).or_default();
        row.builds += 1;
        row.published += b.published as usize;
        row.tests += b.tests;
        row.failures += b.failures;
        row.errors += b.errors;
        row.skipped += b.skipped;
        row.parse_errors += b.parse_errors;
        *total += b.total_time;
    }
    jobs.into_iter()
        .map(|(job, (mut row, total))| {
            let durations: Vec<(f64, u64)> = outcome
                .job_durations
                .get(&job)
                .into_iter()
                .flatten()
                .map(|(bits, n)| (f64::from_bits(*bits), *n))
                .collect();
            row.mean_total_time = total / row.builds.max(1) as f64;
            row.p50_test = percentile(&durations, 0.5);
            row.p90_test = percentile(&durations, 0.9);
            (job, row)
        })
        .collect()
}

/// Nearest-rank percentile of sorted (value, count) pairs.
fn percentile(sorted: &[(f64, u64)], q: f64) -> Option<f64> {
    let total: u64 = sorted.iter().map(|(_, n)| n).sum();
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total.max(1));
    let mut seen = 0;
    for (value, n) in sorted {
        seen += n;
        if seen >= rank {
            return Some(*value);
        }
    }
    None
}

/// Runs a month, for the cost estimate: one every 15 minutes.
const RUNS_PER_MONTH: u64 = 30 * 24 * 4;

/// Estimated monthly CloudWatch cost of running like this every 15 minutes, and its assumptions.
fn cost(outcome: &Outcome) -> (cost::Estimate, String) {
    let estimate = cost::estimate(
        outcome.metrics.len() as u64,
        outcome.requests as u64 * RUNS_PER_MONTH,
    );
    let assumptions = format!(
        "{}; a run every 15 minutes ({RUNS_PER_MONTH} a month), each sending as many requests as this one; \
         the metrics this run touched are all the metrics (older jobs and classes add theirs)",
        cost::ASSUMPTIONS
    );
    (estimate, assumptions)
}

fn fmt_secs(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s >= 100.0 => format!("{s:.0}s"),
        Some(s) if s >= 1.0 => format!("{s:.2}s"),
        Some(s) => format!("{:.0}ms", s * 1000.0),
    }
}

fn table(report: &Report) -> String {
    use std::fmt::Write as _;
    let Report {
        outcome,
        jobs,
        args,
        store,
        sink,
        destination,
        ..
    } = *report;
    let mut s = String::new();
    let published = outcome.builds.iter().filter(|b| b.published).count();
    let verb = if args.dry_run {
        "would publish"
    } else {
        "published"
    };
    let _ = writeln!(
        s,
        "{}: {} new build(s), {verb} {published}; {} datum(s) in {} request(s) to {}{sink} \
         (destination {destination}; found by {} in {} store request(s))",
        store.describe(),
        outcome.builds.len(),
        outcome.datums,
        outcome.requests,
        if args.dry_run { "(dry run) " } else { "" },
        if outcome.discovery == "full" {
            "a full sweep"
        } else {
            "the arrivals index"
        },
        outcome.store_requests.lists + outcome.store_requests.others(),
    );
    if !args.dry_run {
        let t = &outcome.tables;
        let migrated = if outcome.migrated > 0 {
            format!(
                "; {} build(s) converted from JSON summaries",
                outcome.migrated
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "history tables: {} build(s), {} row(s) written in {} part(s); {} build(s) staged until their day is over (--seal){migrated}",
            t.builds,
            t.rows,
            t.parts.len(),
            t.waiting,
        );
    }
    if outcome.builds.is_empty() {
        let counts = [
            (outcome.already_done, "already recorded".to_string()),
            (outcome.incomplete.len(), "still uploading".into()),
            (
                outcome.settling.len(),
                format!("settling (--settle {})", humantime(args.settle)),
            ),
            (outcome.claimed.len(), "claimed by other workers".into()),
        ];
        let _ = writeln!(s, "{}", nothing_new(&counts, outcome.discovery == "full"));
    } else {
        let width = jobs.keys().map(|j| j.len()).max().unwrap_or(3).max(3);
        let _ = writeln!(
            s,
            "\n{:width$}  {:>6} {:>9} {:>7} {:>6} {:>6} {:>7} {:>9} {:>8} {:>8} {:>8}",
            "JOB",
            "BUILDS",
            "PUBLISHED",
            "TESTS",
            "FAIL",
            "ERR",
            "SKIP",
            "MEAN TIME",
            "P50 TEST",
            "P90 TEST",
            "PARSEERR"
        );
        for (job, r) in jobs {
            let _ = writeln!(
                s,
                "{job:width$}  {:>6} {:>9} {:>7} {:>6} {:>6} {:>7} {:>9} {:>8} {:>8} {:>8}",
                r.builds,
                r.published,
                r.tests,
                r.failures,
                r.errors,
                r.skipped,
                fmt_secs(Some(r.mean_total_time)),
                fmt_secs(r.p50_test),
                fmt_secs(r.p90_test),
                r.parse_errors
            );
        }
    }
    let problems: Vec<&String> = outcome.builds.iter().flat_map(|b| &b.problems).collect();
    if !problems.is_empty() {
        let _ = writeln!(
            s,
            "\n{} problem(s) in the data (reported as ParseErrors; the other builds went on):",
            problems.len()
        );
        for p in problems.iter().take(20) {
            let _ = writeln!(s, "  - {p}");
        }
        if problems.len() > 20 {
            let _ = writeln!(
                s,
                "  … and {} more (use --format json for all)",
                problems.len() - 20
            );
        }
    }
    let skipped: Vec<&BuildOutcome> = outcome
        .builds
        .iter()
        .filter(|b| !b.published && b.failed.is_none())
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(
            s,
            "\n{} build(s) kept in the history but not published:",
            skipped.len()
        );
        for b in skipped.iter().take(10) {
            let _ = writeln!(s, "  - {}: {}", b.id, b.reason.as_deref().unwrap_or("-"));
        }
    }
    if !outcome.settling.is_empty() && !outcome.builds.is_empty() {
        let _ = writeln!(
            s,
            "\n{} build(s) had uploads in the last {} and wait for a later run (--settle)",
            outcome.settling.len(),
            humantime(args.settle)
        );
    }
    if !outcome.late_files.is_empty() {
        let _ = writeln!(
            s,
            "\nWARNING: {} result file(s) arrived after their build was aggregated and are not in the metrics; raise --settle:",
            outcome.late_files.len()
        );
        for key in outcome.late_files.iter().take(10) {
            let _ = writeln!(s, "  - {key}");
        }
    }
    let too_old = outcome.builds.iter().filter(|b| b.too_old).count();
    if too_old > 0 {
        let _ = writeln!(
            s,
            "\nnote: {too_old} build(s) are older than CloudWatch accepts (2 weeks); {} them to {} anyway (see --old-builds)",
            if args.dry_run { "would send" } else { "sent" },
            sink
        );
    }
    // The EMF sink's one line for the run (each write's is at -v).
    if let Some(line) = &report.outside_window {
        let _ = writeln!(s, "{}note: {line}", if too_old > 0 { "" } else { "\n" });
    }
    if !outcome.recovered.is_empty() {
        let _ = writeln!(
            s,
            "\nrecovered {} build(s) an interrupted run had sent but not recorded",
            outcome.recovered.len()
        );
    }
    if !outcome.failures.is_empty() {
        let _ = writeln!(s, "\nFAILED (retried on the next run):");
        for f in &outcome.failures {
            let _ = writeln!(s, "  - {f}");
        }
    }
    if args.dry_run {
        let (estimate, assumptions) = cost(outcome);
        let _ = writeln!(
            s,
            "\ndry run: nothing was published or recorded.\n{} distinct custom metric(s), {} PutMetricData request(s) this run.\nestimated CloudWatch cost: {estimate}\nassumptions: {assumptions}",
            outcome.metrics.len(),
            outcome.requests
        );
    }
    s
}

fn json(report: &Report) -> serde_json::Value {
    let Report {
        outcome,
        jobs,
        args,
        store,
        sink,
        destination,
        ..
    } = *report;
    let builds: Vec<serde_json::Value> = outcome
        .builds
        .iter()
        .map(|b| {
            serde_json::json!({
                "job": b.id.job, "branch": b.id.branch, "build": b.id.build,
                "branch_class": b.branch_class, "published": b.published, "reason": b.reason,
                "tests": b.tests, "failures": b.failures, "errors": b.errors, "skipped": b.skipped,
                "total_time": b.total_time, "parse_errors": b.parse_errors, "datums": b.datums,
                "too_old": b.too_old, "problems": b.problems, "failed": b.failed,
                "recovered": b.recovered,
            })
        })
        .collect();
    let (estimate, assumptions) = cost(outcome);
    serde_json::json!({
        "store": store.describe(),
        "sink": sink,
        "namespace": args.namespace,
        "destination": destination,
        "discovery": outcome.discovery,
        "store_requests": outcome.store_requests,
        "claimed_by_others": outcome.claimed.iter().map(|(b, owner)| serde_json::json!({"build": b.to_string(), "owner": owner})).collect::<Vec<_>>(),
        "dry_run": args.dry_run,
        "builds": builds,
        "jobs": jobs,
        "incomplete": outcome.incomplete.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
        "already_done": outcome.already_done,
        "settling": outcome.settling.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
        "late_files": outcome.late_files,
        "recovered": outcome.recovered.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
        "stray_keys": outcome.stray,
        "datums": outcome.datums,
        "requests": outcome.requests,
        "distinct_metrics": outcome.metrics.len(),
        "estimated_monthly_cost_usd": (estimate.total_usd * 100.0).round() / 100.0,
        "cost_assumptions": assumptions,
        "failures": outcome.failures,
        "tables": serde_json::json!({
            "parts": outcome.tables.parts,
            "builds": outcome.tables.builds,
            "rows": outcome.tables.rows,
            "staged_waiting": outcome.tables.waiting,
            "migrated_from_summaries": outcome.migrated,
            "warnings": outcome.tables.warnings,
        }),
    })
}

/// The line for a run that found nothing to publish: the non-zero counts, or, when there are
/// none, what the run looked at and how to look further.
fn nothing_new(counts: &[(usize, String)], full_sweep: bool) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} build(s) {what}"))
        .collect();
    match (parts.is_empty(), full_sweep) {
        (false, _) => format!("nothing new: {}", parts.join(", ")),
        (true, true) => "nothing new: the store has no complete build".into(),
        (true, false) => "nothing new: no build arrived since the last run (--full sweeps the \
             whole store; --republish sends chosen builds again)"
            .into(),
    }
}

/// A progress bar on a terminal, plain lines otherwise.
struct ProgressReport {
    bar: Option<indicatif::ProgressBar>,
    done: std::sync::atomic::AtomicUsize,
    total: std::sync::atomic::AtomicUsize,
}

impl ProgressReport {
    fn new() -> ProgressReport {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} builds {per_sec} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        ProgressReport {
            bar,
            done: 0.into(),
            total: 0.into(),
        }
    }
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl aggregate::Progress for ProgressReport {
    fn discovered(&self, pending: usize) {
        self.total
            .store(pending, std::sync::atomic::Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.set_length(pending as u64),
            None => eprintln!("aggregate: {pending} new build(s) to process"),
        }
    }
    fn build_done(&self, b: &BuildOutcome) {
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(b.id.to_string());
                bar.inc(1);
            }
            None => {
                let total = self.total.load(std::sync::atomic::Ordering::Relaxed);
                let state = match (&b.failed, b.published) {
                    (Some(_), _) => "FAILED",
                    (None, true) => "published",
                    (None, false) => "recorded",
                };
                eprintln!(
                    "aggregate: [{n}/{total}] {}: {} tests, {state}",
                    b.id, b.tests
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("2y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn nothing_new_says_only_what_counts() {
        let c = |a, b| {
            vec![
                (a, "already recorded".to_string()),
                (b, "still uploading".into()),
            ]
        };
        let table = [
            (
                c(0, 0),
                false,
                "nothing new: no build arrived since the last run (--full sweeps the whole store; \
                 --republish sends chosen builds again)",
            ),
            (
                c(0, 0),
                true,
                "nothing new: the store has no complete build",
            ),
            (
                c(3, 1),
                false,
                "nothing new: 3 build(s) already recorded, 1 build(s) still uploading",
            ),
            (c(0, 2), true, "nothing new: 2 build(s) still uploading"),
        ];
        for (counts, full, want) in table {
            assert_eq!(nothing_new(&counts, full), want);
        }
    }

    #[test]
    fn top() {
        assert_eq!(parse_top("top:20"), Ok(20));
        assert!(parse_top("20").is_err());
        assert!(parse_top("top:0").is_err());
        assert!(parse_top("top:1000").is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<(f64, u64)> = (1..=10).map(|i| (f64::from(i), 1)).collect();
        assert_eq!(percentile(&v, 0.5), Some(5.0));
        assert_eq!(percentile(&v, 0.9), Some(9.0));
        assert_eq!(percentile(&v, 1.0), Some(10.0));
        assert_eq!(percentile(&[], 0.5), None);
        // counts weigh: 8 samples of 1.0, 2 of 9.0
        assert_eq!(percentile(&[(1.0, 8), (9.0, 2)], 0.8), Some(1.0));
        assert_eq!(percentile(&[(1.0, 8), (9.0, 2)], 0.9), Some(9.0));
    }
}
