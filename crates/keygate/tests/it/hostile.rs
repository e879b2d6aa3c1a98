//! Hostile input over raw TCP: oversized heads and bodies, duplicate JSON keys,
//! control characters, method overrides, TRACE, slow clients, path tricks, and the
//! concurrency and time limits. Each shows the clear refusal and that nothing changed.

use std::time::Duration;

use keygate_server::ServerConfig;
use keygate_server::listen::Limits;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::*;

/// Sends `head` (and `body`) as-is and returns what the server answered before it
/// closed the connection or went quiet for two seconds.
async fn raw(s: &Server, head: &[u8], body: &[u8]) -> String {
    let mut c = TcpStream::connect(s.addr).await.expect("connect");
    // The server may answer (and close) before it has read everything; a failed
    // write is then expected, and the answer is still there to read.
    let _ = c.write_all(head).await;
    let _ = c.write_all(body).await;
    read_answer(&mut c).await
}

async fn read_answer(c: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A request head with the admin's token.
fn head(s: &Server, method: &str, path: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n{extra}\r\n",
        s.addr, s.admin_token
    )
    .into_bytes()
}

async fn token_note(s: &Server, user: i64, id: i64) -> (StatusCode, String) {
    let r = s
        .get(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{id}"),
        )
        .await;
    (r.status, r.body["note"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn oversized_heads_get_431_and_the_server_carries_on() {
    let Some(s) = Server::start().await else {
        return;
    };
    for size in [64 * 1024, 1024 * 1024] {
        let filler = "a".repeat(size);
        let h = head(
            &s,
            "GET",
            "/santaba/rest/setting/portal",
            &format!("X-Filler: {filler}\r\n"),
        );
        let answer = raw(&s, &h, b"").await;
        assert_eq!(status_of(&answer), 431, "{size} B header: {answer:.200}");
    }
    // Many small headers add up the same way.
    let many: String = (0..3000).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let answer = raw(
        &s,
        &head(&s, "GET", "/santaba/rest/setting/portal", &many),
        b"",
    )
    .await;
    assert_eq!(status_of(&answer), 431, "{answer:.200}");
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_100_mib_body_is_refused_from_its_length_and_changes_nothing() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, _) = s.token_for(user, "keep").await;
    let path = format!("/santaba/rest/setting/admins/{user}/apitokens/{id}");
    let h = head(
        &s,
        "PATCH",
        &path,
        "Content-Type: application/json\r\nContent-Length: 104857600\r\n",
    );
    // Only the first megabyte is ever sent: the answer comes from the declared length.
    let answer = raw(&s, &h, &vec![b' '; 1024 * 1024]).await;
    assert_eq!(status_of(&answer), 413, "{answer:.300}");
    assert!(answer.contains("larger than 65536 bytes"), "{answer:.300}");
    assert_eq!(
        token_note(&s, user, id).await,
        (StatusCode::OK, "keep".to_owned())
    );
}

/// A body that announces no length (chunked) is cut off at the API's limit as it
/// streams in: 413, and nothing changed.
#[tokio::test]
async fn a_chunked_body_past_the_limit_is_refused_as_it_streams() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, _) = s.token_for(user, "keep").await;
    let path = format!("/santaba/rest/setting/admins/{user}/apitokens/{id}");
    let h = head(
        &s,
        "PATCH",
        &path,
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
    );
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, " ".repeat(16 * 1024));
    let mut body = chunk.repeat(8).into_bytes();
    body.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(&s, &h, &body).await;
    assert_eq!(status_of(&answer), 413, "{answer:.300}");
    assert!(answer.contains("larger than 65536 bytes"), "{answer:.300}");
    assert_eq!(
        token_note(&s, user, id).await,
        (StatusCode::OK, "keep".to_owned())
    );
}

#[tokio::test]
async fn the_web_ui_takes_smaller_bodies_than_the_api() {
    let Some(s) = Server::start().await else {
        return;
    };
    let form = format!("username=admin&password={}&csrf=x", "p".repeat(20 * 1024));
    let h = format!(
        "POST /signin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        form.len()
    );
    let answer = raw(&s, h.as_bytes(), form.as_bytes()).await;
    assert_eq!(status_of(&answer), 413, "{answer:.300}");
    // The same size is fine for the API (64 KiB), which then judges the content.
    let note = format!("{{\"note\": \"{}\"}}", "n".repeat(20 * 1024));
    let h = head(
        &s,
        "POST",
        "/santaba/rest/setting/admins/1/apitokens?type=bearer",
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            note.len()
        ),
    );
    let answer = raw(&s, &h, note.as_bytes()).await;
    assert_eq!(status_of(&answer), 400, "{answer:.300}");
    assert!(answer.contains("at most 1024"), "{answer:.300}");
}

