//! The client commands (`login`, `logout`, `whoami`, `api`, `token check`,
//! `completions`) against a real server, and the admin CLI's rough edges: a missing
//! database, a lost password, one-line errors, a token usable the moment the CLI
//! returns, one server per SQLite file.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt as _;

use super::support::*;

/// Runs the keygate binary with `stdin` fed in, a private config folder, and no
/// KEYGATE_ variables from the caller's environment.
async fn run(config: &Path, env: &[(&str, String)], args: &[&str], stdin: &str) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
    cmd.args(args)
        .env("XDG_CONFIG_HOME", config)
        .env("HOME", config)
        .env_remove("RUST_LOG")
        .env_remove("KEYGATE_TOKEN")
        .env_remove("KEYGATE_SERVER")
        .env_remove("KEYGATE_PROFILE")
        .env_remove("KEYGATE_DATABASE_URL")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run keygate");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    child.wait_with_output().await.expect("keygate output")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn code(o: &Output) -> i32 {
    o.status.code().expect("exit status")
}

async fn note(s: &Server, path: &str) -> String {
    let r = s.get(&s.admin_token, path).await;
    r.body["note"].as_str().unwrap_or_default().to_owned()
}

fn server_url(s: &Server) -> String {
    format!("http://{}", s.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_once_then_call_without_the_token() {
    let Some(s) = Server::start().await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let user = s.user("ingest", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "laptop").await;
    let url = server_url(&s);

    // Nothing stored yet: exit 3, and a message that says what to do.
    let o = run(h, &[], &["api", "GET", "/setting/portal"], "").await;
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(err(&o).contains("keygate login"), "{}", err(&o));

    // The token comes from stdin (as from a hidden prompt on a terminal), never argv.
    let o = run(h, &[], &["login", "--server", &url], &format!("{secret}\n")).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).contains("as ingest"), "{}", err(&o));
    assert!(!err(&o).contains(&secret) && !out(&o).contains(&secret));
    let file = h.join("keygate").join("credentials.toml");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credentials file mode");
    assert!(std::fs::read_to_string(&file).unwrap().contains(&secret));

    // Every later call reuses it.
    let o = run(h, &[], &["whoami"], "").await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let w = out(&o);
    assert!(
        w.contains("ingest") && w.contains(&format!("id {id}")),
        "{w}"
    );
    assert!(w.contains("dataingestion * write"), "{w}");
    assert!(w.contains(&keygate_core::token::mask(&secret)), "{w}");
    assert!(!w.contains(&secret), "{w}");

    let o = run(
        h,
        &[],
        &["api", "GET", &format!("/setting/admins/{user}/apitokens")],
        "",
    )
    .await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let body: serde_json::Value = serde_json::from_str(&out(&o)).expect("JSON out");
    assert_eq!(body["items"][0]["id"], id);
    assert!(out(&o).contains("\n  \""), "pretty-printed: {}", out(&o));

    // A 4xx exits 4, with the server's message on stderr.
    let o = run(
        h,
        &[],
        &["api", "GET", "/setting/admins/9999/apitokens/1"],
        "",
    )
    .await;
    assert_eq!(code(&o), 4, "{}", err(&o));
    assert!(err(&o).contains("HTTP 40"), "{}", err(&o));

    // --data: inline, @file and stdin; a body that is not JSON is refused before sending.
    let path = format!("/setting/admins/{user}/apitokens/{id}");
    let o = run(
        h,
        &[],
        &["api", "PATCH", &path, "--data", r#"{"note":"inline"}"#],
        "",
    )
    .await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    std::fs::write(h.join("body.json"), r#"{"note":"from a file"}"#).unwrap();
    let o = run(h, &[], &["api", "PATCH", &path, "--data", "@body.json"], "").await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(note(&s, &path).await, "from a file");
    let o = run(
        h,
        &[],
        &["api", "PATCH", &path, "-d", "-"],
        r#"{"note":"piped"}"#,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(note(&s, &path).await, "piped");
    let o = run(h, &[], &["api", "PATCH", &path, "-d", r#"{"note":}"#], "").await;
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(err(&o).contains("not JSON"), "{}", err(&o));
    assert_eq!(note(&s, &path).await, "piped", "nothing was sent");
    // A URL instead of a path would send the token elsewhere: refused.
    let o = run(h, &[], &["api", "GET", "http://example.com/x"], "").await;
    assert_eq!(code(&o), 1, "{}", err(&o));

    // KEYGATE_TOKEN overrides the stored token; --profile picks another one.
    let (_, admin) = (0, s.admin_token.clone());
    let o = run(h, &[("KEYGATE_TOKEN", admin.clone())], &["whoami"], "").await;
    assert!(out(&o).contains("user:       admin"), "{}", out(&o));
    let o = run(
        h,
        &[],
        &["login", "--server", &url, "--profile", "ops"],
        &admin,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = run(h, &[], &["whoami", "--profile", "ops"], "").await;
    assert!(out(&o).contains("user:       admin"), "{}", out(&o));
    let o = run(h, &[], &["whoami"], "").await;
    assert!(out(&o).contains("user:       ingest"), "{}", out(&o));

    // Logout forgets one profile, says the token still works, and leaves the other.
    let o = run(h, &[], &["logout"], "").await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).contains("still works"), "{}", err(&o));
    let o = run(h, &[], &["whoami"], "").await;
    assert_eq!(code(&o), 3, "{}", err(&o));
    let o = run(h, &[], &["whoami", "--profile", "ops"], "").await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&secret));

    // A revoked token: the stored one is refused at once (exit 4).
    let r = s
        .patch(
            &s.admin_token,
            &format!(
                "/setting/admins/1/apitokens/{}",
                s.token_id_of(&admin).await
            ),
            serde_json::json!({"status": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let o = run(h, &[], &["whoami", "--profile", "ops"], "").await;
    assert_eq!(code(&o), 4, "{}", err(&o));
    assert!(err(&o).contains("disabled"), "{}", err(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_the_token_offline_then_online_and_stores_only_a_good_one() {
    let Some(s) = Server::start().await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let url = server_url(&s);
    let (_, secret) = s.token_for(s.user("u", &[DATAINGESTION]).await, "").await;
    let file = h.join("keygate").join("credentials.toml");

    // A paste with a trailing space: the precise reason, nothing sent, nothing stored.
    let o = run(
        h,
        &[],
        &["login", "--server", &url],
        &format!("{secret} \n"),
    )
    .await;
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(err(&o).contains("whitespace"), "{}", err(&o));
    assert!(err(&o).contains("nothing was stored"), "{}", err(&o));
    assert!(!file.exists());
    // One character short.
    let o = run(h, &[], &["login", "--server", &url], &secret[..48]).await;
    assert!(err(&o).contains("wrong length: 48"), "{}", err(&o));
    // Well-formed but unknown to the server: refused online, nothing stored.
    let other = keygate_core::token::BearerToken::generate().unwrap();
    let o = run(h, &[], &["login", "--server", &url], other.expose_secret()).await;
    assert_eq!(code(&o), 4, "{}", err(&o));
    assert!(err(&o).contains("nothing was stored"), "{}", err(&o));
    assert!(!file.exists());
    // No server given and none stored.
    let o = run(h, &[], &["login"], &secret).await;
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(err(&o).contains("--server"), "{}", err(&o));
    // A server URL with a path is a mistake worth naming.
    let o = run(
        h,
        &[],
        &["login", "--server", &format!("{url}/santaba/rest")],
        &secret,
    )
    .await;
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(err(&o).contains("without a path"), "{}", err(&o));
    // A credentials file others can read is refused, not used.
    let o = run(h, &[], &["login", "--server", &url], &secret).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(h, &[], &["whoami"], "").await;
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(err(&o).contains("chmod 600"), "{}", err(&o));
}

#[tokio::test]
async fn a_5xx_answer_exits_5() {
    // A stand-in that answers every request 503, as a keygate node that lost its
    // database does.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt as _;
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf).await;
                let body = r#"{"errorMessage":"the database is unavailable","errorCode":1503}"#;
                let resp = format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(resp.as_bytes()).await;
            });
        }
    });
    let home = tempfile::tempdir().unwrap();
    let token = keygate_core::token::BearerToken::generate().unwrap();
    let env = [
        ("KEYGATE_TOKEN", token.expose_secret().to_owned()),
        ("KEYGATE_SERVER", format!("http://{addr}")),
    ];
    let o = run(home.path(), &env, &["api", "GET", "/setting/portal"], "").await;
    assert_eq!(code(&o), 5, "{}", err(&o));
    assert!(err(&o).contains("database is unavailable"), "{}", err(&o));
    // No server at all: exit 1, naming the server.
    drop(env);
    let env = [
        ("KEYGATE_TOKEN", token.expose_secret().to_owned()),
        ("KEYGATE_SERVER", "http://127.0.0.1:1".to_owned()),
    ];
    let o = run(home.path(), &env, &["whoami"], "").await;
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(
        err(&o).contains("could not reach http://127.0.0.1:1"),
        "{}",
        err(&o)
    );
}

#[tokio::test]
async fn token_check_says_what_is_wrong_without_echoing_the_token() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let good = keygate_core::token::BearerToken::generate().unwrap();
    let good = good.expose_secret();
    let o = run(h, &[], &["token", "check"], &format!("{good}\n")).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).starts_with("ok:"), "{}", out(&o));
    let mut wrong_char = good.to_owned();
    wrong_char.replace_range(10..11, "-");
    let mut checksum = good.to_owned();
    let last = if good.ends_with('A') { "B" } else { "A" };
    checksum.replace_range(48..49, last);
    for (input, says) in [
        (format!(" {good}"), "whitespace"),
        (format!("{good}\t"), "whitespace"),
        (wrong_char, "not allowed at position 11"),
        (good[..40].to_owned(), "wrong length: 40"),
        (checksum, "checksum"),
        (String::new(), "empty"),
    ] {
        let o = run(h, &[], &["token", "check"], &input).await;
        assert_eq!(code(&o), 1, "{input:?}: {}", err(&o));
        assert!(err(&o).contains(says), "{input:?}: {}", err(&o));
        assert!(
            !err(&o).contains(&good[3..40]) && out(&o).is_empty(),
            "{}",
            err(&o)
        );
    }
    // It opens no database: nothing was created here.
    assert!(!h.join("keygate.db").exists());
}

