//! Templates from `dashboards/` and their pure rendering into typed, validated bodies.
//!
//! A template is versioned JSON (`"version": 1`) with widget templates in three lists:
//! `overview` (once per dashboard, SEARCH-based so new jobs appear without a redeploy),
//! `per_job` (once per job, for a concrete branch class) and `per_job_all` (once per job when
//! the branch class is `all`: one line per class, since percentiles of different metrics
//! cannot be merged). Widget templates are dashboard widgets without `x`/`y`; the renderer flows
//! them onto the 24-column grid, each section on new rows. `variables` are added for a concrete
//! branch class (the toolbar switch between classes).
//!
//! Placeholders, replaced in every string: `${namespace}`, `${region}`, `${branch_class}`,
//! `${class_label}` (the class, or "all branch classes"), `${class_filter}` (` BranchClass="pr"`
//! inside a SEARCH, empty for `all`), `${job}`, and the SEARCH-quoted forms `${namespace_q}`
//! and `${job_q}` (with `"` and `\` escaped). An unknown placeholder is an error. CloudWatch's
//! dynamic labels (`${PROP('Dim.Job')}`, `${LAST}`, …) are left for CloudWatch.
//!
//! Too many jobs for one body (500 widgets, 2,500 metrics, or `jobs_per_dashboard`) → several
//! bodies named `NAME-1`, `NAME-2`, ..., each with the overview and its share of the jobs.

use super::body::{Body, InputType, VariableValue, Widget};
use super::validate::{validate, GRID_WIDTH, MAX_METRICS, MAX_WIDGETS};
use super::DashboardError;
use serde::Deserialize;
use serde_json::Value as J;

/// The templates shipped in `dashboards/`, by name.
pub const BUILTIN: [(&str, &str); 2] = [
    ("default", include_str!("../../dashboards/default.json")),
    ("overview", include_str!("../../dashboards/overview.json")),
];

/// Template format version this build renders.
pub const VERSION: u32 = 1;

/// A parsed template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub template: String,
    pub version: u32,
    pub description: String,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub variables: Vec<J>,
    #[serde(default)]
    pub overview: Vec<J>,
    #[serde(default)]
    pub per_job: Vec<J>,
    #[serde(default)]
    pub per_job_all: Option<Vec<J>>,
}

impl Template {
    /// A built-in template by name, or a template file by path.
    pub fn load(name_or_path: &str) -> Result<Template, DashboardError> {
        let (source, text) = match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            Some((_, text)) => (name_or_path.to_string(), text.to_string()),
            None => {
                let text = std::fs::read_to_string(name_or_path).map_err(|e| {
                    DashboardError::Template {
                        template: name_or_path.into(),
                        reason: format!(
                            "not a built-in template ({}) and not a readable file: {e}",
                            BUILTIN.map(|b| b.0).join(", ")
                        ),
                    }
                })?;
                (name_or_path.to_string(), text)
            }
        };
        Template::parse(&source, &text)
    }

    pub fn parse(source: &str, text: &str) -> Result<Template, DashboardError> {
        let t: Template = serde_json::from_str(text).map_err(|e| DashboardError::Template {
            template: source.into(),
            reason: e.to_string(),
        })?;
        if t.version != VERSION {
            return Err(DashboardError::Template {
                template: source.into(),
                reason: format!(
                    "version {} (this build renders version {VERSION})",
                    t.version
                ),
            });
        }
        Ok(t)
    }
}

/// What to render for.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Dashboard name (the base name when split).
    pub name: String,
    pub namespace: String,
    pub region: String,
    /// `master`, `pr`, `release`, `branch`, any custom class, or `all`.
    pub branch_class: String,
    /// At most this many jobs per dashboard (fewer when the limits demand it).
    pub jobs_per_dashboard: usize,
}

/// One rendered dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub name: String,
    pub jobs: Vec<String>,
    pub body: Body,
}

impl Rendered {
    /// The body as deployed: pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&self.body).unwrap_or_default()
    }
}

