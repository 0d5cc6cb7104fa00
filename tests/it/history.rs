//! The history tables, read back by a reader we did not write (DuckDB, from the test virtualenv):
//! what `aggregate` publishes equals what was uploaded and what the sink got; the analysis reads
//! the same series from the tables as from the builds in memory; a migrated store holds the same
//! rows as a fresh aggregation; concurrent publishers never duplicate a build; `--last` fetches
//! only what it needs; the documented queries run; the Glue tables match the schema.

use crate::common;
use crate::synth::{self, Config, Stored};
use ci_test_metrics::analyze::{self, series, Options};
use ci_test_metrics::store::Store;
use ci_test_metrics::table::publish::{self, PublishOptions, Seal};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The test virtualenv's Python with duckdb (`CTM_TEST_PYTHON`, set by `scripts/test.sh`). Without
/// it a test is skipped with a note, except under CI (`CI` set), where it fails.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("CTM_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("CTM_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs duckdb")
        }
        None => {
            eprintln!(
                "skipped: CTM_TEST_PYTHON is not set (run scripts/test.sh to install duckdb)"
            );
            None
        }
    }
}

/// Runs SQL in DuckDB with views `test_runs` and `builds` over the tables under `tables`
/// (a local `_ci-test-metrics/tables/` directory); each row as a JSON object.
pub fn duckdb(tables: &Path, sql: &str) -> Vec<Value> {
    const SCRIPT: &str = r#"
import duckdb, json, sys
root, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
for t in ("test_runs", "builds"):
    con.sql(f"create view {t} as select * from read_parquet('{root}/{t}/*/*.parquet', hive_partitioning = true, union_by_name = true)")
rel = con.sql(sql)
cols = rel.columns
print(json.dumps([dict(zip(cols, r)) for r in rel.fetchall()], default=str))
"#;
    let python = python().expect("callers check python() first");
    let out = Command::new(&python)
        .args(["-c", SCRIPT])
        .arg(tables)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run the tests with scripts/test.sh",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "duckdb failed on {sql}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("duckdb printed JSON")
}

fn tables(store: &Path) -> PathBuf {
    store.join("_ci-test-metrics/tables")
}

/// Per (job, branch class): builds, test rows and the sum of durations, as DuckDB reads them;
/// and it checks that no build is in the tables twice, and that each build's rows match its
/// `builds` row.
pub fn table_truth(tables: &Path) -> std::collections::BTreeMap<(String, String), (u64, u64, f64)> {
    let dup = duckdb(
        tables,
        "select (select count(*) from builds) - (select count(*) from (select distinct job, branch, build from builds)) as dup_builds,
                (select count(*) from (select job, branch, build, count(*) as n from test_runs group by all) r
                   full join builds b using (job, branch, build) where coalesce(r.n, 0) != b.tests) as mismatched",
    );
    assert_eq!(
        dup[0]["dup_builds"], 0,
        "a build is in the builds table twice"
    );
    assert_eq!(
        dup[0]["mismatched"], 0,
        "a build's rows differ from its builds row"
    );
    duckdb(
        tables,
        "select job, branch_class, count(distinct (branch, build)) as builds, count(*) as tests, sum(duration_s) as secs
         from test_runs group by all order by all",
    )
    .into_iter()
    .map(|r| {
        (
            (r["job"].as_str().unwrap().to_string(), r["branch_class"].as_str().unwrap().to_string()),
            (r["builds"].as_u64().unwrap(), r["tests"].as_u64().unwrap(), r["secs"].as_f64().unwrap_or(0.0)),
        )
    })
    .collect()
}