#[tokio::test]
async fn duplicate_json_keys_are_refused_at_any_depth() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, _) = s.token_for(user, "keep").await;
    let path = format!("/santaba/rest/setting/admins/{user}/apitokens/{id}");
    for body in [
        r#"{"note": "a", "note": "b"}"#,
        r#"{"note": "a", "status": 1, "status": 2}"#,
    ] {
        let h = head(
            &s,
            "PATCH",
            &path,
            &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ),
        );
        let answer = raw(&s, &h, body.as_bytes()).await;
        assert_eq!(status_of(&answer), 400, "{answer}");
        assert!(answer.contains("appears more than once"), "{answer}");
    }
    let role = r#"{"name": "r", "privileges": [{"objectType": "setting", "objectType": "x", "objectId": "*", "operation": "read"}]}"#;
    let h = head(
        &s,
        "POST",
        "/santaba/rest/setting/roles",
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            role.len()
        ),
    );
    let answer = raw(&s, &h, role.as_bytes()).await;
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert!(
        answer.contains("\\\"objectType\\\" appears more than once"),
        "{answer}"
    );
    assert_eq!(
        token_note(&s, user, id).await,
        (StatusCode::OK, "keep".to_owned())
    );
    let roles = s.get(&s.admin_token, "/setting/roles?filter=name:r").await;
    assert_eq!(roles.body["total"], 0);
}

#[tokio::test]
async fn control_characters_and_line_breaks_in_headers_are_refused() {
    let Some(s) = Server::start().await else {
        return;
    };
    // A bare CR inside a header value: the head is malformed.
    let h = format!(
        "GET /santaba/rest/setting/portal HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\rX-Injected: 1\r\n\r\n",
        s.admin_token
    );
    assert_eq!(status_of(&raw(&s, h.as_bytes(), b"").await), 400);
    // A header line without a colon (what a smuggled LF leaves behind).
    let h =
        "GET /santaba/rest/setting/portal HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nnot a header\r\n\r\n";
    assert_eq!(status_of(&raw(&s, h.as_bytes(), b"").await), 400);
    // Control characters inside a header value: refused before any handler, and the
    // answer does not echo the header.
    for ctl in ['\u{1}', '\u{0}', '\u{7f}', '\u{1b}'] {
        let bad = format!("{}{ctl}", &s.admin_token[..20]);
        let h = format!(
            "GET /santaba/rest/setting/portal HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bad}\r\n\r\n"
        );
        let answer = raw(&s, h.as_bytes(), b"").await;
        assert_eq!(status_of(&answer), 400, "{ctl:?}: {answer}");
        assert!(!answer.contains(&s.admin_token[..20]), "{answer}");
    }
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn method_overrides_are_ignored_and_trace_is_not_served() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, _) = s.token_for(user, "keep").await;
    let path = format!("/santaba/rest/setting/admins/{user}/apitokens/{id}");
    for header in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        let h = head(&s, "GET", &path, &format!("{header}: DELETE\r\n"));
        let answer = raw(&s, &h, b"").await;
        assert_eq!(status_of(&answer), 200, "{answer}");
        let h = head(
            &s,
            "POST",
            &path,
            &format!("{header}: DELETE\r\nContent-Length: 0\r\n"),
        );
        assert_eq!(status_of(&raw(&s, &h, b"").await), 405);
    }
    assert_eq!(
        token_note(&s, user, id).await,
        (StatusCode::OK, "keep".to_owned())
    );
    for p in [
        path.as_str(),
        "/santaba/rest/setting/portal",
        "/signin",
        "/",
    ] {
        let answer = raw(&s, &head(&s, "TRACE", p, ""), b"").await;
        assert_eq!(status_of(&answer), 405, "TRACE {p}: {answer}");
        assert!(!answer.contains(&s.admin_token), "TRACE echoed the request");
    }
}

