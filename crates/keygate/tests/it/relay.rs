//! `--forward-otlp`: what is pushed reaches an OTLP/HTTP receiver the test runs,
//! through the outbox, across the receiver being down, a keygate restart, and a
//! receiver asking to wait; what the receiver refuses for good is dropped and counted.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use keygate_server::relay::{HeaderName, HeaderValue, RelayConfig};
use serde_json::{Value, json};

use super::support::*;

/// One export as the receiver got it.
#[derive(Debug, Clone)]
pub(super) struct Got {
    pub(super) signal: String,
    content_type: String,
    authorization: String,
    pub(super) body: Vec<u8>,
}

/// What the receiver answers: the first `refuse` exports of `signal` get `status`,
/// and every export holding `refuse_holding`'s text gets its status; each answer
/// comes after `delay`.
#[derive(Default)]
pub(super) struct Receiver {
    pub(super) got: Vec<Got>,
    pub(super) refuse: Vec<(String, u16, usize)>,
    pub(super) refuse_holding: Option<(&'static str, u16)>,
    pub(super) delay: Duration,
}

async fn export(
    State(rx): State<Arc<Mutex<Receiver>>>,
    Path(signal): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(header("content-encoding"), "gzip", "exports are gzipped");
    let delay = rx.lock().expect("lock").delay;
    tokio::time::sleep(delay).await;
    let mut body_plain = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut body_plain)
        .expect("gzip");
    let mut rx = rx.lock().expect("lock");
    if let Some((text, status)) = rx.refuse_holding
        && contains(&body_plain, text)
    {
        return (
            StatusCode::from_u16(status).expect("status"),
            [("retry-after", "0")],
            Vec::new(),
        );
    }
    for (s, status, left) in &mut rx.refuse {
        if *s == signal && *left > 0 {
            *left -= 1;
            return (
                StatusCode::from_u16(*status).expect("status"),
                [("retry-after", "1")],
                Vec::new(),
            );
        }
    }
    rx.got.push(Got {
        signal,
        content_type: header("content-type"),
        authorization: header("authorization"),
        body: body_plain,
    });
    (StatusCode::OK, [("retry-after", "0")], Vec::new())
}

/// Serves the receiver on `addr` until the returned handle is aborted.
pub(super) async fn receive(
    addr: SocketAddr,
    rx: Arc<Mutex<Receiver>>,
) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new()
        .route("/v1/{signal}", axum::routing::post(export))
        .with_state(rx);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// A port nothing listens on (yet).
pub(super) async fn free_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}

pub(super) fn forwarding(to: SocketAddr) -> keygate_server::ServerConfig {
    let mut relay = RelayConfig::new(&format!("http://{to}/"));
    relay.headers.push((
        HeaderName::from_static("authorization"),
        HeaderValue::from_static("Bearer receiver-secret"),
    ));
    relay.max_backoff = Duration::from_millis(400);
    // One server a SQLite file, as `keygate serve` says of itself there.
    relay.sole_sender = super::BACKEND == crate::Backend::Sqlite;
    relay.timeout = Duration::from_secs(2);
    keygate_server::ServerConfig {
        forward: Some(relay),
        ..test_config()
    }
}

pub(super) async fn push(
    s: &Server,
    path: &str,
    token: &str,
    content_type: &str,
    body: Value,
) -> Resp {
    let rb = s
        .client
        .post(format!("http://{}/rest{path}", s.addr))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", content_type)
        .header("Content-Encoding", "gzip")
        .body(gzip(body.to_string().as_bytes()));
    send(rb).await
}

fn metrics_body(host: &str, at: i64, value: f64) -> Value {
    json!([{
        "resourceIds": {"system.hostname": host},
        "resourceName": host,
        "dataSource": "CPU",
        "instances": [{
            "instanceName": "cpu0",
            "dataPoints": [{"dataPointName": "busy", "dataPointType": "gauge",
                            "values": {at.to_string(): value}}]
        }]
    }])
}

fn span_body(trace: u8, name: &str) -> Value {
    let now = now_millis() * 1_000_000;
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": format!("{trace:02x}").repeat(16), "spanId": "0102030405060708",
            "name": name, "kind": 2,
            "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 5_000_000).to_string()
        }]}]
    }]})
}

