//! The audit log: every token, user, role and portal change and every UI sign-in is
//! recorded with actor, address, target and outcome, in the change's own transaction,
//! served at /setting/accesslogs to `useraccess read`, and pruned past retention.

use std::time::Duration;

use keygate_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::cli::keygate_async;
use super::support::*;
use super::ui_http::signin;

/// Entries matching `filter`, oldest first.
async fn entries(s: &Server, filter: &str) -> Vec<Value> {
    let path = format!("/setting/accesslogs?size=1000&sort=id&filter={filter}");
    let r = s.get(&s.admin_token, &path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

fn actions(items: &[Value]) -> Vec<&str> {
    items.iter().filter_map(|e| e["action"].as_str()).collect()
}

#[tokio::test]
async fn token_lifecycle_is_recorded_by_id_and_masked_value_only() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "first").await;
    let path = format!("/setting/admins/{user}/apitokens/{id}");
    for body in [
        json!({"status": 1}),
        json!({"status": 2}),
        json!({"note": "renamed"}),
    ] {
        assert_eq!(
            s.patch(&s.admin_token, &path, body).await.status,
            StatusCode::OK
        );
    }
    let masked = s.get(&s.admin_token, &path).await.body["accessId"]
        .as_str()
        .expect("access id")
        .to_owned();
    assert_eq!(s.delete(&s.admin_token, &path).await.status, StatusCode::OK);

    let items = entries(&s, &format!("targetType:apitoken,targetId:{id}")).await;
    assert_eq!(
        actions(&items),
        [
            "apitoken.create",
            "apitoken.disable",
            "apitoken.enable",
            "apitoken.note",
            "apitoken.delete"
        ]
    );
    for e in &items {
        assert_eq!(e["username"], "admin");
        assert_eq!(e["ip"], "127.0.0.1");
        assert_eq!(e["target"], masked.as_str());
        assert_eq!(e["outcome"], "success");
        assert!(e["happenedOn"].as_i64().unwrap_or(0) > 1_700_000_000);
        assert!(e["happenedOnLocal"].as_str().unwrap_or("").ends_with("UTC"));
    }
    // Neither the API's answer nor the stored rows ever hold the secret.
    let all = s.get(&s.admin_token, "/setting/accesslogs?size=1000").await;
    assert!(!all.text.contains(&secret));
    let raw = s.raw_contents().await;
    assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
}

