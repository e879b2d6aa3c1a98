//! The Data area: what tokens with DataIngestion pushed, read through the same store
//! calls and the same scope as `/keygate/data` (useraccess read sees everything,
//! DataIngestion alone one's own, anyone else a 403 page).
//!
//! - Resources: a list, and a resource's properties, instances and a chart of each
//!   datapoint over a chosen window (`chart::series`).
//! - Logs: newest first, searched by text, narrowed to a resource and a window.
//! - Traces: the newest traces (spans grouped by trace), and one trace's spans as a
//!   waterfall (`chart::waterfall_order`, `chart::bar`).
//!
//! Filters are plain GET forms, so every view has a URL to share; the only script is
//! the shared `app.js` (local times, submitting a select when it changes).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use keygate_core::model::UserId;
use keygate_store::Store;
use keygate_store::data::{DataSpan, LogQuery, Properties, SpanQuery, TimeRange};

use super::Page;
use super::chart;
use super::html::{DataSection, Viewer, data_page, esc, time};
use super::pages::{Q, fail};
use crate::error::ApiError;
use crate::state::AppState;

/// Resources a page of the list shows.
const RESOURCES_PAGE: i64 = 50;
/// Charts drawn on a resource's page; further datapoints are listed.
const MAX_CHARTS: usize = 24;
/// Values read for one chart (oldest first within the window).
const MAX_POINTS: i64 = 10_000;
/// Log lines shown.
const LOG_LINES: i64 = 200;
/// Spans read to make the trace list, and traces it shows.
const LIST_SPANS: i64 = 2000;
const LIST_TRACES: usize = 100;
/// Spans read for one trace's waterfall.
const TRACE_SPANS: i64 = 10_000;
/// Longest search text (as the API allows).
const MAX_SEARCH: usize = 256;

/// The windows a page can look back over, and the default.
const WINDOWS: &[(&str, &str, i64)] = &[
    ("15m", "Last 15 minutes", 15 * 60_000),
    ("1h", "Last hour", 3_600_000),
    ("6h", "Last 6 hours", 6 * 3_600_000),
    ("24h", "Last 24 hours", 24 * 3_600_000),
    ("7d", "Last 7 days", 7 * 24 * 3_600_000),
    ("all", "All time", 0),
];
/// Charts look back an hour unless asked (a minute's pushes fill it); logs and
/// traces a day.
const CHART_WINDOW: &str = "1h";
const LIST_WINDOW: &str = "24h";

/// The chosen window's key and `(from, to)` in epoch ms (`all`: unbounded);
/// `default` when none (or an unknown one) is chosen.
fn window(
    q: &HashMap<String, String>,
    now_ms: i64,
    default: &'static str,
) -> (&'static str, (i64, i64)) {
    let key = q.get("range").map_or(default, String::as_str);
    let (k, _, len) = WINDOWS
        .iter()
        .find(|(k, _, _)| *k == key)
        .or_else(|| WINDOWS.iter().find(|(k, _, _)| *k == default))
        .copied()
        .unwrap_or(("all", "", 0));
    if len == 0 {
        (k, (i64::MIN, i64::MAX))
    } else {
        (k, (now_ms.saturating_sub(len), now_ms))
    }
}

/// The window select, submitting itself when changed.
fn window_select(current: &str) -> String {
    let mut s = String::from(
        "<label for=\"range\" class=\"sr-only\">Time range</label><select id=\"range\" name=\"range\" data-autosubmit>",
    );
    for (k, label, _) in WINDOWS {
        let sel = if *k == current { " selected" } else { "" };
        let _ = write!(s, "<option value=\"{k}\"{sel}>{label}</option>");
    }
    s.push_str("</select>");
    s
}

/// Whose data the viewer sees (`None`: everyone's); `Err` when they may see none.
fn scope(p: &Page) -> Result<Option<UserId>, ()> {
    crate::routes::data::owner_scope(&p.principal).map_err(|_| ())
}

/// The 403 page of the Data area.
fn forbidden(p: &Page, section: DataSection) -> Response {
    let v = p.viewer();
    let body = "<section class=\"panel error-page\" role=\"alert\"><h2>403 — not allowed</h2>\
                <p>Pushed data is shown to those who may view users and roles, and to users with DataIngestion (their own).</p></section>";
    (
        StatusCode::FORBIDDEN,
        Html(data_page("Not allowed", &v, section, "Data", body)),
    )
        .into_response()
}

