//! Several keygate nodes on one PostgreSQL database: changes made on one node are
//! refused on the others at once.

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;

/// Two more nodes on the first node's database.
async fn more_nodes(a: &Server, n: usize) -> Vec<Server> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        let mut node = Server::launch(&a.db, a.key.clone(), test_config()).await;
        node.admin_token = a.admin_token.clone();
        nodes.push(node);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_node_apply_on_every_node() {
    let Some(a) = Server::start().await else {
        return;
    };
    let others = more_nodes(&a, 2).await;
    let (b, c) = (&others[0], &others[1]);
    let user = a.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = a.token_for(user, "shared").await;
    let me = format!("/setting/admins/{user}");
    for node in [&a, b, c] {
        let ok = eventually(std::time::Duration::from_secs(5), || async {
            node.get(&secret, &me).await.status == StatusCode::OK
        })
        .await;
        assert!(ok, "a new token works on every node");
    }
    // Disabled on A: refused by B and C.
    a.patch(
        &a.admin_token,
        &format!("/setting/admins/{user}/apitokens/{id}"),
        json!({"status": 1}),
    )
    .await;
    for node in [b, c] {
        let refused = eventually(std::time::Duration::from_secs(2), || async {
            node.get(&secret, &me).await.status == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(refused, "disable on A reaches the other nodes");
    }
    a.patch(
        &a.admin_token,
        &format!("/setting/admins/{user}/apitokens/{id}"),
        json!({"status": 2}),
    )
    .await;
    // Suspended on B: its tokens stop on A and C.
    b.patch(&b.admin_token, &me, json!({"status": "suspended"}))
        .await;
    for node in [&a, c] {
        let refused = eventually(std::time::Duration::from_secs(2), || async {
            let r = node.get(&secret, &me).await;
            r.status == StatusCode::UNAUTHORIZED && r.message().contains("suspended")
        })
        .await;
        assert!(refused, "suspension on B reaches the other nodes");
    }
    b.patch(&b.admin_token, &me, json!({"status": "active"}))
        .await;
    // A role change on C applies on A.
    let role = c.role("ops", &[("dataingestion", "*", "write")]).await;
    c.patch(&c.admin_token, &me, json!({"roles": [{"id": role}]}))
        .await;
    let forbidden = eventually(std::time::Duration::from_secs(2), || async {
        a.get(&secret, "/setting/admins/1/apitokens").await.status == StatusCode::FORBIDDEN
    })
    .await;
    assert!(forbidden, "role change on C applies on A");
    c.patch(
        &c.admin_token,
        &format!("/setting/roles/{role}"),
        json!({"privileges": [
        {"objectType": "dataingestion", "objectId": "*", "operation": "write"},
        {"objectType": "setting", "objectId": "useraccess", "operation": "read"}]}),
    )
    .await;
    let allowed = eventually(std::time::Duration::from_secs(2), || async {
        a.get(&secret, "/setting/admins/1/apitokens").await.status == StatusCode::OK
    })
    .await;
    assert!(allowed, "role privilege change on C applies on A");
    // Deleting the user on C: its token is refused everywhere.
    c.delete(&c.admin_token, &me).await;
    for node in [&a, b] {
        let refused = eventually(std::time::Duration::from_secs(2), || async {
            node.get(&secret, &me).await.status == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(refused, "user deletion reaches every node");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_per_user_holds_across_nodes() {
    let Some(a) = Server::start().await else {
        return;
    };
    let others = more_nodes(&a, 2).await;
    a.patch(
        &a.admin_token,
        "/setting/portal",
        json!({"maxTokensPerUser": 4}),
    )
    .await;
    let user = a.user("busy", &[DATAINGESTION]).await;
    let mut tasks = Vec::new();
    for i in 0..18 {
        let node = [&a, &others[0], &others[1]][i % 3];
        let (client, url, token) = (
            node.client.clone(),
            node.url(&format!("/setting/admins/{user}/apitokens?type=bearer")),
            node.admin_token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            send(
                client
                    .post(url)
                    .header("Authorization", format!("Bearer {token}"))
                    .header("Content-Type", "application/json")
                    .body("{}"),
            )
            .await
            .status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task") == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 4, "exactly the limit, whichever node each create hit");
    assert_eq!(
        a.get(&a.admin_token, &format!("/setting/admins/{user}/apitokens"))
            .await
            .body["total"],
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_listener_is_killed_catches_up() {
    let Some(a) = Server::start().await else {
        return;
    };
    let others = more_nodes(&a, 1).await;
    let b = &others[0];
    let user = a.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = a.token_for(user, "t").await;
    let me = format!("/setting/admins/{user}");
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            b.get(&secret, &me).await.status == StatusCode::OK
        })
        .await
    );
    // Kill every LISTEN connection on this database.
    let Db::Postgres { url } = &a.db else {
        unreachable!("multi-node tests run on PostgreSQL")
    };
    let db = url.rsplit('/').next().unwrap_or("").to_owned();
    let admin = std::env::var("KEYGATE_TEST_DATABASE_URL").expect("admin url");
    let pool = sqlx::PgPool::connect(&admin).await.expect("connect");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(&db)
    .fetch_all(&pool)
    .await
    .expect("terminate");
    assert!(
        !killed.is_empty(),
        "there were listening connections to kill"
    );
    a.patch(
        &a.admin_token,
        &format!("/setting/admins/{user}/apitokens/{id}"),
        json!({"status": 1}),
    )
    .await;
    let refused = eventually(std::time::Duration::from_secs(5), || async {
        b.get(&secret, &me).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "the node catches up after losing its listener");
    let r = send(b.client.get(format!("http://{}/readyz", b.addr))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
