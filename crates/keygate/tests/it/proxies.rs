//! Real reverse proxies in front of keygate and a small upstream, with the example
//! configurations in `deploy/` used as they are: Debian's nginx (`auth_request`) and
//! Caddy (`forward_auth`). Skipped loudly when a proxy is not installed, and a failure
//! instead when KEYGATE_REQUIRE_PROXIES is set (as .ci/run does).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn installed(program: &str) -> bool {
    let found = ["/usr/sbin", "/usr/bin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(program).exists());
    if !found {
        assert!(
            std::env::var_os("KEYGATE_REQUIRE_PROXIES").is_none(),
            "{program} is required (KEYGATE_REQUIRE_PROXIES) but not installed"
        );
        eprintln!("!!!!! SKIPPED: {program} is not installed; proxy tests did not run !!!!!");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An upstream that answers every request with the headers it received, as JSON.
async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let mut seen = serde_json::Map::new();
                for line in head.lines().skip(1) {
                    if let Some((k, v)) = line.split_once(':') {
                        let k = k.trim().to_ascii_lowercase();
                        if k.starts_with("x-keygate") || k == "authorization" {
                            seen.insert(k, json!(v.trim()));
                        }
                    }
                }
                let body = Value::Object(seen).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

struct Proxy {
    child: tokio::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Starts the proxy `command(port)` builds, on a fresh port, and waits until it listens.
/// A proxy that exits first (most often: another process took the port between
/// `free_port` and its bind) is started again on a new port; a proxy that neither
/// listens nor exits in time fails the test with what it wrote to stderr.
async fn launch(dir: tempfile::TempDir, command: impl Fn(u16) -> tokio::process::Command) -> Proxy {
    let log = dir.path().join("proxy.stderr");
    let mut last = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let stderr = std::fs::File::create(&log).expect("proxy stderr file");
        let mut child = command(port)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("start the proxy");
        // 30 s: a proxy's start-up on a loaded two-core machine can take seconds.
        for _ in 0..1200 {
            if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .is_ok()
            {
                return Proxy {
                    child,
                    port,
                    _dir: dir,
                };
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
        last = std::fs::read_to_string(&log).unwrap_or_default();
        if !last.to_ascii_lowercase().contains("address already in use") {
            break;
        }
    }
    panic!("the proxy did not listen; it wrote:\n{last}");
}

async fn nginx(keygate: SocketAddr, app: SocketAddr) -> Proxy {
    nginx_asking(keygate, app, "").await
}

/// nginx with the shipped include, asking keygate `query` (`$keygate_query`).
async fn nginx_asking(keygate: SocketAddr, app: SocketAddr, query: &str) -> Proxy {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().to_path_buf();
    let include = repo().join("deploy/nginx/keygate.conf");
    launch(dir, |port| {
        let d = root.display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1;\n\
             error_log {d}/error.log warn; pid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               upstream keygate {{ server {keygate}; }}\n\
               upstream keygate_app {{ server {app}; }}\n\
               server {{ listen 127.0.0.1:{port}; set $keygate_query \"{query}\"; include {}; }}\n\
             }}\n",
            include.display()
        );
        let path = root.join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let mut c = tokio::process::Command::new("nginx");
        c.arg("-c").arg(&path).arg("-p").arg(&root);
        c
    })
    .await
}

async fn caddy(keygate: SocketAddr, app: SocketAddr) -> Proxy {
    caddy_asking(keygate, app, "").await
}

/// Caddy with the shipped Caddyfile, asking keygate `query` (`KEYGATE_QUERY`).
async fn caddy_asking(keygate: SocketAddr, app: SocketAddr, query: &str) -> Proxy {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().to_path_buf();
    let caddyfile = repo().join("deploy/caddy/Caddyfile");
    launch(dir, |port| {
        let mut c = tokio::process::Command::new("caddy");
        c.arg("run")
            .arg("--config")
            .arg(&caddyfile)
            .arg("--adapter")
            .arg("caddyfile")
            .env("SITE_ADDRESS", format!("http://127.0.0.1:{port}"))
            .env("KEYGATE_ADDRESS", keygate.to_string())
            .env("APP_ADDRESS", app.to_string())
            .env("KEYGATE_QUERY", query)
            .env("HOME", &root)
            .env("XDG_DATA_HOME", &root)
            .env("XDG_CONFIG_HOME", &root);
        c
    })
    .await
}

async fn through(
    p: &Proxy,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut rb = reqwest::Client::new().request(
        Method::GET,
        format!("http://127.0.0.1:{}/orders?page=2", p.port),
    );
    if let Some(t) = token {
        rb = rb.header("Authorization", format!("Bearer {t}"));
    }
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.expect("request through the proxy");
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.text().await.unwrap_or_default())
}

async fn keygate_behind_a_proxy(burst: f64) -> Option<Server> {
    let mut config = test_config();
    config.trusted_proxies = vec![Ipv4Addr::LOCALHOST.into()];
    config.throttle = keygate_auth::throttle::ThrottleConfig {
        burst,
        ..Default::default()
    };
    Server::start_with(config).await
}

async fn walk(kind: &str) {
    if !installed(kind) {
        return;
    }
    let Some(s) = keygate_behind_a_proxy(100_000.0).await else {
        return;
    };
    let app = echo_upstream().await;
    let p = match kind {
        "nginx" => nginx(s.addr, app).await,
        _ => caddy(s.addr, app).await,
    };
    let user = s.user("svc", &[DATAINGESTION]).await;
    let (tid, token) = s.token_for(user, "proxy").await;

    // Allowed: the upstream sees the owner, never the credential nor a client's claim.
    let (status, _, body) = through(&p, Some(&token), &[("X-Keygate-User", "admin")]).await;
    assert_eq!(status, StatusCode::OK, "{kind}: {body}");
    let seen: Value = serde_json::from_str(&body).expect("upstream json");
    assert_eq!(seen["x-keygate-user"], "svc", "{kind}: {seen}");
    assert_eq!(seen["x-keygate-user-id"], user.to_string());
    assert_eq!(seen["x-keygate-token-id"], tid.to_string());
    assert_eq!(seen["x-keygate-token-type"], "bearer");
    assert!(seen.get("authorization").is_none(), "{kind}: {seen}");

    // Refused: 401 with the reason, and nothing reaches the upstream.
    let (status, headers, body) = through(&p, None, &[("X-Keygate-User", "admin")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind}: {body}");
    assert!(!body.contains("x-keygate-user"), "{kind}: {body}");
    let reason = headers
        .get("x-keygate-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(reason.contains("no credentials"), "{kind}: {headers:?}");
    assert!(
        headers.contains_key("www-authenticate"),
        "{kind}: {headers:?}"
    );
    let (status, _, _) = through(&p, Some("kgtAAAAnotatoken"), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind}: a bad token");

    // Disabled: refused on the very next request; enabled again; deleted.
    let path = format!("/setting/admins/{user}/apitokens/{tid}");
    s.patch(&s.admin_token, &path, json!({"status": 1})).await;
    let (status, headers, _) = through(&p, Some(&token), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind}: disabled");
    let reason = headers
        .get("x-keygate-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(reason.contains("disabled"), "{kind}: {reason}");
    s.patch(&s.admin_token, &path, json!({"status": 2})).await;
    assert_eq!(
        through(&p, Some(&token), &[]).await.0,
        StatusCode::OK,
        "{kind}: enabled again"
    );
    s.call(Method::DELETE, Some(&s.admin_token), &path, None)
        .await;
    assert_eq!(
        through(&p, Some(&token), &[]).await.0,
        StatusCode::UNAUTHORIZED,
        "{kind}: deleted"
    );
}

#[tokio::test]
async fn nginx_auth_request_with_the_shipped_config() {
    walk("nginx").await;
}

#[tokio::test]
async fn caddy_forward_auth_with_the_shipped_config() {
    walk("caddy").await;
}

#[tokio::test]
async fn throttled_answers_are_passed_on_not_turned_into_500() {
    for kind in ["nginx", "caddy"] {
        if !installed(kind) {
            continue;
        }
        let Some(s) = keygate_behind_a_proxy(2.0).await else {
            return;
        };
        let app = echo_upstream().await;
        let p = match kind {
            "nginx" => nginx(s.addr, app).await,
            _ => caddy(s.addr, app).await,
        };
        let mut last = (StatusCode::OK, reqwest::header::HeaderMap::new());
        for _ in 0..4 {
            let (status, headers, _) = through(&p, Some("kgtAAAAnotatoken"), &[]).await;
            last = (status, headers);
        }
        assert_eq!(
            last.0,
            StatusCode::TOO_MANY_REQUESTS,
            "{kind}: {:?}",
            last.1
        );
        assert!(last.1.contains_key("retry-after"), "{kind}: {:?}", last.1);
    }
}

#[tokio::test]
async fn a_missing_privilege_is_403_and_a_stale_index_503_through_the_proxy() {
    for kind in ["nginx", "caddy"] {
        if !installed(kind) {
            continue;
        }
        // The follower is never due in this test (an hour between polls), so once the
        // clock moves past the max staleness nothing confirms the index current again.
        let clock = keygate_server::state::Clock::fixed(now_millis());
        let mut config = test_config();
        config.trusted_proxies = vec![Ipv4Addr::LOCALHOST.into()];
        config.poll_interval = Duration::from_secs(3600);
        config.max_staleness = Duration::from_secs(30);
        config.clock = clock.clone();
        let Some(s) = Server::start_with(config).await else {
            return;
        };
        let app = echo_upstream().await;
        let query = "?require=portal";
        let p = match kind {
            "nginx" => nginx_asking(s.addr, app, query).await,
            _ => caddy_asking(s.addr, app, query).await,
        };
        let user = s.user("ingest-only", &[DATAINGESTION]).await;
        let (_, token) = s.token_for(user, "no portal privilege").await;

        let (status, headers, body) = through(&p, Some(&token), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{kind}: {body}");
        let reason = headers
            .get("x-keygate-error")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            reason.contains("does not hold the privilege this service requires (portal)"),
            "{kind}: {headers:?}"
        );
        assert!(
            !body.contains("x-keygate-user"),
            "{kind}: reached the upstream"
        );
        let admin = s.admin_token.clone();
        assert_eq!(
            through(&p, Some(&admin), &[]).await.0,
            StatusCode::OK,
            "{kind}"
        );

        clock.advance(31_000);
        let (status, headers, body) = through(&p, Some(&admin), &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{kind}: {body}");
        assert!(headers.contains_key("retry-after"), "{kind}: {headers:?}");
        let reason = headers
            .get("x-keygate-error")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            reason.contains("not been able to confirm its credential index"),
            "{kind}: {headers:?}"
        );
        assert!(
            !body.contains("x-keygate-user"),
            "{kind}: reached the upstream"
        );
    }
}
