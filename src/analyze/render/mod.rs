//! A [`Report`] as a terminal table, Markdown (PR comment, email), JSON (the documented stable
//! schema) or a self-contained HTML page with SVG trend charts ([`html`]).

pub mod flaky;
pub mod html;

use super::model::{
    BuildRef, Cause, CommitRange, JobReport, Kind, Regression, Report, TotalChange,
};
use std::fmt::Write;

pub use html::html;

/// How many regressions the table and Markdown list (JSON has them all).
pub const TOP: usize = 50;

/// The report as pretty JSON (schema in `docs/analyze.md`).
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("report serialises");
    s.push('\n');
    s
}

/// Seconds for people: `0.042s`, `1.50s`, `2m05s`.
pub fn secs(s: f64) -> String {
    // No negative zero: a rounded −0.0004 is "0.000s".
    let s = if s.abs() < 0.0005 { 0.0 } else { s };
    if !s.is_finite() {
        "-".into()
    } else if s.abs() >= 120.0 {
        let sign = if s < 0.0 { "-" } else { "" };
        let t = s.abs().round() as u64;
        format!("{sign}{}m{:02}s", t / 60, t % 60)
    } else if s.abs() >= 1.0 {
        format!("{s:.2}s")
    } else {
        format!("{s:.3}s")
    }
}

/// `+35%`, or `new`.
pub fn change(r: &Regression) -> String {
    match (r.kind, r.relative_change) {
        (Kind::NewTest, _) => "new".into(),
        (_, Some(rel)) => format!("{:+.0}%", rel * 100.0),
        (_, None) => "from 0".into(),
    }
}

/// Before → after in words: `2.00s → 5.00s, 150% slower (p 1.2e-5)`, or `new test, 3.00s`.
pub fn change_words(r: &Regression) -> String {
    match (r.kind, r.median_before, r.relative_change) {
        (Kind::NewTest, _, _) => format!("new test, {} per build", secs(r.median_after)),
        (_, Some(before), Some(rel)) => format!(
            "{} → {}, {:.0}% slower (p {})",
            secs(before),
            secs(r.median_after),
            rel * 100.0,
            p_value(r.p_value)
        ),
        (_, before, _) => format!(
            "{} → {} (p {})",
            before.map_or_else(|| "0".into(), secs),
            secs(r.median_after),
            p_value(r.p_value)
        ),
    }
}

/// `job` for master-like series, `job [branch]` otherwise, so PR series read apart.
pub fn series_name(job: &str, branch: &str) -> String {
    if branch == "master" || branch == "main" {
        job.to_string()
    } else {
        format!("{job} [{branch}]")
    }
}

/// What was analysed: `branch class master` or `branch classes master, pr`.
pub fn classes(report: &Report) -> String {
    match report.branch_classes.len() {
        0 => "no branch".into(),
        1 => format!("branch class {}", report.branch_classes[0]),
        _ => format!("branch classes {}", report.branch_classes.join(", ")),
    }
}

/// One line on a job's total-time change: where it begins and which regressions make it up.
pub fn total_change_words(c: &TotalChange, test: &dyn Fn(&str) -> String) -> String {
    let mut out = format!(
        "total time {} → {} ({}) from build {} ({})",
        secs(c.median_before),
        secs(c.median_after),
        signed(c.seconds_added),
        c.first_build.build,
        date(&c.first_build),
    );
    if c.unexplained {
        if c.seconds_added > 0.0 {
            out.push_str(
                ": no single test explains it (many small changes, or tests added or removed)",
            );
        }
    } else {
        let parts: Vec<String> = c
            .explained_by
            .iter()
            .map(|e| {
                let what = if e.kind == Kind::NewTest { "new " } else { "" };
                format!(
                    "{what}{} {} from #{}",
                    test(&e.test.to_string()),
                    signed(e.seconds_added),
                    e.first_build
                )
            })
            .collect();
        let _ = write!(
            out,
            ": explained by {} ({} of {})",
            parts.join(", "),
            signed(c.explained_seconds),
            signed(c.seconds_added)
        );
    }
    out
}

/// The commit range in plain text: `a1b2c3d4e5..f6a7b8c9d0 (builds 15..16)`.
pub fn range_text(r: &CommitRange) -> String {
    let builds = match &r.last_good {
        Some(g) => format!("builds {}..{}", g.build, r.first_bad.build),
        None => format!("from build {}", r.first_bad.build),
    };
    match &r.range {
        Some(range) => format!("{range} ({builds})"),
        None => builds,
    }
}

