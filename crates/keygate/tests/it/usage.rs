//! Usage records: lastUsedOn/lastAuthIp appear within 5 s, survive restarts, and are
//! flushed on graceful shutdown.

use std::time::Duration;

use keygate_server::ServerConfig;
use reqwest::StatusCode;

use super::support::*;

#[tokio::test]
async fn last_use_appears_within_five_seconds_and_survives_restart() {
    let Some(s) = Server::start_with(ServerConfig {
        usage_flush_interval: Duration::from_secs(2),
        ..test_config()
    })
    .await
    else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "t").await;
    let path = format!("/setting/admins/{user}/apitokens/{id}");
    assert_eq!(s.get(&s.admin_token, &path).await.body["lastUsedOn"], 0);
    assert_eq!(
        s.get(&secret, "/setting/portal").await.status,
        StatusCode::OK
    );
    let seen = eventually(Duration::from_secs(5), || async {
        let t = s.get(&s.admin_token, &path).await.body;
        t["lastUsedOn"].as_i64().unwrap_or(0) > 0 && t["lastAuthIp"] == "127.0.0.1"
    })
    .await;
    assert!(seen, "lastUsedOn/lastAuthIp within 5 s");
    let before = s.get(&s.admin_token, &path).await.body;
    let s = s.restart().await;
    let after = s.get(&s.admin_token, &path).await.body;
    assert_eq!(after["lastUsedOn"], before["lastUsedOn"]);
    assert_eq!(after["lastAuthIp"], "127.0.0.1");
}

#[tokio::test]
async fn graceful_shutdown_flushes_pending_usage() {
    // A flush interval far longer than the test: only the shutdown flush can write it.
    let Some(mut s) = Server::start_with(ServerConfig {
        usage_flush_interval: Duration::from_secs(3600),
        ..test_config()
    })
    .await
    else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "t").await;
    assert_eq!(
        s.get(&secret, "/setting/portal").await.status,
        StatusCode::OK
    );
    s.stop().await;
    let t = s
        .with_key(s.key.clone(), |store| async move { store.token(id).await })
        .await
        .expect("open");
    assert!(t.last_used_on > 0, "usage written on shutdown");
    assert_eq!(t.last_auth_ip, "127.0.0.1");
}