/// `k=v, k=v` for resource ids and the like.
fn pairs(p: &Properties) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A time in epoch ms, to the second, UTC (the script shows it in local time).
fn time_ms(ms: i64) -> String {
    time(ms.div_euclid(1000))
}

/// A note that the viewer sees only their own data.
fn own_note(owner: Option<UserId>) -> &'static str {
    if owner.is_some() {
        "<p class=\"muted\">Showing what your own tokens pushed.</p>"
    } else {
        ""
    }
}

fn empty(what: &str) -> String {
    format!("<p class=\"empty\">{what}</p>")
}

/// `GET /data/resources`.
pub async fn resources<S: Store>(State(st): State<AppState<S>>, p: Page, Query(q): Q) -> Response {
    let owner = match scope(&p) {
        Ok(o) => o,
        Err(()) => return forbidden(&p, DataSection::Resources),
    };
    let page_no: i64 = q
        .get("page")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=100_000).contains(n))
        .unwrap_or(1);
    let (items, total) = match st
        .manager
        .store()
        .data_resources(owner, RESOURCES_PAGE, (page_no - 1) * RESOURCES_PAGE)
        .await
    {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut body = String::from(own_note(owner));
    if items.is_empty() && page_no == 1 {
        body.push_str(&empty(
            "No resources yet. Push metrics with a DataIngestion token (<code>POST /rest/v2/metric/ingest?create=true</code>) and they appear here.",
        ));
    } else {
        let _ = write!(
            body,
            "<p class=\"muted\">{total} resource{s}.</p><div class=\"table-wrap\"><table id=\"resources\"><thead><tr><th>Name</th><th>Resource ids</th><th>Properties</th><th>Created</th><th>Last data</th></tr></thead><tbody>",
            s = if total == 1 { "" } else { "s" }
        );
        for r in &items {
            let name = if r.name.is_empty() {
                pairs(&r.ids)
            } else {
                r.name.clone()
            };
            let _ = write!(
                body,
                "<tr data-id=\"{id}\"><td data-label=\"Name\"><a href=\"/data/resources/{id}\">{name}</a></td><td data-label=\"Resource ids\"><code>{ids}</code></td><td data-label=\"Properties\">{props}</td><td data-label=\"Created\">{created}</td><td data-label=\"Last data\">{updated}</td></tr>",
                id = r.id,
                name = esc(&name),
                ids = esc(&pairs(&r.ids)),
                props = r.properties.len(),
                created = time(r.created_on),
                updated = time(r.updated_on),
            );
        }
        body.push_str("</tbody></table></div>");
        let pages = (total + RESOURCES_PAGE - 1) / RESOURCES_PAGE;
        if pages > 1 {
            body.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
            if page_no > 1 {
                let _ = write!(
                    body,
                    "<a href=\"/data/resources?page={}\">Previous</a>",
                    page_no - 1
                );
            }
            let _ = write!(body, "<span>Page {page_no} of {pages}</span>");
            if page_no < pages {
                let _ = write!(
                    body,
                    "<a href=\"/data/resources?page={}\">Next</a>",
                    page_no + 1
                );
            }
            body.push_str("</nav>");
        }
    }
    let v = p.viewer();
    Html(data_page(
        "Resources",
        &v,
        DataSection::Resources,
        "Resources",
        &body,
    ))
    .into_response()
}

