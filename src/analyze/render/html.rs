//! A self-contained HTML report: inline CSS and inline SVG trend charts, no scripts, no fetches,
//! so it opens offline and can be attached to an email or a CI artifact.
//!
//! One chart per job (total test time per build) and one per listed regression (the test's
//! duration per build), each with the change point marked by a vertical line and the medians
//! before and after drawn as horizontal segments on either side of it.

use super::{change, p_value, secs, TOP};
use crate::analyze::report::{BuildRef, Chart, ChartChange, Report};
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
        "td.n{text-align:right;font-variant-numeric:tabular-nums}.meta{color:#666}",
        "svg{background:#fcfcfc;border:1px solid #e4e4e4}.series{fill:none;stroke:#3b6fb6;stroke-width:1.3}",
        ".dot{fill:#3b6fb6}.chg{stroke:#c0392b;stroke-dasharray:4 3;stroke-width:1.5}",
        ".before{stroke:#27ae60;stroke-width:2.5}.after{stroke:#c0392b;stroke-width:2.5}",
        ".axis{stroke:#999}.grid{stroke:#eee}text{font:11px system-ui,sans-serif;fill:#555}",
        "</style></head><body>\n<h1>Unit-test slowdowns</h1>\n"
    ));
    let _ = writeln!(
        out,
        "<p class=\"meta\">Generated {} · {} job(s) · {} regression(s) · schema {} · method: rank-based change points (see docs/analyze.md)</p>",
        esc(&report.generated_at),
        report.jobs.len(),
        report.regressions.len(),
        report.schema_version
    );
    out.push_str("<h2>Regressions, biggest first</h2>\n");
    if report.regressions.is_empty() {
        out.push_str("<p>No regressions found.</p>\n");
    } else {
        out.push_str("<table><tr><th>#</th><th>+s/build</th><th>Before → after</th><th>Job</th><th>Test</th><th>First build</th><th>Commit</th><th>PR</th><th>Author</th></tr>\n");
        for r in report.regressions.iter().take(TOP) {
            let _ = writeln!(
                out,
                "<tr><td class=\"n\"><a href=\"#r{}\">{}</a></td><td class=\"n\"><b>+{}</b></td><td>{} → {} ({}, p={})</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.rank,
                r.rank,
                secs(r.seconds_added),
                r.median_before.map_or_else(|| "–".into(), secs),
                secs(r.median_after),
                esc(&change(r)),
                p_value(r.p_value),
                esc(&r.job),
                esc(&r.test.to_string()),
                build_link(&r.first_build),
                short_commit(&r.first_build),
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
            "<h3>{}</h3><p class=\"meta\">{} builds ({} … {}), {} tests, median total {}, {} regression(s)</p>",
            esc(&j.job),
            j.builds,
            j.first_build.build,
            j.last_build.build,
            j.tests,
            secs(j.total_time_median),
            j.regressions
        );
        out.push_str(&svg(chart, &format!("Total test time of {}", j.job)));
        for c in &j.total_time_changes {
            let _ = writeln!(
                out,
                "<p>Total time {} → {} from {} ({} by {}){}</p>",
                secs(c.median_before),
                secs(c.median_after),
                build_link(&c.first_build),
                esc(c.first_build.commit.as_deref().unwrap_or("–")),
                esc(c.first_build.author.as_deref().unwrap_or("–")),
                if c.explained_by.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; same time as {}",
                        c.explained_by
                            .iter()
                            .map(|t| format!("<code>{}</code>", esc(&t.to_string())))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
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
            "<h3 id=\"r{}\">#{} <code>{}</code> <span class=\"meta\">{}</span></h3><p>+{} per build ({} → {}) from {}, commit <code>{}</code>, PR {}, by {}, {}</p>",
            r.rank,
            r.rank,
            esc(&r.test.to_string()),
            esc(&r.job),
            secs(r.seconds_added),
            r.median_before.map_or_else(|| "–".into(), secs),
            secs(r.median_after),
            build_link(&r.first_build),
            esc(r.first_build.commit.as_deref().unwrap_or("–")),
            r.first_build.pr.map_or_else(|| "–".into(), |p| format!("#{p}")),
            esc(r.first_build.author.as_deref().unwrap_or("–")),
            esc(&r.first_build.timestamp),
        );
        out.push_str(&svg(chart, &format!("Duration of {}", r.test)));
    }

    let lists: [(&str, Vec<String>); 4] = [
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
            "Flaky tests (not attributed)",
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

/// The first 10 characters of the commit, with the whole hash as a tooltip.
fn short_commit(b: &BuildRef) -> String {
    match &b.commit {
        Some(c) => format!(
            "<code title=\"{}\">{}</code>",
            esc(c),
            esc(&c.chars().take(10).collect::<String>())
        ),
        None => "–".into(),
    }
}

fn build_link(b: &BuildRef) -> String {
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
        let _ = write!(
            s,
            "<line class=\"before\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><line class=\"after\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><line class=\"chg\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{TOP_PAD}\" y2=\"{:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\">build {} · {} → {}</text>",
            x(from),
            x(at),
            y(before),
            y(before),
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
            secs(before),
            secs(after)
        );
    }
    if let (Some(first), Some(last)) = (chart.builds.first(), chart.builds.last()) {
        let _ = write!(
            s,
            "<text x=\"{LEFT}\" y=\"{:.1}\">build {first}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">build {last}</text>",
            H - 10.0,
            W - RIGHT,
            H - 10.0
        );
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
        assert_eq!(esc("<&\"'>"), "&lt;&amp;&quot;&#39;&gt;");
    }
}