fn aggregate(store: &Path, extra: &[&str]) -> Value {
    let (out, json) = common::aggregate(store, extra);
    assert!(
        out.status.success(),
        "aggregate: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    json
}

/// The shipped sample store (dates long past, so every day is due), aggregated: the tables hold
/// every build once, with the counts and times the aggregate report and the EMF sink give.
#[test]
fn sample_store_tables_match_the_report_and_the_sink() {
    if python().is_none() {
        return;
    }
    let (dir, store) = common::sample_store();
    let emf = dir.path().join("m.emf");
    let report = aggregate(&store, &["--sink", &format!("emf:{}", emf.display())]);
    let builds = report["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 107);
    assert_eq!(report["tables"]["builds"], 107);
    assert_eq!(report["tables"]["staged_waiting"], 0);

    let t = tables(&store);
    let truth = table_truth(&t);
    // The report's per-build counts, by job and class.
    let mut want: std::collections::BTreeMap<(String, String), (u64, u64)> = Default::default();
    for b in builds {
        let key = (
            b["job"].as_str().unwrap().to_string(),
            b["branch_class"].as_str().unwrap().to_string(),
        );
        let e = want.entry(key).or_default();
        e.0 += u64::from(b["tests"].as_u64().unwrap() > 0);
        e.1 += b["tests"].as_u64().unwrap();
    }
    let got: std::collections::BTreeMap<_, _> =
        truth.iter().map(|(k, v)| (k.clone(), (v.0, v.1))).collect();
    assert_eq!(got, want);
    // Statuses as the report counted them.
    let statuses = duckdb(
        &t,
        "select status, count(*) as n from test_runs group by 1 order by 1",
    );
    let count = |s: &str| {
        statuses
            .iter()
            .find(|r| r["status"] == s)
            .map_or(0, |r| r["n"].as_u64().unwrap())
    };
    let sum = |k: &str| builds.iter().map(|b| b[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(count("failed"), sum("failures"));
    assert_eq!(count("error"), sum("errors"));
    assert_eq!(count("skipped"), sum("skipped"));
    // The sink's Tests and TotalTestTime, over everything published.
    let (mut tests, mut total) = (0.0, 0.0);
    for line in std::fs::read_to_string(&emf).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        tests += v["Tests"].as_f64().unwrap_or(0.0);
        total += v["TotalTestTime"].as_f64().unwrap_or(0.0);
    }
    let rows = duckdb(&t, "select count(*) as n, sum(duration_s) as s from test_runs join builds using (job, branch, build) where published");
    assert_eq!(rows[0]["n"].as_f64().unwrap(), tests);
    assert!(
        (rows[0]["s"].as_f64().unwrap() - total).abs() < 1e-6 * total,
        "{rows:?} vs {total}"
    );
    // One part per table and day; a second run publishes nothing more.
    let again = aggregate(
        &store,
        &["--sink", &format!("emf:{}", emf.display()), "--full"],
    );
    assert_eq!(again["tables"]["builds"], 0);
    let after = table_truth(&t);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        truth.keys().collect::<Vec<_>>()
    );
    for (k, (b, n, s)) in &truth {
        let (b2, n2, s2) = after[k];
        assert_eq!((b2, n2), (*b, *n), "{k:?}");
        assert!((s2 - s).abs() < 1e-9 * s.max(1.0), "{k:?}: {s2} vs {s}");
    }
    assert!(
        !store.join("_ci-test-metrics/staging").exists()
            || walk(&store.join("_ci-test-metrics/staging")).is_empty(),
        "staged files are removed once published"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn history_config() -> Config {
    Config {
        seed: 5,
        jobs: 2,
        builds: 90,
        tests: 150,
        steps: 3,
        spikes: 4,
        drifts: 1,
        flaky: 3,
        new_tests: 2,
        removed_tests: 2,
        shared_steps: 0,
    }
}

fn publish_now(root: &Path, part_bytes: usize, row_group_rows: usize) -> publish::Published {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(root.to_str().unwrap()).await.unwrap();
        publish::publish(
            &store,
            &PublishOptions {
                seal: Seal::Now,
                part_bytes,
                row_group_rows,
                ..PublishOptions::default()
            },
        )
        .await
        .unwrap()
    })
}

fn report_json(args: &[&str], store: &Path) -> Value {
    let out = common::bin()
        .args(["analyze", "--format", "json", "--store"])
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["generated_at"] = Value::Null;
    v
}

/// The report from the tables (published parts in several files and row groups, plus staged
/// builds) is the report of the same builds analysed in memory: same change points, attributions
/// and rankings, value for value. `--last` gives the report of the last builds alone.
#[test]
fn analysis_from_the_tables_equals_analysis_in_memory() {
    let (mut summaries, mut truth) = synth::generate(&history_config());
    // Failures and retries too, so outcomes (and the flaky tests and breakages) are compared.
    let failures = synth::Failures {
        seed: 7,
        flaky: 2,
        retried: 2,
        p: 0.1,
        breakages: 1,
    };
    synth::inject_failures(&mut summaries, &mut truth, &failures);
    let dir = tempfile::tempdir().unwrap();
    synth::write_local_store(dir.path(), &summaries, |_| Stored::Staged).unwrap();
    // Publish two thirds (small parts and row groups, so builds span both), keep the rest staged.
    let keep_staged: Vec<PathBuf> = walk(&dir.path().join("_ci-test-metrics/staging"))
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, p)| p)
        .collect();
    let aside = tempfile::tempdir().unwrap();
    for (i, p) in keep_staged.iter().enumerate() {
        std::fs::rename(p, aside.path().join(i.to_string())).unwrap();
    }
    let published = publish_now(dir.path(), 8 * 1024, 1000);
    assert!(published.parts.len() > 5, "{published:?}");
    for (i, p) in keep_staged.iter().enumerate() {
        std::fs::rename(aside.path().join(i.to_string()), p).unwrap();
    }

    let in_memory = |summaries: &[ci_test_metrics::summary::BuildSummary]| {
        // Through text, as the binary's output is: the same floats print and parse the same.
        let text = serde_json::to_string(&analyze::analyze(
            &series::build(summaries),
            &Options::default(),
        ))
        .unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v["generated_at"] = Value::Null;
        v
    };
    let whole = in_memory(&summaries);
    for key in ["flaky_failures", "breakages"] {
        assert!(!whole[key].as_array().unwrap().is_empty(), "{key}");
    }
    assert_eq!(report_json(&["--branches", "all"], dir.path()), whole);
    // Read in passes over groups of tests (150 tests x 90 builds, 2,000 durations a pass).
    assert_eq!(
        report_json(
            &["--branches", "all", "--max-series-cells", "2000"],
            dir.path()
        ),
        whole
    );
    // The last 40 builds of each job.
    let mut last = Vec::new();
    for job in ["ci-demo/unit-cpu", "ci-demo/unit-gpu"] {
        let mut of_job: Vec<_> = summaries
            .iter()
            .filter(|s| s.context.job == job)
            .cloned()
            .collect();
        assert!(!of_job.is_empty(), "{job}");
        of_job.sort_by_key(|s| (s.context.timestamp, s.context.build));
        last.extend(of_job.split_off(of_job.len() - 40));
    }
    assert_eq!(
        report_json(&["--branches", "all", "--last", "40"], dir.path()),
        in_memory(&last)
    );
}

