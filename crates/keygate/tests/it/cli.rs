//! The admin CLI: same store, same rules; a running server follows its changes.

use std::process::Output;
use std::time::Duration;

use reqwest::StatusCode;

use super::support::*;

/// Runs the keygate binary without blocking the runtime the server shares.
pub async fn keygate_async(s: &Server, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(args)
        .envs(s.cli_env())
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run keygate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn works(s: &Server, token: &str) -> bool {
    eventually(Duration::from_secs(5), || async {
        s.get(token, "/setting/portal").await.status == StatusCode::OK
    })
    .await
}

async fn refused(s: &Server, token: &str) -> bool {
    eventually(Duration::from_secs(5), || async {
        s.get(token, "/setting/portal").await.status == StatusCode::UNAUTHORIZED
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_users_and_tokens_while_the_server_runs() {
    let Some(s) = Server::start().await else {
        return;
    };
    let o = keygate_async(
        &s,
        &[
            "user",
            "create",
            "--username",
            "robot",
            "--email",
            "robot@example.com",
            "--role",
            "dataingestion",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let id: i64 = stdout(&o).trim().parse().expect("prints the new user id");
    let o = keygate_async(&s, &["user", "list"]).await;
    assert!(
        stdout(&o).contains("robot") && stdout(&o).contains("dataingestion"),
        "{}",
        stdout(&o)
    );

    let o = keygate_async(
        &s,
        &["token", "create", "--user", "robot", "--note", "from cli"],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let secret = stdout(&o).trim().to_owned();
    assert_eq!(
        stdout(&o),
        format!("{secret}\n"),
        "stdout carries only the secret"
    );
    assert_eq!(secret.len(), 49);
    assert!(
        works(&s, &secret).await,
        "the running server follows the CLI's change"
    );

    let list = s
        .get(&s.admin_token, &format!("/setting/admins/{id}/apitokens"))
        .await;
    let token_id = list.body["items"][0]["id"].as_i64().expect("id");
    assert_eq!(list.body["items"][0]["createdBy"], "keygate-cli");
    let o = keygate_async(&s, &["token", "list", "--user", "robot"]).await;
    assert!(!stdout(&o).contains(&secret[7..45]), "list is masked");
    assert!(
        stdout(&o).contains(&format!("{}{}", &secret[..7], "*".repeat(38))),
        "{}",
        stdout(&o)
    );

    let tid = token_id.to_string();
    assert!(
        keygate_async(&s, &["token", "disable", &tid])
            .await
            .status
            .success()
    );
    assert!(
        refused(&s, &secret).await,
        "disable via CLI reaches the server"
    );
    assert!(
        keygate_async(&s, &["token", "enable", &tid])
            .await
            .status
            .success()
    );
    assert!(works(&s, &secret).await);
    assert!(
        keygate_async(&s, &["token", "delete", &tid])
            .await
            .status
            .success()
    );
    assert!(refused(&s, &secret).await);
    let o = keygate_async(&s, &["token", "delete", &tid]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_applies_the_same_rules() {
    let Some(s) = Server::start().await else {
        return;
    };
    let o = keygate_async(&s, &["token", "create", "--user", "nobody"]).await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("user \"nobody\" not found"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());

    s.user("viewer", &[READONLY]).await;
    let o = keygate_async(&s, &["token", "create", "--user", "viewer"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("DataIngestion"), "{}", stderr(&o));

    let o = keygate_async(
        &s,
        &[
            "user",
            "create",
            "--username",
            "x",
            "--email",
            "x@example.com",
            "--role",
            "nosuch",
        ],
    )
    .await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("role named \"nosuch\" not found"),
        "{}",
        stderr(&o)
    );

    let o = keygate_async(&s, &["portal", "set", "--traces-enabled", "false"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = keygate_async(&s, &["token", "create", "--user", "admin"]).await;
    assert!(!o.status.success(), "no bearer token while Traces is off");
    assert!(
        stderr(&o).contains("Traces (APM) feature is off"),
        "{}",
        stderr(&o)
    );
    assert!(refused(&s, &s.admin_token).await);
    let o = keygate_async(&s, &["portal", "set", "--traces-enabled", "true"]).await;
    assert!(o.status.success());
    assert!(works(&s, &s.admin_token).await);
    let tokens = s.get(&s.admin_token, "/setting/admins/apitokens").await;
    assert_eq!(
        tokens.body["total"], 1,
        "no token was created by the refused commands"
    );
    let o = keygate_async(
        &s,
        &[
            "portal",
            "set",
            "--lmv1-replay-protection",
            "true",
            "--lmv1-clock-skew-seconds",
            "60",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("lmv1ReplayProtection: true"),
        "{}",
        stdout(&o)
    );
    // The server keeps the settings in memory and follows the CLI's change (at once on
    // SQLite, whose CLI wakes it; within the propagation bound on PostgreSQL, as
    // another node would).
    assert!(
        eventually(Duration::from_secs(5), || async {
            let portal = s.get(&s.admin_token, "/setting/portal").await;
            portal.body["lmv1ClockSkewSeconds"] == 60 && portal.body["lmv1ReplayProtection"] == true
        })
        .await,
        "the server reads the portal settings the CLI set"
    );
    let o = keygate_async(&s, &["portal", "set", "--max-tokens-per-user", "0"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("maxTokensPerUser"), "{}", stderr(&o));
}

#[test]
fn misspelt_environment_variables_are_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("init")
        .env(
            "KEYGATE_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("kg.db").display()),
        )
        .env("KEYGATE_LISTN", "127.0.0.1:9")
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown KEYGATE_ environment variable ignored"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("KEYGATE_LISTN"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("\"admin\""),
        "the first-start banner: {}",
        stderr(&o)
    );
}

#[test]
fn unsupported_database_url_is_a_clear_error() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["--database-url", "mysql://localhost/x", "user", "list"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unsupported --database-url"),
        "{}",
        stderr(&o)
    );
}
