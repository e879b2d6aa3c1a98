//! `/santaba/rest/openapi.json`: public, OpenAPI 3, and describing exactly the routes
//! served — every documented operation exists and refuses unauthenticated calls.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::*;

#[tokio::test]
async fn the_document_is_public_and_every_operation_in_it_is_served_and_protected() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = send(reqwest::Client::new().get(s.url("/openapi.json"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/santaba/rest");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["lmv1"]["name"],
        "Authorization"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, methods) in paths {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in methods.as_object().expect("methods").keys() {
            operations += 1;
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let r = send(reqwest::Client::new().request(m, s.url(&concrete))).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without credentials: {}",
                r.text
            );
        }
    }
    assert_eq!(operations, 33);
    // The token paths of the contract are all there, and the pushed-data reads.
    for (path, method) in [
        ("/setting/admins/{adminId}/apitokens", "post"),
        ("/setting/admins/{adminId}/apitokens/{apitokenId}", "patch"),
        ("/setting/admins/{adminId}/apitokens/{apitokenId}", "delete"),
        ("/setting/admins/apitokens", "get"),
        ("/setting/accesslogs", "get"),
        ("/keygate/data/resources", "get"),
        ("/keygate/data/datapoints/{dataPointId}/values", "get"),
        ("/keygate/data/logs", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    // A served list really has the documented properties.
    let tokens = s.get(&s.admin_token, "/setting/admins/apitokens").await;
    let declared = doc["components"]["schemas"]["APIToken"]["properties"]
        .as_object()
        .expect("props");
    for item in tokens.body["items"].as_array().expect("items") {
        for key in item.as_object().expect("object").keys() {
            assert!(declared.contains_key(key), "undocumented property {key}");
        }
    }
}

#[tokio::test]
async fn administrators_cannot_lock_themselves_or_everyone_out() {
    let Some(s) = Server::start().await else {
        return;
    };
    let me = s.get(&s.admin_token, "/setting/admins/1").await.body;
    let r = s
        .patch(
            &s.admin_token,
            "/setting/admins/1",
            json!({"roles": [{"id": READONLY}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.message().contains("your own roles"), "{}", r.text);
    // The same roles sent back (as SDKs do) are fine.
    let same: Vec<serde_json::Value> = me["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| json!({"id": r["id"]}))
        .collect();
    let r = s
        .patch(
            &s.admin_token,
            "/setting/admins/1",
            json!({"roles": same, "note": "kept"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (method, body) in [
        (Method::PATCH, Some(json!({"privileges": []}))),
        (Method::PUT, Some(json!({"name": "renamed"}))),
        (Method::DELETE, None),
    ] {
        let r = s
            .call(
                method.clone(),
                Some(&s.admin_token),
                &format!("/setting/roles/{ADMINISTRATOR}"),
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{method}: {}", r.text);
        assert!(
            r.message().contains("built-in administrator role"),
            "{}",
            r.text
        );
    }
    let role = s
        .get(&s.admin_token, &format!("/setting/roles/{ADMINISTRATOR}"))
        .await
        .body;
    assert_eq!(role["name"], "administrator");
    assert!(
        !role["privileges"]
            .as_array()
            .expect("privileges")
            .is_empty()
    );
    assert_eq!(
        s.get(&s.admin_token, "/setting/admins/1").await.body["roles"],
        me["roles"]
    );
}