/// `GET /data/resources/{id}?range=`: the resource and a chart of each datapoint.
pub async fn resource<S: Store>(
    State(st): State<AppState<S>>,
    p: Page,
    Path(id): Path<i64>,
    Query(q): Q,
) -> Response {
    let owner = match scope(&p) {
        Ok(o) => o,
        Err(()) => return forbidden(&p, DataSection::Resources),
    };
    let r = match st.manager.store().data_resource(owner, id).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let (key, (from_ms, to_ms)) = window(&q, st.clock.now_millis(), CHART_WINDOW);
    let title = if r.name.is_empty() {
        pairs(&r.ids)
    } else {
        r.name.clone()
    };
    let mut body = format!(
        "<p><a href=\"/data/resources\">All resources</a> · <a href=\"/data/logs?resource={id}&amp;range=all\">This resource's logs</a></p>\
         <dl class=\"facts panel wide\"><dt>Resource ids</dt><dd><code>{ids}</code></dd>",
        ids = esc(&pairs(&r.ids)),
    );
    if !r.description.is_empty() {
        let _ = write!(body, "<dt>Description</dt><dd>{}</dd>", esc(&r.description));
    }
    let _ = write!(
        body,
        "<dt>Created</dt><dd>{}</dd><dt>Last data</dt><dd>{}</dd>",
        time(r.created_on),
        time(r.updated_on)
    );
    if !r.properties.is_empty() {
        body.push_str("<dt>Properties</dt><dd class=\"props\">");
        for (k, v) in &r.properties {
            let _ = write!(
                body,
                "<span class=\"prop\"><code>{}</code> {}</span> ",
                esc(k),
                esc(v)
            );
        }
        body.push_str("</dd>");
    }
    body.push_str("</dl>");
    let _ = write!(
        body,
        "<form class=\"toolbar\" method=\"get\">{}<noscript><button type=\"submit\">Show</button></noscript></form>",
        window_select(key)
    );
    let mut charts = 0;
    for inst in &r.instances {
        let _ = write!(
            body,
            "<section class=\"instance\"><h2>{ds} › {name}</h2>",
            ds = esc(if inst.datasource_display.is_empty() {
                &inst.datasource
            } else {
                &inst.datasource_display
            }),
            name = esc(if inst.display_name.is_empty() {
                &inst.name
            } else {
                &inst.display_name
            }),
        );
        if !inst.properties.is_empty() {
            let _ = write!(
                body,
                "<p class=\"muted\">{}</p>",
                esc(&pairs(&inst.properties))
            );
        }
        body.push_str("<div class=\"charts\">");
        for dp in &inst.datapoints {
            let label = format!("{} › {} › {}", inst.datasource, inst.name, dp.name);
            let _ = write!(
                body,
                "<figure class=\"datapoint\" data-datapoint=\"{id}\"><figcaption><strong>{name}</strong> <span class=\"muted\">{kind}</span></figcaption>",
                id = dp.id,
                name = esc(&dp.name),
                kind = esc(&dp.kind),
            );
            if charts < MAX_CHARTS {
                charts += 1;
                let range = TimeRange {
                    from_ms,
                    to_ms,
                    limit: MAX_POINTS,
                };
                match st.manager.store().data_series(owner, dp.id, range).await {
                    Ok(points) => body.push_str(&chart::series(&points, (from_ms, to_ms), &label)),
                    Err(e) => return fail(e),
                }
            } else {
                let _ = write!(
                    body,
                    "<p class=\"muted\">Chart not drawn (more than {MAX_CHARTS} on this page): <code>GET /santaba/rest/keygate/data/datapoints/{}/values</code></p>",
                    dp.id
                );
            }
            body.push_str("</figure>");
        }
        body.push_str("</div></section>");
    }
    if r.instances.is_empty() {
        body.push_str(&empty("No datapoints yet."));
    }
    let v = p.viewer();
    Html(data_page(&title, &v, DataSection::Resources, &title, &body)).into_response()
}

/// The search text, bounded as the API bounds it.
fn search_text(q: &HashMap<String, String>) -> Option<String> {
    q.get("q")
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(MAX_SEARCH).collect())
}