/// Renders `template` for `jobs` into one or more validated bodies.
pub fn render(
    template: &Template,
    jobs: &[String],
    opts: &RenderOptions,
) -> Result<Vec<Rendered>, DashboardError> {
    check_name(&opts.name)?;
    let all = opts.branch_class == "all";
    let fail = |reason: String| DashboardError::Template {
        template: template.template.clone(),
        reason,
    };
    if opts.branch_class.is_empty() || opts.namespace.is_empty() || opts.region.is_empty() {
        return Err(fail(
            "namespace, region and branch class must not be empty".into(),
        ));
    }
    let per_job = match (&template.per_job_all, all) {
        (Some(list), true) => list,
        (None, true) if !template.per_job.is_empty() => {
            return Err(fail(
                "has no per_job_all section, so it cannot render --branch-class all".into(),
            ))
        }
        _ => &template.per_job,
    };
    let vars = Vars::new(opts, None);
    let overview = substitute_all(&template.overview, &vars).map_err(&fail)?;
    let variables = if all {
        Vec::new()
    } else {
        substitute_all(&template.variables, &vars).map_err(&fail)?
    };

    // How many jobs fit: the limits, then the wish.
    let rows = |ws: &[J]| -> usize {
        ws.iter()
            .map(|w| w["properties"]["metrics"].as_array().map_or(0, Vec::len))
            .sum()
    };
    let (job_widgets, job_rows) = (per_job.len(), rows(per_job));
    let mut capacity = opts.jobs_per_dashboard.max(1);
    if let Some(fit) = MAX_WIDGETS
        .saturating_sub(overview.len())
        .checked_div(job_widgets)
    {
        capacity = capacity.min(fit);
    }
    if let Some(fit) = MAX_METRICS
        .saturating_sub(rows(&overview))
        .checked_div(job_rows)
    {
        capacity = capacity.min(fit);
    }
    if capacity == 0 && !jobs.is_empty() && job_widgets > 0 {
        return Err(fail("one job's widgets do not fit in a dashboard".into()));
    }
    let chunks: Vec<&[String]> = if jobs.is_empty() || job_widgets == 0 {
        vec![jobs]
    } else {
        jobs.chunks(capacity.max(1)).collect()
    };
    let many = chunks.len() > 1;
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let name = if many {
            format!("{}-{}", opts.name, i + 1)
        } else {
            opts.name.clone()
        };
        check_name(&name)?;
        let mut layout = Layout::default();
        let mut widgets = layout.section(&overview, &template.template)?;
        for job in *chunk {
            let jv = Vars::new(opts, Some(job));
            let ws = substitute_all(per_job, &jv).map_err(&fail)?;
            widgets.extend(layout.section(&ws, &template.template)?);
        }
        let mut variables: Vec<super::body::Variable> = variables
            .iter()
            .map(|v| serde_json::from_value(v.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("variables: {e}")))?;
        for v in &mut variables {
            // A choice always offers its default (a custom branch class, say).
            if let Some(d) = &v.default_value {
                if v.input_type != InputType::Input && !v.values.iter().any(|x| &x.value == d) {
                    v.values.push(VariableValue {
                        value: d.clone(),
                        label: None,
                    });
                }
            }
        }
        let body = Body {
            start: template.start.clone(),
            end: None,
            period_override: None,
            widgets,
            variables,
        };
        let problems = validate(&body);
        if !problems.is_empty() {
            return Err(DashboardError::Invalid {
                dashboard: name,
                problems,
            });
        }
        out.push(Rendered {
            name,
            jobs: chunk.to_vec(),
            body,
        });
    }
    Ok(out)
}

/// Dashboard names: 1-255 of A-Z a-z 0-9 - _.
pub fn check_name(name: &str) -> Result<(), DashboardError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DashboardError::Name(name.to_string()))
    }
}

