//! LMv1 tokens: creation, signed requests, tampering, the clock window, precise 401s,
//! replay protection, the body limit, sealed storage and master-key handling.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::cli::keygate_async;
use super::support::*;

#[tokio::test]
async fn lmv1_tokens_are_created_shown_once_and_need_no_data_ingestion() {
    let Some(s) = Server::start().await else {
        return;
    };
    let viewer = s.user("viewer", &[READONLY]).await;
    for path in [
        format!("/setting/admins/{viewer}/apitokens"),
        format!("/setting/admins/{viewer}/apitokens?type=lmv1"),
    ] {
        let r = s
            .post(&s.admin_token, &path, json!({"note": "script"}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["type"], "lmv1");
        let id = r.body["accessId"].as_str().expect("accessId");
        let key = r.body["accessKey"].as_str().expect("accessKey");
        assert_eq!(id.len(), 20);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(key.len(), 40);
        assert!(!key.contains(char::is_whitespace));
        let later = s
            .get(
                &s.admin_token,
                &format!("/setting/admins/{viewer}/apitokens/{}", r.body["id"]),
            )
            .await;
        assert_eq!(later.body["accessKey"], "");
        assert_eq!(later.body["accessId"], id);
        assert!(!later.text.contains(key));
    }
    let list = s
        .get(
            &s.admin_token,
            &format!("/setting/admins/{viewer}/apitokens?type=lmv1"),
        )
        .await;
    assert_eq!(list.body["total"], 2);
    let list = s
        .get(&s.admin_token, "/setting/admins/apitokens?filter=type:lmv1")
        .await;
    assert_eq!(list.body["total"], 2);
    // Traces off does not concern LMv1.
    let (_, aid, key) = s.lmv1_for(1, "admin script").await;
    s.patch(
        &s.admin_token,
        "/setting/portal",
        json!({"tracesEnabled": false}),
    )
    .await;
    let r = s
        .lmv1(
            Method::GET,
            &aid,
            &key,
            "/setting/portal",
            None,
            now_millis(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .lmv1(
            Method::POST,
            &aid,
            &key,
            &format!("/setting/admins/{viewer}/apitokens"),
            Some("{}"),
            now_millis(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "LMv1 creation while Traces is off: {}",
        r.text
    );
    // While bearer creation is refused with 403 (reachable now that LMv1 authenticates).
    let ingest = s.user_via_lmv1(&aid, &key).await;
    let r = s
        .lmv1(
            Method::POST,
            &aid,
            &key,
            // The signature covers the body, not the query: the type goes in the body.
            &format!("/setting/admins/{ingest}/apitokens?type=bearer"),
            Some(r#"{"type":"bearer"}"#),
            now_millis(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.message().contains("Traces (APM) feature is off"),
        "{}",
        r.text
    );
    let r = s
        .lmv1(
            Method::PATCH,
            &aid,
            &key,
            "/setting/portal",
            Some(r#"{"tracesEnabled":true}"#),
            now_millis(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .lmv1(
            Method::POST,
            &aid,
            &key,
            // The signature covers the body, not the query: the type goes in the body.
            &format!("/setting/admins/{ingest}/apitokens?type=bearer"),
            Some(r#"{"type":"bearer"}"#),
            now_millis(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

impl Server {
    /// Creates a dataingestion user through an LMv1-signed POST; returns its id.
    async fn user_via_lmv1(&self, aid: &str, key: &str) -> i64 {
        let body = r#"{"username":"ingest","email":"ingest@example.com","roles":[{"id":2}]}"#;
        let r = self
            .lmv1(
                Method::POST,
                aid,
                key,
                "/setting/admins",
                Some(body),
                now_millis(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["id"].as_i64().expect("id")
    }
}

#[tokio::test]
async fn signed_requests_work_and_tampering_is_refused() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (tid, aid, key) = s.lmv1_for(1, "t").await;
    let now = now_millis();
    // GET without body, POST and PATCH with JSON bodies, a query string that is not
    // signed, a percent-encoded path (signed as sent), DELETE.
    let r = s
        .lmv1(
            Method::GET,
            &aid,
            &key,
            "/setting/admins/1/apitokens",
            None,
            now,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let user = s.user_via_lmv1(&aid, &key).await;
    let r = s
        .lmv1(
            Method::PATCH,
            &aid,
            &key,
            &format!("/setting/admins/1/apitokens/{tid}"),
            Some(r#"{"note":"patched"}"#),
            now,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["note"], "patched");
    let r = s
        .lmv1(
            Method::GET,
            &aid,
            &key,
            "/setting/admins/apitokens?filter=type:lmv1&size=5",
            None,
            now,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], 1);
    let r = s
        .lmv1(
            Method::GET,
            &aid,
            &key,
            &format!("/setting/admins/%{:02X}", b'0' + user as u8),
            None,
            now,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "percent-encoded path: {}", r.text);
    assert_eq!(r.body["username"], "ingest");

    // Signed one way, sent another: verb, body, path, query-as-path.
    let sig_for = |verb: &str, body: &str, path: &str| {
        let k = keygate_core::lmv1::AccessKey::from_secret(key.clone());
        keygate_core::lmv1::sign(&k, verb, now, body.as_bytes(), path)
    };
    let header = |sig: String| format!("LMv1 {aid}:{sig}:{now}");
    let tampered = [
        (
            Method::PUT,
            "/setting/admins/1/apitokens/1",
            r#"{"note":"x"}"#,
            sig_for("PATCH", r#"{"note":"x"}"#, "/setting/admins/1/apitokens/1"),
        ),
        (
            Method::PATCH,
            "/setting/admins/1/apitokens/1",
            r#"{"note":"y"}"#,
            sig_for("PATCH", r#"{"note":"x"}"#, "/setting/admins/1/apitokens/1"),
        ),
        (
            Method::PATCH,
            "/setting/admins/1/apitokens/2",
            r#"{"note":"x"}"#,
            sig_for("PATCH", r#"{"note":"x"}"#, "/setting/admins/1/apitokens/1"),
        ),
        (
            Method::GET,
            "/setting/admins?size=5",
            "",
            sig_for("GET", "", "/setting/admins?size=5"),
        ),
    ];
    for (method, path, body, sig) in tampered {
        let mut rb = s
            .client
            .request(method.clone(), s.url(path))
            .header("Authorization", header(sig));
        if !body.is_empty() {
            rb = rb.header("Content-Type", "application/json").body(body);
        }
        let r = send(rb).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            r.text
        );
        assert!(
            r.message().contains("signature does not match"),
            "{}",
            r.text
        );
    }
    // Nothing the tampered requests asked for happened.
    let t = s
        .get(
            &s.admin_token,
            &format!("/setting/admins/1/apitokens/{tid}"),
        )
        .await;
    assert_eq!(t.body["note"], "patched");
}

#[tokio::test]
async fn a_request_signed_by_python_hmac_is_accepted() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, aid, key) = s.lmv1_for(1, "py").await;
    let ts = now_millis().to_string();
    let body = r#"{"companyName":"Signed by Python"}"#;
    let script = "import base64,hashlib,hmac,sys\n\
                  k,verb,ts,body,path=sys.argv[1:6]\n\
                  m=hmac.new(k.encode(),(verb+ts+body+path).encode(),hashlib.sha256)\n\
                  print(base64.b64encode(m.hexdigest().encode()).decode())";
    let out = tokio::process::Command::new("python3")
        .args(["-c", script, &key, "PATCH", &ts, body, "/setting/portal"])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let r = send(
        s.client
            .patch(s.url("/setting/portal"))
            .header("Authorization", format!("LMv1 {aid}:{sig}:{ts}"))
            .header("Content-Type", "application/json")
            .body(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["companyName"], "Signed by Python");
}

#[tokio::test]
async fn timestamps_are_checked_against_the_window_exactly() {
    let t = 1_790_000_000_000_i64;
    let Some(s) = Server::start_with(keygate_server::ServerConfig {
        clock: keygate_server::state::Clock::fixed(t),
        ..test_config()
    })
    .await
    else {
        return;
    };
    let (_, aid, key) = s.lmv1_for(1, "clock").await;
    let window = 1_800_000;
    for (ts, ok) in [
        (t - window, true),
        (t + window, true),
        (t - window - 1, false),
        (t + window + 1, false),
    ] {
        let r = s
            .lmv1(Method::GET, &aid, &key, "/setting/portal", None, ts)
            .await;
        assert_eq!(r.status == StatusCode::OK, ok, "ts {ts}: {}", r.text);
        if !ok {
            assert!(
                r.message().contains("outside the allowed window"),
                "{}",
                r.text
            );
            assert_eq!(r.body["errorDetail"]["serverTime"], t);
        }
    }
    let r = s
        .lmv1(Method::GET, &aid, &key, "/setting/portal", None, t / 1000)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.message().contains("looks like epoch seconds"),
        "{}",
        r.text
    );
    // Malformed timestamps never reach the signature check.
    for ts in [
        "-5",
        "1.5e12",
        "1234567890123456789012345",
        "99999999999999999999",
    ] {
        let r = send(
            s.client
                .get(s.url("/setting/portal"))
                .header("Authorization", format!("LMv1 {aid}:c2ln:{ts}")),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{ts}");
        assert!(
            r.message().contains("malformed LMv1 credential"),
            "{ts}: {}",
            r.text
        );
    }
    // A narrower window from portal settings applies at once.
    s.patch(
        &s.admin_token,
        "/setting/portal",
        json!({"lmv1ClockSkewSeconds": 60}),
    )
    .await;
    let r = s
        .lmv1(Method::GET, &aid, &key, "/setting/portal", None, t - 60_001)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = s
        .lmv1(Method::GET, &aid, &key, "/setting/portal", None, t - 60_000)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn each_lmv1_refusal_has_its_own_message() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ops", &[DATAINGESTION]).await;
    let (tid, aid, key) = s.lmv1_for(user, "t").await;
    let now = now_millis();
    let raw = |v: String| {
        send(
            s.client
                .get(s.url("/setting/portal"))
                .header("Authorization", v),
        )
    };
    let cases = [
        (
            raw(format!("LMv1 {aid}:sig")).await,
            "expected exactly three parts",
        ),
        (raw(format!("LMv1 {aid}:sig:12ab")).await, "digits only"),
        (raw(format!("LMv1 {aid}:si#g:{now}")).await, "not base64"),
        (
            raw(format!("LMv1 {aid}-x:sig:{now}")).await,
            "only letters and digits",
        ),
        (
            raw(format!("LMv1 AAAAAAAAAAAAAAAAAAAA:c2ln:{now}")).await,
            "access id is not known",
        ),
        (
            raw(format!("LMv1 {aid}:c2lnbmF0dXJl:{now}")).await,
            "signature does not match",
        ),
    ];
    for (r, expected) in cases {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert!(r.message().contains(expected), "{expected}: {}", r.text);
        assert!(r.headers.contains_key("www-authenticate"));
    }
    assert_eq!(
        s.lmv1(Method::GET, &aid, &key, "/setting/portal", None, now)
            .await
            .status,
        StatusCode::OK
    );
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{user}/apitokens/{tid}"),
        json!({"status": 1}),
    )
    .await;
    let r = s
        .lmv1(Method::GET, &aid, &key, "/setting/portal", None, now)
        .await;
    assert!(r.message().contains("LMv1 token is disabled"), "{}", r.text);
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{user}/apitokens/{tid}"),
        json!({"status": 2}),
    )
    .await;
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{user}"),
        json!({"status": "suspended"}),
    )
    .await;
    let r = s
        .lmv1(Method::GET, &aid, &key, "/setting/portal", None, now)
        .await;
    assert!(r.message().contains("suspended"), "{}", r.text);
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{user}"),
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(
        s.lmv1(Method::GET, &aid, &key, "/setting/portal", None, now)
            .await
            .status,
        StatusCode::OK
    );
    s.delete(
        &s.admin_token,
        &format!("/setting/admins/{user}/apitokens/{tid}"),
    )
    .await;
    let r = s
        .lmv1(Method::GET, &aid, &key, "/setting/portal", None, now)
        .await;
    assert!(r.message().contains("access id is not known"), "{}", r.text);
}

#[tokio::test]
async fn replay_protection_refuses_a_second_identical_request_when_on() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, aid, key) = s.lmv1_for(1, "t").await;
    let now = now_millis();
    for _ in 0..2 {
        let r = s
            .lmv1(Method::GET, &aid, &key, "/setting/portal", None, now)
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "off by default: identical requests are fine"
        );
    }
    let r = s
        .patch(
            &s.admin_token,
            "/setting/portal",
            json!({"lmv1ReplayProtection": true}),
        )
        .await;
    assert_eq!(r.body["lmv1ReplayProtection"], true);
    let now = now_millis();
    assert_eq!(
        s.lmv1(Method::GET, &aid, &key, "/setting/admins", None, now)
            .await
            .status,
        StatusCode::OK
    );
    let r = s
        .lmv1(Method::GET, &aid, &key, "/setting/admins", None, now)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.message().contains("replayed request"), "{}", r.text);
    // A new signature (another millisecond) is a new request.
    assert_eq!(
        s.lmv1(Method::GET, &aid, &key, "/setting/admins", None, now + 1)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn oversized_lmv1_bodies_are_refused_before_hashing() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, aid, key) = s.lmv1_for(1, "t").await;
    let body = format!("{{\"note\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let r = s
        .lmv1(
            Method::PATCH,
            &aid,
            &key,
            "/setting/portal",
            Some(&body),
            now_millis(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.body["errorCode"], 413);
}

#[tokio::test]
async fn a_chunked_lmv1_body_is_cut_off_at_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, aid, key) = s.lmv1_for(1, "t").await;
    let ts = now_millis();
    let k = keygate_core::lmv1::AccessKey::from_secret(key);
    // Any signature will do: the body must be refused before it is finished.
    let sig = keygate_core::lmv1::sign(&k, "PATCH", ts, b"{}", "/setting/portal");
    let mut tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let head = format!(
        "PATCH /santaba/rest/setting/portal HTTP/1.1\r\nHost: x\r\nAuthorization: LMv1 {aid}:{sig}:{ts}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "a".repeat(64 * 1024));
    // 2 MiB in 64 KiB chunks, without ever declaring a length; stop once refused.
    for _ in 0..32 {
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut reply),
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("HTTP/1.1 413"),
        "{}",
        text.lines().next().unwrap_or("")
    );
    assert!(text.contains("\"errorCode\":413"), "{text}");
}

#[tokio::test]
async fn stored_rows_hold_no_plaintext_key() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (id, _, key) = s.lmv1_for(1, "t").await;
    let raw = s.raw_contents().await;
    assert!(
        !raw.windows(key.len()).any(|w| w == key.as_bytes()),
        "plaintext access key stored"
    );
    let sealed = s
        .with_key(
            s.key.clone(),
            |store| async move { store.sealed_key(id).await },
        )
        .await
        .expect("open")
        .expect("sealed key present");
    assert_eq!(sealed.len(), 12 + 40 + 16, "nonce + ciphertext + tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_rotation_keeps_every_lmv1_token_working() {
    let Some(mut s) = Server::start().await else {
        return;
    };
    let mut tokens = Vec::new();
    for n in 0..3 {
        tokens.push(s.lmv1_for(1, &format!("t{n}")).await);
    }
    s.stop().await;
    let old = s.key.clone();
    let o = keygate_async(&s, &["master-key", "rotate"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("re-sealed 3 LMv1 access keys"));
    let new = keygate_store::MasterKey::load(&s.key_file()).expect("new key file");
    assert!(
        s.with_key(old, |_| async {}).await.is_err(),
        "old key refused"
    );
    let s2 = Server::launch(&s.db, new, test_config()).await;
    for (_, aid, key) in &tokens {
        let r = s2
            .lmv1(Method::GET, aid, key, "/setting/portal", None, now_millis())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // LMv1 creation works under the new key too.
    let (_, aid, key) = {
        let o = keygate_async(
            &s,
            &["token", "create", "--type", "lmv1", "--user", "admin"],
        )
        .await;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut parts = out.split_whitespace();
        (
            0,
            parts.next().expect("id").to_owned(),
            parts.next().expect("key").to_owned(),
        )
    };
    let ok = eventually(std::time::Duration::from_secs(5), || async {
        s2.lmv1(
            Method::GET,
            &aid,
            &key,
            "/setting/portal",
            None,
            now_millis(),
        )
        .await
        .status
            == StatusCode::OK
    })
    .await;
    assert!(ok, "a CLI-made LMv1 token reaches the running server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_is_finished_at_the_next_start() {
    let Some(mut s) = Server::start().await else {
        return;
    };
    let (_, aid, key) = s.lmv1_for(1, "t").await;
    s.stop().await;
    // The state a crash between the commit and the rename leaves behind.
    let new = keygate_store::MasterKey::generate().expect("key");
    let pending = std::path::PathBuf::from(format!("{}.new", s.key_file().display()));
    new.write_new_file(&pending).expect("pending file");
    let rotated = new.clone();
    s.with_key(s.key.clone(), |store| async move {
        store.rotate(&rotated).await
    })
    .await
    .expect("open");
    let o = keygate_async(&s, &["portal", "show"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!pending.exists(), "the pending key was moved into place");
    let now_key = keygate_store::MasterKey::load(&s.key_file()).expect("key");
    let s2 = Server::launch(&s.db, now_key, test_config()).await;
    assert_eq!(
        s2.lmv1(
            Method::GET,
            &aid,
            &key,
            "/setting/portal",
            None,
            now_millis()
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_file_problems_stop_start_up_with_a_clear_message() {
    let Some(s) = Server::start().await else {
        return;
    };
    let key_file = s.key_file();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let o = keygate_async(&s, &["portal", "show"]).await;
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("can be read by group or others") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    // A different key: refused, and the store is untouched.
    let other = s.dir.as_ref().expect("dir").path().join("other.key");
    keygate_store::MasterKey::generate()
        .expect("key")
        .write_new_file(&other)
        .expect("write");
    let o = keygate_async(
        &s,
        &[
            "--master-key-file",
            other.to_str().expect("path"),
            "portal",
            "show",
        ],
    )
    .await;
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let missing = s.dir.as_ref().expect("dir").path().join("missing.key");
    let o = keygate_async(
        &s,
        &[
            "--master-key-file",
            missing.to_str().expect("path"),
            "portal",
            "show",
        ],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        keygate_async(&s, &["portal", "show"])
            .await
            .status
            .success()
    );
}

#[tokio::test]
async fn one_key_holder_flooding_replay_protection_is_refused_and_others_are_not() {
    let Some(s) = Server::start_with(keygate_server::ServerConfig {
        replay_limits: (40, 10),
        ..test_config()
    })
    .await
    else {
        return;
    };
    let (_, flooder, flooder_key) = s.lmv1_for(1, "flooder").await;
    let (_, other, other_key) = s.lmv1_for(1, "other").await;
    let r = s
        .patch(
            &s.admin_token,
            "/setting/portal",
            json!({"lmv1ReplayProtection": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let now = now_millis();
    // Distinct, validly signed requests: the token's share of the memory, then 429.
    let mut codes = Vec::new();
    for n in 0..15 {
        let r = s
            .lmv1(
                Method::GET,
                &flooder,
                &flooder_key,
                "/setting/portal",
                None,
                now + n,
            )
            .await;
        codes.push(r.status);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers.contains_key("retry-after"), "{}", r.text);
            assert!(r.message().contains("replay protection"), "{}", r.text);
        }
    }
    assert_eq!(
        codes.iter().filter(|c| **c == StatusCode::OK).count(),
        10,
        "{codes:?}"
    );
    assert!(
        codes[10..]
            .iter()
            .all(|c| *c == StatusCode::TOO_MANY_REQUESTS)
    );
    // Every other key holder is served (up to its own share), and replays are still
    // caught.
    for n in 0..10 {
        let r = s
            .lmv1(
                Method::GET,
                &other,
                &other_key,
                "/setting/portal",
                None,
                now + n,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.text);
    }
    let r = s
        .lmv1(
            Method::GET,
            &flooder,
            &flooder_key,
            "/setting/portal",
            None,
            now,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.message().contains("replayed"), "{}", r.text);
}

#[tokio::test]
async fn the_unsigned_query_cannot_change_what_a_signed_write_does() {
    let Some(s) = Server::start().await else {
        return;
    };
    let ingest = s.user("ingest", &[DATAINGESTION]).await;
    let (_, aid, key) = s.lmv1_for(1, "admin's key").await;
    let path = format!("/setting/admins/{ingest}/apitokens");
    let count = |kind: &'static str| {
        let s = &s;
        let path = path.clone();
        async move {
            s.get(&s.admin_token, &format!("{path}?type={kind}"))
                .await
                .body["total"]
                .as_i64()
                .unwrap_or(-1)
        }
    };
    // A captured create (no type: an LMv1 token), replayed with ?type=bearer added.
    let body = r#"{"note":"x"}"#;
    let now = now_millis();
    let r = s
        .lmv1(
            Method::POST,
            &aid,
            &key,
            &format!("{path}?type=bearer"),
            Some(body),
            now,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.message().contains("signed body"), "{}", r.text);
    assert_eq!(count("bearer").await, 0, "no bearer token was made");
    // The type in the signed body works, alone or with an agreeing query.
    for (query, body) in [
        ("", r#"{"note":"b1","type":"bearer"}"#),
        ("?type=bearer", r#"{"note":"b2","type":"bearer"}"#),
    ] {
        let r = s
            .lmv1(
                Method::POST,
                &aid,
                &key,
                &format!("{path}{query}"),
                Some(body),
                now_millis(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["type"], "bearer");
    }
    // A query that disagrees with the body is refused for everyone.
    let r = s
        .post(
            &s.admin_token,
            &format!("{path}?type=lmv1"),
            json!({"type": "bearer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // The query alone still works where nothing is signed (bearer), and ?type=lmv1
    // (the default) with LMv1.
    let r = s
        .post(&s.admin_token, &format!("{path}?type=bearer"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .lmv1(
            Method::POST,
            &aid,
            &key,
            &format!("{path}?type=lmv1"),
            Some(body),
            now_millis(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["type"], "lmv1");
    assert_eq!(count("bearer").await, 3);
}
