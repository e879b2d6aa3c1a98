//! The `keygate` binary: `serve`, `init`, the admin CLI (which opens the database)
//! and the client commands (which talk to a server over HTTP).
//!
//! # Layout
//!
//! - this file — logging set-up and dispatch to the commands.
//! - `cli` — flags, environment variables and subcommands.
//! - `admin` — the admin CLI, on the database through the management path.
//! - `client` — `login`, `logout`, `whoami`, `api`, `token check`, over HTTP.
//! - `keys` — the master key file: creation, rotation, recovery.
//! - `logfmt` — the plain log line, written by hand where that is cheaper.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::FromArgMatches as _;
use keygate_client::ClientError;
use keygate_manage::Manager;
use keygate_server::ServerConfig;
use keygate_store::Store;
use tracing_subscriber::EnvFilter;

mod admin;
mod cli;
mod client;
mod keys;
mod logfmt;

use cli::{Cli, Command, MasterKeyCommand, TokenCommand};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&cli::command().get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Json => logs.json().init(),
        cli::LogFormat::Plain => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .event_format(logfmt::Plain::default())
            .init(),
    }
    warn_unknown_env();
    match dispatch(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line with every cause, never a backtrace (RUST_BACKTRACE is common
            // among Rust users, and a backtrace hides the cause from everyone else).
            let code = e
                .downcast_ref::<ClientError>()
                .map_or(1, ClientError::exit_code);
            eprintln!("keygate: error: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// Runs the command; returns the exit status.
async fn dispatch(cli: Cli) -> Result<u8> {
    match &cli.command {
        Command::Login(a) => return client::login(a).await,
        Command::Logout(a) => return client::logout(a),
        Command::Whoami(a) => return client::whoami(a).await,
        Command::Api(a) => return client::api(a).await,
        Command::Token(TokenCommand::Check) => return client::check(),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut cli::command(),
                "keygate",
                &mut std::io::stdout(),
            );
            return Ok(0);
        }
        _ => {}
    }
    // Only `serve` and `init` may create a database; the admin commands work on one
    // that exists (run elsewhere, they would otherwise make an empty one with a new
    // admin and say nothing).
    let create = matches!(cli.command, Command::Serve(_) | Command::Init);
    if keygate_store::postgres::is_postgres_url(&cli.database_url) {
        let store = keys::open_pg(
            &cli.database_url,
            cli.master_key_file.as_deref(),
            cli.db_max_connections,
        )
        .await?;
        run(store, cli, None).await
    } else {
        let path = keygate_store::sqlite::sqlite_path(&cli.database_url)
            .with_context(|| {
                format!(
                    "unsupported --database-url \"{}\": use sqlite://PATH, a file path, or postgres://...",
                    without_password(&cli.database_url)
                )
            })?
            .to_owned();
        let path = path.as_str();
        // One server per SQLite file: a second would keep an index of its own that
        // the first's writes reach only by polling, and the wake-up socket is one.
        keys::check_folder(path)?;
        let _lock = match cli.command {
            Command::Serve(_) => Some(keys::lock_for_serving(path)?),
            _ => None,
        };
        let store = keys::open_store(path, cli.master_key_file.as_deref(), create).await?;
        run(store, cli, Some(std::path::Path::new(path))).await
    }
    .map(|()| 0)
}

/// `--forward-otlp` and its headers and certificate authority; on a SQLite file this
/// server is the only sender from its outbox.
fn forward_config(
    args: &cli::ServeArgs,
    sqlite: bool,
) -> Result<Option<keygate_server::relay::RelayConfig>> {
    let Some(url) = &args.forward_otlp else {
        return Ok(None);
    };
    let mut config = keygate_server::relay::RelayConfig::new(url);
    config.headers.clone_from(&args.forward_otlp_headers);
    config.sole_sender = sqlite;
    if let Some(path) = &args.forward_otlp_ca_cert {
        config.ca_cert = Some(std::fs::read(path).with_context(|| {
            format!("could not read --forward-otlp-ca-cert {}", path.display())
        })?);
    }
    Ok(Some(config))
}

/// Everything after the store is open, the same for every backend (`sqlite` is the
/// database file, when it is one).
async fn run<S: Store>(store: S, cli: Cli, sqlite: Option<&std::path::Path>) -> Result<()> {
    let wake_socket = sqlite.map(keygate_server::wake::socket_path);
    if matches!(cli.command, Command::Serve(_) | Command::Init) {
        admin::bootstrap(&store).await?;
    }
    match cli.command {
        Command::Serve(args) => {
            let tls = tls_certificates(&args)?;
            let forward = forward_config(&args, sqlite.is_some())?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("could not listen on {}", args.listen))?;
            let config = ServerConfig {
                poll_interval: Duration::from_millis(args.poll_interval_ms.max(10)),
                usage_flush_interval: Duration::from_millis(args.usage_flush_ms),
                clock: keygate_core::clock::Clock::System,
                sessions: keygate_server::session::SessionConfig {
                    idle: Duration::from_secs(args.session_idle_minutes * 60),
                    absolute: Duration::from_secs(args.session_max_hours * 3600),
                    // Secure cookies only where the browser will send them back.
                    secure: tls.is_some(),
                },
                max_staleness: Duration::from_secs(args.max_staleness_seconds),
                throttle: keygate_auth::throttle::ThrottleConfig {
                    burst: f64::from(args.auth_fail_burst),
                    refill_per_second: f64::from(args.auth_fail_per_minute) / 60.0,
                    ..Default::default()
                },
                refusal_throttle: keygate_auth::throttle::ThrottleConfig {
                    burst: f64::from(args.audit_refusal_burst),
                    refill_per_second: f64::from(args.audit_refusals_per_minute) / 60.0,
                    ..Default::default()
                },
                trusted_proxies: args.trusted_proxies,
                audit_retention: Duration::from_secs(args.audit_retention_days * 86_400),
                data_retention: Duration::from_secs(args.data_retention_days * 86_400),
                ingest: keygate_server::routes::ingest_limits::IngestConfig {
                    max_in_flight: args.max_ingest_requests,
                    per_token_per_second: f64::from(args.ingest_requests_per_second),
                    per_token_burst: f64::from(args.ingest_requests_per_second) * 5.0,
                    ..Default::default()
                },
                limits: keygate_server::listen::Limits {
                    max_header_bytes: args.max_header_bytes,
                    header_timeout: Duration::from_secs(args.header_timeout_seconds),
                    body_timeout: Duration::from_secs(args.body_timeout_seconds),
                    request_timeout: Duration::from_secs(args.request_timeout_seconds),
                    max_concurrent: args.max_concurrent_requests,
                    max_unauthenticated: args.max_unauthenticated_requests,
                    max_unauthenticated_per_client: args.max_unauthenticated_per_client,
                    max_connections: fit_connections(args.max_connections),
                    max_connections_per_client: args.max_connections_per_client,
                    ..Default::default()
                },
                replay_limits: ServerConfig::default().replay_limits,
                metrics_addr: args.metrics_listen,
                tls: tls.clone(),
                wake_socket,
                forward,
            };
            if let Some(certs) = tls {
                tokio::spawn(reload_on_sighup(certs));
            }
            keygate_server::serve(listener, store, config, shutdown_signal()).await?;
            tracing::info!("keygate stopped");
        }
        Command::Init => {
            let key = keys::key_path(cli.master_key_file.as_deref(), &cli.database_url);
            eprintln!(
                "database ready at {}; master key in {}",
                without_password(&cli.database_url),
                key.display()
            );
        }
        Command::User(cmd) => {
            let changes = !matches!(cmd, cli::UserCommand::List);
            admin::user(&Manager::new(store, None), cmd).await?;
            if changes {
                tell_server(wake_socket.as_deref());
            }
        }
        Command::Token(cmd) => {
            let changes = !matches!(cmd, TokenCommand::List { .. } | TokenCommand::Check);
            admin::token(&Manager::new(store, None), cmd).await?;
            if changes {
                tell_server(wake_socket.as_deref());
            }
        }
        Command::Portal(cmd) => {
            let changes = !matches!(cmd, cli::PortalCommand::Show);
            admin::portal(&Manager::new(store, None), cmd).await?;
            if changes {
                tell_server(wake_socket.as_deref());
            }
        }
        Command::MasterKey(MasterKeyCommand::Rotate) => {
            let n = keys::rotate(&store, &cli.database_url, cli.master_key_file.as_deref()).await?;
            eprintln!(
                "re-sealed {n} LMv1 access keys under a new master key; restart running keygate servers"
            );
        }
        Command::Login(_)
        | Command::Logout(_)
        | Command::Whoami(_)
        | Command::Api(_)
        | Command::Completions { .. } => {
            anyhow::bail!("a client command reached the database path")
        }
    }
    Ok(())
}

