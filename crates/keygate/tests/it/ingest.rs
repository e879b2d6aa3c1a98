//! The ingestion APIs under `/rest`: metrics, properties and logs pushed with a
//! DataIngestion token (bearer or LMv1 over the uncompressed body, gzipped as the
//! SDKs send it), stored, and read back through `/santaba/rest/keygate/data`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::*;

/// Sends a body to an ingestion path (`/rest...`) as LogicMonitor's Python SDK does:
/// JSON, gzipped, with `X-version: 1`.
async fn push(s: &Server, method: Method, path: &str, authorization: &str, body: &[u8]) -> Resp {
    let rb = s
        .client
        .request(method, format!("http://{}/rest{path}", s.addr))
        .header("Authorization", authorization)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .header("X-version", "1")
        .body(gzip(body));
    send(rb).await
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// One resource with one instance and datapoint, as the SDK serializes it.
fn element(host: &str, values: Value) -> Value {
    json!({
        "resourceIds": {"system.hostname": host},
        "resourceName": host,
        "resourceProperties": {"using.sdk": "true"},
        "dataSource": "CPU",
        "dataSourceDisplayName": "CPU",
        "dataSourceGroup": "Sdk",
        "singleInstanceDS": false,
        "instances": [{
            "instanceName": "CPU-0",
            "instanceProperties": {"core": "0"},
            "dataPoints": [{
                "dataPointName": "cpu_time",
                "dataPointType": "guage",
                "dataPointAggregationType": "sum",
                "values": values
            }]
        }]
    })
}

async fn resources(s: &Server) -> Value {
    let r = s.get(&s.admin_token, "/keygate/data/resources").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// A DataIngestion user and a bearer token of theirs.
async fn pusher(s: &Server) -> (i64, String) {
    let user = s.user("collector", &[DATAINGESTION]).await;
    let (_, secret) = s.token_for(user, "collector").await;
    (user, secret)
}

#[tokio::test]
async fn metrics_pushed_with_a_bearer_token_are_stored_and_read_back() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (user, token) = pusher(&s).await;
    let body = json!([element(
        "web-1",
        json!({"1700000000": "23", "1700000060.5": 24.5})
    )]);
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=True",
        &bearer(&token),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // The SDK's response model crashes unless code and timestamp are integers.
    assert_eq!(r.body["code"], 202);
    assert!(r.body["timestamp"].is_i64(), "{}", r.text);
    assert_eq!(r.body["resourceIds"]["system.hostname"], "web-1");
    assert!(r.headers.contains_key("x-request-id"));

    let list = resources(&s).await;
    assert_eq!(list["total"], 1, "{list}");
    let id = list["items"][0]["id"].as_i64().expect("id");
    let r = s
        .get(&s.admin_token, &format!("/keygate/data/resources/{id}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "web-1");
    assert_eq!(r.body["createdBy"], user);
    assert_eq!(r.body["properties"]["using.sdk"], "true");
    let inst = &r.body["instances"][0];
    assert_eq!(inst["dataSource"], "CPU");
    assert_eq!(inst["instanceName"], "CPU-0");
    assert_eq!(inst["properties"]["core"], "0");
    let dp = &inst["dataPoints"][0];
    assert_eq!(dp["dataPointName"], "cpu_time");
    assert_eq!(dp["dataPointType"], "gauge");
    let series = s
        .get(
            &s.admin_token,
            &format!("/keygate/data/datapoints/{}/values", dp["id"]),
        )
        .await;
    assert_eq!(series.status, StatusCode::OK, "{}", series.text);
    assert_eq!(
        series.body["values"],
        json!([[1_700_000_000_000_i64, 23.0], [1_700_000_060_500_i64, 24.5]])
    );
    // The owner reads what its own tokens pushed; the range narrows the series.
    let own = s
        .get(
            &token,
            &format!(
                "/keygate/data/datapoints/{}/values?from=1700000000001",
                dp["id"]
            ),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.body["values"], json!([[1_700_000_060_500_i64, 24.5]]));
    // A push is a use of the token like any request: its last use shows.
    let tokens = s
        .get(&s.admin_token, &format!("/setting/admins/{user}/apitokens"))
        .await;
    let path = format!(
        "/setting/admins/{user}/apitokens/{}",
        tokens.body["items"][0]["id"]
    );
    let used = eventually(std::time::Duration::from_secs(5), || async {
        let t = s.get(&s.admin_token, &path).await.body;
        t["lastUsedOn"].as_i64().unwrap_or(0) > 0 && t["lastAuthIp"] == "127.0.0.1"
    })
    .await;
    assert!(used, "the push was not recorded as the token's use");
}

#[tokio::test]
async fn create_false_refuses_unknown_resources_and_mixed_payloads_get_207() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, token) = pusher(&s).await;
    let one = json!([element("db-1", json!({"1700000000": 1}))]).to_string();
    for query in ["", "?create=false", "?create=None"] {
        let r = push(
            &s,
            Method::POST,
            &format!("/v2/metric/ingest{query}"),
            &bearer(&token),
            one.as_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{query}: {}", r.text);
        assert!(
            r.body["message"]
                .as_str()
                .unwrap_or("")
                .contains("create=true")
        );
        assert_eq!(r.body["code"], 404);
    }
    assert_eq!(resources(&s).await["total"], 0);
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=true",
        &bearer(&token),
        one.as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let mixed = json!([
        element("db-1", json!({"1700000100": 2})),
        element("db-2", json!({"1700000100": 3}))
    ]);
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=false",
        &bearer(&token),
        mixed.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.text);
    assert_eq!(r.body["errors"][0]["index"], 1, "{}", r.text);
    assert_eq!(
        r.body["errors"][0]["resourceIds"]["system.hostname"],
        "db-2"
    );
    assert_eq!(resources(&s).await["total"], 1);
}

#[tokio::test]
async fn bad_payloads_name_the_element_and_field_and_store_nothing() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, token) = pusher(&s).await;
    let mut bad = element("web-2", json!({"1700000000": "lots"}));
    let good = element("web-1", json!({"1700000000": 1}));
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([good.clone(), bad.clone()]),
            "element 1: instances[0].dataPoints[0].values[\"1700000000\"] must be a number or numeric text",
        ),
        (json!({"not": "an array"}), "must be a JSON array"),
    ];
    bad["instances"][0]["dataPoints"][0]["values"] = json!({"1700000000": 1});
    bad["dataSource"] = json!("CPU(0)");
    let mut cases = cases;
    cases.push((
        json!([good, bad]),
        "element 1: dataSource must not contain '('",
    ));
    for (body, want) in cases {
        let r = push(
            &s,
            Method::POST,
            "/v2/metric/ingest?create=true",
            &bearer(&token),
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.message().contains(want), "{want:?} in {}", r.text);
        assert_eq!(r.body["code"], 400);
        assert_eq!(r.body["success"], false);
    }
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=maybe",
        &bearer(&token),
        b"[]",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(resources(&s).await["total"], 0);
    // The SDK's batch posts an empty array every interval: accepted, nothing stored.
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=None",
        &bearer(&token),
        b"[]",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(resources(&s).await["total"], 0);
}

