//! `POST /rest/v2/metric/ingest`: a JSON array of resources, each with a datasource,
//! its instances and their datapoints' values, as LogicMonitor's Push Metrics API
//! takes them.

use serde_json::{Map, Value};

use keygate_store::data::{DatapointInput, InstanceInput, MetricElement, ResourceInput};

use crate::limits::*;
use crate::walk::{self, invalid, object, properties, required_text, text};
use crate::{IngestError, Result};

/// The `create` query parameter: `true`/`True` creates missing resources;
/// `false`, `False`, `None` (the Python SDK's batch with nothing to create) or no
/// parameter does not.
pub fn create_flag(query: Option<&str>) -> Result<bool> {
    let mut create = false;
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "create" {
            continue;
        }
        create = match v.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" | "none" | "" => false,
            _ => {
                return Err(IngestError::Invalid(
                    "the create parameter must be true or false".to_owned(),
                ));
            }
        };
    }
    Ok(create)
}

/// Parses and validates a metrics payload. With `create`, each resource must have a
/// `resourceName` (it names the resource being created).
pub fn parse(body: &[u8], create: bool) -> Result<Vec<MetricElement>> {
    let items = walk::elements(walk::json(body)?, "resources", MAX_ELEMENTS)?;
    let mut values = 0usize;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| element(v, &format!("element {i}:"), create, &mut values))
        .collect()
}

fn element(v: &Value, at: &str, create: bool, values: &mut usize) -> Result<MetricElement> {
    let m = object(v, at.trim_end_matches(':'))?;
    let at = format!("{at} ");
    let name = text(m, "resourceName", &at, MAX_NAME)?.unwrap_or_default();
    if create && name.trim().is_empty() {
        return Err(invalid(
            &format!("{at}resourceName"),
            "is required when create=true (it names the resource created)",
        ));
    }
    if let Some(c) = name.chars().find(|c| "*<?,;`\\\n".contains(*c)) {
        return Err(invalid(
            &format!("{at}resourceName"),
            format!("must not contain {c:?}"),
        ));
    }
    let datasource = required_text(m, "dataSource", &at, MAX_DATASOURCE)?;
    datasource_name(&datasource, &format!("{at}dataSource"))?;
    let instances = match m.get("instances") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_INSTANCES => a,
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(invalid(&format!("{at}instances"), "must not be empty"));
        }
        Some(Value::Array(_)) => {
            return Err(invalid(
                &format!("{at}instances"),
                format!("has more than {MAX_INSTANCES} instances"),
            ));
        }
        None | Some(Value::Null) => return Err(invalid(&format!("{at}instances"), "is required")),
        Some(_) => return Err(invalid(&format!("{at}instances"), "must be an array")),
    };
    Ok(MetricElement {
        resource: ResourceInput {
            ids: walk::resource_ids(m, "resourceIds", &at)?,
            name,
            description: text(m, "resourceDescription", &at, MAX_VALUE)?.unwrap_or_default(),
            properties: properties(m, "resourceProperties", &at)?.unwrap_or_default(),
        },
        datasource,
        datasource_display: text(m, "dataSourceDisplayName", &at, MAX_DATASOURCE)?
            .unwrap_or_default(),
        datasource_group: text(m, "dataSourceGroup", &at, MAX_NAME)?.unwrap_or_default(),
        instances: instances
            .iter()
            .enumerate()
            .map(|(j, v)| instance(v, &format!("{at}instances[{j}]"), values))
            .collect::<Result<_>>()?,
    })
}

/// LogicMonitor's datasource names: letters, digits, spaces and `#@_:&.+`, with `-`
/// only as the last character.
fn datasource_name(name: &str, at: &str) -> Result<()> {
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(invalid(at, "must not start or end with a space"));
    }
    let body = name.strip_suffix('-').unwrap_or(name);
    if let Some(c) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || " #@_:&.+".contains(*c)))
    {
        return Err(invalid(
            at,
            format!("must not contain {c:?} (letters, digits, spaces, #@_:&.+ and a final -)"),
        ));
    }
    Ok(())
}