/// Has a server running on this SQLite file apply the change just committed before
/// the command returns (see `keygate_server::wake`); with no server, nothing to do.
fn tell_server(socket: Option<&std::path::Path>) {
    if let Some(socket) = socket
        && !keygate_server::wake::notify(socket, Duration::from_secs(3))
        && socket.exists()
    {
        tracing::warn!(
            "a server is running but did not confirm the change; it applies it within its poll interval"
        );
    }
}

/// Every `KEYGATE_*` variable keygate reads (the test-only ones included, so a CI
/// environment does not warn).
const KNOWN_ENV: &[&str] = &[
    "KEYGATE_DATABASE_URL",
    "KEYGATE_MASTER_KEY_FILE",
    "KEYGATE_DB_MAX_CONNECTIONS",
    "KEYGATE_MAX_STALENESS_SECONDS",
    "KEYGATE_AUTH_FAIL_BURST",
    "KEYGATE_AUTH_FAIL_PER_MINUTE",
    "KEYGATE_AUDIT_REFUSAL_BURST",
    "KEYGATE_AUDIT_REFUSALS_PER_MINUTE",
    "KEYGATE_TRUSTED_PROXIES",
    "KEYGATE_AUDIT_RETENTION_DAYS",
    "KEYGATE_DATA_RETENTION_DAYS",
    "KEYGATE_MAX_INGEST_REQUESTS",
    "KEYGATE_INGEST_REQUESTS_PER_SECOND",
    "KEYGATE_MAX_HEADER_BYTES",
    "KEYGATE_HEADER_TIMEOUT_SECONDS",
    "KEYGATE_REQUEST_TIMEOUT_SECONDS",
    "KEYGATE_MAX_CONCURRENT_REQUESTS",
    "KEYGATE_MAX_CONNECTIONS_PER_CLIENT",
    "KEYGATE_MAX_CONNECTIONS",
    "KEYGATE_MAX_UNAUTHENTICATED_PER_CLIENT",
    "KEYGATE_MAX_UNAUTHENTICATED_REQUESTS",
    "KEYGATE_BODY_TIMEOUT_SECONDS",
    "KEYGATE_METRICS_LISTEN",
    "KEYGATE_TLS_CERT",
    "KEYGATE_TLS_KEY",
    "KEYGATE_TLS_SELF_SIGNED",
    "KEYGATE_LISTEN",
    "KEYGATE_LOG_FORMAT",
    "KEYGATE_POLL_INTERVAL_MS",
    "KEYGATE_USAGE_FLUSH_MS",
    "KEYGATE_SESSION_IDLE_MINUTES",
    "KEYGATE_SESSION_MAX_HOURS",
    "KEYGATE_SERVER",
    "KEYGATE_TOKEN",
    "KEYGATE_PROFILE",
    "KEYGATE_TEST_DATABASE_URL",
    "KEYGATE_REQUIRE_POSTGRES",
    "KEYGATE_REQUIRE_BROWSER",
    "KEYGATE_REQUIRE_PROXIES",
];