#[tokio::test]
async fn lmv1_signs_the_uncompressed_json_and_the_path_after_rest() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("collector", &[DATAINGESTION]).await;
    let (_, access_id, key) = s.lmv1_for(user, "sdk").await;
    let body = json!([element("web-1", json!({"1700000000": 5}))]).to_string();
    let k = keygate_core::lmv1::AccessKey::from_secret(key.clone());
    let sign = |signed: &[u8], path: &str| {
        let ts = now_millis();
        let sig = keygate_core::lmv1::sign(&k, "POST", ts, signed, path);
        format!("LMv1 {access_id}:{sig}:{ts}")
    };
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=true",
        &sign(body.as_bytes(), "/v2/metric/ingest"),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // Signed over the compressed bytes, or over the path with /rest: refused.
    for auth in [
        sign(&gzip(body.as_bytes()), "/v2/metric/ingest"),
        sign(body.as_bytes(), "/rest/v2/metric/ingest"),
    ] {
        let r = push(
            &s,
            Method::POST,
            "/v2/metric/ingest?create=true",
            &auth,
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.body["code"], 401);
    }
    // A key holder without DataIngestion is told what is missing.
    let viewer = s.user("viewer", &[READONLY]).await;
    let (_, vid, vkey) = s.lmv1_for(viewer, "v").await;
    let vk = keygate_core::lmv1::AccessKey::from_secret(vkey);
    let ts = now_millis();
    let sig = keygate_core::lmv1::sign(&vk, "POST", ts, body.as_bytes(), "/v2/metric/ingest");
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=true",
        &format!("LMv1 {vid}:{sig}:{ts}"),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.message().contains("DataIngestion"), "{}", r.text);
    assert_eq!(resources(&s).await["total"], 1);
}

