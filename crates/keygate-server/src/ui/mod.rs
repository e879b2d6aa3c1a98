//! The web UI: Settings › User Access › Users and Roles (Users, Roles, LMv1 API
//! Tokens, Bearer Tokens), Portal settings and the REST API page; and the Data area
//! (pushed resources with charts, logs, traces).
//!
//! Pages are rendered here from the same [`crate::manage::Manager`] calls the API
//! uses. Changes are made by `assets/app.js` calling the REST API with the session
//! cookie and the CSRF token, so every rule and error message is the API's. Two
//! endpoints exist only for the UI: generating a bearer token to show before it is
//! saved, and saving it.
//!
//! # Layout
//!
//! - this file — routes, the security headers, the page extractor, sign-in and out.
//! - [`html`] — escaping, times, the page layout.
//! - [`pages`] — one function per page of Settings.
//! - [`data`] — the Data area's pages.
//! - [`chart`] — server-rendered SVG: a time series, a trace's waterfall.
//! - `assets/` — the stylesheet, the pages' script (`app.js`) and the REST API
//!   page's console (`api.js`), served from the binary.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keygate_auth::Principal;
use keygate_core::model::{TokenStatus, UserStatus};
use keygate_core::password;
use keygate_core::policy::Actor;
use keygate_core::token::BearerToken;
use keygate_store::{PendingToken, SignInAttempt, Store};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::Body;
use crate::manage::TokenInput;
use crate::session;
use crate::state::AppState;
use crate::wire::inputs::ApiTokenInput;

pub mod chart;
pub mod data;
pub mod html;
pub mod pages;

/// The routes of the web UI.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    // Sign-in reads a form from someone not yet known (and hashes a password): it
    // holds an unauthenticated slot, a few per client, never a main one.
    let signin_routes = Router::new()
        .route("/signin", get(signin_page::<S>).post(signin::<S>))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            pre_auth_slot::<S>,
        ));
    Router::new()
        .route("/", get(index))
        .route("/signout", post(signout::<S>))
        .route("/settings/user-access/users", get(pages::users::<S>))
        .route(
            "/settings/user-access/users/add",
            get(pages::user_form::<S>),
        )
        .route(
            "/settings/user-access/users/{id}/edit",
            get(pages::user_form::<S>),
        )
        .route("/settings/user-access/roles", get(pages::roles::<S>))
        .route(
            "/settings/user-access/roles/add",
            get(pages::role_form::<S>),
        )
        .route(
            "/settings/user-access/roles/{id}/edit",
            get(pages::role_form::<S>),
        )
        .route(
            "/settings/user-access/bearer-tokens",
            get(pages::bearer_tokens::<S>),
        )
        .route(
            "/settings/user-access/bearer-tokens/add",
            get(pages::add_bearer::<S>),
        )
        .route(
            "/settings/user-access/lmv1-tokens",
            get(pages::lmv1_tokens::<S>),
        )
        .route(
            "/settings/user-access/lmv1-tokens/add",
            get(pages::add_lmv1::<S>),
        )
        .route("/settings/user-access/audit", get(pages::audit::<S>))
        .route("/settings/portal", get(pages::portal::<S>))
        .route("/settings/api", get(pages::api_console))
        .route("/data/resources", get(data::resources::<S>))
        .route("/data/resources/{id}", get(data::resource::<S>))
        .route("/data/logs", get(data::logs::<S>))
        .route("/data/traces", get(data::traces::<S>))
        .route("/data/traces/{trace_id}", get(data::trace::<S>))
        .route("/ui/pending-token", post(pending_token::<S>))
        .route("/ui/bearer-tokens", post(save_bearer::<S>))
        .route("/assets/app.js", get(app_js))
        .route("/assets/app.css", get(app_css))
        .route("/assets/api.js", get(api_js))
        // Pages and the UI's calls read a body only once the session checked out.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            main_slot::<S>,
        ))
        .merge(signin_routes)
        .route_layer(crate::front::Tag::matched(&state.metrics))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::body::UI_MAX_BODY,
        ))
        .layer(middleware::from_fn(security_headers))
}

