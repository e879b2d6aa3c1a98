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

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new
/// ones, so a node can lose its database without touching the shared server.
struct Proxy {
    port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*watch.borrow() {
                    continue; // refused: dropped at once
                }
                let mut down = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {} // cut: both sides dropped
                    }
                });
            }
        });
        Self { port, up }
    }

    fn set(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_fails_closed_and_recovers() {
    let Some(a) = Server::start().await else {
        return;
    };
    let user = a.user("ingest", &[DATAINGESTION]).await;
    let (_, secret) = a.token_for(user, "t").await;
    let (revoked_id, revoked) = a.token_for(user, "revoked before the cut").await;
    // Node P reaches the same database only through the proxy.
    let Db::Postgres { url } = &a.db else {
        unreachable!("multi-node tests run on PostgreSQL")
    };
    let (scheme_host, db) = url.rsplit_once('/').expect("url");
    let target: std::net::SocketAddr = scheme_host
        .rsplit('@')
        .next()
        .and_then(|hp| hp.parse().ok())
        .expect("host:port in the test URL");
    let proxy = Proxy::start(target).await;
    let via_proxy = format!(
        "{}@127.0.0.1:{}/{db}",
        scheme_host.split('@').next().unwrap_or(""),
        proxy.port
    );
    let config = keygate_server::ServerConfig {
        max_staleness: std::time::Duration::from_secs(3),
        ..test_config()
    };
    let mut p = Server::launch(&Db::Postgres { url: via_proxy }, a.key.clone(), config).await;
    p.admin_token = a.admin_token.clone();
    let me = format!("/setting/admins/{user}");
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            p.get(&secret, &me).await.status == StatusCode::OK
        })
        .await
    );
    a.delete(
        &a.admin_token,
        &format!("/setting/admins/{user}/apitokens/{revoked_id}"),
    )
    .await;
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            p.get(&revoked, &me).await.status == StatusCode::UNAUTHORIZED
        })
        .await
    );

    // The token rows have loaded on P (they load in the background after start-up).
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            p.metric("keygate_read_view_tokens")
                .await
                .is_some_and(|n| n > 0.0)
        })
        .await
    );
    proxy.set(false);
    // Management needs the database: a quick 503, not a hang (the client gives up at 2 s).
    let bounded = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("client");
    let r = send(
        bounded
            .post(p.url("/setting/admins"))
            .header("Authorization", format!("Bearer {}", a.admin_token))
            .header("Content-Type", "application/json")
            .body(r#"{"username":"x","email":"x@x.io","roles":[{"id":2}]}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.body["errorCode"], 503);
    // Known tokens keep verifying from memory while within max_staleness, and what the
    // node keeps in memory is still read from it (the user's own record, its token
    // list, the portal settings); a handler that reads the database (the audit log)
    // answers 503 "database unavailable"; a token revoked before the cut stays refused.
    let r = p.get(&secret, &me).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["username"], "ingest");
    let r = p.get(&secret, &format!("{me}/apitokens")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], 1, "{}", r.text);
    let r = p.get(&secret, "/setting/portal").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.get(&a.admin_token, "/setting/accesslogs").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(
        r.message().contains("database is unavailable"),
        "authenticated, then the handler: {}",
        r.text
    );
    assert_eq!(p.get(&revoked, &me).await.status, StatusCode::UNAUTHORIZED);
    // ...and then the node fails closed, and says so to load balancers.
    let stale = eventually(std::time::Duration::from_secs(10), || async {
        let r = p.get(&secret, &me).await;
        r.status == StatusCode::SERVICE_UNAVAILABLE
            && r.message().contains("not been able to confirm")
    })
    .await;
    assert!(stale, "past max_staleness the node refuses with 503");
    let r = send(p.client.get(format!("http://{}/readyz", p.addr))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["status"], "stale");
    // The other node, which still reaches the database, is unaffected.
    assert_eq!(a.get(&secret, &me).await.status, StatusCode::OK);

    proxy.set(true);
    let back = eventually(std::time::Duration::from_secs(10), || async {
        send(p.client.get(format!("http://{}/readyz", p.addr)))
            .await
            .status
            == StatusCode::OK
    })
    .await;
    assert!(back, "the node recovers by itself");
    assert_eq!(p.get(&secret, &me).await.status, StatusCode::OK);
    let r = p
        .post(
            &a.admin_token,
            "/setting/admins",
            json!({"username": "y", "email": "y@x.io", "roles": [{"id": 2}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    p.stop().await;
}

#[tokio::test]
async fn postgres_needs_an_explicit_master_key() {
    let Some(a) = Server::start().await else {
        return;
    };
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["portal", "show"])
        .env("KEYGATE_DATABASE_URL", a.database_url())
        .env_remove("KEYGATE_MASTER_KEY_FILE")
        .current_dir(a.dir.as_ref().expect("dir").path())
        .output()
        .await
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("with PostgreSQL the master key must be given"),
        "{err}"
    );
    let files: Vec<_> = std::fs::read_dir(a.dir.as_ref().expect("dir").path())
        .expect("dir")
        .collect();
    assert_eq!(
        files.len(),
        1,
        "no key file was created (only the test's own)"
    );
}

/// Users, roles and the portal settings are read from each node's memory: a change
/// made on one node shows in reads on the others within the propagation bound, and on
/// the node that made it at once (read-your-writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_every_node_show_a_change_made_on_one() {
    let Some(a) = Server::start().await else {
        return;
    };
    let others = more_nodes(&a, 1).await;
    let b = &others[0];
    let user = a.user("reader", &[DATAINGESTION]).await;
    let (id, _) = a.token_for(user, "named").await;
    let me = format!("/setting/admins/{user}");
    let token = format!("{me}/apitokens/{id}");
    // Renamed and given a new role on A: A answers with the new state at once.
    let role = a.role("auditors", &[("useraccess", "*", "read")]).await;
    let r = a
        .patch(
            &a.admin_token,
            &me,
            json!({"username": "renamed", "roles": [{"id": role}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a.get(&a.admin_token, &token).await;
    assert_eq!(r.body["adminName"], "renamed", "{}", r.text);
    assert_eq!(r.body["roles"], json!(["auditors"]), "{}", r.text);
    let r = a
        .get(&a.admin_token, &format!("/setting/roles/{role}"))
        .await;
    assert_eq!(r.body["associatedUserCount"], 1, "{}", r.text);
    // And B, within the bound, in the user, the token's owner name and the role's count.
    let seen = eventually(std::time::Duration::from_secs(2), || async {
        let u = b.get(&b.admin_token, &me).await;
        let t = b.get(&b.admin_token, &token).await;
        let roles = b
            .get(&b.admin_token, "/setting/roles?filter=name:auditors")
            .await;
        u.body["username"] == "renamed"
            && t.body["adminName"] == "renamed"
            && t.body["roles"] == json!(["auditors"])
            && roles.body["items"][0]["associatedUserCount"] == 1
    })
    .await;
    assert!(seen, "a rename and a role change on A show in reads on B");
    // A role renamed on B shows in A's token responses; a user deleted on B is gone on A.
    let r = b
        .patch(
            &b.admin_token,
            &format!("/setting/roles/{role}"),
            json!({"name": "auditors-2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seen = eventually(std::time::Duration::from_secs(2), || async {
        a.get(&a.admin_token, &token).await.body["roles"] == json!(["auditors-2"])
    })
    .await;
    assert!(seen, "a role renamed on B shows on A");
    let r = b.delete(&b.admin_token, &me).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let gone = eventually(std::time::Duration::from_secs(2), || async {
        a.get(&a.admin_token, &me).await.status == StatusCode::NOT_FOUND
            && a.get(&a.admin_token, "/setting/admins?filter=username:renamed")
                .await
                .body["total"]
                == 0
    })
    .await;
    assert!(gone, "a user deleted on B is gone from A's reads");
    // Portal settings changed on A: A answers with them at once, B within the bound.
    let r = a
        .patch(
            &a.admin_token,
            "/setting/portal",
            json!({"companyName": "Changed Co", "maxTokensPerUser": 7}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a.get(&a.admin_token, "/setting/portal").await;
    assert_eq!(r.body["companyName"], "Changed Co", "{}", r.text);
    assert_eq!(r.body["maxTokensPerUser"], 7, "{}", r.text);
    let seen = eventually(std::time::Duration::from_secs(2), || async {
        let r = b.get(&b.admin_token, "/setting/portal").await;
        r.body["companyName"] == "Changed Co" && r.body["maxTokensPerUser"] == 7
    })
    .await;
    assert!(seen, "portal settings changed on A show in reads on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_reads_on_every_node_show_a_change_made_on_one() {
    let Some(a) = Server::start().await else {
        return;
    };
    let others = more_nodes(&a, 1).await;
    let b = &others[0];
    let user = a.user("lister", &[DATAINGESTION]).await;
    let tokens = format!("/setting/admins/{user}/apitokens");
    let (first, _) = a.token_for(user, "first").await;
    // Both nodes serve token reads from rows in memory once they have loaded.
    for node in [&a, b] {
        let held = eventually(std::time::Duration::from_secs(5), || async {
            node.metric("keygate_read_view_tokens")
                .await
                .is_some_and(|n| n >= 2.0)
        })
        .await;
        assert!(held, "token rows loaded on {}", node.addr);
    }
    // Created on A: on B within the bound, alone and in lists (paged and filtered).
    let (id, secret) = a.token_for(user, "second").await;
    let one = format!("{tokens}/{id}");
    let seen = eventually(std::time::Duration::from_secs(2), || async {
        let t = b.get(&b.admin_token, &one).await;
        let l = b
            .get(&b.admin_token, &format!("{tokens}?size=1&offset=1"))
            .await;
        let f = b
            .get(&b.admin_token, &format!("{tokens}?filter=note:second"))
            .await;
        t.body["note"] == "second"
            && l.body["total"] == 2
            && l.body["items"][0]["id"] == id
            && f.body["items"][0]["id"] == id
    })
    .await;
    assert!(seen, "a token created on A is read on B");
    // Used through A: B reads its last use once A has written it.
    assert_eq!(
        a.get(&secret, &format!("/setting/admins/{user}"))
            .await
            .status,
        StatusCode::OK
    );
    let used = eventually(std::time::Duration::from_secs(5), || async {
        let t = b.get(&b.admin_token, &one).await;
        t.body["lastUsedOn"].as_i64().unwrap_or(0) > 0 && t.body["lastAuthIp"] == "127.0.0.1"
    })
    .await;
    assert!(used, "a use recorded by A shows in B's reads");
    // Disabled with a new note on B: A answers with both at once after B's change
    // is announced, and a newest-first page starts with it.
    let r = b
        .patch(
            &b.admin_token,
            &one,
            json!({"note": "changed on B", "status": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seen = eventually(std::time::Duration::from_secs(2), || async {
        let t = a.get(&a.admin_token, &one).await;
        let l = a
            .get(&a.admin_token, &format!("{tokens}?sort=-id&size=1"))
            .await;
        t.body["note"] == "changed on B"
            && t.body["status"] == 1
            && l.body["items"][0]["note"] == "changed on B"
    })
    .await;
    assert!(seen, "a change on B shows in A's reads");
    // Deleted on A: gone from B's reads.
    let r = a.delete(&a.admin_token, &one).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let gone = eventually(std::time::Duration::from_secs(2), || async {
        let l = b.get(&b.admin_token, &tokens).await;
        b.get(&b.admin_token, &one).await.status == StatusCode::NOT_FOUND
            && l.body["total"] == 1
            && l.body["items"][0]["id"] == first
    })
    .await;
    assert!(gone, "a token deleted on A is gone from B's reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_nodes_share_the_outbox_and_send_each_export_once() {
    use super::relay::{Receiver, contains, forwarding, free_port, push, receive};
    use std::sync::{Arc, Mutex};
    let to = free_port().await;
    // A slow receiver, so that the nodes' claims overlap.
    let rx = Arc::new(Mutex::new(Receiver {
        delay: std::time::Duration::from_millis(30),
        ..Receiver::default()
    }));
    let receiver = receive(to, rx.clone()).await;
    let Some(a) = Server::start_with(forwarding(to)).await else {
        receiver.abort();
        return;
    };
    let mut nodes = vec![a];
    for _ in 0..2 {
        let mut node = Server::launch(&nodes[0].db, nodes[0].key.clone(), forwarding(to)).await;
        node.admin_token = nodes[0].admin_token.clone();
        nodes.push(node);
    }
    let user = nodes[0].user("collector", &[DATAINGESTION]).await;
    let (_, token) = nodes[0].token_for(user, "collector").await;
    for node in &nodes {
        assert!(
            eventually(std::time::Duration::from_secs(5), || async {
                node.get(&token, "/apitokens/self").await.status == StatusCode::OK
            })
            .await
        );
    }
    // 60 pushes, 20 through each node at once.
    let pushes = nodes.iter().enumerate().map(|(n, node)| {
        let token = token.clone();
        async move {
            for i in 0..20 {
                let body = json!([{"msg": format!("line {n}-{i}."), "_lm.resourceId": {"system.hostname": "h"}}]);
                let r = push(node, "/log/ingest", &token, "application/json", body).await;
                assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
            }
        }
    });
    futures_util::future::join_all(pushes).await;
    assert!(
        eventually(std::time::Duration::from_secs(30), || async {
            nodes[0].metric("keygate_outbox_entries").await == Some(0.0)
        })
        .await,
        "every export delivered: {}",
        rx.lock().expect("lock").got.len()
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let got = rx.lock().expect("lock").got.clone();
    for n in 0..3 {
        for i in 0..20 {
            let line = format!("line {n}-{i}.");
            assert_eq!(
                got.iter().filter(|g| contains(&g.body, &line)).count(),
                1,
                "{line} once"
            );
        }
    }
    // 60 exports delivered in all, whichever nodes sent them.
    let mut total = 0.0;
    for node in &nodes {
        total += node
            .metric("keygate_forwarded_exports_total{signal=\"logs\",outcome=\"delivered\"}")
            .await
            .unwrap_or(0.0);
    }
    assert_eq!(total, 60.0, "each export delivered once");
    receiver.abort();
}