pub(super) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn pushed_data_reaches_a_receiver_that_was_down_across_a_restart_once_each() {
    let to = free_port().await;
    let Some(s) = Server::start_with(forwarding(to)).await else {
        return;
    };
    let user = s.user("collector", &[DATAINGESTION]).await;
    let (_, token) = s.token_for(user, "collector").await;
    let now_s = now_millis() / 1000;

    // The receiver is down: every push is still acknowledged, and queued.
    for (i, host) in ["web-1", "web-2", "web-3"].iter().enumerate() {
        let r = push(
            &s,
            "/v2/metric/ingest?create=true",
            &token,
            "application/json",
            metrics_body(host, now_s - i as i64, 40.0 + i as f64),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    for msg in ["disk full on web-1", "disk fine on web-1"] {
        let body = json!([{"msg": msg, "_lm.resourceId": {"system.hostname": "web-1"},
                           "log_level": "error", "app": "disk-check"}]);
        let r = push(&s, "/log/ingest", &token, "application/json", body).await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    for (trace, name) in [(0xa1, "GET /cart"), (0xa2, "POST /pay")] {
        let r = push(
            &s,
            "/api/v1/traces",
            &token,
            "application/json",
            span_body(trace, name),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // A property update stores but has nothing to forward.
    let props =
        json!({"resourceIds": {"system.hostname": "web-1"}, "resourceProperties": {"rack": "7"}});
    let rb = s
        .client
        .patch(format!("http://{}/rest/resource_property/ingest", s.addr))
        .header("Authorization", format!("Bearer {token}"))
        .json(&props);
    let r = send(rb).await;
    assert_eq!(r.status, 202, "{}", r.text);

    assert!(
        eventually(Duration::from_secs(10), || async {
            s.metric("keygate_outbox_entries").await == Some(7.0)
                && s.metric("keygate_outbox_lag_seconds").await.unwrap_or(0.0) > 0.0
        })
        .await,
        "seven exports wait while the receiver is down"
    );
    let retried = "keygate_forwarded_exports_total{signal=\"metrics\",outcome=\"retried\"}";
    assert!(
        s.metric(retried).await.unwrap_or(0.0) >= 1.0,
        "sends were tried and kept"
    );

    // keygate restarts while the receiver is still down: the outbox is in the store.
    let s = s.restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.metric("keygate_outbox_entries").await, Some(7.0));

    // The receiver comes back, first asking for a wait (503 with Retry-After) once.
    let rx = Arc::new(Mutex::new(Receiver {
        refuse: vec![("metrics".to_owned(), 503, 1)],
        ..Receiver::default()
    }));
    let receiver = receive(to, rx.clone()).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            s.metric("keygate_outbox_entries").await == Some(0.0)
        })
        .await,
        "everything queued is delivered: {:?}",
        rx.lock()
            .expect("lock")
            .got
            .iter()
            .map(|g| g.signal.clone())
            .collect::<Vec<_>>()
    );
    // Nothing more arrives later: each export was delivered once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = rx.lock().expect("lock").got.clone();
    let by = |signal: &str| {
        got.iter()
            .filter(|g| g.signal == signal)
            .collect::<Vec<_>>()
    };
    // Exports of a signal queued together may go in one request (protobuf requests
    // concatenate): each push's data is counted in what arrived, not requests.
    for (signal, n) in [("metrics", 3.0), ("logs", 2.0), ("traces", 2.0)] {
        let delivered =
            format!("keygate_forwarded_exports_total{{signal=\"{signal}\",outcome=\"delivered\"}}");
        assert_eq!(s.metric(&delivered).await, Some(n), "{signal}");
    }
    assert!(
        got.iter()
            .all(|g| g.authorization == "Bearer receiver-secret")
    );
    for host in ["web-1", "web-2", "web-3"] {
        assert_eq!(
            by("metrics")
                .iter()
                .filter(|g| contains(&g.body, host))
                .count(),
            1,
            "{host}'s values once"
        );
    }
    assert!(
        by("metrics")
            .iter()
            .all(|g| g.content_type == "application/x-protobuf"
                && contains(&g.body, "CPU.busy")
                && contains(&g.body, "cpu0"))
    );
    for msg in ["disk full on web-1", "disk fine on web-1"] {
        assert_eq!(
            by("logs").iter().filter(|g| contains(&g.body, msg)).count(),
            1
        );
    }
    assert!(by("logs").iter().all(|g| contains(&g.body, "disk-check")));
    // Traces go on as they came: OTLP/JSON here, read back by keygate's own parser.
    let mut names = Vec::new();
    for g in by("traces") {
        assert_eq!(g.content_type, "application/json");
        let spans = keygate_ingest::traces::parse(&g.body, keygate_ingest::traces::Encoding::Json)
            .expect("a valid export");
        names.extend(spans.into_iter().map(|s| s.name));
    }
    names.sort();
    assert_eq!(names, ["GET /cart", "POST /pay"]);
    assert_eq!(s.metric("keygate_outbox_lag_seconds").await, Some(0.0));
    receiver.abort();
}

#[tokio::test]
async fn an_export_the_receiver_refuses_for_good_is_dropped_and_counted() {
    let to = free_port().await;
    // The first request gets 401 (kept: the receiver's credentials can be fixed);
    // any holding "refused line" gets 400 (dropped: OTLP forbids retrying it).
    let rx = Arc::new(Mutex::new(Receiver {
        refuse: vec![("logs".to_owned(), 401, 1)],
        refuse_holding: Some(("refused line", 400)),
        ..Receiver::default()
    }));
    let receiver = receive(to, rx.clone()).await;
    let Some(s) = Server::start_with(forwarding(to)).await else {
        receiver.abort();
        return;
    };
    let user = s.user("collector", &[DATAINGESTION]).await;
    let (_, token) = s.token_for(user, "collector").await;
    for msg in ["refused line", "kept line"] {
        let body = json!([{"msg": msg, "_lm.resourceId": {"system.hostname": "h"}}]);
        let r = push(&s, "/log/ingest", &token, "application/json", body).await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    // Sent together, the two are refused together; then each goes on its own, and
    // only the one at fault is dropped.
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.metric("keygate_outbox_entries").await == Some(0.0)
                && !rx.lock().expect("lock").got.is_empty()
        })
        .await
    );
    let got = rx.lock().expect("lock").got.clone();
    assert_eq!(got.len(), 1);
    assert!(contains(&got[0].body, "kept line"), "the 401 was retried");
    assert!(!contains(&got[0].body, "refused line"));
    let dropped = "keygate_forwarded_exports_total{signal=\"logs\",outcome=\"dropped\"}";
    assert_eq!(s.metric(dropped).await, Some(1.0));
    let retried = "keygate_forwarded_exports_total{signal=\"logs\",outcome=\"retried\"}";
    assert!(s.metric(retried).await.unwrap_or(0.0) >= 1.0);
    // The data itself stays in keygate either way.
    let r = s.get(&s.admin_token, "/keygate/data/logs").await;
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.text
    );
    receiver.abort();
}

