//! Writes the sample artifacts in `examples/sample-store/`: a local-directory store laid out as
//! the upload stage writes it (`{job}/{branch}/{build}/{file}` plus `context.json`), with several
//! jobs, branches and builds of realistic nose, pytest and googletest results.
//!
//! The history has something to find: on master (30 builds a job), `test_operator.test_convolution`
//! slows from about 2 s to about 5 s at build 16, a pytest case from 0.08 s to 1.2 s at the same
//! build, and build 20 adds a slow googletest case — in every job, because master build N of each
//! job built the same commit (one push triggers the whole pipeline). One build carries a truncated
//! result file and one build is still uploading (no `context.json`).
//!
//! The contexts look like a real Jenkins's: master builds have no `CHANGE_AUTHOR` (`user`), only
//! the commit's git author; pull-request builds have both. Every context names the repository
//! (`GIT_URL`) and records where each value came from.
//!
//!     cargo run --example gen_samples [-- OUT_DIR]     # default: examples/sample-store
//!
//! Deterministic: the same output on every run.

use ci_test_metrics::context::{Author, Context, ManifestEntry, Source};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// A small deterministic PRNG (xorshift64*), so the samples never change.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Log-normal noise around `median` with about `cv` coefficient of variation.
    fn around(&mut self, median: f64, cv: f64) -> f64 {
        let z = (0..12).map(|_| self.next()).sum::<f64>() - 6.0;
        median * (cv * z).exp()
    }
}

struct Build {
    job: &'static str,
    branch: &'static str,
    number: u64,
    at: OffsetDateTime,
    commit: String,
    /// The commit's author (git).
    author: &'static str,
    /// CHANGE_AUTHOR: pull requests only.
    user: Option<&'static str>,
    pr: Option<u64>,
}

const USERS: &[&str] = &["alice", "bob", "chen", "dana", "eve"];

fn main() -> std::io::Result<()> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("examples/sample-store"));
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    let mut rng = Rng(0x5eed_cafe);
    let start = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid time"); // 2026-11-18
    let mut builds = Vec::new();
    // Master build N of every job built the same commit.
    let mut master_rng = Rng(0x0a57_e12c_0ffe_e123);
    let master_commits: Vec<String> = (0..=30)
        .map(|_| {
            format!(
                "{:016x}{:016x}{:08x}",
                (master_rng.next() * 1.8e19) as u64,
                (master_rng.next() * 1.8e19) as u64,
                (master_rng.next() * 4.2e9) as u32
            )
        })
        .collect();
    for (job, branches) in [
        (
            "mxnet-validation/unix-cpu",
            &["master", "PR-16336", "v1.6.x", "feature/faster-io"][..],
        ),
        (
            "mxnet-validation/unix-gpu",
            &["master", "PR-16336", "PR-16401"][..],
        ),
        ("mxnet-validation/windows-cpu", &["master", "PR-16401"][..]),
    ] {
        for branch in branches {
            let count = if *branch == "master" { 30 } else { 3 };
            for n in 1..=count {
                let i = builds.len() as i64;
                let own_commit = format!(
                    "{:016x}{:016x}{:08x}",
                    (rng.next() * 1.8e19) as u64,
                    (rng.next() * 1.8e19) as u64,
                    (rng.next() * 4.2e9) as u32
                );
                let pr = branch.strip_prefix("PR-").and_then(|p| p.parse().ok());
                let (commit, author) = if *branch == "master" {
                    (
                        master_commits[n as usize].clone(),
                        USERS[n as usize % USERS.len()],
                    )
                } else {
                    (own_commit, USERS[(n as usize + i as usize) % USERS.len()])
                };
                builds.push(Build {
                    job,
                    branch,
                    number: n,
                    at: start + Duration::hours(6 * n as i64) + Duration::minutes(7 * i),
                    commit,
                    author,
                    user: pr.map(|_| author),
                    pr,
                });
            }
        }
    }
    for b in &builds {
        write_build(&out, b, &mut rng)?;
    }
    println!("wrote {} builds to {}", builds.len(), out.display());
    Ok(())
}

