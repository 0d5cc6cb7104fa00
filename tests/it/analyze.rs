//! Integration tests: analyze.
//!
//! Tests marked "needs the store" read a generated history through `Store::open` on a local
//! directory (and `--publish` through the EMF sink); they pass once the local store and the sinks
//! are merged. The others run on summaries given in-process.

use crate::common;
use crate::synth::{self, Config, Injected, Injection, Stored, Truth};
use ci_test_metrics::analyze::{self, render, series, Options, Selection};
use ci_test_metrics::summary::BuildSummary;
use std::path::{Path, PathBuf};
use std::process::Command;

fn config() -> Config {
    Config {
        seed: 11,
        jobs: 2,
        builds: 120,
        tests: 120,
        steps: 3,
        spikes: 6,
        drifts: 2,
        flaky: 3,
        new_tests: 2,
        removed_tests: 2,
        shared_steps: 0,
    }
}

/// Injected steps, biggest (seconds added) first.
fn steps_by_size(truth: &Truth) -> Vec<&Injection> {
    let mut steps: Vec<&Injection> = truth
        .injections
        .iter()
        .filter(|i| i.kind == Injected::Step)
        .collect();
    steps.sort_by(|a, b| (b.median * (b.factor - 1.0)).total_cmp(&(a.median * (a.factor - 1.0))));
    steps
}

fn decoy_names(truth: &Truth) -> Vec<(String, String)> {
    truth
        .injections
        .iter()
        .filter(|i| matches!(i.kind, Injected::Spike | Injected::Flaky | Injected::Drift))
        .map(|i| (i.job.clone(), i.name.clone()))
        .collect()
}

/// Checks a JSON report against the truth: the biggest injected step is named with its first
/// build, commit and author, and every injected step found is ranked ahead of every decoy.
fn check_report(v: &serde_json::Value, truth: &Truth) {
    assert_eq!(v["schema_version"], 3);
    let regressions = v["regressions"].as_array().expect("regressions");
    let biggest = steps_by_size(truth)[0];
    let found = regressions
        .iter()
        .find(|r| r["job"] == biggest.job.as_str() && r["test"]["name"] == biggest.name.as_str())
        .unwrap_or_else(|| panic!("{} / {} not reported: {v:#}", biggest.job, biggest.name));
    assert_eq!(found["kind"], "shift");
    assert_eq!(found["first_build"]["build"], biggest.build);
    assert_eq!(found["first_build"]["commit"], biggest.commit.as_str());
    assert_eq!(found["first_build"]["author"], biggest.author.as_str());
    assert!(found["seconds_added"].as_f64().unwrap() > 0.0);
    let decoys = decoy_names(truth);
    let is_decoy = |r: &serde_json::Value| {
        decoys
            .iter()
            .any(|(j, n)| r["job"] == j.as_str() && r["test"]["name"] == n.as_str())
    };
    let first_decoy = regressions.iter().position(is_decoy).unwrap_or(usize::MAX);
    let steps: Vec<(String, String)> = truth
        .injections
        .iter()
        .filter(|i| i.kind == Injected::Step)
        .map(|i| (i.job.clone(), i.name.clone()))
        .collect();
    for (i, r) in regressions.iter().enumerate() {
        if steps
            .iter()
            .any(|(j, n)| r["job"] == j.as_str() && r["test"]["name"] == n.as_str())
        {
            assert!(i < first_decoy, "step {r} ranked after a decoy");
        }
    }
}

#[test]
fn finds_injected_steps_in_process() {
    let (summaries, truth) = synth::generate(&config());
    let report = analyze::analyze(&series::build(&summaries), &Options::default());
    let v: serde_json::Value = serde_json::from_str(&render::json(&report)).unwrap();
    check_report(&v, &truth);
}

fn all_branches() -> ci_test_metrics::aggregate::branches::BranchRules {
    ci_test_metrics::aggregate::branches::BranchRules::new::<&str>(&[], "all").unwrap()
}