/// `GET /data/logs?q=&resource=&range=`.
pub async fn logs<S: Store>(State(st): State<AppState<S>>, p: Page, Query(q): Q) -> Response {
    let owner = match scope(&p) {
        Ok(o) => o,
        Err(()) => return forbidden(&p, DataSection::Logs),
    };
    let (key, (from_ms, to_ms)) = window(&q, st.clock.now_millis(), LIST_WINDOW);
    let text = search_text(&q);
    let resource = q
        .get("resource")
        .and_then(|r| r.parse::<i64>().ok())
        .filter(|r| *r > 0);
    let query = LogQuery {
        text: text.clone(),
        resource,
        range: TimeRange {
            from_ms,
            to_ms,
            limit: LOG_LINES,
        },
        owner,
    };
    let lines = match st.manager.store().data_logs(&query).await {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let mut body = String::from(own_note(owner));
    let _ = write!(
        body,
        "<form class=\"toolbar\" method=\"get\" role=\"search\"><label for=\"q\" class=\"sr-only\">Search</label>\
         <input id=\"q\" name=\"q\" type=\"search\" maxlength=\"{MAX_SEARCH}\" placeholder=\"Search messages\" value=\"{text}\">{resource}{select}\
         <button type=\"submit\">Search</button></form>",
        text = esc(text.as_deref().unwrap_or("")),
        resource = resource.map_or(String::new(), |r| format!(
            "<input type=\"hidden\" name=\"resource\" value=\"{r}\"><span class=\"chip\">Resource {r} <a href=\"/data/logs?range={key}\" aria-label=\"Any resource\">×</a></span>"
        )),
        select = window_select(key),
    );
    if lines.is_empty() {
        body.push_str(&empty("No log lines match."));
    } else {
        let _ = write!(
            body,
            "<p class=\"muted\">{n} line{s}, newest first{more}.</p><div class=\"table-wrap\"><table id=\"logs\"><thead><tr><th>Time</th><th>Level</th><th>Resource</th><th>Message</th></tr></thead><tbody>",
            n = lines.len(),
            s = if lines.len() == 1 { "" } else { "s" },
            more = if lines.len() as i64 == LOG_LINES {
                " (the newest only: narrow the search)"
            } else {
                ""
            },
        );
        for l in &lines {
            let level = l.level.to_ascii_lowercase();
            let level_class = match level.as_str() {
                "error" | "err" | "fatal" | "critical" | "crit" => "level-error",
                "warn" | "warning" => "level-warn",
                _ => "level-other",
            };
            let resource_cell = match l.resource_id {
                Some(id) => format!(
                    "<a href=\"/data/resources/{id}\">{}</a>",
                    esc(&pairs(&l.ids))
                ),
                None => esc(&pairs(&l.ids)),
            };
            let metadata = if l.metadata == "{}" || l.metadata.is_empty() {
                String::new()
            } else {
                format!(
                    "<details><summary>Fields</summary><code class=\"wrap\">{}</code></details>",
                    esc(&l.metadata)
                )
            };
            let _ = write!(
                body,
                "<tr data-id=\"{id}\"><td data-label=\"Time\">{at}</td><td data-label=\"Level\" class=\"{level_class}\">{level}</td><td data-label=\"Resource\">{resource_cell}</td><td data-label=\"Message\" class=\"message\">{msg}{metadata}</td></tr>",
                id = l.id,
                at = time_ms(l.at_ms),
                level = esc(&l.level),
                msg = esc(&l.message),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    let v = p.viewer();
    Html(data_page("Logs", &v, DataSection::Logs, "Logs", &body)).into_response()
}

/// One trace in the list, gathered from its spans.
struct TraceSummary {
    trace_id: String,
    root: String,
    services: BTreeSet<String>,
    start_ns: i64,
    end_ns: i64,
    spans: usize,
    errors: usize,
    has_root: bool,
}

/// Groups spans (newest first) into traces, newest first.
fn summarize(spans: &[DataSpan]) -> Vec<TraceSummary> {
    let mut order: Vec<String> = Vec::new();
    let mut by: HashMap<&str, TraceSummary> = HashMap::new();
    for d in spans {
        let s = &d.span;
        let t = by.entry(s.trace_id.as_str()).or_insert_with(|| {
            order.push(s.trace_id.clone());
            TraceSummary {
                trace_id: s.trace_id.clone(),
                root: s.name.clone(),
                services: BTreeSet::new(),
                start_ns: s.start_ns,
                end_ns: s.end_ns,
                spans: 0,
                errors: 0,
                has_root: false,
            }
        });
        t.spans += 1;
        t.errors += usize::from(s.status == "error");
        if !s.service.is_empty() {
            t.services.insert(s.service.clone());
        }
        t.end_ns = t.end_ns.max(s.end_ns);
        let is_root = s.parent_span_id.is_empty();
        // The root names the trace; without one, the earliest span does.
        if !t.has_root && (is_root || s.start_ns < t.start_ns) {
            t.root.clone_from(&s.name);
        }
        t.has_root |= is_root;
        t.start_ns = t.start_ns.min(s.start_ns);
    }
    order
        .into_iter()
        .filter_map(|id| by.remove(id.as_str()))
        .collect()
}

/// `GET /data/traces?service=&range=`.
pub async fn traces<S: Store>(State(st): State<AppState<S>>, p: Page, Query(q): Q) -> Response {
    let owner = match scope(&p) {
        Ok(o) => o,
        Err(()) => return forbidden(&p, DataSection::Traces),
    };
    let (key, (from_ms, to_ms)) = window(&q, st.clock.now_millis(), LIST_WINDOW);
    let service: Option<String> = q
        .get("service")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(MAX_SEARCH).collect());
    let query = SpanQuery {
        trace_id: None,
        service: service.clone(),
        range: TimeRange {
            from_ms,
            to_ms,
            limit: LIST_SPANS,
        },
        owner,
    };
    let spans = match st.manager.store().data_spans(&query).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut traces = summarize(&spans);
    traces.truncate(LIST_TRACES);
    let mut body = String::from(own_note(owner));
    let _ = write!(
        body,
        "<form class=\"toolbar\" method=\"get\" role=\"search\"><label for=\"service\" class=\"sr-only\">Service</label>\
         <input id=\"service\" name=\"service\" type=\"search\" maxlength=\"{MAX_SEARCH}\" placeholder=\"Service name\" value=\"{}\">{}\
         <button type=\"submit\">Show</button></form>",
        esc(service.as_deref().unwrap_or("")),
        window_select(key),
    );
    if traces.is_empty() {
        body.push_str(&empty(
            "No traces in this range. Point an OpenTelemetry exporter at <code>/rest/api/v1/traces</code> with a DataIngestion token.",
        ));
    } else {
        body.push_str("<div class=\"table-wrap\"><table id=\"traces\"><thead><tr><th>Trace</th><th>Services</th><th>Started</th><th>Duration</th><th>Spans</th><th>Errors</th></tr></thead><tbody>");
        for t in &traces {
            let services: Vec<&str> = t.services.iter().map(String::as_str).collect();
            let _ = write!(
                body,
                "<tr data-trace=\"{id}\"><td data-label=\"Trace\"><a href=\"/data/traces/{id}\">{root}</a><br><code class=\"muted\">{id}</code></td><td data-label=\"Services\">{services}</td><td data-label=\"Started\">{start}</td><td data-label=\"Duration\">{dur}</td><td data-label=\"Spans\">{n}</td><td data-label=\"Errors\" class=\"{err_class}\">{errors}</td></tr>",
                id = esc(&t.trace_id),
                root = esc(&t.root),
                services = esc(&services.join(", ")),
                start = time(t.start_ns.div_euclid(1_000_000_000)),
                dur = chart::duration(t.end_ns - t.start_ns),
                n = t.spans,
                errors = t.errors,
                err_class = if t.errors > 0 { "level-error" } else { "" },
            );
        }
        body.push_str("</tbody></table></div>");
    }
    let v = p.viewer();
    Html(data_page(
        "Traces",
        &v,
        DataSection::Traces,
        "Traces",
        &body,
    ))
    .into_response()
}

/// `GET /data/traces/{traceId}`: the trace's spans as a waterfall.
pub async fn trace<S: Store>(
    State(st): State<AppState<S>>,
    p: Page,
    Path(trace_id): Path<String>,
) -> Response {
    let owner = match scope(&p) {
        Ok(o) => o,
        Err(()) => return forbidden(&p, DataSection::Traces),
    };
    if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return fail(ApiError::BadRequest(
            "a trace id is 32 hex digits".to_owned(),
        ));
    }
    let query = SpanQuery {
        trace_id: Some(trace_id.to_ascii_lowercase()),
        service: None,
        range: TimeRange {
            from_ms: i64::MIN,
            to_ms: i64::MAX,
            limit: TRACE_SPANS,
        },
        owner,
    };
    let stored = match st.manager.store().data_spans(&query).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if stored.is_empty() {
        return fail(ApiError::NotFound(format!("no spans of trace {trace_id}")));
    }
    let spans: Vec<_> = stored.into_iter().map(|d| d.span).collect();
    let t0 = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let t1 = spans.iter().map(|s| s.end_ns).max().unwrap_or(t0);
    let mut body = format!(
        "<p><a href=\"/data/traces\">All traces</a></p><p class=\"muted\"><code>{id}</code> · started {start} · {dur} · {n} span{s}</p>\
         <div class=\"table-wrap\"><table id=\"waterfall\" class=\"waterfall\"><thead><tr><th>Span</th><th>Service</th><th>Duration</th><th class=\"timeline\">Timeline</th></tr></thead><tbody>",
        id = esc(&trace_id.to_ascii_lowercase()),
        start = time(t0.div_euclid(1_000_000_000)),
        dur = chart::duration(t1 - t0),
        n = spans.len(),
        s = if spans.len() == 1 { "" } else { "s" },
    );
    for row in chart::waterfall_order(&spans) {
        let s = row.span;
        let attrs = if s.attributes == "{}" {
            String::new()
        } else {
            format!(
                "<details><summary>Attributes</summary><code class=\"wrap\">{}</code></details>",
                esc(&s.attributes)
            )
        };
        let status = if s.status == "error" {
            format!(
                " <span class=\"level-error\">error{}</span>",
                if s.status_message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", esc(&s.status_message))
                }
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr data-span=\"{id}\" data-depth=\"{depth}\"><td data-label=\"Span\" class=\"depth-{d}\"><span class=\"span-name\">{name}</span> <span class=\"muted\">{kind}</span>{status}{attrs}</td><td data-label=\"Service\">{service}</td><td data-label=\"Duration\">{dur}</td><td data-label=\"Timeline\" class=\"timeline\">{bar}</td></tr>",
            id = esc(&s.span_id),
            depth = row.depth,
            d = row.depth.min(9),
            name = esc(&s.name),
            kind = esc(&s.kind),
            service = esc(&s.service),
            dur = chart::duration(s.end_ns - s.start_ns),
            bar = chart::bar(s, (t0, t1)),
        );
    }
    body.push_str("</tbody></table></div>");
    // The root names the page (the first row of the waterfall).
    let heading = chart::waterfall_order(&spans)
        .first()
        .map_or_else(|| "Trace".to_owned(), |r| r.span.name.clone());
    let v: Viewer<'_> = p.viewer();
    Html(data_page(
        &heading,
        &v,
        DataSection::Traces,
        &heading,
        &body,
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_store::data::SpanInput;

    fn span(trace: &str, id: &str, parent: &str, start: i64, status: &str) -> DataSpan {
        DataSpan {
            span: SpanInput {
                trace_id: trace.to_owned(),
                span_id: id.to_owned(),
                parent_span_id: parent.to_owned(),
                service: "svc".to_owned(),
                name: id.to_owned(),
                start_ns: start,
                end_ns: start + 10,
                status: status.to_owned(),
                ..SpanInput::default()
            },
            sent_by: 1,
        }
    }

    #[test]
    fn traces_are_named_by_their_root_and_keep_newest_first() {
        let spans = [
            span("b", "b-child", "b-root", 105, "error"),
            span("b", "b-root", "", 100, "ok"),
            span("a", "a-late", "gone", 20, "ok"),
            span("a", "a-early", "gone", 10, "ok"),
        ];
        let t = summarize(&spans);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].trace_id.as_str(), t[0].root.as_str()),
            ("b", "b-root")
        );
        assert_eq!(
            (t[0].spans, t[0].errors, t[0].start_ns, t[0].end_ns),
            (2, 1, 100, 115)
        );
        assert_eq!(
            t[1].root, "a-early",
            "without a root, the earliest span names it"
        );
    }

    #[test]
    fn windows_fall_back_to_the_default() {
        let q = |r: &str| HashMap::from([("range".to_owned(), r.to_owned())]);
        let w = window(&q("1h"), 10_000_000, LIST_WINDOW);
        assert_eq!(w, ("1h", (6_400_000, 10_000_000)));
        assert_eq!(window(&q("all"), 5, LIST_WINDOW).1, (i64::MIN, i64::MAX));
        assert_eq!(
            window(&q("<script>"), 100_000_000, LIST_WINDOW).0,
            LIST_WINDOW
        );
        assert_eq!(
            window(&HashMap::new(), 100_000_000, CHART_WINDOW).0,
            CHART_WINDOW
        );
    }
}
