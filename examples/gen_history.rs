//! Generates a build history with known injected slowdowns, as a local-directory store that
//! `ci-test-metrics analyze --store DIR` reads, plus the ground truth as JSON.
//!
//! ```text
//! cargo run --example gen_history -- --out /tmp/history --seed 3 --builds 200 --tests 500
//! ci-test-metrics analyze --store /tmp/history --format html --out /tmp/report.html
//! cargo run --example gen_history -- --out /tmp/flaky --failure-p 0.1   # flaky tests, breakages
//! jq '.injections[] | select(.kind == "step")' /tmp/history/truth.json
//! ```
//!
//! Layout: `{out}/{job}/{branch}/{build}/context.json` (what `upload` writes) and each build's
//! rows staged for the history tables (`{out}/_ci-test-metrics/staging/…`, what `aggregate`
//! writes before a day is published); with `--raw-every N`, every Nth build has
//! `unittest-results.xml` beside its context instead, as if uploaded but not aggregated yet
//! (`--raw-every 1`: all of them; then run `aggregate` to build the tables). The history's noise and
//! injections are described in `tests/support/synth.rs`.

#[path = "../tests/support/synth.rs"]
#[allow(dead_code)]
mod synth;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use synth::Config;

/// Generate a synthetic CI history with injected steps, spikes, drifts, flaky, new and removed tests.
#[derive(Debug, Parser)]
struct Args {
    /// Directory to write the store to (created).
    #[arg(long)]
    out: PathBuf,
    /// Where to write the ground truth (default: OUT/truth.json).
    #[arg(long)]
    truth: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    #[arg(long, default_value_t = 120)]
    builds: usize,
    /// Tests per job.
    #[arg(long, default_value_t = 200)]
    tests: usize,
    /// Step changes (≥30%, lasting ≥5 builds) per job.
    #[arg(long, default_value_t = 4)]
    steps: usize,
    #[arg(long, default_value_t = 6)]
    spikes: usize,
    #[arg(long, default_value_t = 2)]
    drifts: usize,
    #[arg(long, default_value_t = 3)]
    flaky: usize,
    #[arg(long, default_value_t = 2)]
    new_tests: usize,
    #[arg(long, default_value_t = 2)]
    removed_tests: usize,
    /// Commits that slow one test in every job at once (all jobs then build the same commits).
    #[arg(long, default_value_t = 0)]
    shared_steps: usize,
    /// Failure probability of injected failure-flaky and retried tests; with it, each job also
    /// gets 2 failure-flaky tests, 1 retried test and 1 breakage (0: none).
    #[arg(long, default_value_t = 0.0)]
    failure_p: f64,
    /// Every Nth build gets raw JUnit XML instead of staged rows (as if not aggregated yet); 0: none.
    #[arg(long, default_value_t = 0)]
    raw_every: usize,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let config = Config {
        seed: a.seed,
        jobs: a.jobs,
        builds: a.builds,
        tests: a.tests,
        steps: a.steps,
        spikes: a.spikes,
        drifts: a.drifts,
        flaky: a.flaky,
        new_tests: a.new_tests,
        removed_tests: a.removed_tests,
        shared_steps: a.shared_steps,
    };
    let (mut summaries, mut truth) = synth::generate(&config);
    if a.failure_p > 0.0 {
        let failures = synth::Failures {
            seed: a.seed,
            flaky: 2,
            retried: 1,
            p: a.failure_p,
            breakages: 1,
        };
        synth::inject_failures(&mut summaries, &mut truth, &failures);
    }
    let truth_path = a.truth.unwrap_or_else(|| a.out.join("truth.json"));
    let written = synth::write_local_store(&a.out, &summaries, |i| {
        if a.raw_every != 0 && i % a.raw_every == 0 {
            synth::Stored::Raw
        } else {
            synth::Stored::Staged
        }
    })
    .and_then(|()| {
        let json = serde_json::to_vec_pretty(&truth).map_err(std::io::Error::other)?;
        std::fs::write(&truth_path, json)
    });
    match written {
        Ok(()) => {
            eprintln!(
                "wrote {} builds of {} job(s) to {} and the ground truth ({} injections) to {}",
                summaries.len(),
                config.jobs,
                a.out.display(),
                truth.injections.len(),
                truth_path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: writing {}: {e}", a.out.display());
            ExitCode::FAILURE
        }
    }
}
