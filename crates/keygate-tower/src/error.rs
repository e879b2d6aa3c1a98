//! [`GateError`]: why a request was not let through, worded once for keygate's own
//! API, its forward-auth endpoints and every service behind the layer.

use keygate_auth::Refusal;
use serde_json::{Value, json};

/// Why a request's credential was not accepted, or the gate could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GateError {
    /// No `Authorization` header (401).
    #[error("no credentials: send Authorization: Bearer <token> (or an LMv1 signature)")]
    NoCredential,
    /// The header is not a credential keygate reads (401); the text says why.
    #[error("{0}")]
    Malformed(String),
    /// A token in the query string (401): URLs end up in logs.
    #[error(
        "tokens in the query string are not accepted (URLs end up in logs); send them in the header: Authorization: Bearer <token>"
    )]
    QueryToken,
    /// More than one `Authorization` header (400).
    #[error("more than one Authorization header; send exactly one")]
    TwoHeaders,
    /// A well-formed credential the index refused; the text names the reason.
    #[error("{message}")]
    Refused {
        /// Why.
        refusal: Refusal,
        /// The message the client sees.
        message: String,
    },
    /// A keygate server checked the credential and refused it (an LMv1 signature a
    /// service asked about); its answer is passed on.
    #[error("{message}")]
    Keygate {
        /// The status keygate chose.
        status: u16,
        /// Its message.
        message: String,
        /// Its `errorDetail`.
        detail: Option<Value>,
        /// Its `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// The body an LMv1 signature covers is larger than allowed (413).
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body could not be read (400).
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// An LMv1 signature covers a body the proxy did not send to keygate (401).
    #[error(
        "this LMv1 signature covers a request body the proxy does not send to keygate, so it cannot be checked here: forward the body (Envoy with_request_body, Traefik forwardBody) or use a bearer token"
    )]
    UnseenBody,
    /// Authenticated, but the owner lacks a privilege the service requires (403).
    #[error("the token's owner {user} does not hold the privilege this service requires ({name})")]
    Missing {
        /// The owner's username.
        user: String,
        /// The privilege, as the service named it.
        name: String,
    },
    /// keygate could not be asked to check an LMv1 signature (503).
    #[error("keygate could not be asked to check this LMv1 signature ({0}); retry shortly")]
    Unreachable(String),
    /// Following a keygate server failed (at start-up: the first snapshot).
    #[error("could not follow the keygate server: {0}")]
    Remote(String),
}

impl GateError {
    /// A refusal, worded for a request with the `scheme` ("bearer", "LMv1"), for an
    /// index kept by `holder` ("node" in keygate, "service" elsewhere) and for LMv1
    /// paths signed after `base`.
    pub fn refused(refusal: Refusal, scheme: &str, holder: &str, base: &str) -> Self {
        let message = match refusal {
            Refusal::Unknown => format!(
                "the {scheme} token is not known: it was never issued or has been deleted"
            ),
            Refusal::Disabled => format!(
                "the {scheme} token is disabled; its owner or an administrator can enable it again"
            ),
            Refusal::OwnerSuspended => {
                "the owner of this token is suspended, so its tokens are refused".to_owned()
            }
            Refusal::TracesOff => "bearer tokens are not accepted while the portal's Traces (APM) feature is off; an administrator can turn it on (tracesEnabled)".to_owned(),
            Refusal::UnknownAccessId => {
                "the LMv1 access id is not known: it was never issued or has been deleted".to_owned()
            }
            Refusal::SignatureMismatch => {
                let after = if base.is_empty() { "the whole path".to_owned() } else { format!("the path after {base}") };
                format!("the LMv1 signature does not match the request: sign VERB + epochMillis + body + path ({after}, without the query string) with the access key")
            }
            Refusal::OutsideWindow { looks_like_seconds, .. } => {
                let hint = if looks_like_seconds {
                    "; it looks like epoch seconds, but LMv1 needs epoch milliseconds"
                } else {
                    "; check the client's clock"
                };
                format!("the LMv1 timestamp is outside the allowed window around the server time (errorDetail.serverTime, epoch milliseconds){hint}")
            }
            Refusal::Replayed => "replayed request: this LMv1 signature was already used inside the time window; sign every request anew".to_owned(),
            Refusal::ReplayQuota { retry_after_seconds } => format!(
                "this LMv1 token has signed the most requests replay protection remembers for one token \
                 inside the time window; retry after {retry_after_seconds} s"
            ),
            Refusal::ReplayMemoryFull => "replay protection is at capacity; retry shortly".to_owned(),
            Refusal::Stale { seconds } => {
                let (why, then) = if holder == "node" {
                    ("the database is unreachable", "try another node")
                } else {
                    ("the keygate server is unreachable", "try again shortly")
                };
                format!(
                    "this {holder} has not been able to confirm its credential index is current for {seconds} s \
                     ({why}), so it refuses rather than risk accepting a revoked token; {then}"
                )
            }
        };
        Self::Refused { refusal, message }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoCredential | Self::Malformed(_) | Self::QueryToken | Self::UnseenBody => 401,
            Self::Refused { refusal, .. } => match refusal {
                Refusal::ReplayQuota { .. } => 429,
                Refusal::ReplayMemoryFull | Refusal::Stale { .. } => 503,
                _ => 401,
            },
            Self::Keygate { status, .. } => *status,
            Self::TwoHeaders | Self::BodyUnreadable => 400,
            Self::TooLarge(_) => 413,
            Self::Missing { .. } => 403,
            Self::Unreachable(_) | Self::Remote(_) => 503,
        }
    }

    /// Seconds to wait before retrying, for a `Retry-After` header.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Refused {
                refusal:
                    Refusal::ReplayQuota {
                        retry_after_seconds,
                    },
                ..
            } => Some(*retry_after_seconds),
            Self::Refused {
                refusal: Refusal::Stale { .. } | Refusal::ReplayMemoryFull,
                ..
            }
            | Self::Unreachable(_) => Some(1),
            Self::Keygate { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The `errorDetail` object, when there is one (the server time for a clock error).
    pub fn detail(&self) -> Option<Value> {
        match self {
            Self::Refused {
                refusal: Refusal::OutsideWindow { server_millis, .. },
                ..
            } => Some(json!({"serverTime": server_millis})),
            Self::Keygate { detail, .. } => detail.clone(),
            _ => None,
        }
    }

    /// A fixed name for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoCredential => "missing",
            Self::Malformed(_) | Self::QueryToken | Self::TwoHeaders | Self::UnseenBody => {
                "malformed"
            }
            Self::Refused { refusal, .. } => refusal.label(),
            Self::Keygate { .. } => "refused",
            Self::TooLarge(_) | Self::BodyUnreadable => "malformed",
            Self::Missing { .. } => "forbidden",
            Self::Unreachable(_) | Self::Remote(_) => "unavailable",
        }
    }

    /// Whether a presented credential was refused (what a failed-authentication
    /// throttle counts), as opposed to a missing one or a fault on this side.
    pub fn is_refusal(&self) -> bool {
        self.status() == 401 && !matches!(self, Self::NoCredential)
    }
}
