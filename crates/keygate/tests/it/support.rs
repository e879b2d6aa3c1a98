//! Test harness: a real keygate server on an ephemeral port over a temporary SQLite
//! file, and an HTTP client for it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keygate_core::model::TokenStatus;
use keygate_core::policy::Actor;
use keygate_server::manage::TokenInput;
use keygate_server::{Manager, ServerConfig};
use keygate_store::{MasterKey, SqliteStore, Store};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub admin_token: String,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    pub key: MasterKey,
    pub config: ServerConfig,
    pub dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

/// A response: status and JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// The `errorMessage` of an error body.
    pub fn message(&self) -> &str {
        self.body["errorMessage"].as_str().unwrap_or("")
    }
}

/// Fast intervals so tests see propagation and usage quickly.
pub fn test_config() -> ServerConfig {
    ServerConfig {
        poll_interval: Duration::from_millis(100),
        usage_flush_interval: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

impl Server {
    /// A fresh server with a bootstrapped store and a bearer token for `admin`.
    pub async fn start() -> Self {
        Self::start_with(test_config()).await
    }

    pub async fn start_with(config: ServerConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("keygate.db");
        let key = MasterKey::generate().expect("master key");
        // Where the admin CLI looks for it (keygate.key beside keygate.db).
        key.write_new_file(&db_path.with_extension("key"))
            .expect("key file");
        let store = SqliteStore::open(db_path.to_str().expect("utf-8 path"), key.clone())
            .await
            .expect("open store");
        let hash = keygate_core::password::hash("bootstrap-password").expect("hash");
        assert!(store.bootstrap(&hash, 1).await.expect("bootstrap"));
        let admin = store.user_by_username("admin").await.expect("admin exists");
        let m = Manager::new(store.clone(), None);
        let input = TokenInput {
            note: "test admin".into(),
            status: TokenStatus::Enabled,
        };
        let (_, secret) = m
            .create_bearer_token(&Actor::local_admin(), admin.id, input)
            .await
            .expect("admin token");
        let mut s = Self::launch(db_path, key, config).await;
        s.admin_token = secret.expose_secret().to_owned();
        s.dir = Some(dir);
        s
    }

    /// Starts a server on an existing database with the given key (no bootstrap).
    pub async fn launch(db_path: PathBuf, key: MasterKey, config: ServerConfig) -> Self {
        let store = SqliteStore::open(db_path.to_str().expect("utf-8 path"), key.clone())
            .await
            .expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let serve_config = config.clone();
        let handle = tokio::spawn(async move {
            keygate_server::serve(listener, store, serve_config, async {
                let _ = rx.await;
            })
            .await
            .expect("server ran");
        });
        Self {
            addr,
            admin_token: String::new(),
            client: reqwest::Client::new(),
            db_path,
            key,
            config,
            dir: None,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Graceful stop (drains requests, flushes usage).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task");
        }
    }

    /// Stops gracefully and starts again on the same database.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let mut s = Self::launch(self.db_path.clone(), self.key.clone(), self.config.clone()).await;
        s.admin_token = std::mem::take(&mut self.admin_token);
        s.dir = self.dir.take();
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/santaba/rest{}", self.addr, path)
    }

    /// Sends a request with a bearer token (or none) and an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        send(rb).await
    }

    pub async fn get(&self, token: &str, path: &str) -> Resp {
        self.call(Method::GET, Some(token), path, None).await
    }
    pub async fn post(&self, token: &str, path: &str, body: Value) -> Resp {
        self.call(Method::POST, Some(token), path, Some(body)).await
    }
    pub async fn patch(&self, token: &str, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, Some(token), path, Some(body))
            .await
    }
    pub async fn delete(&self, token: &str, path: &str) -> Resp {
        self.call(Method::DELETE, Some(token), path, None).await
    }

    /// Sends an LMv1-signed request. `path` may carry a query string; only the part
    /// before `?` is signed, as the contract says.
    pub async fn lmv1(
        &self,
        method: Method,
        access_id: &str,
        key: &str,
        path: &str,
        body: Option<&str>,
        epoch_millis: i64,
    ) -> Resp {
        let signed_path = path.split('?').next().unwrap_or(path);
        let key = keygate_core::lmv1::AccessKey::from_secret(key.to_owned());
        let body_bytes = body.unwrap_or("").as_bytes();
        let sig =
            keygate_core::lmv1::sign(&key, method.as_str(), epoch_millis, body_bytes, signed_path);
        let mut rb = self.client.request(method, self.url(path)).header(
            "Authorization",
            format!("LMv1 {access_id}:{sig}:{epoch_millis}"),
        );
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_owned());
        }
        send(rb).await
    }

    /// Creates an LMv1 token for `owner` as the admin; returns (id, access id, key).
    pub async fn lmv1_for(&self, owner: i64, note: &str) -> (i64, String, String) {
        let r = self
            .post(
                &self.admin_token,
                &format!("/setting/admins/{owner}/apitokens"),
                serde_json::json!({"note": note}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "create LMv1 token: {}", r.text);
        (
            r.body["id"].as_i64().expect("id"),
            r.body["accessId"].as_str().expect("access id").to_owned(),
            r.body["accessKey"].as_str().expect("key").to_owned(),
        )
    }

    /// Creates a user with the given role ids; returns its id.
    pub async fn user(&self, username: &str, roles: &[i64]) -> i64 {
        let roles: Vec<Value> = roles
            .iter()
            .map(|id| serde_json::json!({"id": id}))
            .collect();
        let r = self
            .post(
                &self.admin_token,
                "/setting/admins",
                serde_json::json!({"username": username, "email": format!("{username}@example.com"), "roles": roles}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "create user {username}: {}",
            r.text
        );
        r.body["id"].as_i64().expect("user id")
    }

    /// Creates a role; returns its id.
    pub async fn role(&self, name: &str, privileges: &[(&str, &str, &str)]) -> i64 {
        let privileges: Vec<Value> = privileges
            .iter()
            .map(|(t, i, o)| serde_json::json!({"objectType": t, "objectId": i, "operation": o}))
            .collect();
        let r = self
            .post(
                &self.admin_token,
                "/setting/roles",
                serde_json::json!({"name": name, "privileges": privileges}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "create role {name}: {}", r.text);
        r.body["id"].as_i64().expect("role id")
    }

    /// Creates a bearer token for `owner` as the admin; returns (id, secret).
    pub async fn token_for(&self, owner: i64, note: &str) -> (i64, String) {
        self.token_as(&self.admin_token.clone(), owner, note).await
    }

    /// Creates a bearer token for `owner` with `caller`'s token; returns (id, secret).
    pub async fn token_as(&self, caller: &str, owner: i64, note: &str) -> (i64, String) {
        let r = self
            .post(
                caller,
                &format!("/setting/admins/{owner}/apitokens?type=bearer"),
                serde_json::json!({"note": note}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "create token: {}", r.text);
        (
            r.body["id"].as_i64().expect("token id"),
            r.body["accessKey"].as_str().expect("secret").to_owned(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Sends a prepared request and reads the response.
pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let resp = rb.send().await.expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

/// The built-in role ids (created in this order on first start).
pub const ADMINISTRATOR: i64 = 1;
pub const DATAINGESTION: i64 = 2;
pub const READONLY: i64 = 3;

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_millis() -> i64 {
    keygate_server::state::Clock::System.now_millis()
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
/// For conditions that become true in the background (usage flush, change-log
/// follow), never for server start-up.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