/// A misspelt variable (`KEYGATE_LISTN`) would otherwise be ignored without a word.
fn warn_unknown_env() {
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && name.starts_with("KEYGATE_")
            && !KNOWN_ENV.contains(&name)
        {
            tracing::warn!(
                variable = name,
                "unknown KEYGATE_ environment variable ignored"
            );
        }
    }
}

/// Raises the soft limit on open files to the hard limit (a server holds a socket per
/// connection; 1,024, a common default, is soon reached), and returns the number of
/// connections that fits under it: `wanted`, or fewer, leaving room for the database,
/// the listeners and the log.
fn fit_connections(wanted: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let was = getrlimit(Resource::Nofile);
    let mut soft = was.current;
    if let Some(hard) = was.maximum
        && was.current.is_some_and(|c| c < hard)
    {
        match setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        ) {
            Ok(()) => {
                tracing::info!(
                    from = was.current,
                    to = hard,
                    "raised the open-file limit to the hard limit"
                );
                soft = Some(hard);
            }
            Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
        }
    }
    let Some(soft) = soft else {
        return wanted;
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    if room < wanted {
        tracing::warn!(
            open_files = soft,
            connections = room,
            "the open-file limit allows fewer connections than --max-connections"
        );
    }
    wanted.min(room.max(1))
}

