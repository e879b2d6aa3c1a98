//! Command-line interface: flags, environment variables and subcommands.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// keygate: issues per-user API tokens and authenticates REST API requests with them.
#[derive(Debug, Parser)]
#[command(name = "keygate", version, about)]
pub struct Cli {
    /// Database: a SQLite file (`sqlite://PATH` or a path).
    #[arg(
        long,
        env = "KEYGATE_DATABASE_URL",
        default_value = "sqlite://keygate.db",
        global = true
    )]
    pub database_url: String,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Create the database and the first admin user, then exit.
    Init,
    /// Manage users directly in the database.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens directly in the database.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show or change portal settings directly in the database.
    #[command(subcommand)]
    Portal(PortalCommand),
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
}

/// Token types the CLI can create.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenKind {
    /// `Authorization: Bearer <token>`.
    Bearer,
}

/// `keygate token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints only the secret on stdout.
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
    },
}
