//! Users and roles: CRUD, uniqueness, roles in use, deleting a user deletes its tokens.

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;

#[tokio::test]
async fn users_have_every_property_and_never_a_password() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = s
        .post(
            &s.admin_token,
            "/setting/admins",
            json!({"username": "carol", "email": "carol@example.com", "firstName": "Carol", "roles": [{"id": READONLY}],
                   "password": "a long enough password", "apionly": true, "note": "n", "id": 77, "createdBy": "forged"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for p in [
        "id",
        "username",
        "email",
        "firstName",
        "lastName",
        "roles",
        "status",
        "apionly",
        "note",
        "createdBy",
        "lastLoginOn",
    ] {
        assert!(r.body.get(p).is_some(), "missing {p}");
    }
    assert!(r.body.get("password").is_none());
    assert!(!r.text.contains("a long enough password"));
    assert_ne!(r.body["id"], 77, "id is not client-chosen");
    assert_eq!(r.body["createdBy"], "admin");
    assert_eq!(r.body["roles"][0]["name"], "readonly");
    assert_eq!(
        r.body["roles"][0]["privileges"][0]["objectId"],
        "useraccess"
    );
    assert_eq!(r.body["apionly"], true);
    let raw = s.raw_contents().await;
    let needle = b"a long enough password";
    assert!(
        ![raw]
            .iter()
            .any(|b| b.windows(needle.len()).any(|w| w == needle)),
        "plaintext password stored"
    );
}

#[tokio::test]
async fn user_rules() {
    let Some(s) = Server::start().await else {
        return;
    };
    let dave = s.user("dave", &[DATAINGESTION]).await;
    let dup = s
        .post(
            &s.admin_token,
            "/setting/admins",
            json!({"username": "DAVE", "email": "d@x.io", "roles": [{"id": 2}]}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.text);
    assert!(dup.message().contains("already exists"));
    let cases = [
        (
            json!({"email": "e@x.io", "roles": [{"id": 2}]}),
            "username is required",
        ),
        (
            json!({"username": "e", "roles": [{"id": 2}]}),
            "email is required",
        ),
        (
            json!({"username": "e", "email": "nope", "roles": [{"id": 2}]}),
            "email",
        ),
        (
            json!({"username": "e", "email": "e@x.io"}),
            "roles is required",
        ),
        (
            json!({"username": "e", "email": "e@x.io", "roles": []}),
            "at least one role",
        ),
        (
            json!({"username": "e", "email": "e@x.io", "roles": [{"id": 999}]}),
            "role 999 does not exist",
        ),
        (
            json!({"username": "e", "email": "e@x.io", "roles": ["x"]}),
            "roles[0] must be an object",
        ),
        (
            json!({"username": "e e", "email": "e@x.io", "roles": [{"id": 2}]}),
            "whitespace",
        ),
        (
            json!({"username": "e", "email": "e@x.io", "roles": [{"id": 2}], "status": "gone"}),
            "status must be",
        ),
        (
            json!({"username": "e", "email": "e@x.io", "roles": [{"id": 2}], "password": "short"}),
            "password",
        ),
    ];
    for (body, expected) in cases {
        let r = s
            .post(&s.admin_token, "/setting/admins", body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.message().contains(expected), "{body}: {}", r.text);
    }
    assert_eq!(
        s.get(&s.admin_token, "/setting/admins").await.body["total"],
        2,
        "nothing was created"
    );
    // Callers cannot suspend or delete themselves.
    let r = s
        .patch(
            &s.admin_token,
            "/setting/admins/1",
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.delete(&s.admin_token, "/setting/admins/1").await.status,
        StatusCode::BAD_REQUEST
    );
    // Users without useraccess write cannot manage users.
    let (_, secret) = s.token_for(dave, "t").await;
    let r = s
        .post(
            &secret,
            "/setting/admins",
            json!({"username": "f", "email": "f@x.io", "roles": [{"id": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s
        .patch(
            &secret,
            &format!("/setting/admins/{dave}"),
            json!({"roles": [{"id": ADMINISTRATOR}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no privilege escalation");
    assert_eq!(
        s.get(&secret, &format!("/setting/admins/{dave}"))
            .await
            .body["roles"][0]["name"],
        "dataingestion"
    );
}

#[tokio::test]
async fn deleting_a_user_deletes_its_tokens() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("leaver", &[DATAINGESTION]).await;
    let (id1, t1) = s.token_for(user, "one").await;
    let (_, t2) = s.token_for(user, "two").await;
    assert_eq!(
        s.get(&t1, &format!("/setting/admins/{user}")).await.status,
        StatusCode::OK
    );
    let r = s
        .delete(&s.admin_token, &format!("/setting/admins/{user}"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({}));
    for t in [&t1, &t2] {
        assert_eq!(
            s.get(t, "/setting/portal").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let all = s.get(&s.admin_token, "/setting/admins/apitokens").await;
    assert_eq!(
        all.body["total"], 1,
        "only the admin's token is left: {}",
        all.text
    );
    assert_eq!(
        s.get(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{id1}")
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&s.admin_token, &format!("/setting/admins/{user}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn roles_crud_and_in_use_conflict() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = s.get(&s.admin_token, "/setting/roles").await;
    assert_eq!(r.body["total"], 4);
    assert_eq!(r.body["items"][0]["name"], "administrator");
    assert_eq!(r.body["items"][0]["associatedUserCount"], 1);
    let role = s
        .role(
            "auditor",
            &[
                ("setting", "useraccess", "read"),
                ("custom", "thing", "read"),
            ],
        )
        .await;
    let r = s
        .get(&s.admin_token, &format!("/setting/roles/{role}"))
        .await;
    assert_eq!(
        r.body["privileges"][1]["objectType"], "custom",
        "unknown privileges are kept"
    );
    let dup = s
        .post(&s.admin_token, "/setting/roles", json!({"name": "Auditor"}))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let r = s
        .post(
            &s.admin_token,
            "/setting/roles",
            json!({"name": "x", "privileges": [{"objectType": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.message().contains("privileges"), "{}", r.text);
    let user = s.user("aud", &[role]).await;
    let r = s
        .delete(&s.admin_token, &format!("/setting/roles/{role}"))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.message().contains("assigned to 1 user"), "{}", r.text);
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{user}"),
        json!({"roles": [{"id": READONLY}]}),
    )
    .await;
    assert_eq!(
        s.delete(&s.admin_token, &format!("/setting/roles/{role}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.get(&s.admin_token, &format!("/setting/roles/{role}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn portal_settings() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = s.get(&s.admin_token, "/setting/portal").await;
    assert_eq!(
        r.body,
        json!({"companyName": "keygate", "tracesEnabled": true, "maxTokensPerUser": 10, "lmv1ClockSkewSeconds": 1800, "lmv1ReplayProtection": false, "tokenPrefix": "kgt"})
    );
    for (body, field) in [
        (json!({"maxTokensPerUser": 0}), "maxTokensPerUser"),
        (json!({"lmv1ClockSkewSeconds": -5}), "lmv1ClockSkewSeconds"),
        (json!({"tracesEnabled": "yes"}), "tracesEnabled"),
        (json!({"tokenPrefix": "abc"}), "tokenPrefix"),
    ] {
        let r = s.patch(&s.admin_token, "/setting/portal", body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.message().contains(field), "{}", r.text);
    }
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.body["maxTokensPerUser"],
        10
    );
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (_, secret) = s.token_for(user, "t").await;
    let r = s
        .patch(&secret, "/setting/portal", json!({"companyName": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.get(&secret, "/setting/portal").await.body["companyName"],
        "keygate"
    );
}

#[tokio::test]
async fn usernames_are_normalized_and_look_alikes_are_refused_alike_on_every_backend() {
    let Some(s) = Server::start().await else {
        return;
    };
    let create = |name: &str| {
        let body = json!({"username": name, "email": "x@example.com", "roles": [{"id": READONLY}], "password": "some-password-1"});
        let s = &s;
        async move { s.post(&s.admin_token, "/setting/admins", body).await }
    };
    // Invisible, control and mixed-script names: 400, naming the problem.
    for bad in [
        "ad\u{200b}min",
        "ad\u{ad}min",
        "\u{202e}nimda",
        "adm\u{200d}in",
        "\u{430}dmin",
        "ad\u{7}min",
    ] {
        let r = create(bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text);
        assert!(r.message().starts_with("username"), "{}", r.text);
    }
    // Other forms of an existing name are that name: 409.
    for same in ["ａｄｍｉｎ", "ADMIN", "Admin"] {
        let r = create(same).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{same:?}: {}", r.text);
    }
    // A name that merely looks like an existing one: 409 as well.
    let r = create("adrnin").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.message().contains("looks too much like"), "{}", r.text);
    // Case beyond ASCII, and NFD against NFC, are the same user on both backends.
    let r = create("Ärger").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for same in ["ärger", "A\u{308}rger", "ÄRGER"] {
        let r = create(same).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{same:?}: {}", r.text);
    }
    // Stored in the normal form, and found by any form of it.
    let r = create("ｂｏｂ").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["username"], "bob");
    let found = s
        .get(&s.admin_token, "/setting/admins?filter=username:bob")
        .await;
    assert_eq!(found.body["total"], 1, "{}", found.text);
    let r = super::ui_http::signin(&s, "ÄRGER", "some-password-1", None).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "sign-in by another case of the name"
    );
    // Renaming follows the same rules.
    let bob = found.body["items"][0]["id"].as_i64().expect("id");
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{bob}"),
            json!({"username": "ärger"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{bob}"),
            json!({"username": "BOB"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the same user may change its case: {}",
        r.text
    );
}
