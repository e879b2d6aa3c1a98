//! `/keygate/index` and `/keygate/lmv1/check` (keygate extensions): what a service
//! that verifies keygate tokens itself (keygate-tower in remote mode) follows, and
//! where it has LMv1 signatures checked. Both need `setting tokenindex read`.
//!
//! The index endpoint answers a snapshot of the whole index (no `after`), or the
//! changes after a position, waiting up to `waitMillis` for one when there are none
//! yet (a long poll: a change is passed on as soon as this node has applied it). The
//! frame format is in `keygate_auth::feed`; it never carries a secret.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use keygate_auth::feed;
use keygate_core::credentials::{Credential, parse_authorization};
use keygate_core::policy;
use keygate_store::Store;
use keygate_tower::GateError;

use super::json_of;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Params;
use crate::state::AppState;
use crate::wire::objects::Lmv1Verdict;

/// Change-log entries sent in one frame at most; a follower asks again at once for
/// the rest.
const BATCH: i64 = 1000;

fn may_follow(caller: &Caller) -> Result<(), ApiError> {
    policy::may_follow_index(&caller.actor())
        .map_err(|d| ApiError::from_denied(d, || "not found".to_owned()))
}

fn frame(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, feed::MEDIA_TYPE)], bytes).into_response()
}

fn integer<T: std::str::FromStr>(params: &Params, name: &str) -> Result<Option<T>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::BadRequest(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

pub(super) async fn follow<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    may_follow(&caller)?;
    let Some(after) = integer::<i64>(&params, "after")? else {
        return Ok(frame(st.verifier.export().await.1));
    };
    if after < 0 {
        return Err(ApiError::BadRequest(
            "after must be a non-negative integer".to_owned(),
        ));
    }
    let wait = Duration::from_millis(integer::<u64>(&params, "waitMillis")?.unwrap_or(0))
        .min(st.max_index_wait);
    let store = st.manager.store();
    if after >= st.verifier.position() && !wait.is_zero() {
        let mut draining = st.draining.clone();
        tokio::select! {
            _ = st.verifier.wait_past(after, wait) => {}
            // A server shutting down answers its long polls at once rather than
            // holding the drain for them.
            _ = draining.wait_for(|d| *d) => {}
        }
    }
    // A position past the change log's end is from a restored backup (or another
    // keygate): start over from a snapshot.
    if after > store.change_seq().await? {
        return Ok(frame(st.verifier.export().await.1));
    }
    let changes = store.changes_since(after, BATCH).await?;
    if changes
        .first()
        .is_some_and(|c| c.seq != after.saturating_add(1))
        && store.change_floor().await? > after
    {
        // Entries after the position were pruned: replaying would miss changes.
        return Ok(frame(st.verifier.export().await.1));
    }
    let position = changes.last().map_or(after, |c| c.seq);
    let mut out = Vec::with_capacity(64 + changes.len() * 50);
    feed::frame_header(&mut out, false, position);
    for c in &changes {
        feed::encode(&feed::resolve(store, c).await?, &mut out);
    }
    Ok(frame(out))
}

/// A header the check needs, named as the document spells it.
fn header<'a>(h: &'a HeaderMap, name: &str, what: &str) -> Result<&'a str, ApiError> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("send the checked request's {what} in {name}")))
}

pub(super) async fn check_lmv1<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    may_follow(&caller)?;
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let authorization = header(h, "X-Keygate-Authorization", "Authorization header")?;
    let method = header(h, "X-Keygate-Method", "method")?;
    let path = header(
        h,
        "X-Keygate-Path",
        "signed path (after the service's base, without the query string)",
    )?;
    // The service names its client; it is trusted to, as it holds the privilege.
    let ip = h
        .get("x-keygate-client-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(caller.ip);
    let declared = keygate_tower::gate::declared_length(h);
    let checked = async {
        let cred = match parse_authorization(authorization.as_bytes()) {
            Ok(Credential::Lmv1(cred)) => cred,
            Ok(Credential::Bearer(_)) => {
                return Err(GateError::Malformed(
                    "X-Keygate-Authorization holds a bearer token: only LMv1 signatures are checked here; a service checks bearer tokens in its own index".to_owned(),
                ));
            }
            Err(e) => return Err(GateError::Malformed(e.to_string())),
        };
        let mut check = st.gate.lmv1_begin(&cred, method)?;
        let bytes = st
            .gate
            .read_signed_body(&mut check, axum::body::Body::new(body), declared)
            .await?;
        crate::auth::timed(&st, st.gate.lmv1_finish(check, path, &bytes, ip)).await
    }
    .await;
    let verdict = match checked {
        Ok(p) => {
            st.metrics.auth("lmv1", "success");
            Lmv1Verdict {
                allowed: true,
                user_id: Some(p.user_id),
                username: Some(p.username.to_string()),
                token_id: p.token_id,
                token_type: Some("lmv1"),
                privileges: Some(p.grants.list()),
                ..Lmv1Verdict::default()
            }
        }
        Err(e) => {
            // A refused signature spends from its client's bucket, as on the API.
            let e = if e.is_refusal() {
                match crate::auth::spend_refusal(&st, ip, "lmv1", e.label(), e.clone().into()) {
                    ApiError::TooManyRequests(m, secs) => GateError::Keygate {
                        status: 429,
                        message: m,
                        detail: None,
                        retry_after: Some(secs),
                    },
                    _ => e,
                }
            } else {
                st.metrics.auth("lmv1", e.label());
                e
            };
            Lmv1Verdict {
                allowed: false,
                error_code: Some(e.status()),
                error_message: Some(e.to_string()),
                error_detail: e.detail(),
                retry_after: e.retry_after(),
                ..Lmv1Verdict::default()
            }
        }
    };
    Ok(json_of(&verdict).into_response())
}