struct Vars(Vec<(&'static str, String)>);

impl Vars {
    fn new(opts: &RenderOptions, job: Option<&str>) -> Vars {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let all = opts.branch_class == "all";
        let mut v = vec![
            ("namespace", opts.namespace.clone()),
            ("namespace_q", quote(&opts.namespace)),
            ("region", opts.region.clone()),
            ("branch_class", opts.branch_class.clone()),
            (
                "class_label",
                if all {
                    "all branch classes".into()
                } else {
                    format!("branch class {}", opts.branch_class)
                },
            ),
            (
                "class_filter",
                if all {
                    String::new()
                } else {
                    format!(" BranchClass=\"{}\"", quote(&opts.branch_class))
                },
            ),
        ];
        if let Some(job) = job {
            v.push(("job", job.to_string()));
            v.push(("job_q", quote(job)));
        }
        Vars(v)
    }

    fn apply(&self, s: &str) -> Result<String, String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed placeholder in {s:?}"))?;
            let key = &after[..end];
            if is_dynamic_label(key) {
                // CloudWatch's own dynamic labels (`${PROP('Dim.Job')}`, `${LAST}`) stay as they are.
                out.push_str(&rest[start..start + 2 + end + 1]);
                rest = &after[end + 1..];
                continue;
            }
            let value = self
                .0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
                .ok_or_else(|| format!("unknown placeholder ${{{key}}} in {s:?}"))?;
            out.push_str(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A CloudWatch dynamic label: `PROP('…')` or an upper-case name such as `LAST` or `MAX_TIME`.
fn is_dynamic_label(key: &str) -> bool {
    (key.starts_with("PROP('") && key.ends_with("')"))
        || (!key.is_empty() && key.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
}

fn substitute(v: &J, vars: &Vars) -> Result<J, String> {
    Ok(match v {
        J::String(s) => J::String(vars.apply(s)?),
        J::Array(a) => J::Array(
            a.iter()
                .map(|x| substitute(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(o) => J::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), substitute(x, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn substitute_all(list: &[J], vars: &Vars) -> Result<Vec<J>, String> {
    list.iter().map(|v| substitute(v, vars)).collect()
}

/// Flows widgets left to right on the grid; each section starts on a new row.
#[derive(Default)]
struct Layout {
    x: u32,
    y: u32,
    bottom: u32,
}

impl Layout {
    fn section(&mut self, widgets: &[J], template: &str) -> Result<Vec<Widget>, DashboardError> {
        if self.x > 0 {
            (self.x, self.y) = (0, self.bottom);
        }
        let mut out = Vec::with_capacity(widgets.len());
        for w in widgets {
            let mut w = w.clone();
            let size = |key: &str| w.get(key).and_then(J::as_u64).unwrap_or(0) as u32;
            let (width, height) = (size("width").clamp(1, GRID_WIDTH), size("height").max(1));
            if self.x + width > GRID_WIDTH {
                (self.x, self.y) = (0, self.bottom);
            }
            if let Some(obj) = w.as_object_mut() {
                obj.insert("x".into(), self.x.into());
                obj.insert("y".into(), self.y.into());
            }
            let widget: Widget =
                serde_json::from_value(w).map_err(|e| DashboardError::Template {
                    template: template.into(),
                    reason: format!("widget: {e}"),
                })?;
            self.x += width;
            self.bottom = self.bottom.max(self.y + height);
            out.push(widget);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::body::{MetricRow, Widget};
    use crate::dashboard::validate::validate_json;

    fn opts(class: &str) -> RenderOptions {
        RenderOptions {
            name: "ci-tests".into(),
            namespace: "CITestMetrics".into(),
            region: "eu-west-1".into(),
            branch_class: class.into(),
            jobs_per_dashboard: 50,
        }
    }

    fn jobs(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("team-{}/job-{i}", i % 7)).collect()
    }

    /// Every metric row of a body.
    fn rows(body: &Body) -> Vec<&MetricRow> {
        body.widgets
            .iter()
            .flat_map(|w| match w {
                Widget::Metric(m) => m.properties.metrics.iter().collect(),
                Widget::Text(_) => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn builtins_parse_and_render_valid_bodies() {
        for (name, _) in BUILTIN {
            let t = Template::load(name).unwrap();
            for class in ["master", "pr", "all", "nightly"] {
                let out = render(&t, &jobs(3), &opts(class)).unwrap();
                assert_eq!(out.len(), 1, "{name} {class}");
                // The JSON as deployed passes the validator on its own.
                validate_json(&out[0].json()).unwrap();
            }
        }
    }

    #[test]
    fn default_template_shows_each_job() {
        let t = Template::load("default").unwrap();
        let out = render(&t, &["a/b".to_string()], &opts("pr")).unwrap();
        let body = &out[0].body;
        let json = out[0].json();
        for needle in [
            "ANOMALY_DETECTION_BAND(m1, 2)",
            "\"p50\"",
            "\"p90\"",
            "\"p99\"",
            "SEARCH(",
            "BranchClass=\\\"pr\\\"",
            "\"eu-west-1\"",
        ] {
            assert!(json.contains(needle), "{needle} missing");
        }
        let metrics: Vec<&str> = rows(body)
            .iter()
            .filter_map(|r| match r {
                MetricRow::Metric(m) => Some(m.name.as_str()),
                _ => None,
            })
            .collect();
        for m in [
            "TestDuration",
            "TotalTestTime",
            "Tests",
            "Failures",
            "Errors",
            "Skipped",
            "Builds",
        ] {
            assert!(metrics.contains(&m), "{m}");
        }
        for r in rows(body) {
            if let MetricRow::Metric(m) = r {
                assert_eq!(m.namespace, "CITestMetrics");
                assert_eq!(
                    m.dimensions,
                    vec![
                        ("Job".to_string(), "a/b".to_string()),
                        ("BranchClass".to_string(), "pr".to_string())
                    ]
                );
            }
        }
        let var = &body.variables[0];
        assert_eq!(var.property.as_deref(), Some("BranchClass"));
        assert_eq!(var.default_value.as_deref(), Some("pr"));
        // Widgets never overlap.
        let places: Vec<_> = body.widgets.iter().map(Widget::place).collect();
        for (i, a) in places.iter().enumerate() {
            for b in &places[i + 1..] {
                let apart = a.x + a.width <= b.x
                    || b.x + b.width <= a.x
                    || a.y + a.height <= b.y
                    || b.y + b.height <= a.y;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn several_hundred_jobs_split_within_limits() {
        let t = Template::load("default").unwrap();
        let many = jobs(730);
        // 82 jobs fit the 500-widget limit (7 overview widgets, 6 per job): 730 jobs → 9.
        for (per, want) in [(50, 15), (1000, 9)] {
            let o = RenderOptions {
                jobs_per_dashboard: per,
                ..opts("master")
            };
            let out = render(&t, &many, &o).unwrap();
            assert_eq!(out.len(), want, "{per}");
            assert_eq!(out[0].name, "ci-tests-1");
            let covered: Vec<String> = out.iter().flat_map(|r| r.jobs.clone()).collect();
            assert_eq!(covered, many);
            for r in &out {
                let json = r.json();
                let body = validate_json(&json).unwrap();
                assert!(body.widgets.len() <= MAX_WIDGETS);
                assert!(rows(&body).len() <= MAX_METRICS);
            }
        }
    }

    #[test]
    fn placeholders_and_names() {
        let bad = r#"{"template": "t", "version": 1, "description": "",
            "overview": [{"type": "text", "width": 24, "height": 1, "properties": {"markdown": "${nope}"}}]}"#;
        let t = Template::parse("t", bad).unwrap();
        let err = render(&t, &[], &opts("master")).unwrap_err();
        assert!(
            err.to_string().contains("unknown placeholder ${nope}"),
            "{err}"
        );
        let t = Template::load("default").unwrap();
        let bad_name = RenderOptions {
            name: "no spaces".into(),
            ..opts("master")
        };
        assert!(matches!(
            render(&t, &[], &bad_name),
            Err(DashboardError::Name(_))
        ));
        let v2 = r#"{"template": "t", "version": 2, "description": ""}"#;
        assert!(Template::parse("t", v2).is_err());
        // Quotes in a job name stay inside the SEARCH string.
        let out = render(&t, &["we\"ird".to_string()], &opts("all")).unwrap();
        let quoted = rows(&out[0].body).iter().any(
            |r| matches!(r, MetricRow::Expression(e) if e.expression.contains(r#"Job="we\"ird""#)),
        );
        assert!(quoted, "{}", out[0].json());
    }
}