#[tokio::test]
async fn a_client_sending_one_byte_a_second_is_cut_off_and_others_are_served() {
    let Some(s) = Server::start_with(ServerConfig {
        limits: Limits {
            header_timeout: Duration::from_secs(2),
            ..Limits::default()
        },
        ..test_config()
    })
    .await
    else {
        return;
    };
    let mut c = TcpStream::connect(s.addr).await.expect("connect");
    let head = b"GET /santaba/rest/setting/portal HTTP/1.1\r\nHost: slow\r\n\r\n";
    let mut sent = 0;
    let mut closed = false;
    for b in head {
        if c.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        sent += 1;
        // Others are served meanwhile.
        if sent == 1 {
            assert_eq!(
                s.get(&s.admin_token, "/setting/portal").await.status,
                StatusCode::OK
            );
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert_eq!(status_of(&answer), 408, "{answer}");
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(closed, "the connection stayed open for the whole slow head");
    assert!(
        sent < head.len(),
        "the slow head was accepted in full ({sent} bytes)"
    );
}

#[tokio::test]
async fn path_tricks_never_reach_a_token() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, _) = s.token_for(user, "keep").await;
    let tricks = [
        format!("/santaba/rest/setting/admins/{user}%2Fapitokens%2F{id}"),
        format!("/santaba/rest/setting/admins/{user}/apitokens%2F{id}"),
        format!("/santaba/rest/setting/admins//{user}/apitokens/{id}"),
        format!("/santaba/rest/setting/admins/{user}//apitokens/{id}"),
        format!("/santaba/rest/setting/admins/./{user}/apitokens/{id}"),
        format!("/santaba/rest/setting/admins/{user}/./apitokens/{id}"),
        format!("/santaba/rest/setting/admins/{user}/apitokens/{id}/."),
        format!("/santaba/rest/setting/admins/{user}/apitokens/x/../{id}"),
        format!("/santaba/rest/setting/admins/{user}/apitokens/%2E%2E/{id}"),
        format!("/santaba/rest//setting/admins/{user}/apitokens/{id}"),
        format!("/santaba/rest/setting/admins/{user}/apitokens/{id}%00"),
    ];
    for p in &tricks {
        let answer = raw(&s, &head(&s, "DELETE", p, ""), b"").await;
        let code = status_of(&answer);
        assert!(code == 400 || code == 404, "DELETE {p}: {answer}");
        assert!(answer.contains("errorMessage"), "DELETE {p}: {answer}");
    }
    assert_eq!(
        token_note(&s, user, id).await,
        (StatusCode::OK, "keep".to_owned())
    );
}

