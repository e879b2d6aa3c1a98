//! An example service protected by keygate-tower in remote mode.
//!
//! `GET /whoami` answers who the token belongs to (any good keygate token);
//! `POST /ingest` also needs the owner to hold DataIngestion; `GET /` needs nothing.
//! The service follows a keygate server: a token disabled there is refused here
//! within milliseconds, and if keygate cannot be reached for longer than the max
//! staleness, every credential is refused with 503 until it can.
//!
//! # Layout
//!
//! - [`app`] (this file): the router and its handlers.
//! - `main.rs`: configuration from the environment, and serving.

use axum::routing::{get, post};
use axum::{Json, Router};
use keygate_core::policy::Grants;
use keygate_tower::{Authenticated, Gate, KeygateLayer};
use serde_json::{Value, json};

/// The service's routes, behind the layer on `gate`.
pub fn app(gate: Gate) -> Router {
    let authenticated = Router::new()
        .route("/whoami", get(whoami))
        .layer(KeygateLayer::new(gate.clone()));
    let ingest = Router::new()
        .route("/ingest", post(ingest))
        .layer(KeygateLayer::new(gate).require(Grants::DATAINGESTION, "dataingestion"));
    Router::new()
        .route(
            "/",
            get(|| async { "protected-service: GET /whoami, POST /ingest" }),
        )
        .merge(authenticated)
        .merge(ingest)
}

async fn whoami(Authenticated(p): Authenticated) -> Json<Value> {
    Json(json!({
        "username": &*p.username,
        "userId": p.user_id,
        "tokenId": p.token_id,
        "tokenType": p.token_type.map(|t| t.as_str()),
        "privileges": p.grants.list(),
    }))
}

async fn ingest(Authenticated(p): Authenticated, body: String) -> Json<Value> {
    Json(json!({"accepted": body.len(), "by": &*p.username}))
}