fn job_line(j: &JobReport) -> String {
    format!("{} (branch {}, class {})", j.job, j.branch, j.branch_class)
}

/// A p-value in a few characters.
pub fn p_value(p: Option<f64>) -> String {
    match p {
        None => "-".into(),
        Some(p) if p < 1e-12 => "<1e-12".into(),
        Some(p) => format!("{p:.1e}"),
    }
}

fn or_dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |v| v.to_string())
}

/// The build's time to the second, `2026-11-18 06:07:00`.
fn date(b: &BuildRef) -> String {
    b.timestamp
        .get(..19)
        .unwrap_or(&b.timestamp)
        .replace('T', " ")
}

/// Aligned columns; the last column is not padded.
fn columns(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if c + 1 == row.len() {
                    s.clone()
                } else {
                    format!("{s:<w$}", w = width[c])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Cuts long names in the middle so the table stays readable.
fn ellipsize(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max / 3).collect();
    let tail: String = s.chars().skip(n - (max - max / 3 - 1)).collect();
    format!("{head}…{tail}")
}

/// The terminal table.
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "Analysed {} (each branch its own series).\n",
        classes(report)
    );
    for j in &report.jobs {
        let _ = writeln!(
            out,
            "{}: {} builds ({} … {}), {} tests, total test time {} (median), {} regression(s) adding {}/build",
            job_line(j),
            j.builds,
            j.first_build.build,
            j.last_build.build,
            j.tests,
            secs(j.total_time_median),
            j.regressions,
            secs(j.seconds_added)
        );
        for c in &j.total_time_changes {
            let _ = writeln!(out, "  {}", total_change_words(c, &|t| t.to_string()));
        }
    }
    out.push('\n');
    if !report.causes.is_empty() {
        out.push_str("Causes, biggest first (regressions that came in with the same commit):\n");
        for c in report.causes.iter().take(TOP) {
            let _ = writeln!(out, "{}", cause_line(c, report));
        }
        out.push('\n');
    }
    if report.regressions.is_empty() {
        out.push_str("No regressions found.\n");
    } else {
        out.push_str("Regressions, biggest first (seconds added to every build):\n");
        let mut rows = vec![[
            "#",
            "+S/BUILD",
            "BEFORE",
            "AFTER",
            "CHANGE",
            "P",
            "JOB",
            "TEST",
            "FIRST BAD BUILD",
            "DATE",
            "COMMITS (LAST GOOD..FIRST BAD)",
            "PR",
            "AUTHOR",
        ]
        .map(String::from)
        .to_vec()];
        for r in report.regressions.iter().take(TOP) {
            rows.push(vec![
                r.rank.to_string(),
                signed(r.seconds_added),
                r.median_before.map_or_else(|| "-".into(), secs),
                secs(r.median_after),
                change(r),
                if r.kind == Kind::NewTest {
                    "new test".into()
                } else {
                    p_value(r.p_value)
                },
                ellipsize(&series_name(&r.job, &r.branch), 30),
                ellipsize(&r.test.to_string(), 60),
                r.first_build.build.to_string(),
                date(&r.first_build),
                r.range.range.clone().unwrap_or_else(|| "-".into()),
                or_dash(&r.first_build.pr),
                or_dash(&r.first_build.author),
            ]);
        }
        out.push_str(&columns(&rows));
        if report.regressions.len() > TOP {
            let _ = writeln!(
                out,
                "… and {} more (see --format json)",
                report.regressions.len() - TOP
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} new test(s), {} removed, {} with erratic durations or failures (not attributed), {} slow drift(s) without a single cause.",
        report.new_tests.len(),
        report.removed_tests.len(),
        report.flaky_tests.len(),
        report.drifts.len()
    );
    for (title, items) in [
        (
            flaky::FLAKY_TITLE,
            flaky::flaky_items(report, &flaky::PLAIN),
        ),
        (
            flaky::BREAKAGE_TITLE,
            flaky::breakage_items(report, &flaky::PLAIN),
        ),
    ] {
        let _ = writeln!(out, "\n{title}: {}", items.len());
        for item in items.iter().take(TOP) {
            let _ = writeln!(out, "  {item}");
        }
    }
    out
}

