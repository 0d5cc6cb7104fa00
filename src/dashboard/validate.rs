//! A validator that does not trust the server: every rendered body is checked against the
//! CloudWatch dashboard body structure and limits before it is printed or deployed (the local
//! CloudWatch server accepts anything).
//!
//! Structure (by parsing into [`Body`]): known widget types, metric rows of
//! `[Namespace, MetricName, (DimName, DimValue)...]` plus one options object, or one expression
//! object; known option names, views and variable kinds. Then the rules serde cannot express:
//! at most 500 widgets, 500 rows per widget and 2,500 rows per dashboard; widgets on the
//! 24-column grid; non-empty namespaces, names, dimensions (≤ 30) and regions; statistics and
//! periods CloudWatch knows; expression ids that are unique, start with a lower-case letter and
//! are referenced only when defined; expressions with a label; variables with usable values.

use super::body::{Body, MetricRow, VariableKind, Widget};
use std::collections::BTreeSet;

/// Widgets per dashboard CloudWatch accepts.
pub const MAX_WIDGETS: usize = 500;
/// Metric rows per widget.
pub const MAX_METRICS_PER_WIDGET: usize = 500;
/// Metric rows per dashboard.
pub const MAX_METRICS: usize = 2500;
/// Grid columns.
pub const GRID_WIDTH: u32 = 24;

/// Parses and checks a body; all problems found, each naming where.
pub fn validate_json(json: &str) -> Result<Body, Vec<String>> {
    let body: Body = serde_json::from_str(json).map_err(|e| vec![format!("structure: {e}")])?;
    let problems = validate(&body);
    if problems.is_empty() {
        Ok(body)
    } else {
        Err(problems)
    }
}

/// The problems of a typed body (empty when it is fine).
pub fn validate(body: &Body) -> Vec<String> {
    let mut p = Vec::new();
    if body.widgets.is_empty() {
        p.push("a dashboard needs at least one widget".to_string());
    }
    if body.widgets.len() > MAX_WIDGETS {
        p.push(format!(
            "{} widgets, CloudWatch allows {MAX_WIDGETS}",
            body.widgets.len()
        ));
    }
    let total: usize = body.widgets.iter().map(Widget::metric_count).sum();
    if total > MAX_METRICS {
        p.push(format!(
            "{total} metrics in the dashboard, CloudWatch allows {MAX_METRICS}"
        ));
    }
    for (i, w) in body.widgets.iter().enumerate() {
        let at = format!("widget {i}");
        let place = w.place();
        if place.width == 0 || place.height == 0 || place.height > 1000 {
            p.push(format!("{at}: size {}x{}", place.width, place.height));
        }
        if place.x + place.width > GRID_WIDTH {
            p.push(format!(
                "{at}: x {} + width {} > {GRID_WIDTH}",
                place.x, place.width
            ));
        }
        match w {
            Widget::Text(t) if t.properties.markdown.trim().is_empty() => {
                p.push(format!("{at}: empty markdown"))
            }
            Widget::Text(_) => {}
            Widget::Metric(m) => check_metric_widget(&at, &m.properties, &mut p),
        }
    }
    check_variables(body, &mut p);
    p
}

fn check_metric_widget(at: &str, props: &super::body::MetricProperties, p: &mut Vec<String>) {
    let rows = &props.metrics;
    if rows.is_empty() || rows.len() > MAX_METRICS_PER_WIDGET {
        p.push(format!(
            "{at}: {} metrics; a metric widget needs 1 to {MAX_METRICS_PER_WIDGET}",
            rows.len()
        ));
    }
    if props.region.trim().is_empty() {
        p.push(format!("{at}: no region"));
    }
    if let Some(s) = &props.stat {
        check_stat(at, s, p);
    }
    if let Some(period) = props.period {
        check_period(at, period, p);
    }
    // Ids first: expressions may refer to rows after them.
    let mut ids = BTreeSet::new();
    for row in rows {
        let id = match row {
            MetricRow::Metric(m) => m.options.id.as_deref(),
            MetricRow::Expression(e) => Some(e.id.as_str()),
        };
        if let Some(id) = id {
            if !valid_id(id) {
                p.push(format!(
                    "{at}: id {id:?} must start with a lower-case letter and hold letters, digits, _"
                ));
            }
            if !ids.insert(id.to_string()) {
                p.push(format!("{at}: id {id:?} used twice"));
            }
        }
    }
    for (j, row) in rows.iter().enumerate() {
        let at = format!("{at} row {j}");
        match row {
            MetricRow::Metric(m) => {
                if m.namespace.is_empty() || m.name.is_empty() {
                    p.push(format!("{at}: empty namespace or metric name"));
                }
                if m.dimensions.len() > 30 {
                    p.push(format!("{at}: {} dimensions (max 30)", m.dimensions.len()));
                }
                if m.dimensions
                    .iter()
                    .any(|(k, v)| k.is_empty() || v.is_empty())
                {
                    p.push(format!("{at}: empty dimension name or value"));
                }
                if let Some(s) = &m.options.stat {
                    check_stat(&at, s, p);
                }
                if let Some(period) = m.options.period {
                    check_period(&at, period, p);
                }
            }
            MetricRow::Expression(e) => {
                if e.expression.trim().is_empty() {
                    p.push(format!("{at}: empty expression"));
                }
                if e.label.is_none() {
                    p.push(format!("{at}: expression {:?} has no label", e.id));
                }
                if e.expression.contains("SEARCH(")
                    && e.label.as_deref().is_some_and(|l| l.trim().is_empty())
                {
                    p.push(format!(
                        "{at}: SEARCH expression {:?} has an empty label: name its lines, e.g. \"${{PROP('Dim.Job')}}\"",
                        e.id
                    ));
                }
                if let Some(period) = e.period {
                    check_period(&at, period, p);
                }
                for r in references(&e.expression) {
                    if !ids.contains(&r) {
                        p.push(format!("{at}: expression refers to undefined id {r:?}"));
                    }
                    if r == e.id {
                        p.push(format!("{at}: expression refers to itself"));
                    }
                }
            }
        }
    }
}