#[tokio::test]
async fn over_the_concurrency_limit_is_503_at_once_and_slow_bodies_time_out() {
    let Some(s) = Server::start_with(ServerConfig {
        limits: Limits {
            max_concurrent: 1,
            request_timeout: Duration::from_secs(2),
            ..Limits::default()
        },
        ..test_config()
    })
    .await
    else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, _) = s.token_for(user, "keep").await;
    let path = format!("/santaba/rest/setting/admins/{user}/apitokens/{id}");
    // Holds the only slot: a body that is announced but never finishes.
    let mut slow = TcpStream::connect(s.addr).await.expect("connect");
    let h = head(
        &s,
        "PATCH",
        &path,
        "Content-Type: application/json\r\nContent-Length: 100\r\n",
    );
    slow.write_all(&h).await.expect("head");
    slow.write_all(b"{\"note\": ").await.expect("part");
    // Let the server take the slot before anyone else asks for it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = eventually(Duration::from_secs(2), || async {
        let r = s.get(&s.admin_token, "/setting/portal").await;
        r.status == StatusCode::SERVICE_UNAVAILABLE && r.headers.get("retry-after").is_some()
    })
    .await;
    assert!(busy, "a second request is refused with 503 and Retry-After");
    let answer = read_answer(&mut slow).await;
    let answer = if answer.is_empty() {
        read_answer(&mut slow).await
    } else {
        answer
    };
    assert_eq!(status_of(&answer), 408, "{answer}");
    // The slot is free again, and the half-sent change was not applied.
    assert_eq!(
        token_note(&s, user, id).await,
        (StatusCode::OK, "keep".to_owned())
    );
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{id}"),
            json!({"note": "new"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn the_head_limit_is_the_configured_one_exactly() {
    let Some(s) = Server::start().await else {
        return;
    };
    let limit = Limits::default().max_header_bytes;
    // 40 KB: over the 32 KiB limit, under the read buffer's own bound.
    let h = head(
        &s,
        "GET",
        "/santaba/rest/setting/portal",
        &format!("X-Filler: {}\r\n", "a".repeat(40_000)),
    );
    assert!(h.len() > limit);
    let answer = raw(&s, &h, b"").await;
    assert_eq!(status_of(&answer), 431, "{answer:.200}");
    // Just under it is served.
    let base = head(&s, "GET", "/santaba/rest/setting/portal", "X-Filler: \r\n").len();
    let h = head(
        &s,
        "GET",
        "/santaba/rest/setting/portal",
        &format!("X-Filler: {}\r\n", "a".repeat(limit - base - 64)),
    );
    assert_eq!(status_of(&raw(&s, &h, b"").await), 200);
}

#[tokio::test]
async fn raw_filter_characters_in_the_query_work_as_curl_sends_them() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    s.token_for(user, "café <ops>").await;
    for query in [
        "filter=id>0",
        "filter=note:\"café%20<ops>\"",
        "filter=note~caf\u{e9}",
        "filter=createdOn>:1,note~\"<ops>\"",
    ] {
        let h = head(
            &s,
            "GET",
            &format!("/santaba/rest/setting/admins/{user}/apitokens?{query}"),
            "",
        );
        let answer = raw(&s, &h, b"").await;
        assert_eq!(status_of(&answer), 200, "{query}: {answer:.300}");
        assert!(answer.contains("\"total\":1"), "{query}: {answer:.600}");
    }
    // A body is passed on byte for byte, and the request after it is repaired too.
    let body = json!({"note": "a<b> \"c\" ?x=>"}).to_string();
    let mut two = head(
        &s,
        "POST",
        &format!("/santaba/rest/setting/admins/{user}/apitokens?type=bearer&x=<"),
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
    );
    two = String::from_utf8(two)
        .expect("ascii")
        .replace("Connection: close\r\n", "")
        .into_bytes();
    two.extend_from_slice(body.as_bytes());
    two.extend_from_slice(&head(
        &s,
        "GET",
        &format!("/santaba/rest/setting/admins/{user}/apitokens?filter=note~\"a<b>%20\""),
        "",
    ));
    let answer = raw(&s, &two, b"").await;
    assert_eq!(
        answer.matches("HTTP/1.1 200 OK").count(),
        2,
        "{answer:.2000}"
    );
    let r = s
        .get(&s.admin_token, &format!("/setting/admins/{user}/apitokens"))
        .await;
    let notes: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["note"].as_str())
        .collect();
    assert!(notes.contains(&"a<b> \"c\" ?x=>"), "{notes:?}");
}

#[tokio::test]
async fn api_responses_are_never_cached_or_sniffed() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let created = s
        .post(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens?type=bearer"),
            json!({}),
        )
        .await;
    let refused = s.get("kgtnotatoken", "/setting/portal").await;
    let health = send(s.client.get(format!("http://{}/healthz", s.addr))).await;
    for r in [&created, &refused, &health] {
        assert_eq!(
            r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{}",
            r.text
        );
        assert_eq!(
            r.headers
                .get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff")
        );
    }
}

/// A body refused before it was read (413 from its declared length) ends its
/// connection: the answer says `Connection: close` (so a client does not send its next
/// request on it), and the server reads and discards the rest of the body first, so a
/// client still writing it finishes and reads the answer instead of a reset.
#[tokio::test]
async fn a_refused_body_closes_its_connection_and_says_so() {
    let Some(s) = Server::start().await else {
        return;
    };
    let len = 2 * 1024 * 1024;
    let head = format!(
        "PATCH /santaba/rest/setting/portal HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n",
        s.admin_token
    );
    let mut c = TcpStream::connect(s.addr).await.expect("connect");
    c.write_all(head.as_bytes()).await.expect("head");
    // The whole body, although the answer was decided from the head: every write
    // must go through.
    let body = vec![b' '; len];
    c.write_all(&body)
        .await
        .expect("the rest of the body is taken, not reset");
    let answer = read_answer(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
}