#[test]
fn selection_filters_jobs_branches_and_last_builds() {
    let (mut summaries, _) = synth::generate(&config());
    for s in summaries.iter_mut().filter(|s| s.context.build % 3 == 0) {
        s.branch_class = "pr".into();
    }
    let jobs = |v: &[BuildSummary]| {
        let mut j: Vec<String> = v.iter().map(|s| s.context.job.clone()).collect();
        j.dedup();
        j
    };
    let all = Selection {
        branches: all_branches(),
        ..Selection::default()
    };
    assert_eq!(all.apply(summaries.clone()).len(), summaries.len());
    let master = Selection::default().apply(summaries.clone());
    assert!(master.iter().all(|s| s.branch_class == "master"));
    assert!(master.len() < summaries.len());
    let one = Selection {
        job: Some(glob::Pattern::new("*-gpu").unwrap()),
        last: Some(10),
        branches: all_branches(),
    }
    .apply(summaries.clone());
    assert_eq!(jobs(&one), ["ci-demo/unit-gpu"]);
    assert_eq!(one.len(), 10);
    let newest = summaries
        .iter()
        .filter(|s| s.context.job == "ci-demo/unit-gpu")
        .map(|s| s.context.build)
        .max();
    assert_eq!(one.iter().map(|s| s.context.build).max(), newest);
}

fn write_history(dir: &Path) -> Truth {
    let (summaries, truth) = synth::generate(&config());
    synth::write_local_store(dir, &summaries, |_| Stored::Staged).expect("write history");
    truth
}

/// Needs the store (local directory `get`/`list`).
#[test]
fn binary_reports_injected_regression_from_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let truth = write_history(dir.path());
    let out = common::bin()
        .args(["analyze", "--store"])
        .arg(dir.path())
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    check_report(&v, &truth);
}

/// Needs the store and the JUnit parser: builds without a summary are read from raw XML.
#[test]
fn builds_without_summary_are_read_from_raw_xml() {
    let dir = tempfile::tempdir().unwrap();
    let (summaries, truth) = synth::generate(&config());
    synth::write_local_store(dir.path(), &summaries, |i| {
        if i % 4 != 0 {
            Stored::Staged
        } else {
            Stored::Raw
        }
    })
    .expect("write history");
    let out = common::bin()
        .args(["analyze", "--store"])
        .arg(dir.path())
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    for job in v["jobs"].as_array().unwrap() {
        assert_eq!(job["builds"], config().builds, "{job}");
    }
    check_report(&v, &truth);
}

