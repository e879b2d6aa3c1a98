//! Test harness: a real keygate server on an ephemeral port over a temporary SQLite
//! file, and an HTTP client for it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keygate_core::model::TokenStatus;
use keygate_core::policy::Actor;
use keygate_server::manage::TokenInput;
use keygate_server::{Manager, ServerConfig};
use keygate_store::{MasterKey, PgStore, SqliteStore, Store};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::Backend;

/// Where a test server keeps its data.
#[derive(Debug, Clone)]
pub enum Db {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, dropped when the test ends.
    Postgres {
        /// Its URL.
        url: String,
    },
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub admin_token: String,
    pub client: reqwest::Client,
    pub db: Db,
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

/// Installs ring as the TLS provider of this process: reqwest is built without one
/// (the client CLI picks its own), so its clients need it before they are built.
pub fn crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Fast intervals so tests see propagation and usage quickly.
pub fn test_config() -> ServerConfig {
    ServerConfig {
        poll_interval: Duration::from_millis(100),
        usage_flush_interval: Duration::from_millis(200),
        // Many tests fail authentication on purpose; the throttle tests set their own limits.
        throttle: keygate_auth::throttle::ThrottleConfig {
            burst: 100_000.0,
            ..Default::default()
        },
        refusal_throttle: keygate_auth::throttle::ThrottleConfig {
            burst: 100_000.0,
            ..Default::default()
        },
        // The ingestion tests push fixed times from 2023: housekeeping's first pass,
        // which runs as the server starts, would otherwise prune them under the test.
        data_retention: Duration::from_secs(100 * 365 * 86_400),
        ..ServerConfig::default()
    }
}

impl Server {
    /// A fresh server with a bootstrapped store and a bearer token for `admin`.
    pub async fn start() -> Option<Self> {
        Self::start_with(test_config()).await
    }

    /// A fresh server on this copy's backend; `None` (after a loud line) when that
    /// backend is PostgreSQL and no test database is configured.
    pub async fn start_with(config: ServerConfig) -> Option<Self> {
        Self::start_at(tempfile::tempdir().expect("temp dir"), config).await
    }

    /// A fresh server keeping its files (SQLite database, master key) in `dir`.
    pub async fn start_at(dir: tempfile::TempDir, config: ServerConfig) -> Option<Self> {
        let key = MasterKey::generate().expect("master key");
        // Where the admin CLI looks for it (keygate.key beside keygate.db; for
        // PostgreSQL it is passed explicitly, see `cli_env`).
        let key_file = dir.path().join("keygate.key");
        key.write_new_file(&key_file).expect("key file");
        let db = match super::BACKEND {
            Backend::Sqlite => Db::Sqlite(dir.path().join("keygate.db")),
            Backend::Postgres => Db::Postgres {
                url: pg::create_database().await?,
            },
        };
        let admin_token = bootstrap_admin(&db, key.clone()).await;
        let mut s = Self::launch(&db, key, config).await;
        s.admin_token = admin_token;
        s.dir = Some(dir);
        Some(s)
    }

    /// Starts a server on an existing database with the given key (no bootstrap).
    pub async fn launch(db: &Db, key: MasterKey, config: ServerConfig) -> Self {
        Self::launch_on(db, key, config, "127.0.0.1:0".parse().expect("address")).await
    }

