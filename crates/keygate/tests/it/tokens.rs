//! Token lifecycle: show-once, masking, the edit ban, owner rules, BOLA, limits, delete.

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;

#[tokio::test]
async fn secret_is_shown_once_and_masked_ever_after() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let r = s
        .post(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens?type=bearer"),
            json!({"note": "ci"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let secret = r.body["accessKey"].as_str().expect("secret").to_owned();
    let id = r.body["id"].as_i64().expect("id");
    assert_eq!(secret.len(), 49);
    assert!(secret.starts_with("kgt") && secret.bytes().all(|b| b.is_ascii_alphanumeric()));
    let masked = r.body["accessId"].as_str().expect("accessId").to_owned();
    assert_eq!(
        masked,
        format!("{}{}{}", &secret[..7], "*".repeat(38), &secret[45..])
    );
    // Every documented property is present in the creation response.
    for p in [
        "id",
        "adminId",
        "adminName",
        "type",
        "accessId",
        "accessKey",
        "note",
        "status",
        "createdOn",
        "createdBy",
        "lastUsedOn",
        "lastAuthIp",
        "roles",
        "userPermission",
    ] {
        assert!(r.body.get(p).is_some(), "missing {p}");
    }
    assert_eq!(r.body["type"], "bearer");
    assert_eq!(r.body["status"], 2);
    assert_eq!(r.body["adminName"], "ingest");
    assert_eq!(r.body["createdBy"], "admin");
    assert_eq!(r.body["roles"], json!(["dataingestion"]));
    assert_eq!(r.body["lastUsedOn"], 0);
    assert_eq!(r.body["lastAuthIp"], "");

    // It works.
    let me = s.get(&secret, &format!("/setting/admins/{user}")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);

    // And it never appears again: single get, per-user list, global list, patch response.
    let later = [
        s.get(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{id}"),
        )
        .await,
        s.get(&s.admin_token, &format!("/setting/admins/{user}/apitokens"))
            .await,
        s.get(&s.admin_token, "/setting/admins/apitokens").await,
        s.patch(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{id}"),
            json!({"note": "x"}),
        )
        .await,
        s.get(&secret, &format!("/setting/admins/{user}/apitokens"))
            .await,
    ];
    for r in &later {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(!r.text.contains(&secret), "secret leaked: {}", r.text);
        assert!(
            !r.text.contains(&secret[7..45]),
            "secret middle leaked: {}",
            r.text
        );
    }
    assert_eq!(later[0].body["accessKey"], "");
    assert_eq!(later[0].body["accessId"], masked);

    // The database holds only the SHA-256.
    let raw = s.raw_contents().await;
    let needle = secret.as_bytes();
    assert!(
        !raw.windows(needle.len()).any(|w| w == needle),
        "plaintext token stored"
    );
}

#[tokio::test]
async fn system_generated_properties_cannot_be_edited() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "before").await;
    let path = format!("/setting/admins/{user}/apitokens/{id}");
    let before = s.get(&s.admin_token, &path).await.body;
    for body in [
        json!({"accessKey": "kgt0000000000000000000000000000000000000000000000"}),
        json!({"accessId": "kgtAAAA**************************************AAAA"}),
        json!({"adminId": 1}),
        json!({"type": "lmv1"}),
        json!({"note": "sneaky", "accessKey": "x"}),
    ] {
        for method in [reqwest::Method::PATCH, reqwest::Method::PUT] {
            let r = s
                .call(method, Some(&s.admin_token), &path, Some(body.clone()))
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
            assert!(
                r.message().contains("system generated, cannot be edited"),
                "{}",
                r.text
            );
        }
    }
    // Nothing changed, and the token still works.
    assert_eq!(s.get(&s.admin_token, &path).await.body, before);
    assert_eq!(
        s.get(&secret, &format!("/setting/admins/{user}"))
            .await
            .status,
        StatusCode::OK
    );
    // Sending read-only values back unchanged (as SDKs do) is fine.
    let mut echo = before.clone();
    echo["note"] = json!("after");
    let r = s
        .call(
            reqwest::Method::PUT,
            Some(&s.admin_token),
            &path,
            Some(echo),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["note"], "after");
}

