//! No secret reaches a log line, even at trace level: run the real binary with
//! `RUST_LOG=trace`, drive the whole flow, and sweep everything it printed.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs_at_trace_level() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("kg.db").display());
    let bin = env!("CARGO_BIN_EXE_keygate");
    // `init` bootstraps the store (the banner shows the password); the CLI mints the
    // admin token.
    let init = tokio::process::Command::new(bin)
        .arg("init")
        .env("KEYGATE_DATABASE_URL", &db)
        .env("RUST_LOG", "trace")
        .output()
        .await
        .expect("init");
    assert!(init.status.success());
    let o = tokio::process::Command::new(bin)
        .args(["token", "create", "--user", "admin"])
        .env("KEYGATE_DATABASE_URL", &db)
        .env("RUST_LOG", "trace")
        .output()
        .await
        .expect("cli");
    assert!(o.status.success());
    let admin = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let cli_err =
        String::from_utf8_lossy(&init.stderr).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let password = cli_err
        .lines()
        .skip_while(|l| !l.contains("with password"))
        .find(|l| !l.trim().is_empty() && !l.contains("with password"))
        .expect("banner shows the password")
        .trim()
        .to_owned();

    let running = Running::start(&db, &[], "trace").await;
    let addr = running.addr.clone();
    let client = reqwest::Client::new();
    let base = format!("http://{addr}/santaba/rest");
    let call =
        |method: reqwest::Method, token: &str, path: &str, body: Option<serde_json::Value>| {
            let mut rb = client
                .request(method, format!("{base}{path}"))
                .header("Authorization", format!("Bearer {token}"));
            if let Some(b) = body {
                rb = rb
                    .header("Content-Type", "application/json")
                    .body(b.to_string());
            }
            send(rb)
        };
    use reqwest::Method as M;
    let r = call(M::POST, &admin, "/setting/admins", Some(json!({"username": "u", "email": "u@x.io", "roles": [{"id": 2}], "password": "hunter2hunter2"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        M::POST,
        &admin,
        "/setting/admins/2/apitokens?type=bearer",
        Some(json!({"note": "n"})),
    )
    .await;
    let secret = r.body["accessKey"].as_str().expect("secret").to_owned();
    let id = r.body["id"].as_i64().expect("id");
    assert_eq!(
        call(M::GET, &secret, "/setting/admins/2", None)
            .await
            .status,
        StatusCode::OK
    );
    let mut typo = secret.clone().into_bytes();
    typo[30] = if typo[30] == b'z' { b'y' } else { b'z' };
    let typo = String::from_utf8(typo).expect("ascii");
    assert_eq!(
        call(M::GET, &typo, "/setting/portal", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let in_query = client
        .get(format!("{base}/setting/portal?access_token={secret}"))
        .send()
        .await
        .expect("send");
    assert_eq!(in_query.status(), StatusCode::UNAUTHORIZED);
    call(
        M::PATCH,
        &admin,
        &format!("/setting/admins/2/apitokens/{id}"),
        Some(json!({"status": 1})),
    )
    .await;
    assert_eq!(
        call(M::GET, &secret, "/setting/portal", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    call(
        M::DELETE,
        &admin,
        &format!("/setting/admins/2/apitokens/{id}"),
        None,
    )
    .await;
    // An LMv1 token and a signed request.
    let r = call(
        M::POST,
        &admin,
        "/setting/admins/1/apitokens",
        Some(json!({"note": "lmv1"})),
    )
    .await;
    let access_key = r.body["accessKey"].as_str().expect("key").to_owned();
    let access_id = r.body["accessId"].as_str().expect("id").to_owned();
    let ts = keygate_server::state::Clock::System.now_millis();
    let k = keygate_core::lmv1::AccessKey::from_secret(access_key.clone());
    let signature = keygate_core::lmv1::sign(&k, "GET", ts, b"", "/setting/portal");
    let r = send(client.get(format!("{base}/setting/portal")).header(
        "Authorization",
        format!("LMv1 {access_id}:{signature}:{ts}"),
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Graceful stop, so the shutdown path logs too.
    let lines = running.stop().await;
    let log = lines.join("\n");
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace logging was on"
    );
    assert!(
        log.contains("route=/santaba/rest/setting/admins/{adminId}/apitokens/{apitokenId}"),
        "requests are logged by template"
    );
    for s in [
        &admin,
        &secret,
        &typo,
        &password,
        &"hunter2hunter2".to_owned(),
        &access_key,
        &signature,
    ] {
        assert!(!log.contains(s.as_str()), "a secret reached the server log");
        assert!(
            !log.contains(&s[3..s.len() - 3]),
            "part of a secret reached the server log"
        );
    }
    assert!(
        !cli_err.contains(&admin),
        "the CLI prints the token on stdout only"
    );
}

/// `keygate serve` running as a real process on an ephemeral port, its stderr collected.
/// The real binary serving on an ephemeral port, with its stderr collected.
pub struct Running {
    child: tokio::process::Child,
    /// `host:port` it listens on.
    pub addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

/// The listening address from a log line, plain or JSON.
fn listening_addr(line: &str) -> Option<String> {
    if let Some(rest) = line.split("keygate listening addr=").nth(1) {
        return Some(rest.trim().to_owned());
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["fields"]["message"] == "keygate listening")
        .then(|| v["fields"]["addr"].as_str().unwrap_or("").to_owned())
}

impl Running {
    /// Starts `keygate [extra] serve` on `db` and waits for its listening line.
    pub async fn start(db: &str, extra: &[&str], rust_log: &str) -> Self {
        // The callers' reqwest clients need a TLS provider (see `crypto_provider`).
        crypto_provider();
        Self::start_serving(db, extra, &[], rust_log).await
    }

    /// Starts `keygate [global] serve [serve_args]` on `db`.
    pub async fn start_serving(
        db: &str,
        global: &[&str],
        serve_args: &[&str],
        rust_log: &str,
    ) -> Self {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
        cmd.args(global)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(serve_args)
            .env("KEYGATE_DATABASE_URL", db)
            .env("RUST_LOG", rust_log);
        Self::spawn(cmd).await
    }

    /// Starts `cmd` (which runs `keygate serve` in the end) and waits for its
    /// listening line.
    pub async fn spawn(mut cmd: tokio::process::Command) -> Self {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("serve");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
        let stderr = child.stderr.take().expect("stderr");
        let collected = lines.clone();
        let reader = tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut rd = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = rd.next_line().await {
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr);
                }
                collected.lock().expect("lock").push(line);
            }
        });
        // Wait for the process's own "listening" line (it is an outside process).
        let addr = tokio::time::timeout(std::time::Duration::from_secs(30), addr_rx)
            .await
            .expect("server started")
            .expect("address");
        Self {
            child,
            addr,
            lines,
            reader,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("pid")
    }

    /// Sends a signal (`-HUP`, `-TERM`, ...) with kill(1).
    pub async fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("pid").to_string();
        let sent = tokio::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .await
            .expect("kill");
        assert!(sent.success());
    }

    /// SIGKILL: no shutdown work of any kind happens.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL");
        let _ = self.reader.await;
    }

    /// SIGTERM, wait for a clean exit, and return everything it printed.
    pub async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().expect("pid").to_string();
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill");
        assert!(killed.success());
        let status = self.child.wait().await.expect("wait");
        assert!(status.success(), "graceful exit");
        self.reader.await.expect("reader");
        self.lines.lock().expect("lock").clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_object_per_line_with_the_principal() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("kg.db").display());
    // Bootstrap first, so the server prints no first-start banner (which is not a log line).
    let init = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("init")
        .env("KEYGATE_DATABASE_URL", &db)
        .output()
        .await
        .expect("init");
    assert!(init.status.success());
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["token", "create", "--user", "admin"])
        .env("KEYGATE_DATABASE_URL", &db)
        .output()
        .await
        .expect("cli");
    let admin = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let running = Running::start(&db, &["--log-format", "json"], "info").await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/santaba/rest/setting/admins/1", running.addr);
    let ok = send(
        client
            .get(&url)
            .header("Authorization", format!("Bearer {admin}")),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let refused = send(client.get(&url)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    // An ingestion request authenticates on its own, and names who pushed too.
    let pushed = send(
        client
            .post(format!("http://{}/rest/log/ingest", running.addr))
            .header("Authorization", format!("Bearer {admin}"))
            .header("Content-Type", "application/json")
            .body(r#"[{"msg": "hello", "_lm.resourceId": {"a": "b"}}]"#),
    )
    .await;
    assert_eq!(pushed.status, StatusCode::ACCEPTED, "{}", pushed.text);
    let lines = running.stop().await;
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    let requests: Vec<&serde_json::Value> = objects
        .iter()
        .filter(|o| o["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 3, "one line per request");
    assert_eq!(requests[2]["fields"]["route"], "/rest/log/ingest");
    assert_eq!(requests[2]["fields"]["principal"], 1);
    assert_eq!(
        requests[0]["fields"]["route"],
        "/santaba/rest/setting/admins/{adminId}"
    );
    assert_eq!(requests[0]["fields"]["status"], 200);
    assert_eq!(requests[0]["fields"]["principal"], 1);
    assert!(requests[0]["fields"]["micros"].is_u64());
    assert_eq!(requests[1]["fields"]["status"], 401);
    assert!(
        requests[1]["fields"].get("principal").is_none(),
        "no principal when none authenticated"
    );
    assert!(!lines.join("\n").contains(&admin));
}