#[tokio::test]
async fn help_groups_the_commands_and_completions_are_printed() {
    let home = tempfile::tempdir().unwrap();
    let o = run(home.path(), &[], &["--help"], "").await;
    let help = out(&o);
    let db = help.find("open the database").expect("database group");
    let client = help.find("open no database").expect("client group");
    let at = |name: &str| {
        help.find(&format!("\n  {name} "))
            .unwrap_or_else(|| panic!("{name} in {help}"))
    };
    for name in ["serve", "init", "user", "token", "portal", "master-key"] {
        assert!(at(name) > db && at(name) < client, "{name}: {help}");
    }
    for name in ["login", "logout", "whoami", "api", "completions"] {
        assert!(at(name) > client, "{name}: {help}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let o = run(home.path(), &[], &["completions", shell], "").await;
        assert_eq!(code(&o), 0, "{}", err(&o));
        assert!(
            out(&o).contains("whoami") && out(&o).contains("set-password"),
            "{shell}"
        );
    }
}

#[tokio::test]
async fn admin_commands_refuse_a_missing_database_and_create_nothing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    for args in [
        &["user", "list"][..],
        &["token", "list"],
        &["portal", "show"],
        &["token", "create", "--user", "admin"],
    ] {
        let o = run(h, &[], args, "").await;
        assert_eq!(code(&o), 1, "{args:?}: {}", err(&o));
        let e = err(&o);
        assert!(
            e.contains("no keygate database at") && e.contains("keygate.db"),
            "{e}"
        );
        assert!(!e.contains("password"), "no admin banner: {e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
    assert_eq!(
        std::fs::read_dir(h).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn errors_are_one_line_with_the_real_cause_even_with_rust_backtrace() {
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("RUST_BACKTRACE", "1".to_owned()),
        (
            "KEYGATE_DATABASE_URL",
            "sqlite:///nonexistent/folder/keygate.db".to_owned(),
        ),
    ];
    for command in ["init", "serve"] {
        let o = run(home.path(), &env, &[command], "").await;
        assert_eq!(code(&o), 1);
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{command}: {e}");
        assert!(
            e.contains("the folder /nonexistent/folder"),
            "{command}: {e}"
        );
        assert!(
            !e.contains("master key") && !e.contains("Stack backtrace"),
            "{command}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_password_recovers_a_lost_admin_password() {
    let Some(s) = Server::start().await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let o = run(
        home.path(),
        &s.cli_env(),
        &["user", "set-password", "--username", "admin"],
        "a new long passphrase\n",
    )
    .await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(!err(&o).contains("a new long passphrase"));
    let r = super::ui_http::signin(&s, "admin", "a new long passphrase", None).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "signs in with it: {}",
        r.text
    );
    // A password the rules refuse changes nothing.
    let o = run(
        home.path(),
        &s.cli_env(),
        &["user", "set-password", "--username", "admin"],
        "short\n",
    )
    .await;
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(err(&o).contains("password"), "{}", err(&o));
    let r = super::ui_http::signin(&s, "admin", "a new long passphrase", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the old one still works");
    let o = run(
        home.path(),
        &s.cli_env(),
        &["user", "set-password", "--username", "nobody"],
        "a new long passphrase\n",
    )
    .await;
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("nobody"), "{}", err(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_with_the_cli_works_the_moment_the_command_returns() {
    // A poll interval far longer than the test: only the wake-up socket can explain
    // the token being known at once.
    let mut config = test_config();
    config.poll_interval = Duration::from_secs(60);
    let Some(s) = Server::start_with(config).await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    s.user("robot", &[DATAINGESTION]).await;
    for _ in 0..3 {
        let o = run(
            home.path(),
            &s.cli_env(),
            &["token", "create", "--user", "robot"],
            "",
        )
        .await;
        assert_eq!(code(&o), 0, "{}", err(&o));
        let secret = out(&o).trim().to_owned();
        let r = s.get(&secret, "/setting/portal").await;
        assert_eq!(r.status, StatusCode::OK, "at once, no retry: {}", r.text);
        let id = s.token_id_of(&secret).await;
        let o = run(
            home.path(),
            &s.cli_env(),
            &["token", "disable", &id.to_string()],
            "",
        )
        .await;
        assert_eq!(code(&o), 0, "{}", err(&o));
        let r = s.get(&secret, "/setting/portal").await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "refused at once: {}",
            r.text
        );
    }
    // The list shows last use as a date, or never.
    let o = run(
        home.path(),
        &s.cli_env(),
        &["token", "list", "--user", "robot"],
        "",
    )
    .await;
    let list = out(&o);
    assert!(list.contains(" UTC") || list.contains("never"), "{list}");
    assert!(
        !list
            .split_whitespace()
            .any(|w| w.len() == 10 && w.parse::<i64>().is_ok()),
        "no raw epoch seconds: {list}"
    );
}

#[tokio::test]
async fn a_second_server_on_one_sqlite_file_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(h)
        .env_remove("KEYGATE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("first server");
    let socket = h.join("keygate.db.sock");
    assert!(
        eventually(Duration::from_secs(20), || async { socket.exists() }).await,
        "the first server starts"
    );
    let o = run(h, &[], &["serve", "--listen", "127.0.0.1:0"], "").await;
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(
        err(&o).contains("another keygate server is already serving"),
        "{}",
        err(&o)
    );
    // The first one is unharmed: it still answers its admin CLI.
    let o = run(h, &[], &["user", "list"], "").await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(socket.exists());
    first.kill().await.unwrap();
    // Once it is gone, a new server may start.
    let _ = first.wait().await;
    let mut again = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(h)
        .env_remove("KEYGATE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("next server");
    let started = tokio::time::timeout(Duration::from_secs(2), again.wait()).await;
    assert!(
        started.is_err(),
        "the next server keeps running: {started:?}"
    );
    again.kill().await.unwrap();
}