/// Holds a main-pool request slot for the request.
async fn main_slot<S: Store>(
    State(st): State<AppState<S>>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    match st.slots.main() {
        Ok(_slot) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Holds an unauthenticated request slot (a few per client address) for the request.
async fn pre_auth_slot<S: Store>(
    State(st): State<AppState<S>>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let ip = crate::auth::client_ip(&parts, &st.trusted_proxies);
    match st.slots.pre_auth(ip) {
        Ok(_slot) => {
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(e) => e.into_response(),
    }
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers on every UI response: a strict CSP (no inline script or style), no
/// sniffing, no framing, no referrer, and no caching of pages that may show a secret.
async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A signed-in viewer of a page. Without a live session the page redirects to sign-in.
pub struct Page {
    /// Who, with privileges as they are now.
    pub principal: Principal,
    /// The session's CSRF token (put in the page for the script).
    pub csrf: String,
    /// The stored form of the session id.
    pub session: [u8; 32],
    /// The client address, for the audit log.
    pub ip: std::net::IpAddr,
}

impl Page {
    /// The viewer as a policy actor, acting from the client's address.
    pub fn actor(&self) -> Actor {
        self.principal.actor().from_ip(self.ip)
    }

    /// The viewer for the layout.
    pub fn viewer(&self) -> html::Viewer<'_> {
        html::Viewer {
            username: &self.principal.username,
            grants: self.principal.grants,
            csrf: &self.csrf,
        }
    }
}

impl<S: Store> FromRequestParts<AppState<S>> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState<S>) -> Result<Self, Response> {
        match crate::auth::load_session(st, parts).await {
            Ok((principal, s, session)) => Ok(Self {
                principal,
                csrf: s.csrf,
                session,
                ip: crate::auth::client_ip(parts, &st.trusted_proxies),
            }),
            Err(ApiError::Unauthorized(_)) => Err(Redirect::to("/signin").into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

async fn index(page: Result<Page, Response>) -> Response {
    match page {
        Ok(p) if p.viewer().sees_users() => {
            Redirect::to("/settings/user-access/users").into_response()
        }
        // A collector's user with DataIngestion alone has nothing to see in Settings.
        Ok(p) if !p.viewer().sees_tokens() && p.viewer().sees_data() => {
            Redirect::to("/data/resources").into_response()
        }
        Ok(_) => Redirect::to("/settings/user-access/bearer-tokens").into_response(),
        Err(r) => r,
    }
}

fn signin_html(csrf: &str, error: Option<&str>, username: &str) -> String {
    let error = error.map_or(String::new(), |e| {
        format!(
            "<p class=\"form-error\" role=\"alert\" id=\"signin-error\">{}</p>",
            html::esc(e)
        )
    });
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Sign in · keygate</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body class=\"signin-body\">\
         <main class=\"signin\"><h1>keygate</h1><p class=\"muted\">Sign in to manage users, roles and API tokens.</p>{error}\
         <form method=\"post\" action=\"/signin\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"username\">Username</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"{user}\" autofocus>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" class=\"primary\">Sign in</button></form></main></body></html>",
        csrf = html::esc(csrf),
        user = html::esc(username),
    )
}

/// The sign-in form, with a fresh double-submit CSRF value in a cookie and the form.
async fn signin_page<S: Store>(State(st): State<AppState<S>>) -> Result<Response, ApiError> {
    let csrf = session::new_secret()?;
    let mut resp = Html(signin_html(&csrf, None, "")).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        st.sessions.set_cookie(session::LOGIN_COOKIE, &csrf, None),
    );
    Ok(resp)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SigninForm {
    username: String,
    password: String,
    csrf: String,
}

async fn signin<S: Store>(
    State(st): State<AppState<S>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Form(f): Form<SigninForm>,
) -> Result<Response, ApiError> {
    let cookie = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or("");
    if cookie.is_empty() || !session::same(cookie, &f.csrf) {
        return Err(ApiError::Forbidden(
            "the sign-in form expired or was not sent by this site; reload the page".to_owned(),
        ));
    }
    let ip = crate::auth::client_ip_of(peer.ip(), &headers, &st.trusted_proxies);
    let now = st.clock.now();
    // Each attempt reserves a token from the client's failure bucket before any
    // password work; a correct password gives it back.
    let earlier = st.throttle.take(ip, st.clock.now_millis());
    if let Ok(n @ 1..) = earlier {
        record_throttled_sign_ins(&st, ip, n).await;
    }
    if let Err(wait) = earlier {
        st.metrics.auth("password", "throttled");
        st.metrics.throttled();
        let msg = format!(
            "Too many failed sign-in attempts from this address; try again in {} s.",
            wait.0
        );
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            Html(signin_html(&f.csrf, Some(&msg), &f.username)),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.0.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(resp);
    }
    let store = st.manager.store();
    let found = if f.username.len() <= 128 && f.password.len() <= password::MAX_LEN {
        store.password_hash(&f.username).await?
    } else {
        None
    };
    let refused = |user: Option<&keygate_core::model::User>, reason| SignInAttempt {
        user: user.map(|u| u.id),
        username: f.username.clone(),
        ip: ip.to_string(),
        success: false,
        reason,
    };
    // Exactly one argon2id check for every attempt, whatever the account: against
    // the user's own hash when there is one, against a dummy otherwise. Refusing a
    // suspended, API-only or password-less user before hashing would tell them apart
    // from unknown users and wrong passwords by time alone.
    let hash = match &found {
        Some((_, Some(h))) => h.as_str(),
        _ => dummy_hash(),
    };
    st.metrics.password_check();
    let password_ok = password::verify(&f.password, hash);
    let user = match found {
        Some((u, Some(_))) if password_ok && u.status == UserStatus::Active && !u.api_only => u,
        other => {
            let attempt = match &other {
                None => refused(None, "unknown user"),
                Some((u, _)) if u.status != UserStatus::Active => {
                    refused(Some(u), "user is suspended")
                }
                Some((u, _)) if u.api_only => refused(Some(u), "user is API-only"),
                Some((u, None)) => refused(Some(u), "user has no password"),
                Some((u, Some(_))) => refused(Some(u), "wrong password"),
            };
            store.record_sign_in(&attempt, now).await?;
            st.metrics.auth("password", "refused");
            let body = signin_html(
                &f.csrf,
                Some("Wrong username or password, or the user may not sign in."),
                &f.username,
            );
            return Ok((StatusCode::UNAUTHORIZED, Html(body)).into_response());
        }
    };
    st.throttle.refund(ip);
    st.metrics.auth("password", "success");
    // A new id at every sign-in: a session id planted before sign-in is never promoted,
    // and a session this browser already had ends.
    if let Some(old) = session::cookie(&headers, &st.sessions.cookie_name()) {
        store.delete_session(&session::hash_id(old)).await?;
    }
    let id = session::new_secret()?;
    let csrf = session::new_secret()?;
    store
        .create_session(&session::hash_id(&id), user.id, &csrf, now)
        .await?;
    let attempt = SignInAttempt {
        user: Some(user.id),
        username: user.username.clone(),
        ip: ip.to_string(),
        success: true,
        reason: "",
    };
    store.record_sign_in(&attempt, now).await?;
    // The user's lastLoginOn changed: this node's reads show it from the next page on.
    // The sign-in itself stands either way.
    if let Err(e) = st.manager.settle().await {
        tracing::warn!(error = %e, "sign-in recorded but not yet applied to this node's view");
    }
    let mut resp = Redirect::to("/").into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        st.sessions
            .set_cookie(&st.sessions.cookie_name(), &id, None),
    );
    h.append(
        header::SET_COOKIE,
        st.sessions
            .set_cookie(session::LOGIN_COOKIE, "", Some(std::time::Duration::ZERO)),
    );
    Ok(resp)
}

/// One audit entry for `count` authentications from `ip` that were throttled and so
/// not recorded one by one.
async fn record_throttled_sign_ins<S: Store>(st: &AppState<S>, ip: std::net::IpAddr, count: u64) {
    let s = keygate_store::Suppressed {
        who: keygate_store::SuppressedWho::Address(ip.to_string()),
        count,
    };
    let record = keygate_store::AuditRecord::suppressed(&s, st.clock.now());
    if let Err(e) = st.manager.store().record_audit(&record).await {
        tracing::warn!(error = %e, "could not record throttled authentications in the audit log");
    }
}

/// An argon2id hash of a random password, checked against for unknown users so they
/// cost the same time as known ones.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        password::generate()
            .and_then(|p| password::hash(&p))
            .unwrap_or_default()
    })
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub struct SignoutForm {
    csrf: String,
}

/// Signs out. Without a live session the form is not even read: the request is
/// redirected to sign-in before its body is looked at.
async fn signout<S: Store>(
    State(st): State<AppState<S>>,
    p: Page,
    Form(f): Form<SignoutForm>,
) -> Result<Response, ApiError> {
    if !session::same(&f.csrf, &p.csrf) {
        return Err(ApiError::Forbidden(
            "missing or wrong CSRF token".to_owned(),
        ));
    }
    st.manager.store().delete_session(&p.session).await?;
    let mut resp = Redirect::to("/signin").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        st.sessions.set_cookie(
            &st.sessions.cookie_name(),
            "",
            Some(std::time::Duration::ZERO),
        ),
    );
    Ok(resp)
}

