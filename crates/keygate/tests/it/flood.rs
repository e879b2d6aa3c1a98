//! What unauthenticated clients can hold: slow sign-in forms and slow LMv1 bodies from
//! many addresses take the unauthenticated pool only, for the body deadline only;
//! health, readiness and callers with a valid token are served throughout. One address
//! holds a few unauthenticated requests and a capped number of connections. The
//! open-file limit is raised to the hard limit at start-up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use keygate_server::ServerConfig;
use keygate_server::listen::Limits;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::logs::Running;
use super::support::*;

/// A connection to `to` from the loopback address `from` (all of 127/8 is local).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    sock.connect(to).await
}

/// The `n`-th of many attacker addresses, none of them 127.0.0.1.
fn attacker(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1 + (n / 250) as u8, 1 + (n % 250) as u8)
}

/// Opens a connection that announces a 10,000-byte body, sends 10 bytes of it and
/// goes quiet. `None` when the server closed it at once.
async fn slow_body(from: Ipv4Addr, to: SocketAddr, head: &str) -> Option<TcpStream> {
    let mut c = connect_from(from, to).await.ok()?;
    c.write_all(head.as_bytes()).await.ok()?;
    c.write_all(b"username=x").await.ok()?;
    Some(c)
}

fn signin_head() -> String {
    "POST /signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n".to_owned()
}

/// Reads what the server sends within `wait`: its status code (0 if it sent nothing).
async fn status_within(c: &mut TcpStream, wait: Duration) -> u16 {
    let mut buf = [0u8; 512];
    match tokio::time::timeout(wait, c.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => String::from_utf8_lossy(&buf[..n])
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

async fn get_plain(s: &Server, path: &str) -> StatusCode {
    send(reqwest::Client::new().get(format!("http://{}{path}", s.addr)))
        .await
        .status
}

fn config(body_timeout: Duration) -> ServerConfig {
    ServerConfig {
        limits: Limits {
            body_timeout,
            ..Limits::default()
        },
        ..test_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_unauthenticated_bodies_do_not_take_the_node_down() {
    let Some(s) = Server::start_with(config(Duration::from_secs(3))).await else {
        return;
    };
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (_, access_id, _) = s.lmv1_for(user, "public id").await;
    // 530 slow bodies from 70 addresses: sign-in forms, and LMv1 requests whose
    // access id is real (the body is read before the signature can be checked).
    let lmv1_head = format!(
        "POST /santaba/rest/setting/admins HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: LMv1 {access_id}:c2lnbmF0dXJl:{}\r\nContent-Length: 10000\r\n\r\n",
        now_millis()
    );
    let mut held = Vec::new();
    for n in 0..530 {
        let head = if n % 2 == 0 {
            signin_head()
        } else {
            lmv1_head.clone()
        };
        if let Some(c) = slow_body(attacker(n % 70), s.addr, &head).await {
            held.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Health and readiness never wait behind a slot; a valid token is served.
    assert_eq!(get_plain(&s, "/healthz").await, StatusCode::OK);
    assert_eq!(get_plain(&s, "/readyz").await, StatusCode::OK);
    for _ in 0..20 {
        assert_eq!(
            s.get(&s.admin_token, "/setting/portal").await.status,
            StatusCode::OK
        );
    }
    // The unauthenticated pool itself is full: another sign-in is turned away at
    // once, not queued.
    let mut late = slow_body(attacker(999), s.addr, &signin_head())
        .await
        .expect("connect");
    assert_eq!(status_within(&mut late, Duration::from_secs(2)).await, 503);
    // The slow ones are cut off at the body deadline (408), freeing their slots.
    let mut answered = 0;
    for c in held.iter_mut().take(40) {
        let code = status_within(c, Duration::from_secs(6)).await;
        assert!(matches!(code, 408 | 429 | 503), "{code}");
        answered += 1;
    }
    assert_eq!(answered, 40);
    let ok = eventually(Duration::from_secs(6), || async {
        super::ui_http::signin(&s, "admin", "bootstrap-password", None)
            .await
            .status
            == StatusCode::SEE_OTHER
    })
    .await;
    assert!(ok, "sign-in works again once the slow bodies are cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_a_few_unauthenticated_requests_and_capped_connections() {
    let Some(s) = Server::start_with(config(Duration::from_secs(20))).await else {
        return;
    };
    let from = attacker(1);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let mut c = slow_body(from, s.addr, &signin_head())
            .await
            .expect("connect");
        match status_within(&mut c, Duration::from_millis(300)).await {
            0 => held.push(c),
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let per_client = Limits::default().max_unauthenticated_per_client;
    assert_eq!(held.len(), per_client, "{refused} refused");
    // Others sign in meanwhile.
    assert_eq!(
        super::ui_http::signin(&s, "admin", "bootstrap-password", None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    drop(held);
    // Idle connections from one address: past the cap, closed as soon as accepted.
    let cap = Limits::default().max_connections_per_client;
    let mut idle = Vec::new();
    for _ in 0..cap + 40 {
        idle.push(connect_from(attacker(2), s.addr).await.expect("connect"));
    }
    let mut closed = 0;
    for c in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(20), c.read(&mut b)).await {
            closed += 1;
        }
    }
    assert!(closed >= 40, "{closed} of {} closed", idle.len());
    assert!(closed <= 40 + 8, "{closed} closed: the cap is about {cap}");
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.status,
        StatusCode::OK,
        "another address is served"
    );
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    let hard = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        })
        .and_then(|h| h.parse::<u64>().ok())
        .expect("hard open-file limit");
    if hard <= 1024 {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED the open-file limit test: the hard limit here is {hard} ***\n"
        );
        return;
    }
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -S -n 1024 && exec \"$0\" serve --listen 127.0.0.1:0")
        .arg(env!("CARGO_BIN_EXE_keygate"))
        .env("KEYGATE_DATABASE_URL", &db)
        .env("RUST_LOG", "info");
    let running = Running::spawn(cmd).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", running.pid()))
        .expect("limits of the server");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("line");
    let soft: u64 = line
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .expect("soft");
    assert_eq!(soft, hard, "{line}");
    let lines = running.stop().await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("raised the open-file limit")),
        "{lines:?}"
    );
}
