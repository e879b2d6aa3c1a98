//! The change log is pruned; a follower whose position fell below the pruned floor
//! reloads its whole index instead of replaying a log with holes in it.

use std::net::{IpAddr, Ipv4Addr};

use keygate_auth::{Refusal, Verifier};
use keygate_core::token::BearerToken;
use keygate_server::state::Clock;
use keygate_store::Store;
use reqwest::StatusCode;
use serde_json::json;

use super::support::*;

fn check(v: &Verifier, secret: &str) -> Result<(), Refusal> {
    let token = BearerToken::parse(secret).expect("well-formed");
    v.verify_bearer(&token, IpAddr::V4(Ipv4Addr::LOCALHOST), Clock::System.now())
        .map(|_| ())
}

/// A second follower (as another node would be) that falls behind a pruned log.
async fn behind<S: Store>(s: &Server, store: S) {
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (deleted, deleted_secret) = s.token_for(user, "to delete").await;
    let (disabled, disabled_secret) = s.token_for(user, "to disable").await;
    let v = Verifier::load(&store).await.expect("load");
    v.confirm(Clock::System.now_millis());
    assert_eq!(check(&v, &deleted_secret), Ok(()));

    // Two changes this follower has not read, then the older one is pruned.
    let r = s
        .delete(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{deleted}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{user}/apitokens/{disabled}"),
            json!({"status": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let floor_before = store.change_floor().await.expect("floor");
    let pruned = store
        .prune_changes(Clock::System.now() + 10)
        .await
        .expect("prune");
    assert!(pruned >= 1, "entries pruned");
    assert!(store.change_floor().await.expect("floor") > floor_before);
    // The newest entry stays: the log's position does not go backwards.
    assert!(store.change_seq().await.expect("seq") > 0);

    v.follow_once(&store).await.expect("follow");
    v.confirm(Clock::System.now_millis());
    assert_eq!(check(&v, &deleted_secret), Err(Refusal::Unknown));
    assert_eq!(check(&v, &disabled_secret), Err(Refusal::Disabled));
    // The server itself keeps working and agrees.
    assert_eq!(
        s.get(&deleted_secret, "/setting/portal").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_follower_behind_a_pruned_change_log_reloads_and_misses_nothing() {
    let Some(s) = Server::start().await else {
        return;
    };
    let sref = &s;
    s.with_key(s.key.clone(), |store| async move {
        match store {
            AnyStore::Sqlite(st) => behind(sref, st).await,
            AnyStore::Postgres(st) => behind(sref, st).await,
        }
    })
    .await
    .expect("store");
}