fn instance(v: &Value, at: &str, values: &mut usize) -> Result<InstanceInput> {
    let m = object(v, at)?;
    let dot = format!("{at}.");
    let name = required_text(m, "instanceName", &dot, MAX_NAME)?;
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":._- \t".contains(*c)))
    {
        return Err(invalid(
            &format!("{dot}instanceName"),
            format!("must not contain {c:?} (letters, digits, spaces and :._-)"),
        ));
    }
    let points = match m.get("dataPoints") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(invalid(&format!("{dot}dataPoints"), "must not be empty"));
        }
        None | Some(Value::Null) => {
            return Err(invalid(&format!("{dot}dataPoints"), "is required"));
        }
        Some(_) => return Err(invalid(&format!("{dot}dataPoints"), "must be an array")),
    };
    Ok(InstanceInput {
        name,
        display_name: text(m, "instanceDisplayName", &dot, MAX_NAME)?.unwrap_or_default(),
        properties: properties(m, "instanceProperties", &dot)?.unwrap_or_default(),
        datapoints: points
            .iter()
            .enumerate()
            .map(|(k, v)| datapoint(v, &format!("{dot}dataPoints[{k}]"), values))
            .collect::<Result<_>>()?,
    })
}

/// Names the datapoint expression language reserves.
const RESERVED: &[&str] = &[
    "SIN",
    "COS",
    "LOG",
    "EXP",
    "FLOOR",
    "CEIL",
    "ROUND",
    "POW",
    "ABS",
    "SQRT",
    "RANDOM",
    "LT",
    "LE",
    "GT",
    "GE",
    "EQ",
    "NE",
    "IF",
    "MIN",
    "MAX",
    "LIMIT",
    "DUP",
    "EXC",
    "POP",
    "UN",
    "UNKN",
    "NOW",
    "TIME",
    "PI",
    "E",
    "AND",
    "OR",
    "XOR",
    "INF",
    "NEGINF",
    "STEP",
    "YEAR",
    "MONTH",
    "DATE",
    "HOUR",
    "MINUTE",
    "SECOND",
    "WEEK",
    "SIGN",
    "RND",
    "SUM2",
    "AVG2",
    "PERCENT",
    "RAWPERCENTILE",
    "IN",
    "NANTOZERO",
    "MIN2",
    "MAX2",
];

fn datapoint(v: &Value, at: &str, values: &mut usize) -> Result<DatapointInput> {
    let m = object(v, at)?;
    let dot = format!("{at}.");
    let name = required_text(m, "dataPointName", &dot, MAX_DATAPOINT)?;
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(invalid(
            &format!("{dot}dataPointName"),
            format!("must not contain {c:?} (letters, digits and _)"),
        ));
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&name)) {
        return Err(invalid(
            &format!("{dot}dataPointName"),
            format!("\"{name}\" is a reserved word"),
        ));
    }
    let kind = match text(m, "dataPointType", &dot, 16)?
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("gauge" | "guage") => "gauge",
        Some("counter") => "counter",
        Some("derive") => "derive",
        Some(_) => {
            return Err(invalid(
                &format!("{dot}dataPointType"),
                "must be counter, derive or gauge",
            ));
        }
    };
    let aggregation = match text(m, "dataPointAggregationType", &dot, 16)?
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("none") => "none",
        Some(a @ ("avg" | "sum" | "min" | "max" | "percentile")) => match a {
            "avg" => "avg",
            "sum" => "sum",
            "min" => "min",
            "max" => "max",
            _ => "percentile",
        },
        Some(_) => {
            return Err(invalid(
                &format!("{dot}dataPointAggregationType"),
                "must be none, avg, sum, min, max or percentile",
            ));
        }
    };
    let percentile = match m.get("percentileValue").or_else(|| m.get("percentile")) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(p @ 0..=100) => Some(p),
            _ => {
                return Err(invalid(
                    &format!("{dot}percentileValue"),
                    "must be a whole number from 0 to 100",
                ));
            }
        },
        Some(_) => {
            return Err(invalid(
                &format!("{dot}percentileValue"),
                "must be a whole number from 0 to 100",
            ));
        }
    };
    if aggregation == "percentile" && percentile.is_none() {
        return Err(invalid(
            &format!("{dot}percentileValue"),
            "is required with the percentile aggregation",
        ));
    }
    let vals = match m.get("values") {
        Some(Value::Object(o)) if !o.is_empty() => o,
        Some(Value::Object(_)) => {
            return Err(invalid(&format!("{dot}values"), "must not be empty"));
        }
        None | Some(Value::Null) => return Err(invalid(&format!("{dot}values"), "is required")),
        Some(_) => {
            return Err(invalid(
                &format!("{dot}values"),
                "must be an object of epoch seconds to values",
            ));
        }
    };
    *values += vals.len();
    if *values > MAX_VALUES {
        return Err(IngestError::Invalid(format!(
            "the request has more than {MAX_VALUES} values; send them in several requests"
        )));
    }
    Ok(DatapointInput {
        name,
        kind: kind.to_owned(),
        aggregation: aggregation.to_owned(),
        percentile,
        values: series(vals, &format!("{dot}values"))?,
    })
}