/// A store written by a version with JSON summaries: the first run converts them, and the tables
/// then hold the same rows as a fresh aggregation of the same builds from their result files.
#[test]
fn a_migrated_store_holds_the_rows_of_a_fresh_aggregation() {
    if python().is_none() {
        return;
    }
    let (summaries, _) = synth::generate(&Config {
        builds: 30,
        tests: 40,
        ..history_config()
    });
    let legacy = tempfile::tempdir().unwrap();
    let fresh = tempfile::tempdir().unwrap();
    synth::write_local_store(legacy.path(), &summaries, |_| Stored::LegacySummary).unwrap();
    synth::write_local_store(fresh.path(), &summaries, |_| Stored::Raw).unwrap();
    // The legacy store keeps only the summaries (as after a lifecycle rule expired the result
    // files): only the migration can bring its builds into the tables.
    let emf = legacy.path().join("m.emf");
    let migrated = aggregate(
        legacy.path(),
        &["--sink", &format!("emf:{}", emf.display()), "--seal", "now"],
    );
    assert_eq!(migrated["tables"]["migrated_from_summaries"], 60);
    assert_eq!(migrated["tables"]["builds"], 60);
    let emf2 = fresh.path().join("m.emf");
    let aggregated = aggregate(
        fresh.path(),
        &[
            "--sink",
            &format!("emf:{}", emf2.display()),
            "--seal",
            "now",
        ],
    );
    assert_eq!(aggregated["tables"]["builds"], 60);
    let rows = |store: &Path| {
        duckdb(
            &tables(store),
            "select job, branch, build, branch_class, build_time, commit, author, file, suite, classname, name, status,
                    round(duration_s, 9) as d from test_runs order by all",
        )
    };
    let a = rows(legacy.path());
    assert_eq!(
        a.len(),
        summaries.iter().map(|s| s.cases().count()).sum::<usize>()
    );
    assert_eq!(a, rows(fresh.path()));
    // A second run migrates nothing again.
    let again = aggregate(
        legacy.path(),
        &["--sink", &format!("emf:{}", emf.display()), "--seal", "now"],
    );
    assert_eq!(again["tables"]["migrated_from_summaries"], 0);
    assert_eq!(again["tables"]["builds"], 0);
}