fn check_variables(body: &Body, p: &mut Vec<String>) {
    let mut ids = BTreeSet::new();
    for v in &body.variables {
        let at = format!("variable {:?}", v.id);
        if v.id.is_empty() || !ids.insert(v.id.clone()) {
            p.push(format!("{at}: empty or repeated id"));
        }
        match v.kind {
            VariableKind::Property if v.property.as_deref().is_none_or(str::is_empty) => {
                p.push(format!("{at}: a property variable needs `property`"))
            }
            VariableKind::Pattern if v.pattern.as_deref().is_none_or(str::is_empty) => {
                p.push(format!("{at}: a pattern variable needs `pattern`"))
            }
            _ => {}
        }
        let choices = !matches!(v.input_type, super::body::InputType::Input);
        if choices && v.values.is_empty() {
            p.push(format!("{at}: radio and select variables need values"));
        }
        if let Some(d) = &v.default_value {
            if choices && !v.values.iter().any(|x| &x.value == d) {
                p.push(format!("{at}: default {d:?} is not one of its values"));
            }
        }
    }
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 255
}

/// The ids an expression refers to: lower-case-initial identifiers outside quotes that are not
/// function calls (CloudWatch functions are upper case; ids must start lower case).
pub fn references(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            // Skip a quoted string, honouring backslash escapes.
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let call = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
            if word.starts_with(|c: char| c.is_ascii_lowercase()) && !call && !out.contains(&word) {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

fn check_stat(at: &str, stat: &str, p: &mut Vec<String>) {
    const BASIC: [&str; 6] = ["Average", "Sum", "Minimum", "Maximum", "SampleCount", "IQM"];
    let percentile = stat
        .strip_prefix('p')
        .and_then(|n| n.parse::<f64>().ok())
        .is_some_and(|n| (0.0..=100.0).contains(&n));
    let ranged = ["tm", "wm", "tc", "ts", "pr", "TM", "WM", "TC", "TS", "PR"]
        .iter()
        .any(|pre| stat.strip_prefix(pre).is_some_and(|rest| !rest.is_empty()));
    if !(BASIC.contains(&stat) || percentile || ranged) {
        p.push(format!("{at}: unknown statistic {stat:?}"));
    }
}

fn check_period(at: &str, period: u32, p: &mut Vec<String>) {
    if !(matches!(period, 1 | 5 | 10 | 30) || (period > 0 && period.is_multiple_of(60))) {
        p.push(format!(
            "{at}: period {period} must be 1, 5, 10, 30 or a multiple of 60"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(widgets: serde_json::Value) -> String {
        json!({"widgets": widgets}).to_string()
    }

    fn metric_widget(metrics: serde_json::Value) -> serde_json::Value {
        json!({"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6,
               "properties": {"metrics": metrics, "view": "timeSeries", "region": "us-east-1"}})
    }

    #[test]
    fn table() {
        let ok_row = json!(["NS", "TotalTestTime", "Job", "a", "BranchClass", "master", {"id": "m1", "stat": "Average"}]);
        let band = json!([{"expression": "ANOMALY_DETECTION_BAND(m1, 2)", "id": "ad1", "label": "expected"}]);
        let cases: Vec<(&str, String, Option<&str>)> = vec![
            (
                "good",
                body(json!([metric_widget(json!([ok_row, band]))])),
                None,
            ),
            (
                "text",
                body(
                    json!([{"type": "text", "x": 0, "y": 0, "width": 24, "height": 1, "properties": {"markdown": "# a"}}]),
                ),
                None,
            ),
            (
                "unknown widget type",
                body(
                    json!([{"type": "graph", "x": 0, "y": 0, "width": 1, "height": 1, "properties": {}}]),
                ),
                Some("structure"),
            ),
            (
                "unknown property",
                body(
                    json!([{"type": "metric", "x": 0, "y": 0, "width": 1, "height": 1, "properties": {"metrics": [ok_row], "view": "timeSeries", "region": "r", "colour": 1}}]),
                ),
                Some("structure"),
            ),
            (
                "odd dimension list",
                body(json!([metric_widget(json!([["NS", "M", "Job"]]))])),
                Some("structure"),
            ),
            (
                "number in row",
                body(json!([metric_widget(json!([["NS", "M", "Job", 3]]))])),
                Some("structure"),
            ),
            (
                "dot shorthand",
                body(json!([metric_widget(json!([["NS", "M"], [".", "N"]]))])),
                Some("structure"),
            ),
            (
                "unknown option",
                body(json!([metric_widget(
                    json!([["NS", "M", {"stats": "p90"}]])
                )])),
                Some("structure"),
            ),
            (
                "bad view",
                body(
                    json!([{"type": "metric", "x": 0, "y": 0, "width": 1, "height": 1, "properties": {"metrics": [ok_row], "view": "lines", "region": "r"}}]),
                ),
                Some("structure"),
            ),
            (
                "undefined ref",
                body(json!([metric_widget(
                    json!([[{"expression": "ANOMALY_DETECTION_BAND(m2, 2)", "id": "ad1", "label": "x"}]])
                )])),
                Some("undefined id \"m2\""),
            ),
            (
                "no label",
                body(json!([metric_widget(
                    json!([ok_row, [{"expression": "m1 * 2", "id": "e1"}]])
                )])),
                Some("no label"),
            ),
            (
                "upper-case id",
                body(json!([metric_widget(json!([["NS", "M", {"id": "M1"}]]))])),
                Some("lower-case"),
            ),
            (
                "duplicate id",
                body(json!([metric_widget(
                    json!([["NS", "M", {"id": "m1"}], ["NS", "N", {"id": "m1"}]])
                )])),
                Some("used twice"),
            ),
            (
                "bad stat",
                body(json!([metric_widget(
                    json!([["NS", "M", {"stat": "p900"}]])
                )])),
                Some("unknown statistic"),
            ),
            (
                "bad period",
                body(json!([metric_widget(json!([["NS", "M", {"period": 90}]]))])),
                Some("period 90"),
            ),
            (
                "off grid",
                body(
                    json!([{"type": "text", "x": 20, "y": 0, "width": 6, "height": 1, "properties": {"markdown": "a"}}]),
                ),
                Some("> 24"),
            ),
            (
                "no metrics",
                body(json!([metric_widget(json!([]))])),
                Some("1 to 500"),
            ),
            ("no widgets", body(json!([])), Some("at least one")),
            (
                "search quotes are not refs",
                body(json!([metric_widget(
                    json!([[{"expression": "SEARCH('{NS,Job} MetricName=\"m9\" Job=\"x\"', 'Average', 3600)", "id": "e1", "label": "${PROP('Dim.Job')}"}]])
                )])),
                None,
            ),
            (
                "search without a label",
                body(json!([metric_widget(
                    json!([[{"expression": "SEARCH('{NS,Job} MetricName=\"m9\"', 'Average', 3600)", "id": "e1", "label": " "}]])
                )])),
                Some("empty label"),
            ),
        ];
        for (what, json, want) in cases {
            match (validate_json(&json), want) {
                (Ok(_), None) => {}
                (Err(problems), Some(w)) => {
                    assert!(
                        problems.iter().any(|p| p.contains(w)),
                        "{what}: {problems:?}"
                    )
                }
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn limits() {
        let row = json!(["NS", "M", "Job", "a"]);
        let w501 = json!(vec![
            json!({"type": "text", "x": 0, "y": 0, "width": 1, "height": 1, "properties": {"markdown": "a"}});
            501
        ]);
        assert!(validate_json(&body(w501)).unwrap_err()[0].contains("501 widgets"));
        let big = metric_widget(json!(vec![row.clone(); 501]));
        assert!(validate_json(&body(json!([big])))
            .unwrap_err()
            .iter()
            .any(|p| p.contains("501 metrics")));
        let six = json!(vec![metric_widget(json!(vec![row; 500])); 6]);
        assert!(validate_json(&body(six))
            .unwrap_err()
            .iter()
            .any(|p| p.contains("3000 metrics in the dashboard")));
    }

    #[test]
    fn round_trip_keeps_rows() {
        let json = body(json!([metric_widget(json!([
            ["NS", "M", "Job", "a", {"stat": "p90", "label": "p90"}],
            ["NS", "M"],
            [{"expression": "SEARCH('{NS} x', 'Sum', 60)", "id": "e1", "label": "${PROP('Dim.Job')}"}]
        ]))]));
        let parsed = validate_json(&json).unwrap();
        let again: serde_json::Value = serde_json::to_value(&parsed).unwrap();
        let original: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(again, original);
    }

    #[test]
    fn references_table() {
        assert_eq!(references("ANOMALY_DETECTION_BAND(m1, 2)"), vec!["m1"]);
        assert_eq!(references("(m1 + m_2) / m1"), vec!["m1", "m_2"]);
        assert_eq!(
            references("SEARCH('{NS,Job} Job=\"a b\"', 'p90', 300)"),
            Vec::<String>::new()
        );
        assert_eq!(references("METRICS()"), Vec::<String>::new());
    }
}
