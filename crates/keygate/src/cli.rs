//! Command-line interface: flags, environment variables and subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// keygate: issues per-user API tokens and authenticates REST API requests with them.
#[derive(Debug, Parser)]
#[command(name = "keygate", version, about)]
pub struct Cli {
    /// Database: a SQLite file (`sqlite://PATH` or a path) or PostgreSQL (`postgres://...`).
    #[arg(
        long,
        env = "KEYGATE_DATABASE_URL",
        default_value = "sqlite://keygate.db",
        global = true
    )]
    pub database_url: String,

    /// File holding the master key that seals LMv1 access keys (64 hex characters,
    /// mode 0600). Default: beside the SQLite file (`keygate.key` for `keygate.db`),
    /// created on first start.
    #[arg(long, env = "KEYGATE_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,

    /// Most connections to PostgreSQL from this process.
    #[arg(long, env = "KEYGATE_DB_MAX_CONNECTIONS", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u32).range(2..=200))]
    pub db_max_connections: u32,

    /// Log output: `plain` text or one `json` object per line.
    #[arg(
        long,
        env = "KEYGATE_LOG_FORMAT",
        value_enum,
        default_value = "plain",
        global = true
    )]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Subcommands. The `--help` listing groups them by whether they open the database
/// ([`DATABASE_COMMANDS`]) or talk to a server over HTTP.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Create the database and the first admin user, then exit.
    Init,
    /// Manage users directly in the database.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens directly in the database (`token check` opens none).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show or change portal settings directly in the database.
    #[command(subcommand)]
    Portal(PortalCommand),
    /// Manage the master key that seals LMv1 access keys.
    #[command(subcommand)]
    MasterKey(MasterKeyCommand),
    /// Store a bearer token for a server, once (read from a hidden prompt or stdin).
    Login(LoginArgs),
    /// Forget the stored token of a profile (the token itself keeps working).
    Logout(ProfileArgs),
    /// Show who the stored token acts as, with the owner's privileges as of now.
    Whoami(ProfileArgs),
    /// Call the REST API with the stored token: keygate api GET /setting/admins.
    Api(ApiArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The subcommands that open the database; the rest talk to a server over HTTP or
/// work offline.
pub const DATABASE_COMMANDS: &[&str] = &["serve", "init", "user", "token", "portal", "master-key"];

/// The command line, with `--help` listing the commands in two groups.
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    let cmd = Cli::command();
    let (mut db, mut client) = (String::new(), String::new());
    for sc in cmd.get_subcommands() {
        let line = format!(
            "  {:<12} {}\n",
            sc.get_name(),
            sc.get_about().map(ToString::to_string).unwrap_or_default()
        );
        if DATABASE_COMMANDS.contains(&sc.get_name()) {
            db.push_str(&line);
        } else {
            client.push_str(&line);
        }
    }
    let template = format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n\
         Server and admin commands (open the database; run them where the server's data is):\n{db}\n\
         Client commands (talk to a keygate server over HTTP; open no database):\n{client}  help         Print this message or the help of the given command\n\n\
         Options:\n{{options}}{{after-help}}"
    );
    cmd.help_template(template).after_help(
        "Client exit status: 0 on a 2xx answer, 4 on 4xx, 5 on 5xx, 3 when there are no credentials, 1 on any other error.",
    )
}

/// `--profile`, for the client commands.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Which stored server and token to use.
    #[arg(long, env = "KEYGATE_PROFILE", default_value = "default")]
    pub profile: String,
}

/// `keygate login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server's address, e.g. https://keygate.example.com (default: the profile's).
    #[arg(long, env = "KEYGATE_SERVER")]
    pub server: Option<String>,
    /// A PEM file of the certificate authority that signed the server's certificate,
    /// when the system does not trust it.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// The profile to store it under.
    #[command(flatten)]
    pub profile: ProfileArgs,
}

/// `keygate api`.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// HTTP method: GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// Path under /santaba/rest (e.g. /setting/admins/apitokens?filter=status:2), or
    /// a full path starting with /santaba/ or /rest/.
    pub path: String,
    /// JSON body: the JSON itself, @FILE to read a file, or - to read standard input.
    #[arg(long, short = 'd')]
    pub data: Option<String>,
    /// The stored server and token to use (KEYGATE_TOKEN and KEYGATE_SERVER override it).
    #[command(flatten)]
    pub profile: ProfileArgs,
}

/// `keygate master-key ...`.
#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Re-seal every LMv1 access key under a new master key (stop servers first).
    Rotate,
}

