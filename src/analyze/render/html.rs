//! A self-contained HTML report: inline CSS and inline SVG trend charts, no scripts, no fetches,
//! so it opens offline and can be attached to an email or a CI artifact.
//!
//! One chart per job (total test time per build) and one per listed regression (the test's
//! duration per build), each with the change point marked by a vertical line and the medians
//! before and after drawn as horizontal segments on either side of it.

use super::{change_words, classes, secs, series_name, signed, total_change_words, TOP};
use crate::analyze::model::{BuildRef, Chart, ChartChange, CommitRange, Report};
use std::fmt::Write;

const W: f64 = 860.0;
const H: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP_PAD: f64 = 16.0;
const BOTTOM: f64 = 34.0;

/// The whole page.
pub fn html(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>Unit-test slowdowns</title><style>",
        "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}",
        "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}",
        "h3{font-size:15px;margin-bottom:4px}",
        "table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}",
        "td.n{text-align:right;font-variant-numeric:tabular-nums}td.w{white-space:nowrap}.meta{color:#666}",
        "svg{background:#fcfcfc;border:1px solid #e4e4e4}.series{fill:none;stroke:#3b6fb6;stroke-width:1.3}",
        ".dot{fill:#3b6fb6}.chg{stroke:#c0392b;stroke-dasharray:4 3;stroke-width:1.5}",
        ".before{stroke:#27ae60;stroke-width:2.5}.after{stroke:#c0392b;stroke-width:2.5}",
        ".axis{stroke:#999}.grid{stroke:#eee}text{font:11px system-ui,sans-serif;fill:#555}",
        "</style></head><body>\n<h1>Unit-test slowdowns</h1>\n"
    ));
    let _ = writeln!(
        out,
        "<p class=\"meta\">Generated {} · {} (each branch its own series) · {} job series · {} regression(s) · schema {} · method: rank-based change points (see docs/analyze.md)</p>",
        esc(&report.generated_at),
        esc(&classes(report)),
        report.jobs.len(),
        report.regressions.len(),
        report.schema_version
    );
    if !report.causes.is_empty() {
        out.push_str("<h2>Causes: regressions that came in with the same commit</h2>\n<ol>\n");
        for c in report.causes.iter().take(TOP) {
            let tests: Vec<String> = c
                .regressions
                .iter()
                .filter_map(|rank| report.regressions.get(rank - 1))
                .map(|r| {
                    format!(
                        "<a href=\"#r{}\">#{}</a> <code>{}</code> {}",
                        r.rank,
                        r.rank,
                        esc(&r.test.to_string()),
                        signed(r.seconds_added)
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "<li><b>{}</b> per build: commits {}, by {}, in {}: {}</li>",
                signed(c.seconds_added),
                range_link(&c.range),
                esc(&if c.range.authors.is_empty() {
                    "–".to_string()
                } else {
                    c.range.authors.join(", ")
                }),
                esc(&c.jobs.join(", ")),
                tests.join(", ")
            );
        }
        out.push_str("</ol>\n");
    }
    out.push_str("<h2>Regressions, biggest first</h2>\n");
    if report.regressions.is_empty() {
        out.push_str("<p>No regressions found.</p>\n");
    } else {
        out.push_str("<table><tr><th>#</th><th>+s/build</th><th>Before → after</th><th>Job</th><th>Test</th><th>First bad build</th><th>Commits (last good..first bad)</th><th>PR</th><th>Author</th></tr>\n");
        for r in report.regressions.iter().take(TOP) {
            let _ = writeln!(
                out,
                "<tr><td class=\"n\"><a href=\"#r{}\">{}</a></td><td class=\"n\"><b>{}</b></td><td class=\"w\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.rank,
                r.rank,
                signed(r.seconds_added),
                esc(&change_words(r)),
                esc(&series_name(&r.job, &r.branch)),
                esc(&r.test.to_string()),
                build_link(&r.first_build),
                range_link(&r.range),
                r.first_build.pr.map_or_else(|| "–".into(), |p| format!("#{p}")),
                esc(r.first_build.author.as_deref().unwrap_or("–")),
            );
        }
        out.push_str("</table>\n");
    }

    out.push_str("<h2>Jobs: total test time per build</h2>\n");
    for (j, chart) in report.jobs.iter().zip(&report.charts.jobs) {
        let _ = writeln!(
            out,
            "<h3>{} <span class=\"meta\">branch {}, class {}</span></h3><p class=\"meta\">{} builds ({} … {}, {} … {}), {} tests, median total {}, {} regression(s)</p>",
            esc(&j.job),
            esc(&j.branch),
            esc(&j.branch_class),
            j.builds,
            j.first_build.build,
            j.last_build.build,
            esc(&j.first_build.timestamp),
            esc(&j.last_build.timestamp),
            j.tests,
            secs(j.total_time_median),
            j.regressions
        );
        out.push_str(&svg(chart, &format!("Total test time of {}", j.job)));
        for c in &j.total_time_changes {
            let _ = writeln!(
                out,
                "<p>{} — {}</p>",
                esc(&total_change_words(c, &|t| t.to_string())),
                build_link(&c.first_build)
            );
        }
    }

    if !report.regressions.is_empty() {
        out.push_str("<h2>Regressed tests</h2>\n");
    }
    for (r, chart) in report
        .regressions
        .iter()
        .zip(&report.charts.regressions)
        .take(TOP)
    {
        let _ = writeln!(
            out,
            "<h3 id=\"r{}\">#{} <code>{}</code> <span class=\"meta\">{}</span></h3><p>{} per build ({}) from {}{}, commits {} ({}), PR {}, by {}, {}</p>",
            r.rank,
            r.rank,
            esc(&r.test.to_string()),
            esc(&series_name(&r.job, &r.branch)),
            signed(r.seconds_added),
            esc(&change_words(r)),
            build_link(&r.first_build),
            r.range
                .last_good
                .as_ref()
                .map_or_else(String::new, |g| format!(" (last good {})", build_link(g))),
            range_link(&r.range),
            r.range.last_good.as_ref().map_or_else(
                || format!("from build {}", r.range.first_bad.build),
                |g| format!("builds {}..{}", g.build, r.range.first_bad.build)
            ),
            r.first_build.pr.map_or_else(|| "–".into(), |p| format!("#{p}")),
            esc(r.first_build.author.as_deref().unwrap_or("–")),
            esc(&r.first_build.timestamp),
        );
        out.push_str(&svg(chart, &format!("Duration of {}", r.test)));
    }

    let lists: [(&str, Vec<String>); 6] = [
        (
            super::flaky::FLAKY_TITLE,
            super::flaky::flaky_items(report, &super::flaky::HTML),
        ),
        (
            super::flaky::BREAKAGE_TITLE,
            super::flaky::breakage_items(report, &super::flaky::HTML),
        ),
        (
            "New tests",
            report
                .new_tests
                .iter()
                .map(|t| {
                    format!(
                        "<code>{}</code> ({}) {} from {}",
                        esc(&t.test.to_string()),
                        esc(&t.job),
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
                        "<code>{}</code> ({}) {} until {}",
                        esc(&t.test.to_string()),
                        esc(&t.job),
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
                        "<code>{}</code> ({}) fails {:.0}%, erratic durations {:.0}%",
                        esc(&t.test.to_string()),
                        esc(&t.job),
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
                        "<code>{}</code> ({}) {} → {} between builds {} and {}",
                        esc(&d.test.to_string()),
                        esc(&d.job),
                        secs(d.median_first),
                        secs(d.median_last),
                        d.from_build.build,
                        d.to_build.build
                    )
                })
                .collect(),
        ),
    ];
    for (title, items) in &lists {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "<h2>{title} ({})</h2><ul>", items.len());
        for item in items.iter().take(TOP) {
            let _ = writeln!(out, "<li>{item}</li>");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// The commit range, linked to the repository's compare (or commit) page when known.
pub(super) fn range_link(r: &CommitRange) -> String {
    let Some(range) = &r.range else {
        return "–".into();
    };
    let url = r
        .compare_url
        .as_ref()
        .or(r.commit_url.as_ref())
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    match url {
        Some(u) => format!("<a href=\"{}\"><code>{}</code></a>", esc(u), esc(range)),
        None => format!("<code>{}</code>", esc(range)),
    }
}

pub(super) fn build_link(b: &BuildRef) -> String {
    match &b.build_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            format!("<a href=\"{}\">#{}</a>", esc(url), b.build)
        }
        _ => format!("#{}", b.build),
    }
}

/// Escapes text for HTML content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One trend chart as inline SVG.
pub fn svg(chart: &Chart, title: &str) -> String {
    let n = chart.values.len();
    let max = chart
        .values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let ymax = if max > 0.0 { max * 1.1 } else { 1.0 };
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP_PAD - BOTTOM);
    let x = |i: usize| {
        LEFT + if n > 1 {
            pw * i as f64 / (n - 1) as f64
        } else {
            pw / 2.0
        }
    };
    let y = |v: f64| TOP_PAD + ph * (1.0 - v / ymax);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\"><title>{}</title>",
        esc(title)
    );
    for f in [0.0, 0.5, 1.0] {
        let v = ymax / 1.1 * f;
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            secs(v)
        );
    }
    let _ = write!(
        s,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP_PAD}\" y2=\"{:.1}\"/><line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
        TOP_PAD + ph,
        W - RIGHT,
        TOP_PAD + ph,
        TOP_PAD + ph
    );
    // The series: a path that breaks where a build has no value; dots when there are few builds.
    let mut d = String::new();
    let mut pen_down = false;
    for (i, v) in chart.values.iter().enumerate() {
        if v.is_finite() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if pen_down { "L" } else { "M" },
                x(i),
                y(*v)
            );
            pen_down = true;
        } else {
            pen_down = false;
        }
    }
    let _ = write!(s, "<path class=\"series\" d=\"{d}\"/>");
    if n <= 150 {
        for (i, v) in chart
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
        {
            let _ = write!(
                s,
                "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\"/>",
                x(i),
                y(*v)
            );
        }
    }
    // Change points: the medians either side, over the segments they are the medians of.
    for &ChartChange {
        from,
        at,
        to,
        before,
        after,
    } in &chart.changes
    {
        if before.is_finite() {
            let _ = write!(
                s,
                "<line class=\"before\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
                x(from),
                x(at),
                y(before),
                y(before)
            );
        }
        let label = if before.is_finite() {
            format!("{} → {}", secs(before), secs(after))
        } else {
            format!("new test, {}", secs(after))
        };
        let _ = write!(
            s,
            "<line class=\"after\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><line class=\"chg\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{TOP_PAD}\" y2=\"{:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\">build {} · {}</text>",
            x(at),
            x(to),
            y(after),
            y(after),
            x(at),
            x(at),
            TOP_PAD + ph,
            (x(at) + 4.0).min(W - 200.0),
            TOP_PAD + 12.0,
            chart.builds.get(at).copied().unwrap_or_default(),
            label
        );
    }
    // The x-axis: up to 5 ticks, each with its build number and date.
    if n > 0 {
        let ticks = 5.min(n);
        let mut last_tick = usize::MAX;
        for k in 0..ticks {
            let i = if ticks > 1 {
                k * (n - 1) / (ticks - 1)
            } else {
                0
            };
            if i == last_tick {
                continue;
            }
            last_tick = i;
            let anchor = match (k, ticks) {
                (0, _) => "start",
                (k, t) if k + 1 == t => "end",
                _ => "middle",
            };
            let _ = write!(
                s,
                "<line class=\"axis\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">#{} · {}</text>",
                x(i),
                x(i),
                TOP_PAD + ph,
                TOP_PAD + ph + 4.0,
                x(i),
                H - 10.0,
                chart.builds.get(i).copied().unwrap_or_default(),
                esc(chart.dates.get(i).map_or("", String::as_str))
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_marks_change_and_breaks_on_gaps() {
        let chart = Chart {
            builds: vec![10, 11, 12, 13],
            dates: ["2026-11-18", "2026-11-18", "2026-11-19", "2026-11-20"]
                .map(String::from)
                .to_vec(),
            values: vec![1.0, f64::NAN, 2.0, 2.0],
            changes: vec![ChartChange {
                from: 0,
                at: 2,
                to: 3,
                before: 1.0,
                after: 2.0,
            }],
        };
        let s = svg(&chart, "a <b>");
        assert!(s.contains("<title>a &lt;b&gt;</title>"));
        assert_eq!(s.matches("M").count(), 2, "{s}");
        assert!(
            s.contains("class=\"chg\"")
                && s.contains("class=\"before\"")
                && s.contains("class=\"after\"")
        );
        assert!(s.contains("build 12 · 1.00s → 2.00s"));
        assert!(
            s.contains("#10 · 2026-11-18") && s.contains("#13 · 2026-11-20"),
            "{s}"
        );
        // A new test: no line before it.
        let new = Chart {
            changes: vec![ChartChange {
                from: 2,
                at: 2,
                to: 3,
                before: f64::NAN,
                after: 2.0,
            }],
            ..chart
        };
        let s = svg(&new, "new");
        assert!(
            !s.contains("class=\"before\"") && s.contains("new test, 2.00s"),
            "{s}"
        );
        assert_eq!(esc("<&\"'>"), "&lt;&amp;&quot;&#39;&gt;");
    }
}