fn check_csrf(parts_csrf: Option<&str>, page: &Page) -> Result<(), ApiError> {
    if session::same(parts_csrf.unwrap_or(""), &page.csrf) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "missing or wrong CSRF token: send X-CSRF-Token".to_owned(),
        ))
    }
}

/// A signed-in viewer for the UI's JSON calls: without a live session the call is
/// answered 401 before its body is read.
pub struct ApiPage(pub Page);

impl<S: Store> FromRequestParts<AppState<S>> for ApiPage {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState<S>) -> Result<Self, ApiError> {
        Page::from_request_parts(parts, st)
            .await
            .map(Self)
            .map_err(|_| ApiError::Unauthorized("the session has ended; sign in again".to_owned()))
    }
}

/// Generates a bearer token for the Add page. The server keeps only its digest and
/// masked form in the session; the token goes to the browser once, in this response.
async fn pending_token<S: Store>(
    State(st): State<AppState<S>>,
    ApiPage(page): ApiPage,
    headers: axum::http::HeaderMap,
    Body(b): Body,
) -> Result<Response, ApiError> {
    check_csrf(
        headers
            .get(session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok()),
        &page,
    )?;
    let owner = admin_id(&b.decode()?)?;
    // The same checks as creating it, so the page says at once if it cannot be saved.
    let actor = page.actor();
    let cap = keygate_core::policy::token_write(&actor, owner)
        .map_err(|d| ApiError::from_denied(d, || "not found".to_owned()))?;
    // What the token would act with, as this node knows it now (saving checks again
    // inside the transaction).
    if let Ok(p) = st.verifier.session_principal(owner, st.clock.now_millis()) {
        cap.may_mint(p.grants)
            .map_err(|d| ApiError::from_denied(d, || "not found".to_owned()))?;
    }
    let token = BearerToken::generate()?;
    let pending = PendingToken {
        digest: token.digest(),
        access_id: token.masked(),
        owner,
    };
    st.manager
        .store()
        .set_pending_token(&page.session, &pending)
        .await?;
    let mut resp = Json(json!({"token": token.expose_secret()})).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn admin_id(b: &ApiTokenInput) -> Result<i64, ApiError> {
    b.admin_id
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::BadRequest("adminId must be a user id".to_owned()))
}

