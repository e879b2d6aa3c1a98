//! Everything that can go wrong on the client side, each with its exit status.

use std::path::PathBuf;

use keygate_core::error::TokenFormatError;

/// A client-side failure. No variant ever holds a token.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No token for this profile (and none in `KEYGATE_TOKEN`).
    #[error(
        "not logged in (profile \"{profile}\"): run `keygate login --server URL`, or set KEYGATE_TOKEN and KEYGATE_SERVER"
    )]
    NoCredentials {
        /// The profile asked for.
        profile: String,
    },
    /// A token but no server to send it to.
    #[error("no server for profile \"{profile}\": give --server URL (or set KEYGATE_SERVER)")]
    NoServer {
        /// The profile asked for.
        profile: String,
    },
    /// The credentials file is readable or writable by others than its owner.
    #[error(
        "the credentials file {path} is open to other users (mode {mode:03o}); it holds tokens: run `chmod 600 {path}`"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The credentials file exists but cannot be read as one.
    #[error("the credentials file {path} cannot be read: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said (never a token: values are not quoted back).
        reason: String,
    },
    /// Reading or writing a local file failed.
    #[error("{what} {path}: {source}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Neither `$XDG_CONFIG_HOME` nor `$HOME` says where the credentials file goes.
    #[error("cannot tell where the credentials file goes: set XDG_CONFIG_HOME or HOME")]
    NoConfigDir,
    /// A profile name with characters a file or shell would trip over.
    #[error("profile names are 1 to 64 letters, digits, '-' or '_'")]
    ProfileName,
    /// The server URL is not an `http://` or `https://` URL.
    #[error("the server URL {0}")]
    ServerUrl(String),
    /// A path for `keygate api` that is not a path on the server.
    #[error("{0}")]
    ApiPath(String),
    /// `--data` is not JSON.
    #[error("the request body is not JSON: {0}")]
    Data(String),
    /// The token is not a well-formed keygate bearer token.
    #[error(transparent)]
    Token(#[from] TokenFormatError),
    /// The CA certificate given for the server cannot be used.
    #[error("the CA certificate {path}: {reason}")]
    CaCert {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// No answer from the server.
    #[error("could not reach {server}: {reason}")]
    Unreachable {
        /// The server's base URL.
        server: String,
        /// What went wrong (connection refused, TLS, time-out).
        reason: String,
    },
}

impl ClientError {
    /// The exit status for this failure: 3 when there are no credentials to use, 1
    /// for everything else (2 is clap's, for a wrong command line; 4 and 5 are an
    /// answer's 4xx and 5xx, see [`crate::http::exit_status`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoCredentials { .. } | Self::NoServer { .. } => 3,
            _ => 1,
        }
    }
}