    /// [`Server::launch`] on a given address (to come back where clients look).
    pub async fn launch_on(db: &Db, key: MasterKey, config: ServerConfig, at: SocketAddr) -> Self {
        crypto_provider();
        let listener = tokio::net::TcpListener::bind(at).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let mut serve_config = config.clone();
        if let Db::Sqlite(path) = db {
            // As `keygate serve` does on SQLite: the admin CLI's changes apply at once.
            serve_config.wake_socket = Some(keygate_server::wake::socket_path(path));
        }
        let stop = async {
            let _ = rx.await;
        };
        let handle = match db {
            Db::Sqlite(path) => {
                let store = SqliteStore::open(path.to_str().expect("utf-8 path"), key.clone())
                    .await
                    .expect("open store");
                apart(async move {
                    keygate_server::serve(listener, store, serve_config, stop)
                        .await
                        .expect("server ran");
                })
            }
            Db::Postgres { url } => {
                let store = PgStore::open(url, key.clone(), 5, Duration::from_millis(1500))
                    .await
                    .expect("open store");
                tokio::spawn(async move {
                    keygate_server::serve(listener, store, serve_config, stop)
                        .await
                        .expect("server ran");
                })
            }
        };
        Self {
            addr,
            admin_token: String::new(),
            client: reqwest::Client::new(),
            db: db.clone(),
            key,
            config,
            dir: None,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// The `--database-url` of this server's data.
    pub fn database_url(&self) -> String {
        match &self.db {
            Db::Sqlite(p) => format!("sqlite://{}", p.display()),
            Db::Postgres { url } => url.clone(),
        }
    }

    /// The master key file (beside the SQLite file; given explicitly for PostgreSQL).
    pub fn key_file(&self) -> PathBuf {
        self.dir
            .as_ref()
            .expect("temp dir")
            .path()
            .join("keygate.key")
    }

    /// Environment for the admin CLI pointing at this server's data.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("KEYGATE_DATABASE_URL", self.database_url())];
        if matches!(self.db, Db::Postgres { .. }) {
            env.push((
                "KEYGATE_MASTER_KEY_FILE",
                self.key_file().display().to_string(),
            ));
        }
        env
    }

    /// Everything the database holds, as bytes, to search for a secret: the SQLite
    /// file and its WAL, or every row of every keygate table in PostgreSQL.
    pub async fn raw_contents(&self) -> Vec<u8> {
        match &self.db {
            Db::Sqlite(p) => {
                let mut bytes = std::fs::read(p).expect("db file");
                bytes.extend(std::fs::read(p.with_extension("db-wal")).unwrap_or_default());
                bytes
            }
            Db::Postgres { url } => pg::dump(url).await,
        }
    }

    /// Runs `f` with a store opened on this server's data with `key`.
    pub async fn with_key<F, Fut, T>(
        &self,
        key: MasterKey,
        f: F,
    ) -> Result<T, keygate_store::StoreError>
    where
        F: FnOnce(AnyStore) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        Ok(f(open_any(&self.db, key).await?).await)
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
    pub async fn restart(self) -> Self {
        let config = self.config.clone();
        self.restart_with(config).await
    }

    /// Stops gracefully and starts again on the same database with `config`.
    pub async fn restart_with(mut self, config: ServerConfig) -> Self {
        self.stop().await;
        let mut s = Self::launch(&self.db, self.key.clone(), config).await;
        s.admin_token = std::mem::take(&mut self.admin_token);
        s.dir = self.dir.take();
        s
    }

    /// Starts a stopped server again on the same database and the same port.
    pub async fn relaunch(mut self) -> Self {
        let config = self.config.clone();
        let mut s = Self::launch_on(&self.db, self.key.clone(), config, self.addr).await;
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

    /// One unlabelled value from `/metrics`, if the server reports it.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let r = send(reqwest::Client::new().get(format!("http://{}/metrics", self.addr))).await;
        r.text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
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

    /// The id of the token `token` (asked of the server, with the token itself).
    pub async fn token_id_of(&self, token: &str) -> i64 {
        let r = self.get(token, "/apitokens/self").await;
        assert_eq!(r.status, StatusCode::OK, "apitokens/self: {}", r.text);
        r.body["id"].as_i64().expect("id")
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
        // The database goes with the test that made it (a restarted server shares it
        // and only the last holder of the temp dir drops it).
        if let (Db::Postgres { url }, Some(_)) = (&self.db, &self.dir) {
            pg::drop_database(url);
        }
    }
}

/// Either store, for tests that open the data directly.
pub enum AnyStore {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

/// Runs a SQLite server on a runtime of its own, as `keygate serve` runs in a process
/// of its own: SQLite calls run on the thread that makes them, so a test opening a
/// second store on the same file (whose migrations wait up to 5 s for the file's
/// lock) would otherwise hold up, on a shared single-threaded runtime, the very
/// server whose write transaction it waits for. The handle ends when the server
/// does, and fails if it failed.
fn apart(serve: impl std::future::Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
    let (done, ended) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(serve)));
        let _ = done.send(ran.is_ok());
    });
    tokio::spawn(async move {
        assert!(ended.await.unwrap_or(false), "the server failed");
    })
}

async fn open_any(db: &Db, key: MasterKey) -> Result<AnyStore, keygate_store::StoreError> {
    Ok(match db {
        Db::Sqlite(p) => AnyStore::Sqlite(SqliteStore::open(p.to_str().expect("path"), key).await?),
        Db::Postgres { url } => {
            AnyStore::Postgres(PgStore::open(url, key, 2, Duration::from_millis(1500)).await?)
        }
    })
}

/// Bootstraps the store and mints a bearer token for `admin`; returns the token.
async fn bootstrap_admin(db: &Db, key: MasterKey) -> String {
    match open_any(db, key).await.expect("open store") {
        AnyStore::Sqlite(s) => bootstrap_on(s).await,
        AnyStore::Postgres(s) => bootstrap_on(s).await,
    }
}

async fn bootstrap_on<S: Store>(store: S) -> String {
    let hash = keygate_core::password::hash("bootstrap-password").expect("hash");
    assert!(store.bootstrap(&hash, 1).await.expect("bootstrap"));
    let admin = store.user_by_username("admin").await.expect("admin exists");
    let m = Manager::new(store, None);
    let input = TokenInput {
        note: "test admin".into(),
        status: TokenStatus::Enabled,
    };
    let (_, secret) = m
        .create_bearer_token(&Actor::local_admin(), admin.id, input)
        .await
        .expect("admin token");
    secret.expose_secret().to_owned()
}

