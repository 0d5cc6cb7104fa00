//! The report's failure-flakiness sections (flaky tests and breakages) in every format from one
//! formatter, styled per format ([`Style`]), and `--format list`: the currently flaky tests'
//! identities, one a line, for a test runner's exclude list.

use super::super::model::{BuildRef, CommitRange, Report};

/// How a format writes code, free text, a build and a commit range.
pub struct Style {
    pub code: fn(&str) -> String,
    pub text: fn(&str) -> String,
    pub build: fn(&BuildRef) -> String,
    pub range: fn(&CommitRange) -> String,
}

/// Plain text, for the terminal table.
pub const PLAIN: Style = Style {
    code: |s| s.to_string(),
    text: |s| s.to_string(),
    build: |b| format!("#{}", b.build),
    range: super::range_text,
};

/// Markdown.
pub const MARKDOWN: Style = Style {
    code: |s| format!("`{}`", s.replace('`', "'")),
    text: super::md,
    build: super::build_link,
    range: |r| format!("{} ({})", super::range_markdown(r), super::range_text(r)),
};

/// HTML.
pub const HTML: Style = Style {
    code: |s| format!("<code>{}</code>", super::html::esc(s)),
    text: super::html::esc,
    build: super::html::build_link,
    range: |r| {
        format!(
            "{} ({})",
            super::html::range_link(r),
            super::html::esc(&super::range_text(r))
        )
    },
};

/// The sections' titles.
pub const FLAKY_TITLE: &str = "Flaky tests (failures come and go)";
pub const BREAKAGE_TITLE: &str = "Breakages (failing since a build)";

/// The job, with its branch when it is not master-like: `job` or `job [PR-1]`.
fn series(job: &str, branch: &str, s: &Style) -> String {
    (s.text)(&super::series_name(job, branch))
}

/// One line per flaky test.
pub fn flaky_items(report: &Report, s: &Style) -> Vec<String> {
    report
        .flaky_failures
        .iter()
        .map(|f| {
            let builds: Vec<String> = f.flaky_builds.iter().map(|b| (s.build)(b)).collect();
            let started = f
                .started
                .as_ref()
                .map(|r| format!("; started with {}", (s.range)(r)))
                .unwrap_or_default();
            format!(
                "{} ({}) flaky in {} of {} runs ({}), fails {:.0}%, flips {:.0}%; first {} ({}), last {} ({}); builds {}{started}",
                (s.code)(&f.test.to_string()),
                series(&f.job, &f.branch, s),
                f.flaky_builds.len(),
                f.runs,
                f.reasons.join(", ").replace('_', " "),
                f.failure_rate * 100.0,
                f.flip_rate * 100.0,
                (s.build)(&f.first_flaky),
                day(&f.first_flaky),
                (s.build)(&f.last_flaky),
                day(&f.last_flaky),
                builds.join(", ")
            )
        })
        .collect()
}

/// One line per breakage.
pub fn breakage_items(report: &Report, s: &Style) -> Vec<String> {
    report
        .breakages
        .iter()
        .map(|b| {
            format!(
                "{} ({}) failing in the last {} runs, since {} ({}): {}",
                (s.code)(&b.test.to_string()),
                series(&b.job, &b.branch, s),
                b.failing_runs,
                (s.build)(&b.range.first_bad),
                day(&b.range.first_bad),
                (s.range)(&b.range)
            )
        })
        .collect()
}

fn day(b: &BuildRef) -> &str {
    b.timestamp.get(..10).unwrap_or(&b.timestamp)
}

/// The identities of the currently flaky tests, one a line, sorted and without repeats (a test
/// flaky in several jobs once): `classname.name` (`suite.name` without a classname, `name`
/// without either), as every section prints them. Feed it to a test runner's exclude list.
pub fn list(report: &Report) -> String {
    let mut names: Vec<String> = report
        .flaky_failures
        .iter()
        .map(|f| f.test.to_string())
        .filter(|n| !n.contains(['\n', '\r']))
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(|n| n + "\n").collect()
}

#[cfg(test)]
mod tests {
    use crate::analyze::{flakiness::tests::job, render, report, Options};

    #[test]
    fn every_format_names_flaky_tests_and_breakages() {
        let mut broken = job(&format!("{}FFFFF", ".".repeat(30)));
        broken.tests[0].id.name = "broken".into();
        let flaky = job(&format!("{}F", ".F...F...F..".repeat(3)));
        let mut jobs = vec![flaky, broken];
        jobs[1].job = "k".into();
        let r = report::analyze(&jobs, &Options::default());
        assert_eq!((r.flaky_failures.len(), r.breakages.len()), (1, 1));
        let formats = [
            ("table", render::table(&r), "c.t (j) flaky in"),
            ("md", render::markdown(&r), "[#2](https://ci/j/2)"),
            (
                "html",
                render::html(&r),
                "<a href=\"https://ci/j/2\">#2</a>",
            ),
            ("json", render::json(&r), "\"flaky_failures\""),
        ];
        for (what, text, want) in formats {
            assert!(text.contains(want), "{what}: {want} in\n{text}");
            assert!(text.contains("broken"), "{what}");
            assert!(text.contains("c0000030"), "{what}: the breakage's commit");
        }
        assert_eq!(super::list(&r), "c.t\n");
    }
}