/// Saves the session's pending bearer token for the user it was generated for.
async fn save_bearer<S: Store>(
    State(st): State<AppState<S>>,
    ApiPage(page): ApiPage,
    headers: axum::http::HeaderMap,
    Body(b): Body,
) -> Result<Json<Value>, ApiError> {
    check_csrf(
        headers
            .get(session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok()),
        &page,
    )?;
    let b: ApiTokenInput = b.decode()?;
    let owner = admin_id(&b)?;
    let note = b.note.unwrap_or_default();
    let pending = st.manager.store().take_pending_token(&page.session).await?;
    let Some(pending) = pending.filter(|p| p.owner == owner) else {
        return Err(ApiError::BadRequest(
            "no token was generated for this user on this page; select the user again".to_owned(),
        ));
    };
    let input = TokenInput {
        note,
        status: TokenStatus::Enabled,
    };
    let view = st
        .manager
        .create_bearer_from(
            &page.actor(),
            owner,
            input,
            pending.digest,
            pending.access_id,
        )
        .await?;
    Ok(Json(json!({"id": view.token.id})))
}

async fn app_js() -> Response {
    asset(
        include_str!("assets/app.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn api_js() -> Response {
    asset(
        include_str!("assets/api.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn app_css() -> Response {
    asset(include_str!("assets/app.css"), "text/css; charset=utf-8")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
