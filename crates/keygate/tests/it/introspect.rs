//! Token self-introspection (`GET /apitokens/self`) and lookup by value
//! (`POST /apitokens/lookup`).

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::*;

#[tokio::test]
async fn a_token_describes_itself_with_its_owners_privileges_as_of_now() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "ci pipeline").await;
    let r = s.get(&secret, "/apitokens/self").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["id"], id);
    assert_eq!(s.token_id_of(&secret).await, id);
    assert_eq!(r.body["adminId"], user);
    assert_eq!(r.body["adminName"], "ingest");
    assert_eq!(r.body["type"], "bearer");
    assert_eq!(r.body["note"], "ci pipeline");
    assert_eq!(r.body["status"], 2);
    assert_eq!(r.body["accessKey"], "", "never the secret");
    assert_eq!(r.body["accessId"], keygate_core::token::mask(&secret));
    assert!(!r.text.contains(&secret));
    assert_eq!(
        r.body["privileges"],
        json!(["setting apitoken write", "dataingestion * write"])
    );
    assert!(r.body["createdOn"].as_i64().unwrap() > 0);
    assert!(r.body.get("lastUsedOn").is_some());
    // `fields` narrows it, as everywhere.
    let r = s.get(&secret, "/apitokens/self?fields=id,privileges").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body.as_object().unwrap().len(), 2, "{}", r.text);

    // The owner's privileges are read as of each request: a role change shows at once.
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{user}"),
            json!({"roles": [{"id": DATAINGESTION}, {"id": READONLY}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s.get(&secret, "/apitokens/self").await;
    assert_eq!(
        r.body["privileges"],
        json!([
            "setting useraccess read",
            "setting apitoken write",
            "dataingestion * write"
        ]),
        "{}",
        r.text
    );
    assert_eq!(r.body["roles"], json!(["dataingestion", "readonly"]));

    // A disabled token cannot ask about itself.
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{id}"),
            json!({"status": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        s.get(&secret, "/apitokens/self").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_lmv1_token_describes_itself_too() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("signer", &[DATAINGESTION]).await;
    let (id, access_id, key) = s.lmv1_for(user, "signed").await;
    let r = s
        .lmv1(
            Method::GET,
            &access_id,
            &key,
            "/apitokens/self",
            None,
            now_millis(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["type"], "lmv1");
    assert_eq!(r.body["accessId"], access_id);
    assert_eq!(r.body["accessKey"], "");
    assert!(!r.text.contains(&key));
}

#[tokio::test]
async fn an_administrator_looks_a_token_up_by_value_and_the_lookup_is_audited() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("leaky", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "found in a paste").await;
    let r = s
        .post(
            &s.admin_token,
            "/apitokens/lookup",
            json!({"token": secret}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["adminName"], "leaky");
    assert_eq!(r.body["note"], "found in a paste");
    assert!(!r.text.contains(&secret));
    // A pasted header value works too.
    let r = s
        .post(
            &s.admin_token,
            "/apitokens/lookup",
            json!({"token": format!("Authorization: Bearer {secret}")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["id"], id);

    // A well-formed token nobody holds: 404, and that lookup is recorded as well.
    let other = keygate_core::token::BearerToken::generate().unwrap();
    let r = s
        .post(
            &s.admin_token,
            "/apitokens/lookup",
            json!({"token": other.expose_secret()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(!r.text.contains(other.expose_secret()));

    // A mistyped one: the precise reason, without the value.
    let typo = format!("{} ", &secret);
    let r = s
        .post(&s.admin_token, "/apitokens/lookup", json!({"token": typo}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.message().contains("whitespace"), "{}", r.text);
    assert!(!r.text.contains(&secret[3..45]));
    let r = s.post(&s.admin_token, "/apitokens/lookup", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    let log = s
        .get(
            &s.admin_token,
            "/setting/accesslogs?size=1000&sort=id&filter=action:apitoken.lookup",
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{}", log.text);
    assert_eq!(items[0]["targetId"], id, "{}", log.text);
    assert_eq!(items[0]["target"], keygate_core::token::mask(&secret));
    assert!(
        items[2]["detail"].as_str().unwrap().contains("no token"),
        "{}",
        log.text
    );
    assert!(!log.text.contains(&secret) && !log.text.contains(other.expose_secret()));
}

#[tokio::test]
async fn only_whoever_sees_every_token_may_look_one_up() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("pusher", &[DATAINGESTION]).await;
    let (_, mine) = s.token_for(user, "mine").await;
    let (_, admins) = s.token_for(1, "admin's").await;
    let r = s
        .post(&mine, "/apitokens/lookup", json!({"token": admins}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.message().contains("useraccess"), "{}", r.text);
    // The token was not even looked for: the refusal names no target.
    let log = s
        .get(
            &s.admin_token,
            "/setting/accesslogs?size=1000&filter=action:apitoken.lookup",
        )
        .await;
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", log.text);
    assert_eq!(items[0]["outcome"], "failure", "{}", log.text);
    assert!(items[0]["targetId"].is_null(), "{}", log.text);
}
