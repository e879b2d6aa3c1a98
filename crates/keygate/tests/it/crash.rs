//! Crash safety on the embedded SQLite store: SIGKILL the real server again and again
//! while a client creates and disables tokens (or pushes data, forwarded with
//! `--forward-otlp`), then show that every acknowledged create authenticates, every
//! acknowledged disable held, every acknowledged push is stored and forwarded,
//! nothing is half-made, and the database file is intact.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::logs::Running;
use super::support::*;

/// What the client saw acknowledged.
#[derive(Default)]
struct Acked {
    /// Token id → secret, for every create whose response arrived.
    created: HashMap<i64, String>,
    /// Token ids whose disable response arrived.
    disabled: HashSet<i64>,
    /// Notes of every create that was sent (acknowledged or not).
    sent_notes: HashSet<String>,
}

async fn client_loop(
    addr: String,
    admin: String,
    owner: i64,
    round: usize,
    acked: Arc<Mutex<Acked>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let base = format!("http://{addr}/santaba/rest/setting/admins/{owner}/apitokens");
    for i in 0.. {
        let note = format!("r{round}-{i}");
        acked.lock().expect("lock").sent_notes.insert(note.clone());
        let Ok(r) = client
            .post(format!("{base}?type=bearer"))
            .bearer_auth(&admin)
            .json(&json!({"note": note}))
            .send()
            .await
        else {
            return;
        };
        let Ok(body) = r.json::<serde_json::Value>().await else {
            return;
        };
        let (Some(id), Some(secret)) = (body["id"].as_i64(), body["accessKey"].as_str()) else {
            return;
        };
        acked
            .lock()
            .expect("lock")
            .created
            .insert(id, secret.to_owned());
        if i % 2 == 0 {
            let Ok(r) = client
                .patch(format!("{base}/{id}"))
                .bearer_auth(&admin)
                .json(&json!({"status": 1}))
                .send()
                .await
            else {
                return;
            };
            if r.status() == StatusCode::OK {
                acked.lock().expect("lock").disabled.insert(id);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_creates_and_disables_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("kg.db");
    let db = format!("sqlite://{}", path.display());
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
    assert!(o.status.success());
    let admin = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["portal", "set", "--max-tokens-per-user", "1000"])
        .env("KEYGATE_DATABASE_URL", &db)
        .output()
        .await
        .expect("cli");
    assert!(o.status.success(), "{o:?}");

    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut owner = 0;
    for round in 0..8 {
        let running = Running::start(&db, &[], "info").await;
        if round == 0 {
            let r = send(
                reqwest::Client::new()
                    .post(format!("http://{}/santaba/rest/setting/admins", running.addr))
                    .bearer_auth(&admin)
                    .json(&json!({"username": "ingest", "email": "i@x.io", "roles": [{"id": DATAINGESTION}]})),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            owner = r.body["id"].as_i64().expect("id");
        }
        let client = tokio::spawn(client_loop(
            running.addr.clone(),
            admin.clone(),
            owner,
            round,
            acked.clone(),
        ));
        // Kill at a different point of the loop each round.
        tokio::time::sleep(Duration::from_millis(100 + 40 * round as u64)).await;
        running.kill().await;
        client.await.expect("client task");
    }

    // Many deliberate failures follow: lift the failed-authentication throttle.
    let running = Running::start_serving(&db, &[], &["--auth-fail-burst", "100000"], "info").await;
    let client = reqwest::Client::new();
    let base = format!("http://{}/santaba/rest", running.addr);
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    assert!(
        acked.created.len() >= 8,
        "the client got some creates through"
    );
    assert!(!acked.disabled.is_empty());
    for (id, secret) in &acked.created {
        let r = send(
            client
                .get(format!("{base}/setting/portal"))
                .bearer_auth(secret),
        )
        .await;
        if acked.disabled.contains(id) {
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "acknowledged disable of {id} undone"
            );
            assert!(r.message().contains("disabled"), "{}", r.text);
        } else {
            // Either still enabled, or disabled by a request whose answer was lost.
            let ok = r.status == StatusCode::OK
                || (r.status == StatusCode::UNAUTHORIZED && r.message().contains("disabled"));
            assert!(ok, "acknowledged token {id}: {} {}", r.status, r.text);
        }
    }
    // Every stored token is whole: a note the client sent, and exactly one audit entry
    // for its creation (written in the same transaction as the token).
    let r = send(
        client
            .get(format!("{base}/setting/admins/{owner}/apitokens?size=1000"))
            .bearer_auth(&admin),
    )
    .await;
    let stored = r.body["items"].as_array().cloned().unwrap_or_default();
    assert!(stored.len() >= acked.created.len());
    let audit = send(
        client
            .get(format!(
                "{base}/setting/accesslogs?size=1000&filter=action:apitoken.create"
            ))
            .bearer_auth(&admin),
    )
    .await;
    let of_owner = format!("bearer token of user {owner}");
    let audited: Vec<i64> = audit.body["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| {
                    e["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with(&of_owner))
                })
                .filter_map(|e| e["targetId"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    for t in &stored {
        let id = t["id"].as_i64().expect("id");
        let note = t["note"].as_str().expect("note");
        assert!(
            acked.sent_notes.contains(note),
            "token {id} has a note no client sent: {note}"
        );
        assert!(t["accessId"].as_str().is_some_and(|a| a.contains('*')));
        assert_eq!(
            audited.iter().filter(|a| **a == id).count(),
            1,
            "token {id} has exactly one creation entry"
        );
    }
    assert_eq!(
        audited.len(),
        stored.len(),
        "no creation entry without its token"
    );
    running.stop().await;

    let store = keygate_store::SqliteStore::open(
        path.to_str().expect("utf-8"),
        keygate_store::MasterKey::load(&dir.path().join("kg.key")).expect("key"),
    )
    .await
    .expect("open");
    let check: String = store
        .with_connection(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .await
        .expect("integrity_check");
    assert_eq!(check, "ok");
}

/// What the pushing client saw acknowledged.
#[derive(Default)]
struct Pushed {
    /// Times (epoch seconds) of metric pushes answered 202.
    values: HashSet<i64>,
    /// Messages of log pushes answered 202.
    lines: HashSet<String>,
}

async fn push_loop(addr: String, token: String, round: i64, pushed: Arc<Mutex<Pushed>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    for i in 0.. {
        // One request, two datapoints of one time: stored together or not at all.
        // Recent times: older ones would be pruned by the retention at start-up.
        let at = now_millis() / 1000 - 100_000 + round * 10_000 + i;
        let body = json!([{
            "resourceIds": {"system.hostname": "crash"}, "resourceName": "crash",
            // Marks the push in what is forwarded.
            "resourceProperties": {"push": format!("push-{at}.")},
            "dataSource": "Load",
            "instances": [{"instanceName": "all", "dataPoints": [
                {"dataPointName": "one", "values": {at.to_string(): i}},
                {"dataPointName": "two", "values": {at.to_string(): -i}}
            ]}]
        }]);
        let Ok(r) = client
            .post(format!("http://{addr}/rest/v2/metric/ingest?create=true"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        if r.status() == StatusCode::ACCEPTED {
            pushed.lock().expect("lock").values.insert(at);
        }
        // The full stop ends the message: "line 1." is not found inside "line 10.".
        let msg = format!("crash r{round} line {i}.");
        let Ok(r) = client
            .post(format!("http://{addr}/rest/log/ingest"))
            .bearer_auth(&token)
            .json(&json!([{"msg": msg, "_lm.resourceId": {"system.hostname": "crash"}}]))
            .send()
            .await
        else {
            return;
        };
        if r.status() == StatusCode::ACCEPTED {
            pushed.lock().expect("lock").lines.insert(msg);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_pushes_loses_no_acknowledged_value_or_line() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("kg.db").display());
    let cli = |args: &'static [&'static str]| {
        let db = db.clone();
        async move {
            let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
                .args(args)
                .env("KEYGATE_DATABASE_URL", &db)
                .output()
                .await
                .expect("cli");
            assert!(o.status.success(), "{o:?}");
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        }
    };
    cli(&["init"]).await;
    let admin = cli(&["token", "create", "--user", "admin"]).await;
    cli(&[
        "user",
        "create",
        "--username",
        "collector",
        "--email",
        "c@x.io",
        "--role",
        "DataIngestion",
    ])
    .await;
    let token = cli(&["token", "create", "--user", "collector"]).await;

    crypto_provider();
    // Everything is also forwarded, to a receiver slow enough that exports wait in the
    // outbox when the server is killed.
    let to = super::relay::free_port().await;
    let rx = Arc::new(Mutex::new(super::relay::Receiver {
        delay: Duration::from_millis(5),
        ..Default::default()
    }));
    let receiver = super::relay::receive(to, rx.clone()).await;
    let forward = format!("http://{to}");
    let serve_args = ["--forward-otlp", forward.as_str()];
    let pushed = Arc::new(Mutex::new(Pushed::default()));
    for round in 0..6 {
        let running = Running::start_serving(&db, &[], &serve_args, "info").await;
        let client = tokio::spawn(push_loop(
            running.addr.clone(),
            token.clone(),
            round,
            pushed.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(150 + 40 * round as u64)).await;
        running.kill().await;
        client.await.expect("client task");
    }

    let running = Running::start_serving(&db, &[], &serve_args, "info").await;
    let base = format!("http://{}/santaba/rest/keygate/data", running.addr);
    let client = reqwest::Client::new();
    let get = |path: String| send(client.get(format!("{base}{path}")).bearer_auth(&admin));
    let pushed = std::mem::take(&mut *pushed.lock().expect("lock"));
    assert!(
        pushed.values.len() >= 6,
        "the client got some pushes through"
    );
    let resources = get("/resources".to_owned()).await;
    let id = resources.body["items"][0]["id"].as_i64().expect("resource");
    let r = get(format!("/resources/{id}")).await;
    let points = r.body["instances"][0]["dataPoints"]
        .as_array()
        .expect("datapoints")
        .clone();
    let mut series = HashMap::new();
    for p in &points {
        let values = get(format!("/datapoints/{}/values?size=10000", p["id"])).await;
        let times: HashSet<i64> = values.body["values"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(|v| v[0].as_i64())
            .map(|ms| ms / 1000)
            .collect();
        series.insert(p["dataPointName"].as_str().expect("name").to_owned(), times);
    }
    // Every acknowledged push is there, in both of its datapoints; and every stored
    // time is in both (a request is one transaction: no half of one survives).
    for at in &pushed.values {
        assert!(
            series["one"].contains(at),
            "acknowledged value at {at} lost"
        );
        assert!(
            series["two"].contains(at),
            "acknowledged value at {at} lost"
        );
    }
    assert_eq!(series["one"], series["two"], "half a request stored");
    let logs = get("/logs?size=1000".to_owned()).await;
    let stored: HashSet<String> = logs.body["items"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        stored.len() < 1000,
        "raise the page size: {} lines",
        stored.len()
    );
    for line in &pushed.lines {
        assert!(stored.contains(line), "acknowledged line {line:?} lost");
    }
    // Every acknowledged push is forwarded too (at least once), across the kills.
    let forwarded = |needle: &str| {
        rx.lock()
            .expect("lock")
            .got
            .iter()
            .any(|g| super::relay::contains(&g.body, needle))
    };
    let all_forwarded = eventually(Duration::from_secs(30), || async {
        pushed.lines.iter().all(|l| forwarded(l))
            && pushed
                .values
                .iter()
                .all(|at| forwarded(&format!("push-{at}.")))
    })
    .await;
    let missing_lines: Vec<&String> = pushed.lines.iter().filter(|l| !forwarded(l)).collect();
    let missing_values: Vec<&i64> = pushed
        .values
        .iter()
        .filter(|at| !forwarded(&format!("push-{at}.")))
        .collect();
    assert!(
        all_forwarded,
        "not forwarded: lines {missing_lines:?}, values {missing_values:?}"
    );
    receiver.abort();
    running.kill().await;
    // The file is intact.
    let conn = rusqlite::Connection::open(dir.path().join("kg.db")).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
}
