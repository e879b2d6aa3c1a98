//! The web UI over plain HTTP: sessions, CSRF, headers, escaping, timeouts and the
//! Add Bearer Token flow's server side.

use std::sync::atomic::Ordering;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::*;

/// A client that does not follow redirects, so each response can be inspected.
fn raw() -> reqwest::Client {
    crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set: &str) -> String {
    set.split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

fn hidden_csrf(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_owned()
}

/// Signs in through the real form; returns the sign-in response.
pub async fn signin(s: &Server, user: &str, password: &str, extra_cookie: Option<&str>) -> Resp {
    let c = raw();
    let page = send(c.get(format!("http://{}/signin", s.addr))).await;
    let login = cookie_value(&set_cookie(&page, "keygate_signin").expect("sign-in cookie"));
    let csrf = hidden_csrf(&page.text);
    assert_eq!(login, csrf, "double-submit value in cookie and form");
    let mut cookie = format!("keygate_signin={login}");
    if let Some(x) = extra_cookie {
        cookie.push_str("; ");
        cookie.push_str(x);
    }
    send(
        c.post(format!("http://{}/signin", s.addr))
            .header("Cookie", cookie)
            .form(&[("username", user), ("password", password), ("csrf", &csrf)]),
    )
    .await
}

/// Signs in and returns (session id, CSRF token from a page).
pub async fn session(s: &Server, user: &str, password: &str) -> (String, String) {
    let r = signin(s, user, password, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let id = cookie_value(&set_cookie(&r, "keygate_session").expect("session cookie"));
    let page = send(
        raw()
            .get(format!(
                "http://{}/settings/user-access/bearer-tokens",
                s.addr
            ))
            .header("Cookie", format!("keygate_session={id}")),
    )
    .await;
    let csrf = page
        .text
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_owned();
    assert!(
        !csrf.is_empty(),
        "page carries the CSRF token: {}",
        page.status
    );
    (id, csrf)
}

async fn with_cookie(
    s: &Server,
    method: Method,
    path: &str,
    id: &str,
    csrf: Option<&str>,
    body: Option<serde_json::Value>,
) -> Resp {
    let mut rb = raw()
        .request(method, format!("http://{}{path}", s.addr))
        .header("Cookie", format!("keygate_session={id}"));
    if let Some(c) = csrf {
        rb = rb.header("X-CSRF-Token", c);
    }
    if let Some(b) = body {
        rb = rb
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    send(rb).await
}

#[tokio::test]
async fn signin_sets_a_strict_session_cookie_and_rotates_it() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = signin(&s, "admin", "bootstrap-password", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = set_cookie(&r, "keygate_session").expect("cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    assert!(
        !set.contains("Secure"),
        "plain http://localhost: no Secure flag"
    );
    let first = cookie_value(&set);
    assert!(first.len() >= 43, "at least 256 bits of base62");
    let raw_db = s.raw_contents().await;
    assert!(
        ![raw_db]
            .iter()
            .any(|b| b.windows(first.len()).any(|w| w == first.as_bytes())),
        "session id stored only hashed"
    );
    // Signing in again rotates the id and ends the old session.
    let again = signin(
        &s,
        "admin",
        "bootstrap-password",
        Some(&format!("keygate_session={first}")),
    )
    .await;
    let second = cookie_value(&set_cookie(&again, "keygate_session").expect("cookie"));
    assert_ne!(first, second);
    assert_eq!(
        with_cookie(
            &s,
            Method::GET,
            "/santaba/rest/setting/portal",
            &first,
            None,
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_cookie(
            &s,
            Method::GET,
            "/santaba/rest/setting/portal",
            &second,
            None,
            None
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_answer() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = s.post(&s.admin_token, "/setting/admins", json!({"username": "robot", "email": "r@x.io", "roles": [{"id": 2}], "password": "robot-password", "apionly": true})).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut messages = Vec::new();
    for (u, p) in [
        ("admin", "wrong-password"),
        ("nobody", "wrong-password"),
        ("robot", "robot-password"),
    ] {
        let r = signin(&s, u, p, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{u}");
        assert!(set_cookie(&r, "keygate_session").is_none());
        let msg = r
            .text
            .split("id=\"signin-error\">")
            .nth(1)
            .and_then(|x| x.split('<').next())
            .unwrap_or("")
            .to_owned();
        messages.push(msg);
    }
    assert_eq!(
        messages[0],
        "Wrong username or password, or the user may not sign in."
    );
    assert!(messages.iter().all(|m| m == &messages[0]), "{messages:?}");
    // Without the sign-in cookie (a cross-site form post), the form is refused.
    let r = send(raw().post(format!("http://{}/signin", s.addr)).form(&[
        ("username", "admin"),
        ("password", "bootstrap-password"),
        ("csrf", "x"),
    ]))
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn session_changes_need_the_csrf_token() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (id, csrf) = session(&s, "admin", "bootstrap-password").await;
    let path = "/santaba/rest/setting/portal";
    assert_eq!(
        with_cookie(&s, Method::GET, path, &id, None, None)
            .await
            .status,
        StatusCode::OK,
        "reads need no token"
    );
    for token in [None, Some("wrong")] {
        let r = with_cookie(
            &s,
            Method::PATCH,
            path,
            &id,
            token,
            Some(json!({"companyName": "x"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.message().contains("CSRF"), "{}", r.text);
        let r = with_cookie(
            &s,
            Method::POST,
            "/ui/pending-token",
            &id,
            token,
            Some(json!({"adminId": 1})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.body["companyName"],
        "keygate",
        "nothing changed"
    );
    let r = with_cookie(
        &s,
        Method::PATCH,
        path,
        &id,
        Some(&csrf),
        Some(json!({"companyName": "Acme"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // State changes are never GETs: the UI's endpoints refuse them.
    let r = with_cookie(&s, Method::GET, "/ui/pending-token", &id, Some(&csrf), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = with_cookie(&s, Method::GET, "/signout", &id, None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (id, csrf) = session(&s, "admin", "bootstrap-password").await;
    let r = send(
        raw()
            .post(format!("http://{}/signout", s.addr))
            .header("Cookie", format!("keygate_session={id}"))
            .form(&[("csrf", "wrong")]),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "sign-out needs the CSRF token too"
    );
    let r = send(
        raw()
            .post(format!("http://{}/signout", s.addr))
            .header("Cookie", format!("keygate_session={id}"))
            .form(&[("csrf", csrf.as_str())]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&r, "keygate_session").is_some_and(|c| c.contains("Max-Age=0")));
    // The old cookie, replayed, no longer works anywhere.
    assert_eq!(
        with_cookie(
            &s,
            Method::GET,
            "/santaba/rest/setting/portal",
            &id,
            None,
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let page = with_cookie(
        &s,
        Method::GET,
        "/settings/user-access/users",
        &id,
        None,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers.get("location").and_then(|v| v.to_str().ok()),
        Some("/signin")
    );
}

#[tokio::test]
async fn sessions_end_after_the_idle_and_absolute_timeouts() {
    let t0 = 1_790_000_000_000_i64;
    let clock = keygate_server::state::Clock::fixed(t0);
    let keygate_server::state::Clock::Fixed(now) = clock.clone() else {
        unreachable!()
    };
    let Some(s) = Server::start_with(keygate_server::ServerConfig {
        clock,
        ..test_config()
    })
    .await
    else {
        return;
    };
    let check = |id: String| {
        let s = &s;
        async move {
            with_cookie(
                s,
                Method::GET,
                "/santaba/rest/setting/portal",
                &id,
                None,
                None,
            )
            .await
            .status
        }
    };
    // Moving the clock also ages the node's last confirmation; let the follower
    // re-confirm (readyz) before judging the session.
    let set = |t: i64| {
        let (s, now) = (&s, &now);
        async move {
            now.store(t, Ordering::SeqCst);
            let ready = eventually(std::time::Duration::from_secs(5), || async {
                send(raw().get(format!("http://{}/readyz", s.addr)))
                    .await
                    .status
                    == StatusCode::OK
            })
            .await;
            assert!(ready, "node confirmed current after the clock moved");
        }
    };
    let (id, _) = session(&s, "admin", "bootstrap-password").await;
    set(t0 + 30 * 60 * 1000).await;
    assert_eq!(
        check(id.clone()).await,
        StatusCode::OK,
        "exactly 30 minutes idle is still fine"
    );
    set(t0 + 60 * 60 * 1000 + 1000).await;
    assert_eq!(
        check(id).await,
        StatusCode::UNAUTHORIZED,
        "more than 30 minutes idle"
    );
    // Absolute: used every 20 minutes, it still ends 12 hours after sign-in.
    let start = t0 + 2 * 3600 * 1000;
    set(start).await;
    let (id, _) = session(&s, "admin", "bootstrap-password").await;
    let mut t = start;
    while t + 20 * 60 * 1000 <= start + 12 * 3600 * 1000 {
        t += 20 * 60 * 1000;
        set(t).await;
        assert_eq!(check(id.clone()).await, StatusCode::OK);
    }
    set(start + 12 * 3600 * 1000 + 60_000).await;
    assert_eq!(
        check(id).await,
        StatusCode::UNAUTHORIZED,
        "past the absolute timeout"
    );
    // Ended sessions are also removed from the store by the periodic prune.
    let (_live, _) = session(&s, "admin", "bootstrap-password").await;
    let t = (start + 12 * 3600 * 1000 + 60_000) / 1000;
    let left = s
        .with_key(s.key.clone(), |store| async move {
            store
                .prune_and_count_sessions(t - 1800, t - 12 * 3600)
                .await
        })
        .await
        .expect("open");
    assert_eq!(left, 1, "only the live session is left");
}

#[tokio::test]
async fn pages_carry_security_headers_and_escape_every_value() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (tid, _) = s.token_for(user, "<script>alert(1)</script>").await;
    let (id, _) = session(&s, "admin", "bootstrap-password").await;
    let page = with_cookie(
        &s,
        Method::GET,
        "/settings/user-access/bearer-tokens",
        &id,
        None,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let h = |n: &str| {
        page.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert!(h("content-security-policy").contains("script-src 'self'"));
    assert!(h("content-security-policy").contains("frame-ancestors 'none'"));
    assert!(!h("content-security-policy").contains("unsafe-inline"));
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert_eq!(h("referrer-policy"), "no-referrer");
    assert_eq!(h("cache-control"), "no-store");
    assert!(
        page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "note shown as text"
    );
    assert!(!page.text.contains("<script>alert(1)"), "never as markup");
    assert!(!page.text.contains("<script>"), "no inline script at all");
    assert!(page.text.contains(&format!("data-id=\"{tid}\"")));
}

#[tokio::test]
async fn a_generated_token_works_only_once_saved() {
    let Some(s) = Server::start().await else {
        return;
    };
    let ingest = s.user("ingest", &[DATAINGESTION]).await;
    let viewer = s.user("viewer", &[READONLY]).await;
    let (id, csrf) = session(&s, "admin", "bootstrap-password").await;
    let generate = |owner: i64| {
        with_cookie(
            &s,
            Method::POST,
            "/ui/pending-token",
            &id,
            Some(&csrf),
            Some(json!({"adminId": owner})),
        )
    };
    let r = generate(ingest).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token = r.body["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 49);
    assert_eq!(
        s.get(&token, "/setting/portal").await.status,
        StatusCode::UNAUTHORIZED,
        "unsaved: never authenticates"
    );
    // Saving for another user than it was generated for is refused.
    let save = |owner: i64| {
        with_cookie(
            &s,
            Method::POST,
            "/ui/bearer-tokens",
            &id,
            Some(&csrf),
            Some(json!({"adminId": owner, "note": "ui"})),
        )
    };
    let r = save(viewer).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = generate(ingest).await;
    let token = r.body["token"].as_str().expect("token").to_owned();
    let r = save(ingest).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        s.get(&token, &format!("/setting/admins/{ingest}"))
            .await
            .status,
        StatusCode::OK,
        "saved: works"
    );
    let listed = s
        .get(
            &s.admin_token,
            &format!("/setting/admins/{ingest}/apitokens"),
        )
        .await;
    assert_eq!(
        listed.body["items"][0]["accessId"],
        format!("{}{}{}", &token[..7], "*".repeat(38), &token[45..])
    );
    assert!(!listed.text.contains(&token));
    // The pending token is used up.
    assert_eq!(save(ingest).await.status, StatusCode::BAD_REQUEST);
    // A user without DataIngestion: the save says so.
    let r = generate(viewer).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = save(viewer).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.message().contains("DataIngestion"), "{}", r.text);
}

#[tokio::test]
async fn pages_need_the_matching_privilege() {
    let Some(s) = Server::start().await else {
        return;
    };
    let role = s.role("pusher", &[("dataingestion", "*", "write")]).await;
    let r = s.post(&s.admin_token, "/setting/admins", json!({"username": "pusher", "email": "p@x.io", "roles": [{"id": role}], "password": "pusher-password"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (id, _) = session(&s, "pusher", "pusher-password").await;
    for path in [
        "/settings/user-access/bearer-tokens",
        "/settings/user-access/bearer-tokens/add",
        "/settings/user-access/lmv1-tokens",
        "/settings/user-access/users",
        "/settings/user-access/roles/add",
        "/settings/portal",
    ] {
        let r = with_cookie(&s, Method::GET, path, &id, None, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(r.text.contains("403 — not allowed"), "{path}");
        assert!(!r.text.contains(">Bearer Tokens</a>"), "tab hidden: {path}");
    }
}

/// `keygate_password_checks_total` as the server reports it.
async fn password_checks(s: &Server) -> u64 {
    let r = send(raw().get(format!("http://{}/metrics", s.addr))).await;
    r.text
        .lines()
        .find_map(|l| l.strip_prefix("keygate_password_checks_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("keygate_password_checks_total is exported")
}

#[tokio::test]
async fn every_refused_sign_in_costs_one_password_check() {
    let Some(s) = Server::start().await else {
        return;
    };
    let mk = |body: serde_json::Value| async {
        let r = s.post(&s.admin_token, "/setting/admins", body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    };
    mk(json!({"username": "sleeper", "email": "s@x.io", "roles": [{"id": READONLY}], "password": "sleeper-password", "status": "suspended"})).await;
    mk(json!({"username": "robot", "email": "r@x.io", "roles": [{"id": READONLY}], "password": "robot-password", "apionly": true})).await;
    mk(json!({"username": "nopass", "email": "n@x.io", "roles": [{"id": READONLY}]})).await;
    // Suspended, API-only and password-less users, unknown users and wrong passwords:
    // the same work for each, so time does not tell which accounts exist.
    for (u, p) in [
        ("sleeper", "sleeper-password"),
        ("robot", "robot-password"),
        ("nopass", "any-password-1"),
        ("nobody", "any-password-1"),
        ("admin", "wrong-password"),
    ] {
        let before = password_checks(&s).await;
        let r = signin(&s, u, p, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{u}");
        assert_eq!(
            password_checks(&s).await,
            before + 1,
            "{u}: one argon2id check"
        );
    }
}

#[tokio::test]
async fn a_new_password_or_a_suspension_ends_the_users_sessions() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = s
        .post(
            &s.admin_token,
            "/setting/admins",
            json!({"username": "alice", "email": "a@x.io", "roles": [{"id": READONLY}], "password": "alice-password-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let alice = r.body["id"].as_i64().expect("id");
    let s = &s;
    let live = |id: String| async move {
        with_cookie(
            s,
            Method::GET,
            "/santaba/rest/setting/portal",
            &id,
            None,
            None,
        )
        .await
        .status
    };
    // A password reset by an administrator ends the session at once (also the one
    // the browser kept), while other users' sessions go on.
    let (first, _) = session(s, "alice", "alice-password-1").await;
    let (admins, _) = session(s, "admin", "bootstrap-password").await;
    assert_eq!(live(first.clone()).await, StatusCode::OK);
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{alice}"),
            json!({"password": "alice-password-2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(live(first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(live(admins.clone()).await, StatusCode::OK);
    // A suspension ends it too, and reactivating does not bring it back.
    let (second, _) = session(s, "alice", "alice-password-2").await;
    for status in ["suspended", "active"] {
        let r = s
            .patch(
                &s.admin_token,
                &format!("/setting/admins/{alice}"),
                json!({"status": status}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(live(second).await, StatusCode::UNAUTHORIZED);
    // Other changes (a note) leave sessions alone.
    let (third, _) = session(s, "alice", "alice-password-2").await;
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{alice}"),
            json!({"note": "hello"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(live(third).await, StatusCode::OK);
    assert_eq!(live(admins).await, StatusCode::OK);
}

#[tokio::test]
async fn the_added_message_says_only_what_the_server_knows() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, _) = s.token_for(user, "made").await;
    let masked = s
        .get(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{id}"),
        )
        .await
        .body["accessId"]
        .as_str()
        .expect("masked")
        .to_owned();
    let (sid, _) = session(&s, "admin", "bootstrap-password").await;
    let page = |q: String| {
        let sid = sid.clone();
        let s = &s;
        async move {
            with_cookie(
                s,
                Method::GET,
                &format!("/settings/user-access/bearer-tokens?added={q}"),
                &sid,
                None,
                None,
            )
            .await
        }
    };
    // Words no page of keygate's contains (not digits: a random CSRF token or masked
    // token on the page may hold any three).
    let r = page("Your%20account%20is%20locked.%20Call%20the%20helpdesk".to_owned()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.text.contains("locked") && !r.text.contains("helpdesk"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("class=\"flash\""));
    let r = page("99999".to_owned()).await;
    assert!(
        !r.text.contains("class=\"flash\""),
        "no such token, no message"
    );
    let r = page(id.to_string()).await;
    assert!(
        r.text
            .contains(&format!("Token {masked} added for ingest.")),
        "{}",
        r.text
    );
}

/// A sign-in changes the user's lastLoginOn, and the very next read shows it (users
/// are read from the node's memory, which the sign-in brings up to date).
#[tokio::test]
async fn a_sign_in_shows_in_the_users_last_login_at_once() {
    let Some(s) = Server::start().await else {
        return;
    };
    let before = s.get(&s.admin_token, "/setting/admins/1").await;
    assert_eq!(before.body["lastLoginOn"], 0, "{}", before.text);
    let r = signin(&s, "admin", "bootstrap-password", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let after = s.get(&s.admin_token, "/setting/admins/1").await;
    assert!(
        after.body["lastLoginOn"].as_i64().is_some_and(|t| t > 0),
        "{}",
        after.text
    );
    // A refused sign-in changes nothing there.
    let last = after.body["lastLoginOn"].clone();
    let r = signin(&s, "admin", "not-the-password", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.get(&s.admin_token, "/setting/admins/1").await.body["lastLoginOn"],
        last
    );
}

#[tokio::test]
async fn data_pages_escape_what_was_pushed_scope_it_and_refuse_others() {
    let Some(s) = Server::start().await else {
        return;
    };
    let pushers = s.role("pusher", &[("dataingestion", "*", "write")]).await;
    let tokens_only = s.role("minter", &[("setting", "apitoken", "write")]).await;
    for (user, role) in [("pusher", pushers), ("minter", tokens_only)] {
        let r = s.post(&s.admin_token, "/setting/admins", json!({"username": user, "email": format!("{user}@x.io"), "roles": [{"id": role}], "password": format!("{user}-password")})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let pusher_id = s
        .get(&s.admin_token, "/setting/admins?filter=username:pusher")
        .await
        .body["items"][0]["id"]
        .as_i64()
        .expect("pusher id");
    let (_, token) = s.token_for(pusher_id, "collector").await;
    // Resource names and ids may not hold '<' (LogicMonitor's rule), but quotes and '>'
    // they may; properties, descriptions and log lines may hold anything.
    let hostile = "web\" onmouseover=\"alert(1)\" x=\">";
    let now = now_millis();
    let push = |path: &'static str, body: serde_json::Value| {
        let rb = s
            .client
            .post(format!("http://{}/rest{path}", s.addr))
            .header("Authorization", format!("Bearer {token}"))
            .json(&body);
        send(rb)
    };
    let r = push("/v2/metric/ingest?create=true", json!([{
        "resourceIds": {"system.hostname": hostile}, "resourceName": hostile,
        "resourceDescription": "<script>alert(4)</script>",
        "resourceProperties": {"note": "<img src=x onerror=alert(2)>"},
        "dataSource": "Disk", "instances": [{"instanceName": "sda", "dataPoints": [
            {"dataPointName": "used", "dataPointType": "gauge", "values": {(now / 1000).to_string(): 1}}]}]
    }])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = push("/log/ingest", json!([{"msg": "<img src=x onerror=alert(3)>", "_lm.resourceId": {"system.hostname": hostile}, "<k>": "<v>"}])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let resource = s.get(&s.admin_token, "/keygate/data/resources").await.body["items"][0]["id"]
        .as_i64()
        .expect("resource id");

    let (pusher_session, _) = session(&s, "pusher", "pusher-password").await;
    // DataIngestion alone: the Data area is where the UI starts.
    let home = with_cookie(&s, Method::GET, "/", &pusher_session, None, None).await;
    assert_eq!(
        home.headers.get("location").and_then(|v| v.to_str().ok()),
        Some("/data/resources")
    );
    for path in [
        "/data/resources".to_owned(),
        format!("/data/resources/{resource}"),
        "/data/logs?q=img".to_owned(),
        "/data/traces".to_owned(),
    ] {
        let r = with_cookie(&s, Method::GET, &path, &pusher_session, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert!(
            r.headers
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.contains("script-src 'self'")),
            "{path}"
        );
        for raw_markup in [
            "<script>alert",
            "<img src=x",
            "<s>",
            "<1>",
            "<k>",
            " style=",
        ] {
            assert!(!r.text.contains(raw_markup), "{path} carries {raw_markup}");
        }
    }
    let page = with_cookie(
        &s,
        Method::GET,
        &format!("/data/resources/{resource}"),
        &pusher_session,
        None,
        None,
    )
    .await;
    assert!(
        page.text
            .contains("web&quot; onmouseover=&quot;alert(1)&quot; x=&quot;&gt;")
    );
    assert!(page.text.contains("&lt;script&gt;alert(4)&lt;/script&gt;"));
    assert!(page.text.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(page.text.contains("<svg class=\"chart\""));
    let logs = with_cookie(
        &s,
        Method::GET,
        "/data/logs?q=img",
        &pusher_session,
        None,
        None,
    )
    .await;
    assert!(logs.text.contains("&lt;img src=x onerror=alert(3)&gt;"));
    for (path, status) in [
        ("/data/resources/999999".to_owned(), StatusCode::NOT_FOUND),
        (
            "/data/traces/not-a-trace".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/data/traces/{}", "ab".repeat(16)),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = with_cookie(&s, Method::GET, &path, &pusher_session, None, None).await;
        assert_eq!(r.status, status, "{path}");
    }

    // Someone with neither useraccess read nor DataIngestion: 403 on each, no Data link.
    let (minter, _) = session(&s, "minter", "minter-password").await;
    for path in [
        "/data/resources".to_owned(),
        format!("/data/resources/{resource}"),
        "/data/logs".to_owned(),
        "/data/traces".to_owned(),
        format!("/data/traces/{}", "ab".repeat(16)),
    ] {
        let r = with_cookie(&s, Method::GET, &path, &minter, None, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(r.text.contains("403 — not allowed"), "{path}");
        assert!(
            !r.text.contains(hostile) && !r.text.contains("&lt;script&gt;"),
            "{path}"
        );
    }
    let r = with_cookie(
        &s,
        Method::GET,
        "/settings/user-access/bearer-tokens",
        &minter,
        None,
        None,
    )
    .await;
    assert!(!r.text.contains("href=\"/data/resources\""), "no Data link");
}
