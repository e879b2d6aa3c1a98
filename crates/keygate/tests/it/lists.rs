//! List queries: filter, sort, fields, size, offset — and the bad values of each.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::*;

fn ids(r: &Resp) -> Vec<i64> {
    r.body["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["id"].as_i64()).collect())
        .unwrap_or_default()
}

async fn seeded() -> Option<(Server, i64, Vec<i64>)> {
    let s = Server::start().await?;
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let mut ids = Vec::new();
    for note in ["CI deploy", "ci, nightly", "laptop", "x' OR '1'='1"] {
        ids.push(s.token_for(user, note).await.0);
    }
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{user}/apitokens/{}", ids[2]),
        json!({"status": 1}),
    )
    .await;
    Some((s, user, ids))
}

#[tokio::test]
async fn filters_match_as_documented() {
    let Some((s, user, t)) = seeded().await else {
        return;
    };
    let q = |f: &str| format!("/setting/admins/{user}/apitokens?filter={}", urlencode(f));
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("status:2", vec![t[0], t[1], t[3]]),
        ("status:1", vec![t[2]]),
        ("note~LAPTOP", vec![t[2]]),
        ("note:ci*", vec![t[0], t[1]]),
        ("note:\"ci, nightly\"", vec![t[1]]),
        ("note!~ci,status:2", vec![t[3]]),
        ("note:\"x' OR '1'='1\"", vec![t[3]]),
        ("note:\"x' OR 1=1 --\"", vec![]),
        ("note:'; DROP TABLE api_tokens; --", vec![]),
        ("id>:2", t.iter().copied().filter(|&i| i >= 2).collect()),
        ("adminName:ingest,type:bearer", t.clone()),
    ];
    for (filter, expected) in cases {
        let r = s.get(&s.admin_token, &q(filter)).await;
        assert_eq!(r.status, StatusCode::OK, "{filter}: {}", r.text);
        assert_eq!(ids(&r), expected, "{filter}");
        assert_eq!(r.body["total"].as_u64(), Some(expected.len() as u64));
        assert_eq!(r.body["searchId"], Value::Null);
    }
    // The injection attempts changed nothing.
    let all = s
        .get(&s.admin_token, &format!("/setting/admins/{user}/apitokens"))
        .await;
    assert_eq!(all.body["total"], 4);
    // The global list filters by owner too.
    let r = s
        .get(
            &s.admin_token,
            "/setting/admins/apitokens?filter=adminName:admin",
        )
        .await;
    assert_eq!(r.body["total"], 1);
}

#[tokio::test]
async fn bad_list_parameters_are_refused_with_help() {
    let Some((s, user, _)) = seeded().await else {
        return;
    };
    let base = format!("/setting/admins/{user}/apitokens");
    let cases = [
        ("size=0", "size must be a whole number from 1 to 1000"),
        ("size=1001", "size must be a whole number from 1 to 1000"),
        ("size=-1", "size must be a whole number from 1 to 1000"),
        ("size=ten", "size must be"),
        ("offset=-1", "offset must be"),
        ("filter=owner:1", "cannot filter on \"owner\""),
        ("filter=id:abc", "needs a whole number"),
        ("filter=note", "bad filter syntax"),
        ("filter=note%3A%22open", "no closing quote"),
        ("sort=%2Bowner", "cannot sort by"),
        ("fields=id,secret", "unknown field \"secret\""),
        ("type=basic", "type must be bearer or lmv1"),
    ];
    for (query, expected) in cases {
        let r = s.get(&s.admin_token, &format!("{base}?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert!(r.message().contains(expected), "{query}: {}", r.text);
        assert_eq!(r.body["errorCode"], 400);
    }
    let r = s
        .get(&s.admin_token, &format!("{base}?filter=owner:1"))
        .await;
    // Every scalar property of APIToken can be filtered on, named in the help.
    assert!(
        r.message().contains(
            "accessId, accessKey, adminId, adminName, createdBy, createdOn, id, lastAuthIp, \
             lastUsedOn, note, status, type, userPermission"
        ),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn sort_fields_and_paging() {
    let Some((s, user, t)) = seeded().await else {
        return;
    };
    let base = format!("/setting/admins/{user}/apitokens");
    let r = s
        .get(&s.admin_token, &format!("{base}?sort=-id&size=2&offset=1"))
        .await;
    assert_eq!(ids(&r), vec![t[2], t[1]]);
    assert_eq!(r.body["total"], 4, "total counts all matches, not the page");
    let r = s.get(&s.admin_token, &format!("{base}?sort=%2Bnote")).await;
    assert_eq!(ids(&r), vec![t[0], t[1], t[2], t[3]]);
    // An unencoded '+' arrives as a space and still means ascending.
    let r = s.get(&s.admin_token, &format!("{base}?sort=+id")).await;
    assert_eq!(ids(&r), t);
    let r = s
        .get(&s.admin_token, &format!("{base}?fields=id,note&size=1"))
        .await;
    let item = r.body["items"][0].as_object().expect("object");
    assert_eq!(
        item.keys().cloned().collect::<Vec<_>>(),
        vec!["id".to_owned(), "note".to_owned()]
    );
    let r = s.get(&s.admin_token, &format!("{base}?offset=10")).await;
    assert_eq!(r.body["items"], json!([]));
    assert_eq!(r.body["total"], 4);
    let r = s
        .get(&s.admin_token, &format!("{base}/{}?fields=status", t[0]))
        .await;
    assert_eq!(r.body, json!({"status": 2}));
    // Users and roles lists take the same parameters.
    let r = s
        .get(
            &s.admin_token,
            "/setting/admins?filter=username:ing*&fields=id,username",
        )
        .await;
    assert_eq!(r.body["items"], json!([{"id": user, "username": "ingest"}]));
    let r = s
        .get(&s.admin_token, "/setting/roles?sort=-name&fields=name")
        .await;
    assert_eq!(
        r.body["items"],
        json!([{"name": "verifier"}, {"name": "readonly"}, {"name": "dataingestion"}, {"name": "administrator"}])
    );
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
