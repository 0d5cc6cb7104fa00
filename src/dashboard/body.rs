//! The CloudWatch dashboard body as typed serde structs: only the parts this tool renders, with
//! unknown fields refused, so a template typo fails here instead of on a dashboard nobody checks.
//!
//! A metric widget's `metrics` is an array of rows. A row is either a metric,
//! `[Namespace, MetricName, DimName, DimValue, ..., {options}]`, or an expression,
//! `[{"expression": "...", "id": "e1", "label": "..."}]` ([`MetricRow`]). The `"."` shorthand
//! for "same as the row above" is refused: rendered bodies spell everything out.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole dashboard body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Body {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_override: Option<String>,
    pub widgets: Vec<Widget>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<Variable>,
}

/// A widget; `type` picks the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Widget {
    Metric(Box<MetricWidget>),
    Text(TextWidget),
}

/// Where a widget sits on the 24-column grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricWidget {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub properties: MetricProperties,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextWidget {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub properties: TextProperties,
}

impl Widget {
    pub fn place(&self) -> Place {
        let (x, y, width, height) = match self {
            Widget::Metric(w) => (w.x, w.y, w.width, w.height),
            Widget::Text(w) => (w.x, w.y, w.width, w.height),
        };
        Place {
            x,
            y,
            width,
            height,
        }
    }

    /// The number of rows in `metrics` (0 for text widgets).
    pub fn metric_count(&self) -> usize {
        match self {
            Widget::Metric(w) => w.properties.metrics.len(),
            Widget::Text(_) => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricProperties {
    pub metrics: Vec<MetricRow>,
    pub view: View,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_axis: Option<YAxis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legend: Option<Legend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_data: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_period_to_time_range: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum View {
    TimeSeries,
    SingleValue,
    Bar,
    Pie,
    Gauge,
    Table,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YAxis {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<Axis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right: Option<Axis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Axis {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_units: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Legend {
    pub position: LegendPosition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LegendPosition {
    Right,
    Bottom,
    Hidden,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextProperties {
    pub markdown: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<TextBackground>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextBackground {
    Solid,
    Transparent,
}

/// One row of a metric widget's `metrics`.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricRow {
    Metric(MetricRef),
    Expression(Expression),
}

/// `[Namespace, MetricName, DimName, DimValue, ..., {options}]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRef {
    pub namespace: String,
    pub name: String,
    pub dimensions: Vec<(String, String)>,
    pub options: MetricOptions,
}

/// The options object that may end a metric row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_axis: Option<AxisSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl MetricOptions {
    fn is_empty(&self) -> bool {
        self == &MetricOptions::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AxisSide {
    Left,
    Right,
}

/// `[{"expression": ..., "id": ..., "label": ...}]`: metric math or a SEARCH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expression {
    pub expression: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_axis: Option<AxisSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl Serialize for MetricRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self {
            MetricRow::Expression(e) => {
                let mut seq = s.serialize_seq(Some(1))?;
                seq.serialize_element(e)?;
                seq.end()
            }
            MetricRow::Metric(m) => {
                let n = 2 + 2 * m.dimensions.len() + usize::from(!m.options.is_empty());
                let mut seq = s.serialize_seq(Some(n))?;
                seq.serialize_element(&m.namespace)?;
                seq.serialize_element(&m.name)?;
                for (k, v) in &m.dimensions {
                    seq.serialize_element(k)?;
                    seq.serialize_element(v)?;
                }
                if !m.options.is_empty() {
                    seq.serialize_element(&m.options)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for MetricRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<serde_json::Value>::deserialize(d)?;
        MetricRow::from_items(items).map_err(D::Error::custom)
    }
}

impl MetricRow {
    fn from_items(mut items: Vec<serde_json::Value>) -> Result<MetricRow, String> {
        use serde_json::Value as J;
        if let [J::Object(obj)] = items.as_slice() {
            if obj.contains_key("expression") {
                return serde_json::from_value(items.remove(0))
                    .map(MetricRow::Expression)
                    .map_err(|e| format!("expression row: {e}"));
            }
        }
        let options = match items.last() {
            Some(J::Object(_)) => {
                let last = items.pop().unwrap_or_default();
                serde_json::from_value::<MetricOptions>(last)
                    .map_err(|e| format!("metric options: {e}"))?
            }
            _ => MetricOptions::default(),
        };
        let mut strings = Vec::with_capacity(items.len());
        for item in items {
            match item {
                J::String(s) if s == "." => {
                    return Err("the \".\" shorthand is not accepted; spell names out".into())
                }
                J::String(s) => strings.push(s),
                other => {
                    return Err(format!(
                        "metric rows hold strings and one trailing options object, not {other}"
                    ))
                }
            }
        }
        if strings.len() < 2 || strings.len() % 2 != 0 {
            return Err(format!(
                "a metric row is [Namespace, MetricName, (DimName, DimValue)...], got {} strings",
                strings.len()
            ));
        }
        let mut it = strings.into_iter();
        let namespace = it.next().unwrap_or_default();
        let name = it.next().unwrap_or_default();
        let rest: Vec<String> = it.collect();
        let dimensions = rest
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        Ok(MetricRow::Metric(MetricRef {
            namespace,
            name,
            dimensions,
            options,
        }))
    }
}

/// A dashboard variable (the toolbar control that switches, e.g., the branch class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Variable {
    #[serde(rename = "type")]
    pub kind: VariableKind,
    /// For `property` variables: the dimension name whose values it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// For `pattern` variables: the text it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub input_type: InputType,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<VariableValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariableKind {
    Property,
    Pattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    Input,
    Radio,
    Select,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableValue {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}