fn write_build(out: &Path, b: &Build, rng: &mut Rng) -> std::io::Result<()> {
    let encoded_branch = b.branch.replace('%', "%25").replace('/', "%2F");
    let dir = out
        .join(b.job)
        .join(&encoded_branch)
        .join(b.number.to_string());
    std::fs::create_dir_all(&dir)?;
    let slow = b.branch == "master" && b.number >= 16;
    let mut files = vec![
        ("nosetests_unittest.xml", nose(rng, slow)),
        ("pytest_operator.xml", pytest(rng, slow)),
        (
            "gtest_cpp.xml",
            gtest(rng, b.branch == "master" && b.number >= 20),
        ),
    ];
    if b.job.ends_with("windows-cpu") && b.number == 3 && b.branch == "master" {
        // A truncated upload: the aggregator reports it and keeps the cases read before the cut.
        let cut = files[1].1.len() / 2;
        files[1].1.truncate(cut);
    }
    let mut manifest = Vec::new();
    for (name, body) in &files {
        std::fs::write(dir.join(name), body)?;
        manifest.push(ManifestEntry {
            name: name.to_string(),
            bytes: body.len() as u64,
            sha256: hex::encode(Sha256::digest(body.as_bytes())),
            tests: Some(body.matches("<testcase").count() as u64),
            error: None,
        });
    }
    let still_uploading = b.job.ends_with("unix-gpu") && b.branch == "PR-16401" && b.number == 3;
    if still_uploading {
        return Ok(());
    }
    let jenkins = |v: &str| Source::ci("jenkins", v);
    let mut sources: std::collections::BTreeMap<String, Source> = [
        ("branch", jenkins("BRANCH_NAME")),
        ("build_url", jenkins("BUILD_URL")),
        ("commit", jenkins("GIT_COMMIT")),
        ("author", Source::Git),
        ("commit_time", Source::Git),
        ("repo_url", jenkins("GIT_URL")),
        ("source_branch", jenkins("BRANCH_NAME")),
        ("node", jenkins("NODE_NAME")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if b.pr.is_some() {
        for (k, v) in [
            ("user", "CHANGE_AUTHOR"),
            ("pr", "CHANGE_ID"),
            ("target_branch", "CHANGE_TARGET"),
            ("source_branch", "CHANGE_BRANCH"),
        ] {
            sources.insert(k.into(), jenkins(v));
        }
    }
    let context = Context {
        build_url: Some(format!(
            "https://jenkins.example.com/job/{}/job/{}/{}/",
            b.job.replace('/', "/job/"),
            encoded_branch,
            b.number
        )),
        commit: Some(b.commit.clone()),
        commit_time: (b.at - Duration::minutes(20))
            .format(&time::format_description::well_known::Rfc3339)
            .ok(),
        author: Some(Author {
            name: b.author.to_string(),
            email: Some(format!("{}@example.com", b.author)),
        }),
        user: b.user.map(str::to_string),
        repo_url: Some("https://github.com/apache/mxnet".into()),
        source_branch: Some(b.branch.to_string()),
        target_branch: b.pr.map(|_| "master".to_string()),
        pr: b.pr,
        node: Some(format!("ci-worker-{}", b.number % 4)),
        sources,
        files: manifest,
        ..Context::new(b.job, b.branch, b.number, b.at)
    };
    std::fs::write(dir.join("context.json"), context.to_json())
}

/// nose xunit: root `<testsuite name="nosetests">`, `skip` attribute, CDATA bodies.
fn nose(rng: &mut Rng, slow: bool) -> String {
    let mut cases = String::new();
    let (mut n, mut skip, mut fail) = (0, 0, 0);
    for module in ["test_ndarray", "test_operator", "test_gluon", "test_io"] {
        for t in 0..10 {
            n += 1;
            let name = if module == "test_operator" && t == 0 {
                "test_convolution".to_string()
            } else {
                format!("test_case_{t}")
            };
            let median = if module == "test_operator" && t == 0 {
                if slow {
                    5.0
                } else {
                    2.0
                }
            } else {
                0.05 + 0.1 * t as f64
            };
            let time = rng.around(median, 0.1);
            let body = if module == "test_io" && t == 9 {
                skip += 1;
                r#"<skipped type="unittest.case.SkipTest" message="needs a GPU"><![CDATA[SkipTest: needs a GPU]]></skipped>"#.to_string()
            } else if module == "test_gluon" && t == 7 && rng.next() < 0.2 {
                fail += 1;
                r#"<failure type="AssertionError" message="assert 0.51 &lt; 0.5"><![CDATA[Traceback (most recent call last):
  File "test_gluon.py", line 88, in test_case_7
AssertionError: assert 0.51 < 0.5]]></failure>"#
                    .to_string()
            } else {
                String::new()
            };
            let _ = writeln!(
                cases,
                r#"<testcase classname="{module}" name="{name}" time="{time:.3}">{body}</testcase>"#
            );
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"nosetests\" tests=\"{n}\" errors=\"0\" failures=\"{fail}\" skip=\"{skip}\">\n{cases}</testsuite>\n"
    )
}

/// pytest xunit2 under a `<testsuites>` root.
fn pytest(rng: &mut Rng, slow: bool) -> String {
    let mut cases = String::new();
    let mut total = 0.0;
    let mut n = 0;
    for (file, count) in [
        ("tests/python/unittest/test_numpy_op.py", 15),
        ("tests/python/unittest/test_sparse.py", 10),
    ] {
        let class = file.trim_end_matches(".py").replace('/', ".");
        for t in 0..count {
            n += 1;
            let median = if slow && t == 3 && file.contains("numpy") {
                1.2
            } else {
                0.02 * (t + 1) as f64
            };
            let time = rng.around(median, 0.12);
            total += time;
            let _ = writeln!(
                cases,
                r#"    <testcase classname="{class}" name="test_op_{t}[float32]" file="{file}" line="{}" time="{time:.4}" />"#,
                10 + 20 * t
            );
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<testsuites>\n  <testsuite name=\"pytest\" errors=\"0\" failures=\"0\" skipped=\"0\" tests=\"{n}\" time=\"{total:.3}\" timestamp=\"2026-11-18T10:00:00\" hostname=\"ci-worker\">\n{cases}  </testsuite>\n</testsuites>\n"
    )
}

/// googletest: `status="run"|"notrun"`, `result="completed"|"skipped"`, times like `"0."`.
fn gtest(rng: &mut Rng, new_slow_test: bool) -> String {
    let mut suites = String::new();
    let mut n = 0;
    for suite in ["NDArrayTest", "EngineTest", "StorageTest"] {
        let mut cases = String::new();
        let count = if suite == "EngineTest" && new_slow_test {
            7
        } else {
            6
        };
        for t in 0..count {
            n += 1;
            let (status, result, time) = if suite == "StorageTest" && t == 5 {
                ("notrun", "suppressed", "0.".to_string())
            } else if t == 6 {
                ("run", "completed", format!("{:.3}", rng.around(3.0, 0.08)))
            } else {
                (
                    "run",
                    "completed",
                    format!("{:.3}", rng.around(0.01 * (t + 1) as f64, 0.15)),
                )
            };
            let name = if t == 6 {
                "StressManyThreads".to_string()
            } else {
                format!("Case{t}")
            };
            let _ = writeln!(
                cases,
                r#"    <testcase name="{name}" status="{status}" result="{result}" time="{time}" timestamp="2026-11-18T10:00:00.000" classname="{suite}" />"#
            );
        }
        let _ = writeln!(suites, "  <testsuite name=\"{suite}\" tests=\"{count}\" failures=\"0\" disabled=\"0\" errors=\"0\" time=\"0.\">\n{cases}  </testsuite>");
    }
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"{n}\" failures=\"0\" disabled=\"0\" errors=\"0\" time=\"3.\" name=\"AllTests\">\n{suites}</testsuites>\n")
}
