//! The Data area in a real headless Chromium: a resource's datapoints charted, the
//! log viewer's search, the trace list and a trace's waterfall, who sees what, and a
//! screenshot of each page (target/ui-screenshots/).

use serde_json::{Value, json};

use super::support::*;
use super::ui::sign_in;
use crate::webdriver::{Browser, available};

async fn push(s: &Server, token: &str, path: &str, body: &Value) {
    let rb = s
        .client
        .post(format!("http://{}/rest{path}", s.addr))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(gzip(body.to_string().as_bytes()));
    let r = send(rb).await;
    assert!(r.status.is_success(), "{path}: {}", r.text);
}

/// A DataIngestion user who may sign in, and a bearer token of theirs.
async fn pusher(s: &Server, name: &str, role: i64) -> String {
    let r = s
        .post(
            &s.admin_token,
            "/setting/admins",
            json!({"username": name, "email": format!("{name}@x.io"), "roles": [{"id": role}], "password": format!("{name}-password")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["id"].as_i64().expect("id");
    s.token_for(id, name).await.1
}

/// Half an hour of values a minute apart: a gauge wave and a rising counter.
fn metrics(host: &str, now_s: i64) -> Value {
    let mut load = serde_json::Map::new();
    let mut bytes = serde_json::Map::new();
    for i in 0..30_i64 {
        let at = (now_s - 1800 + i * 60).to_string();
        load.insert(at.clone(), json!(50.0 + 40.0 * ((i as f64) / 4.0).sin()));
        bytes.insert(at, json!(1000 * i * i));
    }
    json!([{
        "resourceIds": {"system.hostname": host},
        "resourceName": host,
        "resourceProperties": {"env": "prod", "rack": "r7"},
        "dataSource": "Linux", "dataSourceDisplayName": "Linux host",
        "instances": [{"instanceName": "eth0", "instanceProperties": {"speed": "10G"}, "dataPoints": [
            {"dataPointName": "cpu_load", "dataPointType": "gauge", "values": load},
            {"dataPointName": "rx_bytes", "dataPointType": "counter", "values": bytes}
        ]}]
    }])
}

fn trace(now_ns: i64) -> Value {
    let span = |id: &str, parent: &str, name: &str, start: i64, end: i64, error: bool| {
        json!({"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": id, "parentSpanId": parent,
               "name": name, "kind": 2,
               "startTimeUnixNano": (now_ns + start).to_string(), "endTimeUnixNano": (now_ns + end).to_string(),
               "attributes": [{"key": "http.route", "value": {"stringValue": "/cart"}}],
               "status": {"code": if error { 2 } else { 1 }, "message": if error { "timeout" } else { "" }}})
    };
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeSpans": [{"spans": [
            span("00f067aa0ba902b7", "", "GET /cart", 0, 120_000_000, false),
            span("00f067aa0ba902b9", "00f067aa0ba902b8", "SELECT cart_items", 30_000_000, 95_000_000, true),
            span("00f067aa0ba902b8", "00f067aa0ba902b7", "load cart", 20_000_000, 100_000_000, false)
        ]}]
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_area_charts_searches_and_draws_waterfalls() {
    if !available("the_data_area_charts_searches_and_draws_waterfalls") {
        return;
    }
    let Some(s) = Server::start().await else {
        return;
    };
    let base = format!("http://{}", s.addr);
    let role = s
        .role("collectors", &[("dataingestion", "*", "write")])
        .await;
    let token = pusher(&s, "collector", role).await;
    let other = pusher(&s, "other-team", role).await;
    let now_ms = now_millis();
    push(
        &s,
        &token,
        "/v2/metric/ingest?create=true",
        &metrics("web-1", now_ms / 1000),
    )
    .await;
    push(
        &s,
        &other,
        "/v2/metric/ingest?create=true",
        &metrics("db-9", now_ms / 1000),
    )
    .await;
    let line = |msg: &str, level: &str, ago_ms: i64| json!({"msg": msg, "_lm.resourceId": {"system.hostname": "web-1"}, "timestamp": now_ms - ago_ms, "log_level": level, "pid": 4242});
    push(
        &s,
        &token,
        "/log/ingest",
        &json!([
            line("disk /var is 91% full", "warning", 60_000),
            line("request served in 12 ms", "info", 40_000),
            line("disk /var is 99% full <b>now</b>", "error", 20_000)
        ]),
    )
    .await;
    push(
        &s,
        &token,
        "/api/v1/traces",
        &trace((now_ms - 30_000) * 1_000_000),
    )
    .await;

    let b = Browser::start(1280, 900).await;
    sign_in(&b, &s, "admin", "bootstrap-password").await;
    // The header names the areas; Data leads to the resources.
    b.click(&b.find("nav.areas a[href='/data/resources']").await)
        .await;
    b.until(
        "Resources",
        "return location.pathname === '/data/resources'",
    )
    .await;
    let names = b
        .script("return [...document.querySelectorAll('#resources tbody tr td:first-child')].map(td => td.textContent).sort()")
        .await;
    assert_eq!(names, json!(["db-9", "web-1"]), "the admin sees everyone's");
    assert_eq!(
        b.script("return document.querySelector('nav.areas a.current').textContent")
            .await,
        "Data"
    );
    b.screenshot("data-resources").await;

    // A resource: its properties, and a chart of each datapoint over the last 24 hours.
    b.click(
        &b.find("#resources a[href^='/data/resources/']:not([href$='/'])")
            .await,
    )
    .await;
    b.until(
        "a resource",
        "return !!document.querySelector('figure.datapoint')",
    )
    .await;
    let title = b
        .script("return document.querySelector('h1').textContent")
        .await;
    let host = title.as_str().expect("title").to_owned();
    let charts = b
        .script(
            "return [...document.querySelectorAll('figure.datapoint')].map(f => [\
               f.querySelector('figcaption strong').textContent,\
               f.querySelector('svg.chart polyline').getAttribute('points').trim().split(' ').length,\
               f.querySelectorAll('svg.chart circle').length])",
        )
        .await;
    assert_eq!(
        charts,
        json!([["cpu_load", 30, 30], ["rx_bytes", 30, 30]]),
        "{host}: two charts of the last hour's 30 values"
    );
    let label = b
        .script("return document.querySelector('svg.chart').getAttribute('aria-label')")
        .await;
    assert!(
        label.as_str().unwrap_or("").contains("30 values"),
        "{label}"
    );
    // The stylesheet reaches the SVG (no inline style under the CSP).
    let stroke = b
        .script("return getComputedStyle(document.querySelector('.chart-line')).stroke")
        .await;
    assert_eq!(stroke, "rgb(11, 97, 196)");
    let props = b
        .script("return document.querySelector('dd.props').textContent")
        .await;
    assert_eq!(props, "env prod rack r7 ");
    assert!(b.source().await.contains("speed=10G"));
    b.screenshot("data-resource").await;
    // A shorter window: only the values of the last 15 minutes are drawn.
    b.goto(&format!(
        "{}?range=15m",
        b.url().await.split('?').next().unwrap_or("")
    ))
    .await;
    b.until(
        "the 15-minute window",
        "return document.querySelector('#range').value === '15m'",
    )
    .await;
    let counts = b
        .script("return [...document.querySelectorAll('svg.chart')].map(c => c.querySelectorAll('circle').length)")
        .await;
    let in_window = |n: &Value| (13..=15).contains(&n.as_i64().unwrap_or(0));
    assert!(
        counts
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(in_window)),
        "{counts}"
    );

    // Logs: newest first, searched, the markup in a message shown as text.
    b.goto(&format!("{base}/data/logs")).await;
    b.until("Logs", "return !!document.querySelector('#logs')")
        .await;
    let messages = b
        .script("return [...document.querySelectorAll('#logs td.message')].map(td => td.firstChild.textContent)")
        .await;
    assert_eq!(
        messages,
        json!([
            "disk /var is 99% full <b>now</b>",
            "request served in 12 ms",
            "disk /var is 91% full"
        ])
    );
    b.type_into(&b.find("#q").await, "DISK").await;
    b.click(&b.find("form[role=search] button").await).await;
    b.until("the search", "return location.search.includes('q=DISK')")
        .await;
    let levels = b
        .script("return [...document.querySelectorAll('#logs tbody tr')].map(r => r.cells[1].className)")
        .await;
    assert_eq!(levels, json!(["level-error", "level-warn"]));
    assert!(
        b.find_all("#logs b").await.is_empty(),
        "no markup from data"
    );
    b.screenshot("data-logs").await;

    // Traces: the list names the trace by its root; the waterfall nests its spans.
    b.click(&b.find("nav.side a[href='/data/traces']").await)
        .await;
    b.until("Traces", "return !!document.querySelector('#traces')")
        .await;
    let row = b
        .script(
            "return [...document.querySelector('#traces tbody tr').cells].map(c => c.textContent)",
        )
        .await;
    assert_eq!(row[0], "GET /cart4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        (
            row[1].clone(),
            row[3].clone(),
            row[4].clone(),
            row[5].clone()
        ),
        (json!("checkout"), json!("120 ms"), json!("3"), json!("1"))
    );
    b.screenshot("data-traces").await;
    b.click(&b.find("#traces a").await).await;
    b.until(
        "the waterfall",
        "return !!document.querySelector('#waterfall')",
    )
    .await;
    let rows = b
        .script(
            "return [...document.querySelectorAll('#waterfall tbody tr')].map(r => [\
               r.querySelector('.span-name').textContent, Number(r.dataset.depth),\
               Math.round(Number(r.querySelector('rect.bar, rect.bar-error').getAttribute('x'))),\
               Math.round(Number(r.querySelector('rect.bar, rect.bar-error').getAttribute('width'))),\
               !!r.querySelector('rect.bar-error')])",
        )
        .await;
    assert_eq!(
        rows,
        json!([
            ["GET /cart", 0, 0, 1000, false],
            ["load cart", 1, 167, 667, false],
            ["SELECT cart_items", 2, 250, 542, true]
        ])
    );
    assert!(b.source().await.contains("timeout"));
    assert_eq!(
        b.script("return document.querySelector('h1').textContent")
            .await,
        "GET /cart"
    );
    b.screenshot("data-trace").await;

    // A DataIngestion user sees their own resources only.
    b.click(&b.find("form.signout button").await).await;
    b.until("signed out", "return location.pathname === '/signin'")
        .await;
    sign_in(&b, &s, "collector", "collector-password").await;
    b.goto(&format!("{base}/data/resources")).await;
    b.until("Resources", "return !!document.querySelector('#resources')")
        .await;
    assert_eq!(
        b.script("return [...document.querySelectorAll('#resources tbody td:first-child')].map(td => td.textContent)").await,
        json!(["web-1"])
    );
    assert!(
        b.source()
            .await
            .contains("Showing what your own tokens pushed.")
    );
    b.quit().await;

    // Someone with neither privilege: no Data link, and a 403 page by URL.
    let plain = s
        .role("viewer-only", &[("setting", "apitoken", "write")])
        .await;
    let r = s
        .post(
            &s.admin_token,
            "/setting/admins",
            json!({"username": "plain", "email": "plain@x.io", "roles": [{"id": plain}], "password": "plain-password"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = Browser::start(1280, 900).await;
    sign_in(&b, &s, "plain", "plain-password").await;
    assert!(
        b.find_all("nav.areas a[href='/data/resources']")
            .await
            .is_empty()
    );
    b.goto(&format!("{base}/data/logs")).await;
    assert!(b.source().await.contains("403 — not allowed"));
    b.quit().await;
}