#[tokio::test]
async fn data_and_exports_past_the_retention_are_pruned() {
    const DAY_MS: i64 = 86_400_000;
    let now = now_millis();
    let to = free_port().await;
    // Three days ago, with the receiver down: everything is stored and queued.
    let mut then = forwarding(to);
    then.clock = keygate_core::clock::Clock::fixed(now - 3 * DAY_MS);
    let Some(s) = Server::start_with(then).await else {
        return;
    };
    let user = s.user("collector", &[DATAINGESTION]).await;
    let (_, token) = s.token_for(user, "collector").await;
    let mut body = metrics_body("web-1", (now - 3 * DAY_MS) / 1000, 1.0);
    body[0]["instances"][0]["dataPoints"][0]["values"][(now / 1000).to_string()] = json!(2.0);
    let r = push(
        &s,
        "/v2/metric/ingest?create=true",
        &token,
        "application/json",
        body,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let lines = json!([
        {"msg": "old line", "_lm.resourceId": {"system.hostname": "web-1"}, "timestamp": now - 3 * DAY_MS},
        {"msg": "new line", "_lm.resourceId": {"system.hostname": "web-1"}, "timestamp": now}
    ]);
    let r = push(&s, "/log/ingest", &token, "application/json", lines).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let mut span = span_body(0xb1, "old span");
    let old_ns = (now - 3 * DAY_MS) * 1_000_000;
    span["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] =
        json!(old_ns.to_string());
    span["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["endTimeUnixNano"] =
        json!((old_ns + 1000).to_string());
    let r = push(&s, "/api/v1/traces", &token, "application/json", span).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.metric("keygate_outbox_entries").await == Some(3.0)
        })
        .await
    );

    // Today, keeping a day: the start-up pass prunes what is older, exports included.
    let mut today = forwarding(to);
    today.data_retention = Duration::from_secs(86_400);
    let s = s.restart_with(today).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.metric("keygate_outbox_entries").await == Some(0.0)
        })
        .await,
        "exports queued three days ago are dropped"
    );
    let resources = s.get(&s.admin_token, "/keygate/data/resources").await;
    let id = resources.body["items"][0]["id"]
        .as_i64()
        .expect("the resource stays");
    let resource = s
        .get(&s.admin_token, &format!("/keygate/data/resources/{id}"))
        .await;
    let dp = resource.body["instances"][0]["dataPoints"][0]["id"]
        .as_i64()
        .expect("datapoint");
    let series = s
        .get(
            &s.admin_token,
            &format!("/keygate/data/datapoints/{dp}/values"),
        )
        .await;
    assert_eq!(
        series.body["values"],
        json!([[(now / 1000) * 1000, 2.0]]),
        "only today's value: {}",
        series.text
    );
    let logs = s.get(&s.admin_token, "/keygate/data/logs").await;
    let messages: Vec<&str> = logs.body["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["message"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(messages, ["new line"]);
    let spans = s.get(&s.admin_token, "/keygate/data/spans").await;
    assert_eq!(spans.body["items"], json!([]), "{}", spans.text);
}
