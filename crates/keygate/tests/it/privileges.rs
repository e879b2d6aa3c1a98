//! Nobody grants what they do not hold: a caller who manages users and roles can
//! give, change or take away only privileges they hold themselves — in roles they
//! create or edit, roles they assign, users they change, and tokens they mint for
//! others — and at least one active user who can manage users always remains.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::*;

const USERACCESS_WRITE: (&str, &str, &str) = ("setting", "useraccess", "write");
const USERACCESS_READ: (&str, &str, &str) = ("setting", "useraccess", "read");
const APITOKEN_WRITE: (&str, &str, &str) = ("setting", "apitoken", "write");
const DATAINGESTION_WRITE: (&str, &str, &str) = ("dataingestion", "*", "write");
const PORTAL_WRITE: (&str, &str, &str) = ("setting", "portal", "write");
const TOKEN_INDEX: (&str, &str, &str) = ("setting", "tokenindex", "read");
const EVERY: [(&str, &str, &str); 6] = [
    USERACCESS_WRITE,
    USERACCESS_READ,
    APITOKEN_WRITE,
    DATAINGESTION_WRITE,
    PORTAL_WRITE,
    TOKEN_INDEX,
];

/// A user whose only job is managing users and roles (and who may hold a bearer
/// token); returns (user id, role id, bearer token).
async fn user_admin(s: &Server) -> (i64, i64, String) {
    let role = s
        .role(
            "user-admins",
            &[USERACCESS_WRITE, USERACCESS_READ, DATAINGESTION_WRITE],
        )
        .await;
    let id = s.user("ua", &[role]).await;
    let (_, token) = s.token_for(id, "user admin").await;
    (id, role, token)
}

fn refused_for(r: &Resp, privilege: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.message().contains(privilege) && r.message().contains("do not hold"),
        "the refusal names {privilege}: {}",
        r.text
    );
}