#[tokio::test]
async fn a_zip_bomb_gets_413_and_bearer_tokens_need_traces() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, token) = pusher(&s).await;
    // 64 MiB of spaces after a valid start: about 64 KiB on the wire.
    let mut bomb = b"[".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 64 << 20));
    bomb.push(b']');
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=true",
        &bearer(&token),
        &bomb,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(resources(&s).await["total"], 0);
    let r = s
        .client
        .post(format!("http://{}/rest/log/ingest", s.addr))
        .header("Authorization", bearer(&token))
        .header("Content-Encoding", "br")
        .body("[]");
    let r = send(r).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    let r = s
        .patch(
            &s.admin_token,
            "/setting/portal",
            json!({"tracesEnabled": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = json!([element("web-1", json!({"1700000000": 5}))]).to_string();
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=true",
        &bearer(&token),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.message().contains("Traces (APM)"), "{}", r.text);
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=true",
        "",
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

#[tokio::test]
async fn properties_are_merged_by_patch_and_replaced_by_put() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, token) = pusher(&s).await;
    let ids = json!({"system.hostname": "web-1"});
    let r = push(
        &s,
        Method::PATCH,
        "/resource_property/ingest",
        &bearer(&token),
        json!({"resourceIds": ids, "resourceProperties": {"env": "prod"}})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let body = json!([element("web-1", json!({"1700000000": 5}))]).to_string();
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=true",
        &bearer(&token),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    for (method, props, want) in [
        (
            Method::PATCH,
            json!({"env": "prod"}),
            json!({"env": "prod", "using.sdk": "true"}),
        ),
        (Method::PUT, json!({"team": "web"}), json!({"team": "web"})),
    ] {
        let r = push(
            &s,
            method,
            "/resource_property/ingest",
            &bearer(&token),
            json!({"resourceIds": ids, "resourceProperties": props})
                .to_string()
                .as_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let id = resources(&s).await["items"][0]["id"].as_i64().expect("id");
        let got = s
            .get(&s.admin_token, &format!("/keygate/data/resources/{id}"))
            .await;
        assert_eq!(got.body["properties"], want, "{}", got.text);
    }
    let r = push(
        &s,
        Method::PATCH,
        "/instance_property/ingest",
        &bearer(&token),
        json!({"resourceIds": ids, "dataSource": "CPU", "instanceName": "CPU-0",
               "instanceProperties": {"speed": "fast"}})
        .to_string()
        .as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = resources(&s).await["items"][0]["id"].as_i64().expect("id");
    let got = s
        .get(&s.admin_token, &format!("/keygate/data/resources/{id}"))
        .await;
    assert_eq!(
        got.body["instances"][0]["properties"],
        json!({"core": "0", "speed": "fast"}),
        "{}",
        got.text
    );
    let r = push(
        &s,
        Method::PATCH,
        "/resource_property/ingest",
        &bearer(&token),
        json!({"resourceIds": ids, "resourceProperties": {"system.ips": "1"}})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test]
async fn logs_are_stored_with_their_time_and_searched() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, token) = pusher(&s).await;
    let body = json!([
        {"msg": "disk 91% full", "_lm.resourceId": {"system.hostname": "web-1"},
         "timestamp": 1_700_000_000, "log_level": "warn", "metadata": {"service": "api"}},
        {"msg": "request served", "_lm.resourceId": {"system.hostname": "web-1"},
         "timestamp": "2023-11-14T22:13:21Z"},
        {"msg": "DISK replaced", "_lm.resourceId": {"system.hostname": "web-2"},
         "timestamp": 1_700_000_002_000_000_000_i64}
    ]);
    let r = push(
        &s,
        Method::POST,
        "/log/ingest",
        &bearer(&token),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["code"], 202);
    let r = s.get(&s.admin_token, "/keygate/data/logs?q=disk").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", r.text);
    assert_eq!(items[0]["message"], "DISK replaced");
    assert_eq!(items[0]["timestamp"], 1_700_000_002_000_i64);
    assert_eq!(items[1]["timestamp"], 1_700_000_000_000_i64);
    assert_eq!(items[1]["logLevel"], "warn");
    assert_eq!(items[1]["metadata"]["service"], "api");
    let r = s
        .get(
            &s.admin_token,
            "/keygate/data/logs?from=1700000001000&to=1700000001000",
        )
        .await;
    assert_eq!(
        r.body["items"][0]["message"], "request served",
        "{}",
        r.text
    );
    // A message past 32 KiB names its line; nothing of the request is stored.
    let long = json!([{"msg": "x".repeat(32 * 1024 + 1), "_lm.resourceId": {"a": "b"}}]);
    let r = push(
        &s,
        Method::POST,
        "/log/ingest",
        &bearer(&token),
        long.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.message().starts_with("element 0: msg is 32769 bytes"),
        "{}",
        r.text
    );
    let r = s.get(&s.admin_token, "/keygate/data/logs").await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(3));
    // Someone without useraccess read or DataIngestion reads nothing.
    let role = s
        .role("tokens-only", &[("setting", "apitoken", "write")])
        .await;
    let other = s.user("other", &[role]).await;
    let (_, aid, key) = s.lmv1_for(other, "t").await;
    let r = s
        .lmv1(
            Method::GET,
            &aid,
            &key,
            "/keygate/data/logs",
            None,
            now_millis(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test]
async fn concurrent_pushes_for_a_new_resource_make_one() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, token) = pusher(&s).await;
    let pushes = (0..8).map(|i| {
        let body = json!([element(
            "new-host",
            json!({ (1_700_000_000 + i).to_string(): i })
        )]);
        let (s, token) = (&s, &token);
        async move {
            push(
                s,
                Method::POST,
                "/v2/metric/ingest?create=true",
                &bearer(token),
                body.to_string().as_bytes(),
            )
            .await
        }
    });
    for r in futures_util::future::join_all(pushes).await {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    let list = resources(&s).await;
    assert_eq!(list["total"], 1, "{list}");
    let id = list["items"][0]["id"].as_i64().expect("id");
    let r = s
        .get(&s.admin_token, &format!("/keygate/data/resources/{id}"))
        .await;
    let dp = &r.body["instances"][0]["dataPoints"][0]["id"];
    let series = s
        .get(
            &s.admin_token,
            &format!("/keygate/data/datapoints/{dp}/values"),
        )
        .await;
    assert_eq!(
        series.body["values"].as_array().map(Vec::len),
        Some(8),
        "{}",
        series.text
    );
}

/// The text of one labelled series in `/metrics`, if it is there.
async fn series_value(s: &Server, series: &str) -> Option<f64> {
    let r = send(reqwest::Client::new().get(format!("http://{}/metrics", s.addr))).await;
    r.text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn each_token_has_its_rate_the_queue_is_bounded_and_items_are_counted() {
    use keygate_server::routes::ingest_limits::IngestConfig;
    use tokio::io::AsyncWriteExt;
    let Some(s) = Server::start_with(keygate_server::ServerConfig {
        ingest: IngestConfig {
            max_in_flight: 1,
            max_waiting: 4,
            max_wait: std::time::Duration::from_millis(300),
            per_token_per_second: 0.5,
            per_token_burst: 3.0,
        },
        ..test_config()
    })
    .await
    else {
        return;
    };
    let user = s.user("collector", &[DATAINGESTION]).await;
    let (_, a) = s.token_for(user, "a").await;
    let (_, b) = s.token_for(user, "b").await;
    let body = json!([element("web-1", json!({"1700000000": 1, "1700000060": 2}))]).to_string();
    for _ in 0..3 {
        let r = push(
            &s,
            Method::POST,
            "/v2/metric/ingest?create=true",
            &bearer(&a),
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    let r = push(
        &s,
        Method::POST,
        "/v2/metric/ingest?create=true",
        &bearer(&a),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    assert_eq!(r.body["code"], 429);
    // Another token of the same owner has its own rate.
    let r = push(&s, Method::POST, "/log/ingest", &bearer(&b), b"[]").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // Three requests stored six values (the same two, sent three times).
    assert_eq!(
        series_value(
            &s,
            "keygate_ingested_items_total{kind=\"value\",outcome=\"stored\"}"
        )
        .await,
        Some(6.0)
    );

    // A body that trickles in holds the one place; the next request waits its 300 ms
    // in the queue, then gets 503 with Retry-After.
    let mut slow = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /rest/log/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {b}\r\n\
         Content-Type: application/json\r\nContent-Length: 64\r\n\r\n["
    );
    slow.write_all(head.as_bytes()).await.expect("head");
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            series_value(&s, "keygate_ingest_queue{state=\"in_flight\"}").await == Some(1.0)
        })
        .await
    );
    let (_, c) = s.token_for(user, "c").await;
    let r = push(&s, Method::POST, "/log/ingest", &bearer(&c), b"[]").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.body["code"], 503);
    // Once the slow body is in, the place frees and the next request is served.
    slow.write_all(format!("{}]", " ".repeat(62)).as_bytes())
        .await
        .expect("rest");
    let answer = {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 4096];
        let n = slow.read(&mut buf).await.expect("answer");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let r = push(&s, Method::POST, "/log/ingest", &bearer(&c), b"[]").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

#[tokio::test]
async fn otlp_json_traces_are_stored_once_and_read_back_by_trace() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, token) = pusher(&s).await;
    let trace = "5b8efff798038103d269b633813fc60c";
    let export = |spans: Value| {
        json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
            "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}]
        }]})
        .to_string()
    };
    let root = json!({"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "GET /cart",
        "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000300000000",
        "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}]});
    let child = json!({"traceId": trace, "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
        "name": "SELECT", "kind": 3, "startTimeUnixNano": "1700000000100000000",
        "endTimeUnixNano": "1700000000200000000", "status": {"code": 2, "message": "slow"}});
    let send_json = |body: String, content_type: &'static str| {
        let rb = s
            .client
            .post(format!("http://{}/rest/api/v1/traces", s.addr))
            .header("Authorization", bearer(&token))
            .header("Content-Type", content_type)
            .body(body);
        send(rb)
    };
    // Sent twice, as an exporter retrying after a lost answer would: stored once.
    for _ in 0..2 {
        let r = send_json(export(json!([root, child])), "application/json").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.text, "{}");
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let r = s
        .get(
            &s.admin_token,
            &format!("/keygate/data/spans?traceId={trace}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", r.text);
    assert_eq!(items[0]["name"], "GET /cart");
    assert_eq!(items[0]["service"], "checkout");
    assert_eq!(items[0]["attributes"]["http.status_code"], 200);
    assert_eq!(items[1]["parentSpanId"], "eee19b7ec3c1b174");
    assert_eq!(items[1]["status"], "error");
    assert_eq!(items[1]["kind"], "client");
    // A bad span: 400 with a google.rpc.Status in JSON, nothing of the request stored.
    let mut bad = child.clone();
    bad["spanId"] = json!("0000000000000000");
    let other = json!({"traceId": "aa".repeat(16), "spanId": "bbbbbbbbbbbbbbbb", "name": "x",
        "startTimeUnixNano": "1", "endTimeUnixNano": "2"});
    let r = send_json(export(json!([other, bad])), "application/json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["code"], 3);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("span 1: spanId"),
        "{}",
        r.text
    );
    let r = s
        .get(
            &s.admin_token,
            &format!("/keygate/data/spans?traceId={}", "aa".repeat(16)),
        )
        .await;
    assert_eq!(r.body["items"], json!([]));
    let r = send_json(export(json!([root])), "text/plain").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    let r = s
        .get(&s.admin_token, "/keygate/data/spans?traceId=nothex")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test]
async fn lmv1_bodies_not_yet_verified_hold_at_most_half_the_places() {
    use keygate_server::routes::ingest_limits::IngestConfig;
    use tokio::io::AsyncWriteExt;
    let Some(s) = Server::start_with(keygate_server::ServerConfig {
        ingest: IngestConfig {
            max_in_flight: 2,
            max_waiting: 4,
            max_wait: std::time::Duration::from_millis(300),
            ..IngestConfig::default()
        },
        ..test_config()
    })
    .await
    else {
        return;
    };
    let user = s.user("collector", &[DATAINGESTION]).await;
    let (_, access_id, _) = s.lmv1_for(user, "known id").await;
    let (_, token) = s.token_for(user, "bearer").await;
    // Someone who knows the access id (not a secret), but not the key, starts two
    // LMv1 pushes whose bodies trickle in: the signature cannot be checked until
    // each body is whole.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(s.addr)
            .await
            .expect("connect");
        let head = format!(
            "POST /rest/log/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: LMv1 {access_id}:{sig}:{ts}\r\n\
             Content-Type: application/json\r\nContent-Length: 64\r\n\r\n[",
            sig = "A".repeat(44),
            ts = now_millis()
        );
        c.write_all(head.as_bytes()).await.expect("head");
        slow.push(c);
    }
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            s.metric("keygate_ingest_queue{state=\"in_flight\"}").await == Some(1.0)
                && s.metric("keygate_ingest_queue{state=\"waiting\"}").await == Some(1.0)
        })
        .await,
        "one holds a place, the other waits for an unverified one"
    );
    // A verified push still finds the other place.
    let r = push(&s, Method::POST, "/log/ingest", &bearer(&token), b"[]").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    drop(slow);
}