impl AnyStore {
    /// A token as stored.
    pub async fn token(&self, id: i64) -> keygate_core::model::ApiToken {
        match self {
            Self::Sqlite(s) => s.token(id).await,
            Self::Postgres(s) => s.token(id).await,
        }
        .expect("token")
    }

    /// The sealed LMv1 key of a token, as stored.
    pub async fn sealed_key(&self, id: i64) -> Option<Vec<u8>> {
        match self {
            Self::Sqlite(s) => s
                .with_connection(|c| {
                    c.query_row(
                        "SELECT sealed_key FROM api_tokens WHERE id = ?1",
                        [id],
                        |r| r.get(0),
                    )
                })
                .await
                .map_err(|e| e.to_string()),
            Self::Postgres(s) => {
                sqlx::query_scalar("SELECT sealed_key FROM api_tokens WHERE id = $1")
                    .bind(id)
                    .fetch_one(s.pool())
                    .await
                    .map_err(|e| e.to_string())
            }
        }
        .expect("row")
    }

    /// Re-seals every LMv1 key under `new` (without touching key files).
    pub async fn rotate(&self, new: &MasterKey) -> usize {
        match self {
            Self::Sqlite(s) => s.rotate_master_key(new).await,
            Self::Postgres(s) => s.rotate_master_key(new).await,
        }
        .expect("rotate")
    }

    /// Runs one static statement outside keygate (to break the database on purpose).
    pub async fn execute(&self, sql: &'static str) {
        match self {
            Self::Sqlite(s) => s
                .with_connection(|c| c.execute_batch(sql))
                .await
                .map_err(|e| e.to_string()),
            Self::Postgres(s) => sqlx::query(sql)
                .execute(s.pool())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
        .expect("statement")
    }

    /// Prunes ended sessions, then counts what is left.
    pub async fn prune_and_count_sessions(&self, idle_before: i64, created_before: i64) -> i64 {
        match self {
            Self::Sqlite(s) => {
                s.prune_sessions(idle_before, created_before)
                    .await
                    .expect("prune");
                s.with_connection(|c| {
                    c.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
                })
                .await
                .expect("count")
            }
            Self::Postgres(s) => {
                s.prune_sessions(idle_before, created_before)
                    .await
                    .expect("prune");
                sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
                    .fetch_one(s.pool())
                    .await
                    .expect("count")
            }
        }
    }
}

/// PostgreSQL test databases: one per test, randomly named, dropped afterwards.
pub mod pg {
    use sqlx::Connection as _;

    /// The server to make test databases on, or `None` (with a loud line) when
    /// KEYGATE_TEST_DATABASE_URL is unset; fails when KEYGATE_REQUIRE_POSTGRES is set.
    fn admin_url() -> Option<String> {
        match std::env::var("KEYGATE_TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                if std::env::var_os("KEYGATE_REQUIRE_POSTGRES").is_some() {
                    panic!("KEYGATE_REQUIRE_POSTGRES is set but KEYGATE_TEST_DATABASE_URL is not");
                }
                // Written to the stderr handle itself: the test harness captures eprintln!.
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "\n*** SKIPPED the PostgreSQL copies of the API tests and the multi-node tests: \
                         KEYGATE_TEST_DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres) ***\n"
                    );
                });
                None
            }
        }
    }

    fn with_database(url: &str, name: &str) -> String {
        let (base, _) = url.rsplit_once('/').expect("database URL has a path");
        format!("{base}/{name}")
    }

    /// Creates a database with a random name; returns its URL.
    pub async fn create_database() -> Option<String> {
        let admin = admin_url()?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).expect("random");
        let name: String = std::iter::once("kg_test_".to_owned())
            .chain(suffix.iter().map(|b| format!("{b:02x}")))
            .collect();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to the test PostgreSQL");
        // The name is ours (hex digits), never input: safe to put into the statement.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        Some(with_database(&admin, &name))
    }

    /// Drops a test database (terminating its connections), from a Drop impl.
    pub fn drop_database(url: &str) {
        let Some(admin) = std::env::var("KEYGATE_TEST_DATABASE_URL").ok() else {
            return;
        };
        let name = url.rsplit('/').next().unwrap_or("").to_owned();
        if !name.starts_with("kg_test_")
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return;
        }
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }

    /// Every row of keygate's tables as text.
    pub async fn dump(url: &str) -> Vec<u8> {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        let mut out = Vec::new();
        for table in ["api_tokens", "users", "sessions", "meta", "change_log"] {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM {table} t"
            )))
            .fetch_all(&mut conn)
            .await
            .expect("dump");
            for r in rows {
                out.extend_from_slice(r.as_bytes());
                out.push(b'\n');
            }
        }
        out
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
pub const VERIFIER: i64 = 4;

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

/// `data` gzipped, as LogicMonitor's SDKs send their bodies.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}