#[tokio::test]
async fn bearer_owner_needs_data_ingestion() {
    let Some(s) = Server::start().await else {
        return;
    };
    let viewer = s.user("viewer", &[READONLY]).await;
    let r = s
        .post(
            &s.admin_token,
            &format!("/setting/admins/{viewer}/apitokens?type=bearer"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.message().contains("viewer") && r.message().contains("DataIngestion"),
        "{}",
        r.text
    );
    let list = s
        .get(
            &s.admin_token,
            &format!("/setting/admins/{viewer}/apitokens"),
        )
        .await;
    assert_eq!(list.body["total"], 0);
    // Suspended owners cannot get tokens either.
    let ingest = s.user("ingest", &[DATAINGESTION]).await;
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{ingest}"),
        json!({"status": "suspended"}),
    )
    .await;
    let r = s
        .post(
            &s.admin_token,
            &format!("/setting/admins/{ingest}/apitokens?type=bearer"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.message().contains("suspended"), "{}", r.text);
    // Unknown owner.
    let r = s
        .post(
            &s.admin_token,
            "/setting/admins/9999/apitokens?type=bearer",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn creating_needs_allow_creation_of_api_tokens() {
    let Some(s) = Server::start().await else {
        return;
    };
    // Can push data and view users, but may not create tokens.
    let role = s
        .role(
            "pusher",
            &[
                ("dataingestion", "*", "write"),
                ("setting", "useraccess", "read"),
            ],
        )
        .await;
    let pusher = s.user("pusher", &[role]).await;
    let (_, secret) = s.token_for(pusher, "given by admin").await;
    let r = s
        .post(
            &secret,
            &format!("/setting/admins/{pusher}/apitokens?type=bearer"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.message().contains("Allow Creation of API Tokens"),
        "{}",
        r.text
    );
    // It may still read (useraccess read), masked.
    let r = s.get(&secret, "/setting/admins/apitokens").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body["items"]
            .as_array()
            .is_some_and(|a| a.iter().all(|t| t["userPermission"] == "read"))
    );
    // With apitoken write it can create its own.
    s.patch(
        &s.admin_token,
        &format!("/setting/roles/{role}"),
        json!({"privileges": [{"objectType": "dataingestion", "objectId": "*", "operation": "write"},
                              {"objectType": "setting", "objectId": "apitoken", "operation": "write"}]}),
    )
    .await;
    let r = s
        .post(
            &secret,
            &format!("/setting/admins/{pusher}/apitokens?type=bearer"),
            json!({}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "role change must apply to the next request: {}",
        r.text
    );
}

#[tokio::test]
async fn another_users_token_is_invisible_with_only_apitoken_write() {
    let Some(s) = Server::start().await else {
        return;
    };
    let alice = s.user("alice", &[DATAINGESTION]).await;
    let bob = s.user("bob", &[DATAINGESTION]).await;
    let (_, alice_secret) = s.token_for(alice, "alice").await;
    let (bob_id, bob_secret) = s.token_for(bob, "bob").await;
    let missing = 987_654;
    for (owner, id) in [(bob, bob_id), (alice, bob_id)] {
        let path = format!("/setting/admins/{owner}/apitokens/{id}");
        let ghost = format!("/setting/admins/{owner}/apitokens/{missing}");
        let attempts = [
            (
                s.get(&alice_secret, &path).await,
                s.get(&alice_secret, &ghost).await,
            ),
            (
                s.patch(&alice_secret, &path, json!({"status": 1})).await,
                s.patch(&alice_secret, &ghost, json!({"status": 1})).await,
            ),
            (
                s.delete(&alice_secret, &path).await,
                s.delete(&alice_secret, &ghost).await,
            ),
        ];
        for (real, fake) in attempts {
            assert_eq!(real.status, StatusCode::NOT_FOUND, "{}", real.text);
            assert_eq!(fake.status, StatusCode::NOT_FOUND, "{}", fake.text);
            // The same template, differing only in the id asked for.
            assert_eq!(
                real.message(),
                format!("API token {id} not found for user {owner}")
            );
            assert_eq!(
                fake.message(),
                format!("API token {missing} not found for user {owner}")
            );
            assert_eq!(real.body["errorCode"], fake.body["errorCode"]);
        }
    }
    // Bob's token is untouched and still works.
    let r = s
        .get(
            &s.admin_token,
            &format!("/setting/admins/{bob}/apitokens/{bob_id}"),
        )
        .await;
    assert_eq!(r.body["status"], 2);
    assert_eq!(r.body["note"], "bob");
    assert_eq!(
        s.get(&bob_secret, &format!("/setting/admins/{bob}"))
            .await
            .status,
        StatusCode::OK
    );
    // Listing or creating for Bob is refused outright, and the global list shows only Alice's.
    let r = s
        .get(&alice_secret, &format!("/setting/admins/{bob}/apitokens"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s
        .post(
            &alice_secret,
            &format!("/setting/admins/{bob}/apitokens?type=bearer"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s.get(&alice_secret, "/setting/admins/apitokens").await;
    assert_eq!(r.body["total"], 1);
    assert_eq!(r.body["items"][0]["adminName"], "alice");
    // Users other than oneself are not readable with apitoken write alone.
    assert_eq!(
        s.get(&alice_secret, &format!("/setting/admins/{bob}"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn max_tokens_per_user_holds_under_parallel_creates() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = s
        .patch(
            &s.admin_token,
            "/setting/portal",
            json!({"maxTokensPerUser": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let user = s.user("busy", &[DATAINGESTION]).await;
    let path = format!("/setting/admins/{user}/apitokens?type=bearer");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (client, url, token) = (s.client.clone(), s.url(&path), s.admin_token.clone());
        tasks.push(tokio::spawn(async move {
            let rb = client
                .post(url)
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .body(json!({"note": format!("n{i}")}).to_string());
            send(rb).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {
                assert!(r.message().contains("maxTokensPerUser"), "{}", r.text)
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(ok, 5);
    let list = s
        .get(&s.admin_token, &format!("/setting/admins/{user}/apitokens"))
        .await;
    assert_eq!(list.body["total"], 5);
    // One more is refused with a clear message; deleting one makes room.
    let r = s.post(&s.admin_token, &path, json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let first = list.body["items"][0]["id"].as_i64().expect("id");
    assert_eq!(
        s.delete(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{first}")
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        s.post(&s.admin_token, &path, json!({})).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn delete_is_final() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "doomed").await;
    let path = format!("/setting/admins/{user}/apitokens/{id}");
    let r = s.delete(&s.admin_token, &path).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({}));
    // Refused on the very next request, 404 for the id, and the id is never reused.
    let r = s.get(&secret, &format!("/setting/admins/{user}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.message().contains("never issued or has been deleted"),
        "{}",
        r.text
    );
    assert_eq!(
        s.get(&s.admin_token, &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.delete(&s.admin_token, &path).await.status,
        StatusCode::NOT_FOUND
    );
    let (new_id, _) = s.token_for(user, "next").await;
    assert!(new_id > id);
    // Still refused after a restart.
    let s = s.restart().await;
    assert_eq!(
        s.get(&secret, &format!("/setting/admins/{user}"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn disable_and_enable_take_effect_on_the_next_request() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "flip").await;
    let path = format!("/setting/admins/{user}/apitokens/{id}");
    let me = format!("/setting/admins/{user}");
    for _ in 0..3 {
        let r = s.patch(&s.admin_token, &path, json!({"status": 1})).await;
        assert_eq!(r.body["status"], 1);
        let r = s.get(&secret, &me).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.message().contains("disabled"), "{}", r.text);
        let r = s.patch(&s.admin_token, &path, json!({"status": 2})).await;
        assert_eq!(r.body["status"], 2);
        assert_eq!(s.get(&secret, &me).await.status, StatusCode::OK);
    }
    // Bad status values are refused and change nothing.
    for bad in [
        json!({"status": 3}),
        json!({"status": "1"}),
        json!({"status": 0}),
    ] {
        let r = s.patch(&s.admin_token, &path, bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.message().contains("status"), "{}", r.text);
    }
    assert_eq!(s.get(&s.admin_token, &path).await.body["status"], 2);
    // A token created disabled does not authenticate.
    let r = s
        .post(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens?type=bearer"),
            json!({"status": 1}),
        )
        .await;
    let off = r.body["accessKey"].as_str().expect("secret");
    assert_eq!(s.get(off, &me).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn pages_in_id_order_match_the_filtered_and_sorted_path() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (one, two) = (
        s.user("pager", &[DATAINGESTION]).await,
        s.user("other", &[DATAINGESTION]).await,
    );
    for i in 0..4 {
        s.token_for(one, &format!("bearer {i}")).await;
        s.token_for(two, &format!("theirs {i}")).await;
    }
    s.lmv1_for(one, "lmv1 0").await;
    let ids = |r: &Resp| {
        r.body["items"]
            .as_array()
            .map(|a| a.iter().map(|t| t["id"].clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    // Each page in id order (served from the rows in memory) against the same page
    // through a filter that matches every token (the path that filters and sorts).
    let mine = format!("/setting/admins/{one}/apitokens");
    for (plain, filtered) in [
        (
            format!("{mine}?size=2&offset=1"),
            format!("{mine}?size=2&offset=1&filter=id>0"),
        ),
        (
            format!("{mine}?sort=-id&size=3"),
            format!("{mine}?sort=-id&size=3&filter=id>0"),
        ),
        (
            format!("{mine}?type=lmv1"),
            format!("{mine}?type=lmv1&filter=id>0"),
        ),
        (
            "/setting/admins/apitokens?size=3&offset=6&fields=id,note".to_owned(),
            "/setting/admins/apitokens?size=3&offset=6&fields=id,note&filter=id>0".to_owned(),
        ),
    ] {
        let (a, b) = (
            s.get(&s.admin_token, &plain).await,
            s.get(&s.admin_token, &filtered).await,
        );
        assert_eq!(a.status, StatusCode::OK, "{plain}: {}", a.text);
        assert_eq!(a.body["total"], b.body["total"], "{plain}");
        assert_eq!(ids(&a), ids(&b), "{plain}");
        assert!(!ids(&a).is_empty(), "{plain}");
        assert_eq!(a.body["items"], b.body["items"], "{plain}");
    }
    let all = s.get(&s.admin_token, &format!("{mine}?size=1000")).await;
    assert_eq!(all.body["total"], 5);
    let r = s.get(&s.admin_token, &format!("{mine}?type=lmv1")).await;
    assert_eq!(r.body["total"], 1, "{}", r.text);
    assert_eq!(r.body["items"][0]["note"], "lmv1 0");
}

#[tokio::test]
async fn tokens_read_after_a_restart_are_exactly_those_served_before_it() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("restarted", &[DATAINGESTION]).await;
    // Notes with the characters a packed read separates rows and columns with.
    for note in ["plain", "a, b; c", "ünïcode ✓ \"quoted\"", ""] {
        s.token_for(user, note).await;
    }
    s.lmv1_for(user, "lmv1; with, separators").await;
    let (id, secret) = s.token_for(user, "used").await;
    assert_eq!(
        s.get(&secret, &format!("/setting/admins/{user}"))
            .await
            .status,
        StatusCode::OK
    );
    let list = format!("/setting/admins/{user}/apitokens?size=1000");
    let used = eventually(std::time::Duration::from_secs(5), || async {
        let t = s
            .get(
                &s.admin_token,
                &format!("/setting/admins/{user}/apitokens/{id}"),
            )
            .await;
        t.body["lastUsedOn"].as_i64().unwrap_or(0) > 0
    })
    .await;
    assert!(used, "the use was recorded");
    let before = s.get(&s.admin_token, &list).await;
    assert_eq!(before.body["total"], 6, "{}", before.text);
    let s = s.restart().await;
    // The administrator's token and the user's six.
    let loaded = eventually(std::time::Duration::from_secs(5), || async {
        s.metric("keygate_read_view_tokens").await == Some(7.0)
    })
    .await;
    assert!(loaded, "token rows loaded after the restart");
    let after = s.get(&s.admin_token, &list).await;
    assert_eq!(after.body, before.body);
}