/// Several publishers at once over the same staged builds, with parts so small that each holds a
/// build or two (many conditional creates to race on): every build lands in exactly one part.
fn racing_publishers(store_url: String, setup: impl FnOnce(&tokio::runtime::Runtime)) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    setup(&rt);
    let results: Vec<publish::Published> = rt.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let url = store_url.clone();
                tokio::spawn(async move {
                    let store = Store::open(&url).await.unwrap();
                    publish::publish(
                        &store,
                        &PublishOptions {
                            seal: Seal::Now,
                            part_bytes: 1,
                            ..PublishOptions::default()
                        },
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect()
    });
    let published: usize = results.iter().map(|r| r.builds).sum();
    assert_eq!(published, 40, "{results:?}");
    let store = rt.block_on(Store::open(&store_url)).unwrap();
    let parts = rt
        .block_on(store.list("_ci-test-metrics/tables/test_runs/"))
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for p in &parts {
        let bytes = rt.block_on(store.get(&p.key)).unwrap();
        let file = ci_test_metrics::table::decode::open(
            ci_test_metrics::table::decode::Ranges::whole(bytes),
        )
        .unwrap();
        use parquet::file::reader::FileReader;
        for b in ci_test_metrics::table::decode::builds_of(file.metadata()).unwrap() {
            assert!(seen.insert(b.id()), "{} is in two parts", b.id());
        }
    }
    assert_eq!(seen.len(), 40);
    let staged = rt
        .block_on(store.list("_ci-test-metrics/staging/"))
        .unwrap_or_default();
    assert!(staged.is_empty(), "left staged: {staged:?}");
}

#[test]
fn racing_publishers_on_a_local_store_publish_each_build_once() {
    let (summaries, _) = synth::generate(&Config {
        builds: 20,
        tests: 30,
        ..history_config()
    });
    let dir = tempfile::tempdir().unwrap();
    synth::write_local_store(dir.path(), &summaries, |_| Stored::Staged).unwrap();
    racing_publishers(dir.path().to_str().unwrap().to_string(), |_| {});
}

#[test]
fn racing_publishers_on_seaweedfs_publish_each_build_once() {
    let Some(s3) = common::s3_endpoint() else {
        return;
    };
    common::aws_env();
    unsafe { std::env::set_var("AWS_ENDPOINT_URL_S3", &s3) };
    let (summaries, _) = synth::generate(&Config {
        builds: 20,
        tests: 30,
        ..history_config()
    });
    let dir = tempfile::tempdir().unwrap();
    synth::write_local_store(dir.path(), &summaries, |_| Stored::Staged).unwrap();
    let bucket = common::unique_bucket("race");
    racing_publishers(format!("s3://{bucket}"), |rt| {
        rt.block_on(async {
            common::create_bucket(&s3, &bucket).await;
            let store = Store::open(&format!("s3://{bucket}")).await.unwrap();
            for path in walk(&dir.path().join("_ci-test-metrics")) {
                let key = path
                    .strip_prefix(dir.path())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                store
                    .put(&key, std::fs::read(&path).unwrap().into())
                    .await
                    .unwrap();
            }
        })
    });
}