/// `keygate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Milliseconds between reads of the change log (changes made by the CLI or other nodes).
    #[arg(long, env = "KEYGATE_POLL_INTERVAL_MS", default_value_t = 500)]
    pub poll_interval_ms: u64,
    /// Milliseconds between writes of token usage to the database (at most 5000).
    #[arg(long, env = "KEYGATE_USAGE_FLUSH_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(100..=5000))]
    pub usage_flush_ms: u64,
    /// Minutes after which an unused web UI session ends.
    #[arg(long, env = "KEYGATE_SESSION_IDLE_MINUTES", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub session_idle_minutes: u64,
    /// Hours after sign-in at which a web UI session ends, used or not.
    #[arg(long, env = "KEYGATE_SESSION_MAX_HOURS", default_value_t = 12,
          value_parser = clap::value_parser!(u64).range(1..=720))]
    pub session_max_hours: u64,
    /// Seconds a node trusts its index without confirming it is current; past that it
    /// refuses credentials with 503 (the database is unreachable).
    #[arg(long, env = "KEYGATE_MAX_STALENESS_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_staleness_seconds: u64,
    /// Failed authentications a client may make in a burst before getting 429.
    #[arg(long, env = "KEYGATE_AUTH_FAIL_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub auth_fail_burst: u32,
    /// Failed authentications forgiven per minute (the bucket's refill).
    #[arg(long, env = "KEYGATE_AUTH_FAIL_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub auth_fail_per_minute: u32,
    /// Refused changes (403) one user may have recorded in the audit log in a burst;
    /// beyond it they are answered 429 and counted in one entry.
    #[arg(long, env = "KEYGATE_AUDIT_REFUSAL_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub audit_refusal_burst: u32,
    /// Refused changes per user recorded per minute after the burst (the bucket's refill).
    #[arg(long, env = "KEYGATE_AUDIT_REFUSALS_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub audit_refusals_per_minute: u32,
    /// A reverse proxy whose X-Forwarded-For names the client (repeat, or
    /// comma-separated in the environment). None by default.
    #[arg(
        long = "trusted-proxy",
        env = "KEYGATE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Days audit-log entries are kept before they are pruned.
    #[arg(long, env = "KEYGATE_AUDIT_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub audit_retention_days: u64,
    /// Days pushed metric values and log lines are kept before they are pruned.
    #[arg(long, env = "KEYGATE_DATA_RETENTION_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub data_retention_days: u64,
    /// Ingestion requests decoding and storing at once; up to 64 more wait (5 s at
    /// most) for a place, and past that they get 503 with Retry-After.
    #[arg(long, env = "KEYGATE_MAX_INGEST_REQUESTS", default_value_t = 4,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub max_ingest_requests: usize,
    /// Ingestion requests a second one token may make on average (five seconds' worth
    /// in a burst); past it, 429 with Retry-After.
    #[arg(long, env = "KEYGATE_INGEST_REQUESTS_PER_SECOND", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub ingest_requests_per_second: u32,
    /// Forward pushed traces, logs and metrics to this OTLP/HTTP receiver (an
    /// OpenTelemetry Collector, Jaeger, Tempo: `http://collector:4318`; `/v1/traces`,
    /// `/v1/logs` and `/v1/metrics` are appended), through a durable outbox.
    #[arg(long, env = "KEYGATE_FORWARD_OTLP", value_name = "URL", value_parser = parse_endpoint)]
    pub forward_otlp: Option<String>,
    /// A header sent with every forwarded export, as NAME=VALUE (repeatable; in the
    /// environment, comma-separated): the receiver's own credentials.
    #[arg(long = "forward-otlp-header", env = "KEYGATE_FORWARD_OTLP_HEADERS",
          value_name = "NAME=VALUE", value_delimiter = ',', value_parser = parse_header,
          hide_env_values = true)]
    pub forward_otlp_headers: Vec<(
        keygate_server::relay::HeaderName,
        keygate_server::relay::HeaderValue,
    )>,
    /// A PEM certificate authority to trust, beside the system's, for an https://
    /// --forward-otlp receiver.
    #[arg(long, env = "KEYGATE_FORWARD_OTLP_CA_CERT", value_name = "PATH")]
    pub forward_otlp_ca_cert: Option<std::path::PathBuf>,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    #[arg(long, env = "KEYGATE_MAX_HEADER_BYTES", default_value_t = 32 * 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(8192..=1_048_576))]
    pub max_header_bytes: usize,
    /// Seconds a client has to send a complete request head before it is disconnected.
    #[arg(long, env = "KEYGATE_HEADER_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout_seconds: u64,
    /// Seconds a request body may take (plus one second per 16 KiB announced) before
    /// the request is answered with 408 and its connection closed.
    #[arg(long, env = "KEYGATE_BODY_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub body_timeout_seconds: u64,
    /// Seconds a request may take, body included, before it is answered with 408.
    #[arg(long, env = "KEYGATE_REQUEST_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_seconds: u64,
    /// Requests served at once; more are answered with 503 at once.
    #[arg(long, env = "KEYGATE_MAX_CONCURRENT_REQUESTS", default_value_t = 512,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub max_concurrent_requests: usize,
    /// Requests at once that wait on a client not yet authenticated (an LMv1 body
    /// before its signature is checked, a sign-in); they never take a slot from
    /// authenticated callers.
    #[arg(long, env = "KEYGATE_MAX_UNAUTHENTICATED_REQUESTS", default_value_t = 128,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub max_unauthenticated_requests: usize,
    /// Of those, at most this many from one client address (429 beyond).
    #[arg(long, env = "KEYGATE_MAX_UNAUTHENTICATED_PER_CLIENT", default_value_t = 8,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub max_unauthenticated_per_client: usize,
    /// Connections open at once (lowered to fit the open-file limit); more are closed
    /// as soon as they are accepted.
    #[arg(long, env = "KEYGATE_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections: usize,
    /// Connections open at once from one client address (0: no cap); trusted proxies
    /// are exempt.
    #[arg(long, env = "KEYGATE_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000))]
    pub max_connections_per_client: usize,
    /// Serve /metrics on this address instead of the main one (for example an
    /// address only the monitoring network reaches).
    #[arg(long, env = "KEYGATE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. Send SIGHUP to
    /// reload both files without dropping connections.
    #[arg(
        long,
        env = "KEYGATE_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, env = "KEYGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve HTTPS with a certificate generated at start-up for localhost (local use
    /// only); its SHA-256 fingerprint is printed so clients can pin it.
    #[arg(long, env = "KEYGATE_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,
}