async fn audit(s: &Server, filter: &str) -> Vec<Value> {
    let r = s
        .get(
            &s.admin_token,
            &format!("/setting/accesslogs?size=1000&sort=id&filter={filter}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_user_admin_cannot_mint_tokens_for_someone_more_privileged() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, _, ua) = user_admin(&s).await;
    for path in [
        "/setting/admins/1/apitokens?type=bearer",
        "/setting/admins/1/apitokens",
    ] {
        let r = s.post(&ua, path, json!({"note": "now I am admin"})).await;
        refused_for(&r, "setting portal write");
    }
    let r = s.get(&s.admin_token, "/setting/admins/1/apitokens").await;
    assert_eq!(r.body["total"], 1, "only the admin's own token: {}", r.text);
    // Someone holding no more than the caller: fine.
    let viewer = s.user("viewer", &[READONLY]).await;
    let r = s
        .post(
            &ua,
            &format!("/setting/admins/{viewer}/apitokens"),
            json!({"note": "for viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The refusals are on record, as failures naming what was missing.
    let refused = audit(&s, "action:apitoken.create,outcome:failure").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|e| {
        e["username"] == "ua"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("setting portal write"))
    }));
}

#[tokio::test]
async fn a_user_admin_cannot_grant_change_or_take_away_what_they_lack() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (_, role, ua) = user_admin(&s).await;
    // A new role with more than the caller holds.
    let r = s
        .post(
            &ua,
            "/setting/roles",
            json!({"name": "portal-admins", "privileges": [
                {"objectType": "setting", "objectId": "portal", "operation": "write"}]}),
        )
        .await;
    refused_for(&r, "setting portal write");
    // The caller's own role, widened.
    let r = s
        .patch(
            &ua,
            &format!("/setting/roles/{role}"),
            json!({"privileges": EVERY.iter().map(|(t, i, o)| json!({"objectType": t, "objectId": i, "operation": o})).collect::<Vec<_>>()}),
        )
        .await;
    refused_for(&r, "setting portal write");
    // The administrator role given to someone, at creation or later.
    let r = s
        .post(
            &ua,
            "/setting/admins",
            json!({"username": "mole", "email": "m@example.com", "roles": [{"id": ADMINISTRATOR}]}),
        )
        .await;
    refused_for(&r, "setting portal write");
    let viewer = s.user("viewer", &[READONLY]).await;
    let r = s
        .patch(
            &ua,
            &format!("/setting/admins/{viewer}"),
            json!({"roles": [{"id": ADMINISTRATOR}]}),
        )
        .await;
    refused_for(&r, "setting portal write");
    // The administrator, changed or removed: a password reset would hand it over.
    for body in [
        json!({"password": "a-new-password-123"}),
        json!({"status": "suspended"}),
        json!({"roles": [{"id": READONLY}]}),
        json!({"note": "harmless?"}),
    ] {
        let r = s.patch(&ua, "/setting/admins/1", body).await;
        refused_for(&r, "setting portal write");
    }
    refused_for(
        &s.delete(&ua, "/setting/admins/1").await,
        "setting portal write",
    );

    // Nothing changed.
    let admin = s.get(&s.admin_token, "/setting/admins/1").await;
    assert_eq!(admin.body["status"], "active");
    assert_eq!(admin.body["roles"][0]["id"], ADMINISTRATOR);
    assert_eq!(admin.body["note"], "Created on first start");
    let r = s
        .get(&s.admin_token, &format!("/setting/roles/{role}"))
        .await;
    assert_eq!(r.body["privileges"].as_array().map(Vec::len), Some(3));
    let r = s
        .get(&s.admin_token, &format!("/setting/admins/{viewer}"))
        .await;
    assert_eq!(r.body["roles"][0]["id"], READONLY);
    let r = s
        .get(&s.admin_token, "/setting/roles?filter=name:portal-admins")
        .await;
    assert_eq!(r.body["total"], 0);
    // What the caller does hold stays theirs to manage.
    let r = s
        .patch(
            &ua,
            &format!("/setting/admins/{viewer}"),
            json!({"note": "seen to", "status": "suspended"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .post(
            &ua,
            "/setting/roles",
            json!({"name": "viewers", "privileges": [
                {"objectType": "setting", "objectId": "useraccess", "operation": "read"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn someone_must_remain_who_can_manage_users() {
    let Some(s) = Server::start().await else {
        return;
    };
    // A second administrator, in a role that can be edited.
    let all = s.role("everything", &EVERY).await;
    let other = s.user("other-admin", &[all]).await;
    let (_, other_token) = s.token_for(other, "other").await;
    // They demote the built-in admin (they hold everything it holds) ...
    let r = s
        .patch(
            &other_token,
            "/setting/admins/1",
            json!({"roles": [{"id": READONLY}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // ... and then cannot strip "manage users" from the role only they hold.
    let r = s
        .patch(
            &other_token,
            &format!("/setting/roles/{all}"),
            json!({"privileges": [{"objectType": "setting", "objectId": "portal", "operation": "write"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.message().contains("no active user"), "{}", r.text);
    let r = s.get(&other_token, &format!("/setting/roles/{all}")).await;
    assert_eq!(
        r.body["privileges"].as_array().map(Vec::len),
        Some(EVERY.len())
    );
    // Promoting the admin back first makes the same change fine.
    let r = s
        .patch(
            &other_token,
            "/setting/admins/1",
            json!({"roles": [{"id": ADMINISTRATOR}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .patch(
            &other_token,
            &format!("/setting/roles/{all}"),
            json!({"privileges": [{"objectType": "setting", "objectId": "useraccess", "operation": "read"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The last one cannot be suspended or deleted by anyone.
    let all2 = s.role("everything-2", &EVERY).await;
    let third = s.user("third", &[all2]).await;
    let (_, third_token) = s.token_for(third, "third").await;
    assert_eq!(
        s.patch(
            &third_token,
            "/setting/admins/1",
            json!({"status": "suspended"})
        )
        .await
        .status,
        StatusCode::OK
    );
    let r = s
        .delete(&s.admin_token, &format!("/setting/admins/{third}"))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the suspended admin's token is refused"
    );
    let r = s
        .patch(
            &third_token,
            &format!("/setting/roles/{all2}"),
            json!({"privileges": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
}

#[tokio::test]
async fn audit_entries_name_the_token_used_and_who_minted_it_for_someone_else() {
    let Some(s) = Server::start().await else {
        return;
    };
    let all = s.role("everything", &EVERY).await;
    let ops = s.user("ops", &[all]).await;
    // Minted for ops by admin.
    let (minted_id, minted) = s.token_for(ops, "made by admin").await;
    let r = s
        .patch(&minted, "/setting/portal", json!({"companyName": "Acme"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Minted by ops for themselves.
    let (own_id, own) = s.token_as(&minted, ops, "made by ops").await;
    let r = s
        .patch(&own, "/setting/portal", json!({"companyName": "Acme 2"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let created = audit(&s, &format!("action:apitoken.create,targetId:{minted_id}")).await;
    assert!(
        created[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("created for that user by admin")),
        "{created:?}"
    );
    let changes = audit(&s, "action:portal.update").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    let s = &s;
    let masked = |id: i64| async move {
        s.get(
            &s.admin_token,
            &format!("/setting/admins/{ops}/apitokens/{id}"),
        )
        .await
        .body["accessId"]
            .as_str()
            .expect("masked")
            .to_owned()
    };
    assert_eq!(changes[0]["username"], "ops");
    assert_eq!(changes[0]["tokenId"], minted_id);
    assert_eq!(changes[0]["token"], masked(minted_id).await.as_str());
    assert_eq!(changes[0]["tokenCreatedBy"], "admin");
    assert!(
        changes[0]["description"]
            .as_str()
            .is_some_and(|d| d.contains("created by admin")),
        "{changes:?}"
    );
    assert_eq!(changes[1]["tokenId"], own_id);
    assert_eq!(changes[1]["token"], masked(own_id).await.as_str());
    assert_eq!(changes[1]["tokenCreatedBy"], "", "ops' own token");
    // Filterable, like every other property.
    let by_admin = audit(s, "tokenCreatedBy:admin").await;
    assert!(by_admin.iter().all(|e| e["tokenCreatedBy"] == "admin"));
    assert!(!by_admin.is_empty());
}

#[tokio::test]
async fn the_ui_offers_and_generates_tokens_only_for_users_the_caller_outranks() {
    let Some(s) = Server::start().await else {
        return;
    };
    let role = s
        .role(
            "user-admins",
            &[
                USERACCESS_WRITE,
                USERACCESS_READ,
                DATAINGESTION_WRITE,
                APITOKEN_WRITE,
            ],
        )
        .await;
    let r = s
        .post(
            &s.admin_token,
            "/setting/admins",
            json!({"username": "ua", "email": "ua@example.com", "roles": [{"id": role}], "password": "ua-password-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ingest = s.user("ingest", &[DATAINGESTION]).await;
    let (sid, csrf) = super::ui_http::session(&s, "ua", "ua-password-1").await;
    let client = reqwest::Client::new();
    let page = send(
        client
            .get(format!(
                "http://{}/settings/user-access/bearer-tokens/add",
                s.addr
            ))
            .header("Cookie", format!("keygate_session={sid}")),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains(&format!("<option value=\"{ingest}\">ingest</option>"))
    );
    assert!(
        !page.text.contains("<option value=\"1\">admin</option>"),
        "{}",
        page.text
    );
    let r = send(
        client
            .post(format!("http://{}/ui/pending-token", s.addr))
            .header("Cookie", format!("keygate_session={sid}"))
            .header("X-CSRF-Token", &csrf)
            .header("Content-Type", "application/json")
            .body(json!({"adminId": 1}).to_string()),
    )
    .await;
    refused_for(&r, "setting portal write");
}