/// `--last`: the plan reads every part's footer, then only the row groups of the builds it keeps.
#[test]
fn last_n_fetches_only_the_row_groups_it_needs() {
    let (summaries, _) = synth::generate(&Config {
        jobs: 1,
        builds: 96,
        tests: 50,
        ..history_config()
    });
    let dir = tempfile::tempdir().unwrap();
    synth::write_local_store(dir.path(), &summaries, |_| Stored::Staged).unwrap();
    // Hourly builds: 4 days, one part each, a row group per 10 builds.
    let published = publish_now(dir.path(), usize::MAX, 500);
    assert_eq!(published.parts.len(), 4, "{published:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gets = |last: Option<usize>| {
        rt.block_on(async {
            let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
            let selection = analyze::Selection {
                last,
                ..analyze::Selection::default()
            };
            let plan = analyze::load::plan(&store, &selection).await.unwrap();
            let before = store.stats().gets;
            let (job, _) =
                analyze::load::read_series(&store, &plan.series[0], &selection.branches, (0, 1))
                    .await
                    .unwrap();
            (store.stats().gets - before, job.builds.len())
        })
    };
    // All: 4 footers and 96 / 10 row groups (one range GET each).
    let (all, n) = gets(None);
    assert_eq!(n, 96);
    assert_eq!(all, 4 + 4 * 3);
    // The last 5: one footer and one or two row groups of the last day.
    let (few, n) = gets(Some(5));
    assert_eq!(n, 5);
    assert!(few <= 3, "{few} GETs for the last 5 builds");
}