/// `+1.50s`, `-0.20s`; never `-0.000s`.
pub fn signed(s: f64) -> String {
    let s = if s.abs() < 0.0005 { 0.0 } else { s };
    if s >= 0.0 {
        format!("+{}", secs(s))
    } else {
        secs(s)
    }
}

/// Markdown for a PR comment or an email.
pub fn markdown(report: &Report) -> String {
    let mut out = format!(
        "## Unit-test slowdowns\n\nAnalysed {}; each branch is its own series.\n\n",
        classes(report)
    );
    for j in &report.jobs {
        let _ = writeln!(
            out,
            "- **{}** (branch `{}`, class {}): {} builds ({} … {}), total test time {} (median), {} regression(s) adding **{}** per build",
            md(&j.job),
            j.branch.replace('`', "'"),
            md(&j.branch_class),
            j.builds,
            j.first_build.build,
            j.last_build.build,
            secs(j.total_time_median),
            j.regressions,
            secs(j.seconds_added)
        );
        for c in &j.total_time_changes {
            let _ = writeln!(
                out,
                "  - {}",
                total_change_words(c, &|t| format!("`{}`", t.replace('`', "'")))
            );
        }
    }
    out.push('\n');
    if !report.causes.is_empty() {
        out.push_str("### Causes (regressions that came in with the same commit)\n\n");
        for c in report.causes.iter().take(TOP) {
            let _ = writeln!(out, "{}", cause_markdown(c, report));
        }
        out.push('\n');
    }
    if report.regressions.is_empty() {
        out.push_str("No regressions found.\n");
    } else {
        out.push_str("### Regressions\n\n| # | Seconds added per build | Before → after | Job | Test | First bad build | Commits (last good..first bad) | PR | Author |\n");
        out.push_str("|--:|--:|--|--|--|--|--|--|--|\n");
        for r in report.regressions.iter().take(TOP) {
            let _ = writeln!(
                out,
                "| {} | **{}** | {} | {} | `{}` | {} | {} | {} | {} |",
                r.rank,
                signed(r.seconds_added),
                change_words(r),
                md(&series_name(&r.job, &r.branch)),
                r.test.to_string().replace('`', "'"),
                build_link(&r.first_build),
                range_markdown(&r.range),
                r.first_build
                    .pr
                    .map_or_else(|| "–".into(), |p| format!("#{p}")),
                md(r.first_build.author.as_deref().unwrap_or("–")),
            );
        }
        if report.regressions.len() > TOP {
            let _ = writeln!(out, "\n… and {} more.", report.regressions.len() - TOP);
        }
    }
    let lists: [(&str, Vec<String>); 6] = [
        (
            flaky::FLAKY_TITLE,
            flaky::flaky_items(report, &flaky::MARKDOWN),
        ),
        (
            flaky::BREAKAGE_TITLE,
            flaky::breakage_items(report, &flaky::MARKDOWN),
        ),
        (
            "New tests",
            report
                .new_tests
                .iter()
                .map(|t| {
                    format!(
                        "`{}` ({}) {} from {}",
                        t.test,
                        md(&t.job),
                        secs(t.median),
                        build_link(&t.first_build)
                    )
                })
                .collect(),
        ),
        (
            "Removed tests",
            report
                .removed_tests
                .iter()
                .map(|t| {
                    format!(
                        "`{}` ({}) {} until {}",
                        t.test,
                        md(&t.job),
                        secs(t.median),
                        build_link(&t.last_build)
                    )
                })
                .collect(),
        ),
        (
            "Erratic durations or failures (not attributed)",
            report
                .flaky_tests
                .iter()
                .map(|t| {
                    format!(
                        "`{}` ({}) fails {:.0}%, erratic durations {:.0}%",
                        t.test,
                        md(&t.job),
                        t.failure_rate * 100.0,
                        t.outlier_rate * 100.0
                    )
                })
                .collect(),
        ),
        (
            "Slow drifts (no single cause)",
            report
                .drifts
                .iter()
                .map(|d| {
                    format!(
                        "`{}` ({}) {} → {} between builds {} and {}",
                        d.test,
                        md(&d.job),
                        secs(d.median_first),
                        secs(d.median_last),
                        d.from_build.build,
                        d.to_build.build
                    )
                })
                .collect(),
        ),
    ];
    for (title, items) in lists.iter().filter(|(_, items)| !items.is_empty()) {
        let _ = writeln!(
            out,
            "\n<details><summary>{title} ({})</summary>\n",
            items.len()
        );
        for item in items.iter().take(TOP) {
            let _ = writeln!(out, "- {item}");
        }
        out.push_str("\n</details>\n");
    }
    out
}