/// Needs the store and the EMF sink.
#[test]
fn publish_sends_regressions_detected_per_job() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path());
    let emf = dir.path().join("metrics.emf");
    let out = common::bin()
        .args(["analyze", "--store"])
        .arg(dir.path())
        .args([
            "--job",
            "ci-demo/unit-cpu",
            "--format",
            "md",
            "--publish",
            "--namespace",
            "CTM/Test",
        ])
        .arg(format!("--sink=emf:{}", emf.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| # |"));
    let lines = std::fs::read_to_string(&emf).expect("EMF file");
    assert!(
        lines.contains("RegressionsDetected") && lines.contains("ci-demo/unit-cpu"),
        "{lines}"
    );
    assert!(!lines.contains("ci-demo/unit-gpu"), "{lines}");
}

#[test]
fn empty_store_exits_3_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::bin()
        .args(["analyze", "--store"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("aggregate"));
}

#[test]
fn help_teaches() {
    let out = common::bin().args(["analyze", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--store",
        "--branches",
        "--last",
        "--format",
        "--publish",
        "Examples",
        "seconds",
        "--fail-on-new-failure",
        "--flaky-window",
        "6 --fail-on-new-failure",
        "Breakages",
        "--format list",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

/// The HTML report renders its charts in headless Chromium. Under `CI` a missing chromium fails.
#[test]
fn html_report_renders_charts_in_chromium() {
    let (summaries, _) = synth::generate(&config());
    let report = analyze::analyze(&series::build(&summaries), &Options::default());
    assert!(!report.regressions.is_empty());
    let html = render::html(&report);
    assert!(html.matches("<svg").count() > report.jobs.len());
    assert!(!html.contains("<script") && !html.contains("http://www.w3.org/1999/xlink"));
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    let Some(chromium) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium not found: .ci/run (scripts/test.sh) installs Debian's chromium");
        }
        eprintln!("skipped: chromium not found (scripts/test.sh installs it)");
        return;
    };
    let png = dir.path().join("out.png");
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1200,4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    // A safeguard against a hung browser, not a timed assertion.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let image = Png::decode(&std::fs::read(&png).expect("screenshot written")).expect("a PNG");
    assert_eq!((image.width, image.height), (1200, 4000));
    // The page is mostly white; the charts draw the series (blue), the medians before (green) and
    // after (red) and the change line (red).
    let near = |c: [u8; 3]| {
        image
            .pixels()
            .filter(|p| p.iter().zip(c).all(|(a, b)| a.abs_diff(b) <= 24))
            .count()
    };
    if let Some(keep) = std::env::var_os("CTM_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
        std::fs::copy(&page, PathBuf::from(format!("{}.html", png.display()))).ok();
    }
    let white = near([250, 250, 250]);
    let total = (image.width * image.height) as usize;
    assert!(
        white < total * 98 / 100,
        "page is blank: {white} of {total} white"
    );
    for (what, colour) in [
        ("series", [0x3b, 0x6f, 0xb6]),
        ("before", [0x27, 0xae, 0x60]),
        ("after", [0xc0, 0x39, 0x2b]),
    ] {
        let n = near(colour);
        assert!(n > 200, "{what}: only {n} pixels of its colour");
    }
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Just enough of a PNG decoder for a screenshot: 8-bit RGB or RGBA, not interlaced.
struct Png {
    width: u32,
    height: u32,
    channels: usize,
    data: Vec<u8>,
}

impl Png {
    fn decode(bytes: &[u8]) -> Result<Png, String> {
        use std::io::Read;
        let body = bytes
            .strip_prefix(b"\x89PNG\r\n\x1a\n".as_slice())
            .ok_or("not a PNG")?;
        let (mut pos, mut idat, mut header) = (0, Vec::new(), None);
        while pos + 8 <= body.len() {
            let len = u32::from_be_bytes(body[pos..pos + 4].try_into().unwrap()) as usize;
            let kind = &body[pos + 4..pos + 8];
            let data = body.get(pos + 8..pos + 8 + len).ok_or("truncated chunk")?;
            match kind {
                b"IHDR" => header = Some(data.to_vec()),
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            pos += 12 + len;
        }
        let h = header.ok_or("no IHDR")?;
        let width = u32::from_be_bytes(h[0..4].try_into().unwrap());
        let height = u32::from_be_bytes(h[4..8].try_into().unwrap());
        let channels = match (h[8], h[9], h[12]) {
            (8, 2, 0) => 3,
            (8, 6, 0) => 4,
            other => return Err(format!("unsupported PNG format {other:?}")),
        };
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(idat.as_slice())
            .read_to_end(&mut raw)
            .map_err(|e| e.to_string())?;
        let stride = width as usize * channels;
        let mut data = vec![0u8; stride * height as usize];
        for y in 0..height as usize {
            let line = raw
                .get(y * (stride + 1)..(y + 1) * (stride + 1))
                .ok_or("short image")?;
            let (filter, line) = (line[0], &line[1..]);
            for x in 0..stride {
                let a = if x >= channels {
                    data[y * stride + x - channels]
                } else {
                    0
                };
                let b = if y > 0 { data[(y - 1) * stride + x] } else { 0 };
                let c = if x >= channels && y > 0 {
                    data[(y - 1) * stride + x - channels]
                } else {
                    0
                };
                let predictor = match filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((a as u16 + b as u16) / 2) as u8,
                    4 => {
                        let p = a as i16 + b as i16 - c as i16;
                        let (pa, pb, pc) = (
                            (p - a as i16).abs(),
                            (p - b as i16).abs(),
                            (p - c as i16).abs(),
                        );
                        if pa <= pb && pa <= pc {
                            a
                        } else if pb <= pc {
                            b
                        } else {
                            c
                        }
                    }
                    f => return Err(format!("bad filter {f}")),
                };
                data[y * stride + x] = line[x].wrapping_add(predictor);
            }
        }
        Ok(Png {
            width,
            height,
            channels,
            data,
        })
    }

    /// RGB of every pixel.
    fn pixels(&self) -> impl Iterator<Item = [u8; 3]> + '_ {
        self.data.chunks(self.channels).map(|p| [p[0], p[1], p[2]])
    }
}

/// A history with no injected change but noise and flaky tests: a clean master.
fn clean_config(seed: u64) -> Config {
    Config {
        seed,
        jobs: 1,
        builds: 33,
        tests: 150,
        steps: 0,
        spikes: 0,
        drifts: 0,
        flaky: 3,
        new_tests: 0,
        removed_tests: 0,
        shared_steps: 0,
    }
}

fn gate_run(dir: &Path, extra: &[&str]) -> std::process::Output {
    let out = common::bin()
        .env_remove("BRANCH_NAME")
        .env_remove("CHANGE_TARGET")
        .env_remove("JOB_NAME")
        .args(["analyze", "--store"])
        .arg(dir)
        .args([
            "--branch",
            "PR-77",
            "--baseline",
            "master",
            "--fail-on-regression",
        ])
        .args(extra)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The PR gate through the binary: a clean PR passes with exit 0, a PR that makes one test 1.5×
/// slower fails with exit 5, and the Markdown names that test.
#[test]
fn pr_gate_passes_a_clean_pr_and_fails_a_slower_one() {
    let (mut summaries, _) = synth::generate(&clean_config(5));
    let job = summaries[0].context.job.clone();
    // A test of about a second, so 1.5× is beyond both thresholds.
    let slow = summaries
        .last()
        .unwrap()
        .cases()
        .filter(|c| c.time.is_some_and(|t| (0.5..3.0).contains(&t)))
        .map(|c| c.name.clone())
        .nth(2)
        .expect("a test near a second");
    let mut slowed = summaries.clone();
    assert_eq!(
        synth::split_pull_request(&mut summaries, &job, 2, 77, None),
        2
    );
    assert_eq!(
        synth::split_pull_request(&mut slowed, &job, 2, 77, Some((&slow, 1.5))),
        2
    );

    let clean = tempfile::tempdir().unwrap();
    synth::write_local_store(clean.path(), &summaries, |_| Stored::Staged).unwrap();
    let out = gate_run(clean.path(), &[]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{md}");
    assert!(md.contains("**No test is slower**"), "{md}");
    assert!(md.contains("`PR-77` compared with `master`"), "{md}");

    let bad = tempfile::tempdir().unwrap();
    synth::write_local_store(bad.path(), &slowed, |_| Stored::Staged).unwrap();
    let out = gate_run(bad.path(), &[]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{md}");
    assert!(md.contains("**1 test(s) slower**"), "{md}");
    let row = md
        .lines()
        .find(|l| l.starts_with("| `") && l.contains(&slow))
        .unwrap_or_else(|| panic!("{slow} not in {md}"));
    assert!(row.contains('%') && row.contains("| +"), "{row}");
    // JSON carries the p- and q-values.
    let out = gate_run(bad.path(), &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["slower"], 1);
    let first = &v["compared"][0];
    assert_eq!(first["test"]["name"], slow.as_str());
    assert!(first["q_value"].as_f64().unwrap() <= 0.05, "{first}");
    assert!(first["effect_size"].as_f64().unwrap() > 1.0, "{first}");
    let ratio = first["ratio"].as_f64().unwrap();
    assert!((1.3..1.8).contains(&ratio), "{first}");
    // Without --fail-on-regression the gate reports but passes.
    let out = common::bin()
        .args(["analyze", "--store"])
        .arg(bad.path())
        .args(["--branch", "PR-77", "--baseline", "master"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// Over many clean PRs with 150 tests each the gate rarely alarms (Benjamini–Hochberg).
#[test]
fn pr_gate_false_alarms_are_rare_on_clean_prs() {
    let mut alarms = 0;
    let runs = 40;
    for seed in 0..runs {
        let (mut summaries, _) = synth::generate(&clean_config(100 + seed));
        let job = summaries[0].context.job.clone();
        synth::split_pull_request(&mut summaries, &job, 1 + (seed as usize % 3), 9, None);
        let series = series::build(&summaries);
        let pr: Vec<_> = series.iter().filter(|s| s.branch == "PR-9").collect();
        let base: Vec<_> = series.iter().filter(|s| s.branch == "master").collect();
        let r = analyze::gate::gate("PR-9", "master", &pr, &base, &Default::default());
        assert!(r.compared.len() > 100, "{}", r.compared.len());
        alarms += usize::from(r.slower > 0);
    }
    assert!(
        alarms <= runs as usize / 10,
        "{alarms} of {runs} clean PRs alarmed"
    );
}

/// PR series are never pooled: two PRs of one job are two series.
#[test]
fn pr_branches_are_analysed_separately() {
    let (v, text) = sample_report(&["--branches", "pr"]);
    let series: Vec<(String, String, u64)> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["job"].as_str().unwrap().to_string(),
                j["branch"].as_str().unwrap().to_string(),
                j["builds"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        series.contains(&("mxnet-validation/unix-gpu".into(), "PR-16336".into(), 3))
            && series.contains(&("mxnet-validation/unix-gpu".into(), "PR-16401".into(), 2)),
        "{series:?}"
    );
    assert_eq!(v["branch_classes"], serde_json::json!(["pr"]));
    assert!(!text.contains("-0.0"), "negative zero in {text}");
}

/// On the sample store one commit slows the same tests in three jobs: one cause per commit,
/// with the right range and every job; the total-time change begins where the regressions do.
#[test]
fn sample_store_causes_are_grouped_by_commit() {
    let store = common::repo().join("examples/sample-store");
    let (v, _) = sample_report(&[]);
    let context = |job: &str, build: u64| -> serde_json::Value {
        let p = store.join(format!("{job}/master/{build}/context.json"));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let causes = v["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 2, "{causes:#?}");
    for (first_bad, tests) in [(16, 6), (20, 3)] {
        let c = causes
            .iter()
            .find(|c| c["range"]["first_bad"]["build"] == first_bad)
            .unwrap_or_else(|| panic!("no cause at {first_bad}: {causes:#?}"));
        assert_eq!(c["jobs"].as_array().unwrap().len(), 3, "{c}");
        assert_eq!(c["regressions"].as_array().unwrap().len(), tests, "{c}");
        let bad = context("mxnet-validation/unix-cpu", first_bad);
        let good = context("mxnet-validation/unix-cpu", first_bad - 1);
        assert_eq!(c["commit"], bad["commit"]);
        assert_eq!(c["range"]["last_good"]["commit"], good["commit"]);
        let compare = format!(
            "https://github.com/apache/mxnet/compare/{}...{}",
            good["commit"].as_str().unwrap(),
            bad["commit"].as_str().unwrap()
        );
        assert_eq!(c["range"]["compare_url"], compare.as_str());
        // No CHANGE_AUTHOR on master: the author is git's.
        assert_eq!(bad["user"], serde_json::Value::Null);
        assert_eq!(c["range"]["authors"][0], bad["author"]["name"]);
    }
    // --repo-url wins over the recorded GIT_URL, in every range and cause.
    let (gitlab, _) = sample_report(&["--repo-url", "git@gitlab.example.com:ml/mxnet.git"]);
    let url = gitlab["causes"][0]["range"]["compare_url"]
        .as_str()
        .unwrap();
    assert!(
        url.starts_with("https://gitlab.example.com/ml/mxnet/-/compare/"),
        "{url}"
    );
    for job in v["jobs"].as_array().unwrap() {
        let change = &job["total_time_changes"][0];
        assert_eq!(change["first_build"]["build"], 16, "{job}");
        assert_eq!(change["unexplained"], false);
        assert_eq!(
            change["explained_by"].as_array().unwrap().len(),
            3,
            "{change}"
        );
    }
}

/// `analyze --format json` on the shipped sample store (read only), parsed and as text.
fn sample_report(extra: &[&str]) -> (serde_json::Value, String) {
    let out = common::bin()
        .args(["analyze", "--store"])
        .arg(common::repo().join("examples/sample-store"))
        .args(["--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (serde_json::from_str(&text).expect("json report"), text)
}