/// Every SQL block in docs/history.md runs in DuckDB over the sample store's tables and returns rows.
#[test]
fn documented_queries_run_in_duckdb() {
    if python().is_none() {
        return;
    }
    let (dir, store) = common::sample_store();
    let emf = dir.path().join("m.emf");
    aggregate(
        &store,
        &[
            "--sink",
            &format!("emf:{}", emf.display()),
            "--branches",
            "all",
        ],
    );
    let doc = std::fs::read_to_string(common::repo().join("docs/history.md")).unwrap();
    let queries: Vec<&str> = doc
        .split("```sql\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap())
        .filter(|q| {
            q.trim_start().starts_with("--")
                || q.trim_start().to_lowercase().starts_with("select")
                || q.trim_start().to_lowercase().starts_with("with")
        })
        .collect();
    assert!(
        queries.len() >= 5,
        "{} queries in docs/history.md",
        queries.len()
    );
    for q in queries {
        // The docs name a date range and a test that exist in the sample store.
        let rows = duckdb(&tables(&store), q);
        assert!(!rows.is_empty(), "no rows from\n{q}");
    }
}

/// The Glue tables in the CloudFormation template declare the columns the writer writes.
#[test]
fn glue_tables_declare_the_schema() {
    use ci_test_metrics::table::schema::{BUILDS_COLUMNS, TEST_RUNS_COLUMNS};
    let template =
        std::fs::read_to_string(common::repo().join("examples/athena/template.yaml")).unwrap();
    for (table, columns) in [
        ("test_runs", &TEST_RUNS_COLUMNS[..]),
        ("builds", &BUILDS_COLUMNS[..]),
    ] {
        let start = template
            .find(&format!("Name: {table}\n"))
            .unwrap_or_else(|| panic!("no Glue table {table}"));
        let section = &template[start..];
        let section = &section[..section.find("PartitionKeys").expect("partition keys")];
        let declared: Vec<(String, String)> = section
            .lines()
            .filter_map(|l| {
                let l = l.trim().strip_prefix("- { Name: ")?;
                let (name, rest) = l.split_once(", Type: ")?;
                Some((
                    name.to_string(),
                    rest.split([',', ' ', '}']).next()?.to_string(),
                ))
            })
            .collect();
        let want: Vec<(String, String)> = columns
            .iter()
            .map(|c| (c.name.to_string(), c.kind.sql().to_string()))
            .collect();
        assert_eq!(declared, want, "{table}");
    }
}

/// The aggregator's policies (the IAM example and the Lambda role) grant exactly the S3 calls the
/// store makes, and DeleteObject only on staged builds: nothing else can ever be removed.
#[test]
fn aggregator_policies_grant_the_store_calls_and_delete_only_staged_builds() {
    let source = std::fs::read_to_string(common::repo().join("src/store/s3.rs")).unwrap();
    let calls: std::collections::BTreeSet<&str> = [
        ("get_object", "s3:GetObject"),
        // HeadObject is authorised by s3:GetObject.
        ("head_object", "s3:GetObject"),
        ("list_objects_v2", "s3:ListBucket"),
        ("put_object", "s3:PutObject"),
        ("delete_object", "s3:DeleteObject"),
    ]
    .iter()
    .filter(|(method, _)| source.contains(&format!(".{method}()")))
    .map(|(_, action)| *action)
    .collect();
    let policy: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("examples/iam/aggregator-policy.json"))
            .unwrap(),
    )
    .unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        for action in statement["Action"].as_array().unwrap() {
            let action = action.as_str().unwrap();
            if action.starts_with("s3:") {
                granted.insert(action);
                if action == "s3:DeleteObject" {
                    assert!(
                        statement["Resource"]
                            .as_str()
                            .unwrap()
                            .ends_with("/_ci-test-metrics/staging/*"),
                        "{statement}"
                    );
                }
            }
        }
    }
    let granted: std::collections::BTreeSet<&str> = granted.into_iter().collect();
    assert_eq!(granted, calls);
    let template =
        std::fs::read_to_string(common::repo().join("examples/lambda/template.yaml")).unwrap();
    let deletes: Vec<&str> = template
        .lines()
        .filter(|l| l.contains("s3:DeleteObject"))
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    let at = template.find("Action: s3:DeleteObject").unwrap();
    let resource = template[at..].lines().nth(1).unwrap();
    assert!(
        resource.contains("_ci-test-metrics/staging/*"),
        "{resource}"
    );
    // Upload never deletes (its role has PutObject only).
    for file in ["src/upload.rs", "src/cli/upload.rs"] {
        let code = std::fs::read_to_string(common::repo().join(file)).unwrap();
        assert!(!code.contains(".delete("), "{file} deletes");
    }
}

/// A staged file that breaks off is reported and left staged; the day's other builds are
/// published without it, and none of its rows.
#[test]
fn a_broken_staged_build_stays_staged_and_the_others_publish() {
    let (summaries, _) = synth::generate(&Config {
        jobs: 1,
        builds: 10,
        tests: 20,
        ..history_config()
    });
    let dir = tempfile::tempdir().unwrap();
    synth::write_local_store(dir.path(), &summaries, |_| Stored::Staged).unwrap();
    let staged = walk(&dir.path().join("_ci-test-metrics/staging"));
    assert_eq!(staged.len(), 10);
    let broken = &staged[3];
    let bytes = std::fs::read(broken).unwrap();
    // Keep the footer (so its build is listed) but garble the column data.
    let mut garbled = bytes.clone();
    for b in &mut garbled[4..bytes.len() / 2] {
        *b = 0xAB;
    }
    std::fs::write(broken, &garbled).unwrap();
    let published = publish_now(dir.path(), usize::MAX, 1000);
    assert_eq!(published.builds, 9, "{published:?}");
    let key = broken.strip_prefix(dir.path()).unwrap().to_str().unwrap();
    assert!(
        published.warnings.iter().any(|w| w.contains(key)),
        "{:?}",
        published.warnings
    );
    assert!(broken.exists(), "the broken file stays staged");
    assert_eq!(walk(&dir.path().join("_ci-test-metrics/staging")).len(), 1);
}