/// The range as Markdown: `` [`a..b`](compare) `` or the bare range.
fn range_markdown(r: &CommitRange) -> String {
    match (&r.range, &r.compare_url, &r.commit_url) {
        (Some(range), Some(url), _) | (Some(range), None, Some(url)) => {
            format!("[`{range}`]({})", url.replace(')', "%29"))
        }
        (Some(range), None, None) => format!("`{range}`"),
        _ => "–".into(),
    }
}

/// Which regressions a cause groups, as `#1 test (job)`.
fn cause_parts(c: &Cause, report: &Report, code: bool) -> Vec<String> {
    c.regressions
        .iter()
        .filter_map(|rank| report.regressions.get(rank - 1))
        .map(|r| {
            let test = if code {
                format!("`{}`", r.test.to_string().replace('`', "'"))
            } else {
                r.test.to_string()
            };
            format!("#{} {test} {}", r.rank, signed(r.seconds_added))
        })
        .collect()
}

fn cause_line(c: &Cause, report: &Report) -> String {
    format!(
        "{}. {} {}/build in {} job(s): {}; by {}; {}",
        c.rank,
        range_text(&c.range),
        signed(c.seconds_added),
        c.jobs.len(),
        c.jobs.join(", "),
        if c.range.authors.is_empty() {
            "-".into()
        } else {
            c.range.authors.join(", ")
        },
        cause_parts(c, report, false).join(", ")
    )
}

fn cause_markdown(c: &Cause, report: &Report) -> String {
    let builds = match &c.range.last_good {
        Some(g) => format!(
            "after {}, from {}",
            build_link(g),
            build_link(&c.range.first_bad)
        ),
        None => format!("from {}", build_link(&c.range.first_bad)),
    };
    format!(
        "{}. **{}** per build: commits {} ({builds}{}), by {}, in {}: {}",
        c.rank,
        signed(c.seconds_added),
        range_markdown(&c.range),
        c.range
            .commits
            .map_or_else(String::new, |n| format!(", {n} commit(s)")),
        md(&if c.range.authors.is_empty() {
            "–".to_string()
        } else {
            c.range.authors.join(", ")
        }),
        c.jobs.iter().map(|j| md(j)).collect::<Vec<_>>().join(", "),
        cause_parts(c, report, true).join(", ")
    )
}

/// `[#123](url)` or `#123`.
fn build_link(b: &BuildRef) -> String {
    match &b.build_url {
        Some(url) => format!("[#{}]({})", b.build, url.replace(')', "%29")),
        None => format!("#{}", b.build),
    }
}

/// Escapes Markdown table and emphasis characters in free text.
pub fn md(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('*', "\\*")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_well() {
        let cases = [
            (0.0421, "0.042s"),
            (1.5, "1.50s"),
            (125.0, "2m05s"),
            (f64::NAN, "-"),
        ];
        for (s, want) in cases {
            assert_eq!(secs(s), want);
        }
        assert_eq!(ellipsize("abcdefghijklmnopqrstuvwxyz", 10), "abc…uvwxyz");
    }

    #[test]
    fn table_and_markdown_name_the_first_build() {
        use crate::analyze::{analyze, series, Options};
        use crate::test_synth as synth;
        let (summaries, _) = synth::generate(&synth::Config::default());
        let report = analyze(&series::build(&summaries), &Options::default());
        let top = &report.regressions[0];
        let commit: String = top
            .first_build
            .commit
            .as_deref()
            .unwrap()
            .chars()
            .take(10)
            .collect();
        let author = top.first_build.author.as_deref().unwrap();
        let t = table(&report);
        let line = t
            .lines()
            .find(|l| l.starts_with("1 "))
            .unwrap_or_else(|| panic!("{t}"));
        let build = top.first_build.build.to_string();
        for want in [
            build.as_str(),
            commit.as_str(),
            author,
            top.test.name.as_str(),
        ] {
            assert!(line.contains(want), "{want} missing from {line}");
        }
        let md = markdown(&report);
        let row = md
            .lines()
            .find(|l| l.starts_with("| 1 |"))
            .unwrap_or_else(|| panic!("{md}"));
        let link = format!("[#{}](", top.first_build.build);
        for want in [link.as_str(), commit.as_str(), author] {
            assert!(row.contains(want), "{want} missing from {row}");
        }
    }
}
