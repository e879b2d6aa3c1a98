//! Request bodies: bad JSON, wrong types, media type, size and length limits —
//! each refused clearly, with nothing changed.

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;

#[tokio::test]
async fn bad_bodies_are_refused_and_change_nothing() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, _) = s.token_for(user, "keep").await;
    let path = format!("/setting/admins/{user}/apitokens/{id}");
    let before = s.get(&s.admin_token, &path).await.body;
    let auth = format!("Bearer {}", s.admin_token);

    let raw = |body: &'static str, ctype: Option<&'static str>| {
        let mut rb = s
            .client
            .patch(s.url(&path))
            .header("Authorization", &auth)
            .body(body);
        if let Some(c) = ctype {
            rb = rb.header("Content-Type", c);
        }
        send(rb)
    };
    let r = raw("{\"note\": ", Some("application/json")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.message().contains("not valid JSON"), "{}", r.text);
    let r = raw("[1,2]", Some("application/json")).await;
    assert!(r.message().contains("must be a JSON object"), "{}", r.text);
    let r = raw("{\"note\": 5}", Some("application/json")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.message(), "note must be a string");
    let r = raw("{\"note\": \"x\"}", None).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = raw("note=x", Some("application/x-www-form-urlencoded")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.body["errorCode"], 415);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let r = send(
        s.client
            .patch(s.url(&path))
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .body(deep),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = s
        .patch(&s.admin_token, &path, json!({"note": "a".repeat(1025)}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.message().contains("at most 1024"), "{}", r.text);
    let r = s
        .patch(&s.admin_token, &path, json!({"note": "bell\u{7}"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let big = format!("{{\"note\": \"{}\"}}", "a".repeat(1024 * 1024 + 10));
    let r = send(
        s.client
            .patch(s.url(&path))
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .body(big),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["errorCode"], 413);

    assert_eq!(s.get(&s.admin_token, &path).await.body, before);
    // A note of exactly 1,024 characters (multi-byte ones count as one) is fine.
    let r = s
        .patch(&s.admin_token, &path, json!({"note": "é".repeat(1024)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn bad_path_ids_and_methods() {
    let Some(s) = Server::start().await else {
        return;
    };
    for path in [
        "/setting/admins/abc",
        "/setting/admins/0",
        "/setting/admins/-3/apitokens",
        "/setting/admins/1/apitokens/1.5",
    ] {
        let r = s.get(&s.admin_token, path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert!(r.message().contains("positive whole number"), "{}", r.text);
    }
    let r = s
        .call(
            reqwest::Method::POST,
            Some(&s.admin_token),
            "/setting/admins/apitokens",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["errorCode"], 405);
}

#[tokio::test]
async fn typed_bodies_name_the_element_at_fault_and_take_back_what_sdks_send() {
    let Some(s) = Server::start().await else {
        return;
    };
    let roles_before = s.get(&s.admin_token, "/setting/roles").await.body;
    for (body, expected) in [
        (
            json!({"name": "r", "privileges": [{"objectType": "setting", "objectId": "*", "operation": 5}]}),
            "privileges[0].operation must be a string",
        ),
        (
            json!({"name": "r", "privileges": [{"objectType": "setting", "objectId": "*"}]}),
            "privileges[0].operation is required",
        ),
        (
            json!({"name": "r", "privileges": {}}),
            "privileges must be an array",
        ),
        (json!({"name": ["r"]}), "name must be a string"),
        (json!({"name": null}), "name is required"),
    ] {
        let r = s.post(&s.admin_token, "/setting/roles", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.message(), expected, "{body}");
    }
    assert_eq!(
        s.get(&s.admin_token, "/setting/roles").await.body,
        roles_before,
        "nothing was created"
    );
    // A number past what the property holds names the property too.
    let r = s
        .patch(
            &s.admin_token,
            "/setting/portal",
            json!({"maxTokensPerUser": 1e300}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.message(), "maxTokensPerUser must be a whole number");

    // What an SDK sends back: the whole object it read, read-only properties and
    // nested role objects included, with null for what it leaves alone.
    let user = s.user("roundtrip", &[DATAINGESTION]).await;
    let mut whole = s
        .get(&s.admin_token, &format!("/setting/admins/{user}"))
        .await
        .body;
    whole["note"] = json!("edited");
    whole["email"] = json!(null);
    whole["someFutureProperty"] = json!({"nested": [1, 2]});
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{user}"),
            whole.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["note"], "edited");
    assert!(
        r.body["email"].as_str().is_some_and(|e| e.contains('@')),
        "null left the email as it was: {}",
        r.text
    );
    assert_eq!(r.body["roles"].as_array().map(Vec::len), Some(1));
}