/// `keygate user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        /// Sign-in name.
        #[arg(long)]
        username: String,
        /// Email address.
        #[arg(long)]
        email: String,
        /// Role name (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// API-only user (cannot sign in to the UI).
        #[arg(long)]
        api_only: bool,
        /// Note.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// List users.
    List,
    /// Set a user's password (for a lost admin password: stop nothing, run this where
    /// the database is). Read from a hidden prompt, or the first line of stdin.
    SetPassword {
        /// The user's sign-in name.
        #[arg(long)]
        username: String,
    },
}

/// Token types the CLI can create.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenKind {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: LMv1 <accessId>:<signature>:<epochMillis>`.
    Lmv1,
}

/// `keygate token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints only the secret on stdout (for LMv1: the access id and
    /// the access key, separated by a space).
    Create {
        /// Owner's username.
        #[arg(long)]
        user: String,
        /// Token type.
        #[arg(long = "type", value_enum, default_value = "bearer")]
        kind: TokenKind,
        /// Note.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// List tokens (masked).
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Disable a token.
    Disable {
        /// Token id.
        id: i64,
    },
    /// Enable a token.
    Enable {
        /// Token id.
        id: i64,
    },
    /// Delete a token for good.
    Delete {
        /// Token id.
        id: i64,
    },
    /// Say offline what is wrong with a bearer token read from stdin (whitespace, a
    /// character not allowed at position N, length, checksum), without echoing it.
    Check,
}

/// `keygate portal ...`.
#[derive(Debug, Subcommand)]
pub enum PortalCommand {
    /// Print portal settings.
    Show,
    /// Change portal settings.
    Set {
        /// Turn the Traces (APM) feature on or off.
        #[arg(long)]
        traces_enabled: Option<bool>,
        /// Most tokens per user.
        #[arg(long)]
        max_tokens_per_user: Option<i64>,
        /// Company name.
        #[arg(long)]
        company_name: Option<String>,
        /// LMv1 timestamp window, seconds either side of server time.
        #[arg(long)]
        lmv1_clock_skew_seconds: Option<i64>,
        /// Refuse replayed LMv1 requests (same access id and signature in the window).
        #[arg(long)]
        lmv1_replay_protection: Option<bool>,
    },
}

/// `NAME=VALUE` as a header for `--forward-otlp-header`.
fn parse_header(
    text: &str,
) -> Result<
    (
        keygate_server::relay::HeaderName,
        keygate_server::relay::HeaderValue,
    ),
    String,
> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| "expected NAME=VALUE".to_owned())?;
    let name = keygate_server::relay::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("\"{}\" is not a header name", name.trim()))?;
    // The value is not echoed: it is usually a credential.
    let value = keygate_server::relay::HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of {name} is not a valid header value"))?;
    Ok((name, value))
}

/// `--forward-otlp`, checked before anything is opened.
fn parse_endpoint(text: &str) -> Result<String, String> {
    keygate_server::relay::check_endpoint(text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}