/// File descriptors kept for everything but client connections.
const RESERVED_FILES: u64 = 128;

/// A database URL fit to print: any `user:password@` part is replaced.
fn without_password(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) if at > scheme.len() => {
            format!("{scheme}://***@{}", &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The certificates `serve` was asked to use, if any.
fn tls_certificates(
    args: &cli::ServeArgs,
) -> Result<Option<std::sync::Arc<keygate_server::tls::Certificates>>> {
    use keygate_server::tls::Certificates;
    let certs = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => Certificates::from_files(cert, key)
            .with_context(|| "could not load --tls-cert / --tls-key")?,
        (_, _, true) => {
            let c = Certificates::self_signed()?;
            eprintln!(
                "\nServing HTTPS with a self-signed certificate for localhost (local use only).\nIts SHA-256 fingerprint:\n\n    {}\n",
                c.fingerprint()
            );
            c
        }
        _ => return Ok(None),
    };
    tracing::info!(fingerprint = %certs.fingerprint(), "TLS certificate loaded");
    Ok(Some(std::sync::Arc::new(certs)))
}

/// Reloads the certificate files on every SIGHUP; a bad file keeps the old ones.
async fn reload_on_sighup(certs: std::sync::Arc<keygate_server::tls::Certificates>) {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; certificates will not reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            match certs.reload() {
                Ok(()) => {
                    tracing::info!(fingerprint = %certs.fingerprint(), "TLS certificate reloaded")
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload failed; keeping the current one")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = certs;
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: a signal sent as soon as the server says it
/// is listening must already find them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())
        .inspect_err(|e| tracing::error!(error = %e, "cannot listen for SIGINT"))
        .ok();
    let mut term = signal(SignalKind::terminate())
        .inspect_err(|e| tracing::error!(error = %e, "cannot listen for SIGTERM"))
        .ok();
    async move {
        let int = async {
            match int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = int => {},
            () = term => {},
        }
        tracing::info!("shutting down: finishing requests and writing token usage");
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn printed_urls_carry_no_password() {
        assert_eq!(
            without_password("postgres://kg:s3cret@db:5432/kg"),
            "postgres://***@db:5432/kg"
        );
        assert_eq!(without_password("mysql://u:p@h/d"), "mysql://***@h/d");
        assert_eq!(
            without_password("sqlite://keygate.db"),
            "sqlite://keygate.db"
        );
        assert_eq!(without_password("keygate.db"), "keygate.db");
    }
}