#[tokio::test]
async fn user_role_portal_and_cli_changes_are_recorded() {
    let Some(s) = Server::start().await else {
        return;
    };
    let role = s.role("ops", &[("setting", "apitoken", "write")]).await;
    let user = s.user("carol", &[role]).await;
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{user}"),
            json!({"email": "c@example.com", "password": "a-new-password-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .patch(
            &s.admin_token,
            "/setting/portal",
            json!({"maxTokensPerUser": 7}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        s.delete(&s.admin_token, &format!("/setting/admins/{user}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.delete(&s.admin_token, &format!("/setting/roles/{role}"))
            .await
            .status,
        StatusCode::OK
    );
    let out = keygate_async(&s, &["portal", "set", "--company-name", "Acme"]).await;
    assert!(out.status.success(), "{out:?}");

    let users = entries(&s, &format!("targetType:user,targetId:{user}")).await;
    assert_eq!(
        actions(&users),
        ["user.create", "user.update", "user.delete"]
    );
    assert_eq!(users[0]["target"], "carol");
    let detail = users[1]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("email") && detail.contains("password"),
        "{detail}"
    );
    assert!(!users[1].to_string().contains("a-new-password-1"));
    let roles = entries(&s, &format!("targetType:role,targetId:{role}")).await;
    assert_eq!(actions(&roles), ["role.create", "role.delete"]);
    assert_eq!(roles[0]["target"], "ops");
    let by_detail = entries(&s, "detail:\"maxTokensPerUser=7\"").await;
    assert_eq!(actions(&by_detail), ["portal.update"]);
    let portal = entries(&s, "action:portal.update").await;
    assert_eq!(portal.len(), 2, "{portal:?}");
    assert_eq!(portal[0]["detail"], "maxTokensPerUser=7");
    assert_eq!(portal[0]["username"], "admin");
    assert_eq!(portal[1]["detail"], "companyName=\"Acme\"");
    assert_eq!(portal[1]["username"], "keygate-cli");
    assert_eq!(portal[1]["ip"], "");
}

#[tokio::test]
async fn sign_ins_are_recorded_with_outcome_and_reason() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = s
        .post(
            &s.admin_token,
            "/setting/admins",
            json!({"username": "dana", "email": "d@x.io", "roles": [{"id": READONLY}], "password": "dana-password-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        signin(&s, "dana", "wrong-password", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        signin(&s, "nobody<script>", "whatever-1", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        signin(&s, "dana", "dana-password-1", None).await.status,
        StatusCode::SEE_OTHER
    );
    let items = entries(&s, "action:signin").await;
    let summary: Vec<(String, String, String)> = items
        .iter()
        .map(|e| {
            (
                e["username"].as_str().unwrap_or("").to_owned(),
                e["outcome"].as_str().unwrap_or("").to_owned(),
                e["detail"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let row = |u: &str, o: &str, d: &str| (u.to_owned(), o.to_owned(), d.to_owned());
    assert_eq!(
        summary,
        [
            row("dana", "failure", "wrong password"),
            row("nobody<script>", "failure", "unknown user"),
            row("dana", "success", ""),
        ]
    );
    assert!(items.iter().all(|e| e["ip"] == "127.0.0.1"));
    assert!(
        !s.get(&s.admin_token, "/setting/accesslogs?size=1000")
            .await
            .text
            .contains("dana-password-1")
    );
}

#[tokio::test]
async fn a_change_the_store_refuses_leaves_no_entry_and_changes_nothing() {
    let Some(s) = Server::start().await else {
        return;
    };
    // No DataIngestion: the create is refused inside the store transaction.
    let user = s.user("viewer", &[READONLY]).await;
    let before = s.get(&s.admin_token, "/setting/accesslogs?size=1000").await;
    let r = s
        .post(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens?type=bearer"),
            json!({"note": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let after = s.get(&s.admin_token, "/setting/accesslogs?size=1000").await;
    assert_eq!(before.body["total"], after.body["total"]);
    assert_eq!(before.body["items"], after.body["items"]);
    let tokens = s
        .get(&s.admin_token, &format!("/setting/admins/{user}/apitokens"))
        .await;
    assert_eq!(tokens.body["total"], 0);
}

#[tokio::test]
async fn access_logs_need_useraccess_read_and_reject_bad_queries() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (_, own) = s.token_for(user, "t").await;
    let r = s.get(&own, "/setting/accesslogs").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.message().contains("useraccess read"), "{}", r.message());

    let viewer = s
        .role("auditor", &[("setting", "useraccess", "read")])
        .await;
    let auditor = s.user("auditor", &[viewer, DATAINGESTION]).await;
    let (_, auditor_token) = s.token_for(auditor, "a").await;
    let r = s.get(&auditor_token, "/setting/accesslogs").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["total"].as_i64().unwrap_or(0) >= 4);
    // Newest first by default.
    let ids: Vec<i64> = r.body["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["id"].as_i64()).collect())
        .unwrap_or_default();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let one = s
        .get(&auditor_token, &format!("/setting/accesslogs/{}", ids[0]))
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["id"], ids[0]);
    assert_eq!(
        s.get(&auditor_token, "/setting/accesslogs/999999")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for bad in [
        "/setting/accesslogs?size=1001",
        "/setting/accesslogs?filter=password:x",
        "/setting/accesslogs?sort=secret",
        "/setting/accesslogs?fields=accessKey",
    ] {
        let r = s.get(&auditor_token, bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    // Time window and paging.
    let now = now_millis() / 1000;
    let r = s
        .get(
            &auditor_token,
            &format!(
                "/setting/accesslogs?filter=happenedOn>:{},happenedOn<:{}&size=2&offset=1",
                now - 600,
                now + 600
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["items"].as_array().map_or(0, Vec::len), 2);
    let future = s
        .get(
            &auditor_token,
            &format!("/setting/accesslogs?filter=happenedOn>{}", now + 600),
        )
        .await;
    assert_eq!(future.body["total"], 0);
}

#[tokio::test]
async fn entries_past_retention_are_pruned_in_the_background() {
    let Some(s) = Server::start().await else {
        return;
    };
    s.user("someone", &[READONLY]).await;
    let before = s.get(&s.admin_token, "/setting/accesslogs").await;
    assert!(before.body["total"].as_i64().unwrap_or(0) >= 1);
    // Restart ten seconds later (by the clock, not by sleeping) with a one-second
    // retention: every entry so far is past it.
    let s = s
        .restart_with(ServerConfig {
            audit_retention: Duration::from_secs(1),
            clock: keygate_server::state::Clock::fixed(now_millis() + 10_000),
            ..test_config()
        })
        .await;
    let pruned = eventually(Duration::from_secs(5), || async {
        s.get(&s.admin_token, "/setting/accesslogs").await.body["total"] == 0
    })
    .await;
    assert!(pruned, "old entries pruned at start-up");
    // New entries are kept until they age.
    s.user("another", &[READONLY]).await;
    assert_eq!(
        s.get(&s.admin_token, "/setting/accesslogs").await.body["total"],
        1
    );
}

#[tokio::test]
async fn changes_refused_for_want_of_a_privilege_are_recorded_as_failures() {
    let Some(s) = Server::start().await else {
        return;
    };
    let pusher = s.user("pusher", &[DATAINGESTION]).await;
    let other = s.user("other", &[DATAINGESTION]).await;
    s.token_for(other, "theirs").await;
    let (_, own) = s.token_for(pusher, "mine").await;
    let r = s
        .post(
            &own,
            &format!("/setting/admins/{other}/apitokens?type=bearer"),
            json!({"note": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s
        .patch(&own, "/setting/portal", json!({"tracesEnabled": false}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s.delete(&own, &format!("/setting/admins/{other}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    let failures = entries(&s, "outcome:failure").await;
    let seen: Vec<(String, String, String)> = failures
        .iter()
        .map(|e| {
            (
                e["username"].as_str().unwrap_or("").to_owned(),
                e["action"].as_str().unwrap_or("").to_owned(),
                e["target"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let row = |a: &str, t: String| ("pusher".to_owned(), a.to_owned(), t);
    assert_eq!(
        seen,
        [
            row("apitoken.create", format!("bearer token of user {other}")),
            row("portal.update", "portal".to_owned()),
            row("user.delete", String::new()),
        ]
    );
    assert!(
        failures.iter().all(|e| e["ip"] == "127.0.0.1"
            && e["detail"].as_str().unwrap_or("").starts_with("refused: "))
    );
    // Nothing changed.
    assert_eq!(
        s.get(
            &s.admin_token,
            &format!("/setting/admins/{other}/apitokens")
        )
        .await
        .body["total"],
        1
    );
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.body["tracesEnabled"],
        true
    );
}

/// A user whose role grants nothing, with an LMv1 token (no owner requirement);
/// returns (user id, access id, key).
async fn powerless(s: &Server) -> (i64, String, String) {
    let nothing = s.role("nothing", &[]).await;
    let id = s.user("powerless", &[nothing]).await;
    let (_, access_id, key) = s.lmv1_for(id, "flood").await;
    (id, access_id, key)
}

#[tokio::test]
async fn refused_changes_cannot_grow_the_audit_log() {
    let burst = 5;
    let clock = keygate_server::state::Clock::fixed(now_millis());
    let Some(s) = Server::start_with(ServerConfig {
        refusal_throttle: keygate_auth::throttle::ThrottleConfig {
            burst: f64::from(burst),
            refill_per_second: 0.5,
            ..Default::default()
        },
        clock: clock.clone(),
        ..test_config()
    })
    .await
    else {
        return;
    };
    let (_, access_id, key) = powerless(&s).await;
    let post = |body: String| {
        let (access_id, key) = (access_id.clone(), key.clone());
        let s = &s;
        async move {
            s.lmv1(
                reqwest::Method::POST,
                &access_id,
                &key,
                "/setting/roles",
                Some(&body),
                now_millis(),
            )
            .await
        }
    };
    // Input is validated before anything is recorded: a 60 KB name is a 400.
    let r = post(json!({"name": "n".repeat(60_000)}).to_string()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(entries(&s, "username:powerless").await.is_empty());
    // Valid attempts: the burst is recorded, the rest answered 429 and only counted.
    let mut statuses = Vec::new();
    for n in 0..30 {
        statuses.push(
            post(json!({"name": format!("r{n}")}).to_string())
                .await
                .status,
        );
    }
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::FORBIDDEN)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        refused >= burst as usize && refused <= burst as usize + 2,
        "{statuses:?}"
    );
    assert_eq!(refused + limited, 30, "{statuses:?}");
    let recorded = entries(&s, "username:powerless,outcome:failure").await;
    assert_eq!(
        recorded.len(),
        refused,
        "one entry per answered 403 and no more"
    );
    // Once the bucket refills (the clock moved on), the next refusal is recorded with
    // a count of the rest.
    clock.advance(2200);
    let r = post(json!({"name": "later"}).to_string()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let summary = entries(&s, "action:suppressed").await;
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert!(
        summary[0]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with(&format!("{limited} more refused changes"))),
        "{summary:?}"
    );
    assert_eq!(summary[0]["username"], "powerless");
    // Nothing was created.
    let roles = s.get(&s.admin_token, "/setting/roles?filter=name~r").await;
    assert!(
        roles.body["items"]
            .as_array()
            .is_some_and(|a| a.iter().all(|r| r["name"] != "r0")),
        "{}",
        roles.text
    );
}

#[tokio::test]
async fn caller_text_in_the_audit_log_is_bounded_and_escaped() {
    let Some(s) = Server::start().await else {
        return;
    };
    // A sign-in name is not validated (it names no one), so it reaches the log as sent:
    // NUL, ESC, CR/LF, a bidi override and far too much of it.
    let name = format!(
        "admin\u{0}\r\n2026-01-01 admin signin success\u{1b}[31m\u{202e}{}",
        "x".repeat(5000)
    );
    let r = signin(&s, &name, "wrong-password", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let items = entries(&s, "action:signin").await;
    assert_eq!(items.len(), 1, "recorded on this backend too: {items:?}");
    let stored = items[0]["username"].as_str().expect("username");
    assert!(
        !stored.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{stored:?}"
    );
    assert!(
        stored.starts_with("admin\\u{0}\\u{d}\\u{a}2026"),
        "{stored:?}"
    );
    assert!(
        stored.chars().count() <= 260,
        "{} chars",
        stored.chars().count()
    );
    // The UI page shows the same bounded, escaped text.
    let (id, _) = super::ui_http::session(&s, "admin", "bootstrap-password").await;
    let page = send(
        reqwest::Client::new()
            .get(format!("http://{}/settings/user-access/audit", s.addr))
            .header("Cookie", format!("keygate_session={id}")),
    )
    .await;
    assert!(!page.text.contains('\u{1b}') && !page.text.contains('\u{0}'));
    assert!(page.text.len() < 200_000, "{} bytes", page.text.len());
}