/// The values: keys are epoch seconds as text (fractions allowed), values numbers or
/// numeric text. Returned as (epoch milliseconds, value), sorted by time.
fn series(vals: &Map<String, Value>, at: &str) -> Result<Vec<(i64, f64)>> {
    let mut out = Vec::with_capacity(vals.len());
    for (t, v) in vals {
        let here = format!("{at}[\"{}\"]", t.escape_debug());
        let secs: f64 = t
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 253_402_300_800.0)
            .ok_or_else(|| invalid(&here, "must be keyed by epoch seconds"))?;
        let value = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|x| x.is_finite())
        .ok_or_else(|| invalid(&here, "must be a number or numeric text"))?;
        // Whole milliseconds: below that, two values of one second would collide
        // anyway in what LogicMonitor keeps.
        #[allow(clippy::cast_possible_truncation)]
        let ms = (secs * 1000.0).round() as i64;
        out.push((ms, value));
    }
    out.sort_by_key(|&(t, _)| t);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap_or_default()
    }

    fn sdk_element() -> Value {
        serde_json::json!({
            "resourceIds": {"system.hostname": "web-1"},
            "resourceName": "web-1",
            "resourceProperties": {"using.sdk": "true"},
            "dataSource": "CPU",
            "dataSourceDisplayName": "CPU",
            "dataSourceGroup": "Sdk",
            "instances": [{
                "instanceName": "CPU-0",
                "instanceProperties": {"core": 0},
                "dataPoints": [{
                    "dataPointName": "cpu_time",
                    "dataPointType": "guage",
                    "dataPointAggregationType": "sum",
                    "values": {"1700000000.5": "23", "1700000060": 24.5}
                }]
            }]
        })
    }

    #[test]
    fn the_sdk_shape_is_read() {
        let got = parse(&body(&Value::Array(vec![sdk_element()])), true)
            .unwrap_or_else(|e| panic!("{e}"));
        let e = &got[0];
        assert_eq!(e.resource.ids["system.hostname"], "web-1");
        assert_eq!(e.instances[0].properties["core"], "0");
        let dp = &e.instances[0].datapoints[0];
        assert_eq!(
            (dp.kind.as_str(), dp.aggregation.as_str()),
            ("gauge", "sum")
        );
        assert_eq!(
            dp.values,
            vec![(1_700_000_000_500, 23.0), (1_700_000_060_000, 24.5)]
        );
    }

    #[test]
    fn errors_name_the_element_and_field() {
        let mut bad = sdk_element();
        bad["instances"][0]["dataPoints"][0]["values"]["1700000000.5"] = "lots".into();
        let two = Value::Array(vec![sdk_element(), bad]);
        let e = parse(&body(&two), true).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "element 1: instances[0].dataPoints[0].values[\"1700000000.5\"] must be a number or numeric text"
            )
        );
        let mut no_name = sdk_element();
        no_name.as_object_mut().map(|o| o.remove("resourceName"));
        let e = parse(&body(&Value::Array(vec![no_name.clone()])), true).err();
        assert!(e.is_some_and(|e| {
            e.to_string()
                .starts_with("element 0: resourceName is required")
        }));
        assert!(parse(&body(&Value::Array(vec![no_name])), false).is_ok());
        let mut reserved = sdk_element();
        reserved["instances"][0]["dataPoints"][0]["dataPointName"] = "max".into();
        assert!(parse(&body(&Value::Array(vec![reserved])), true).is_err());
        assert!(parse(b"{}", true).is_err());
        assert_eq!(parse(b"[]", false), Ok(vec![]));
    }

    #[test]
    fn the_create_flag_as_each_sdk_sends_it() {
        assert_eq!(create_flag(Some("create=True")), Ok(true));
        assert_eq!(create_flag(Some("create=true")), Ok(true));
        assert_eq!(create_flag(Some("create=False")), Ok(false));
        assert_eq!(create_flag(Some("create=None")), Ok(false));
        assert_eq!(create_flag(None), Ok(false));
        assert!(create_flag(Some("create=maybe")).is_err());
    }
}
