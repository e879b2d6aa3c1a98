//! Remote mode: an index that follows a keygate server over HTTP.
//!
//! [`Gate::remote`] loads a snapshot from keygate's index endpoint
//! (`GET /santaba/rest/keygate/index`) and then long-polls it for the changes after
//! its position: keygate answers as soon as something changed, so a revocation
//! reaches the service in about one round trip. Every answer, changes or none,
//! confirms the index current; when keygate cannot be reached for longer than the
//! max staleness, the index refuses every credential with 503 rather than risk
//! accepting a revoked one, and recovers by itself once keygate answers again.
//!
//! LMv1 access keys never leave keygate: an LMv1 request is checked by sending its
//! method, signed path, `Authorization` header and body to
//! `POST /santaba/rest/keygate/lmv1/check`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use keygate_auth::Principal;
use keygate_auth::Verifier;
use keygate_auth::feed::{self, Frame};
use keygate_core::clock::Clock;
use keygate_core::credentials::Lmv1Credential;
use keygate_core::model::TokenType;
use keygate_core::policy::Grants;
use keygate_store::Snapshot;

use crate::error::GateError;
use crate::gate::Gate;

/// Where the index endpoint and the LMv1 check live, under keygate's base URL.
pub const INDEX_PATH: &str = "/santaba/rest/keygate/index";
/// The LMv1 check endpoint.
pub const LMV1_CHECK_PATH: &str = "/santaba/rest/keygate/lmv1/check";

/// The largest index frame accepted (a snapshot of about five million tokens).
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// How a service follows a keygate server. Its `Debug` leaves the token out.
#[derive(Clone)]
pub struct RemoteConfig {
    /// keygate's base URL, such as `https://keygate.internal:8443`.
    pub url: String,
    /// A bearer token whose owner holds `setting tokenindex read` (the built-in
    /// `verifier` role).
    pub token: String,
    /// How long the index is trusted without hearing from keygate; past it every
    /// credential is refused with 503.
    pub max_staleness: Duration,
    /// The clock (the system clock outside tests).
    pub clock: Clock,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("max_staleness", &self.max_staleness)
            .finish_non_exhaustive()
    }
}

impl RemoteConfig {
    /// Follows keygate at `url` with `token`, trusting the index for 30 s without news.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            max_staleness: Duration::from_secs(30),
            clock: Clock::System,
        }
    }

    /// How long each long poll waits for a change: a third of the max staleness, so
    /// a quiet keygate still confirms the index well inside it, and at most 20 s, so
    /// a poll ends before keygate's request time limit.
    fn wait(&self) -> Duration {
        (self.max_staleness / 3).clamp(Duration::from_millis(200), Duration::from_secs(20))
    }
}

/// The follower's state, shared by the gates made from it.
pub(crate) struct Remote {
    verifier: Verifier,
    client: reqwest::Client,
    check_url: String,
    auth: HeaderValue,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("check_url", &self.check_url)
            .finish_non_exhaustive()
    }
}

/// One fetch of the index endpoint.
struct Fetcher {
    client: reqwest::Client,
    index_url: String,
    auth: HeaderValue,
}

impl Fetcher {
    async fn fetch(&self, after: Option<i64>, wait: Duration) -> Result<Frame, GateError> {
        // The query holds two integers: written here rather than pulling in a
        // URL-encoding feature for them.
        let url = match after {
            Some(a) => format!(
                "{}?after={a}&waitMillis={}",
                self.index_url,
                wait.as_millis()
            ),
            None => self.index_url.clone(),
        };
        // A snapshot may be tens of megabytes (50 bytes a token); a poll is answered
        // within its wait.
        let limit = match after {
            None => Duration::from_secs(120),
            Some(_) => wait + Duration::from_secs(10),
        };
        let req = self
            .client
            .get(url)
            .header(header::AUTHORIZATION, self.auth.clone())
            .timeout(limit);
        let mut resp = req
            .send()
            .await
            .map_err(|e| GateError::Remote(describe(&e)))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(GateError::Remote(format!(
                "keygate answered {status}: {message}"
            )));
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| GateError::Remote(describe(&e)))?
        {
            if buf.len() + chunk.len() > MAX_FRAME {
                return Err(GateError::Remote(format!(
                    "the index is larger than {MAX_FRAME} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        feed::decode(&buf).map_err(|e| GateError::Remote(e.to_string()))
    }
}

/// A reqwest error without the URL's query (positions are harmless, but nothing
/// from a request line belongs in a log).
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl Gate {
    /// A gate on an index that follows the keygate server in `config`: loads a
    /// snapshot (failing if keygate cannot be reached or refuses the token), then
    /// follows changes in the background for as long as a clone of the gate lives.
    pub async fn remote(config: RemoteConfig) -> Result<Self, GateError> {
        // reqwest is built without choosing a TLS provider; ring, unless the
        // embedding service installed another.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| GateError::Remote(describe(&e)))?;
        let base = config.url.trim_end_matches('/');
        let auth = HeaderValue::try_from(format!("Bearer {}", config.token))
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| GateError::Remote("the token is not a valid header value".to_owned()))?;
        let fetcher = Fetcher {
            client: client.clone(),
            index_url: format!("{base}{INDEX_PATH}"),
            auth: auth.clone(),
        };
        let snap = match fetcher.fetch(None, Duration::ZERO).await? {
            Frame::Snapshot(s) => s,
            Frame::Changes(..) => {
                return Err(GateError::Remote(
                    "keygate answered changes to a request for a snapshot".to_owned(),
                ));
            }
        };
        let verifier = index_of(snap);
        verifier.set_max_staleness(config.max_staleness);
        verifier.confirm(config.clock.now_millis());
        let follower = tokio::spawn(follow(
            fetcher,
            verifier.clone(),
            config.clock.clone(),
            config.wait(),
        ));
        let remote = Arc::new(Remote {
            verifier,
            client,
            check_url: format!("{base}{LMV1_CHECK_PATH}"),
            auth,
            follower,
        });
        Ok(Gate::of_remote(remote, config.clock))
    }
}

fn index_of(snap: Snapshot) -> Verifier {
    let started = keygate_core::clock::Stopwatch::start();
    let tokens = snap.tokens.len();
    let v = Verifier::from_snapshot(snap);
    tracing::info!(
        tokens,
        index_ms = started.elapsed().as_millis() as u64,
        "token index loaded from keygate"
    );
    v
}

/// Long-polls keygate for changes until the gate is dropped.
async fn follow(fetcher: Fetcher, v: Verifier, clock: Clock, wait: Duration) {
    let mut backoff = Duration::from_millis(50);
    let mut failing = false;
    loop {
        match fetcher.fetch(Some(v.position()), wait).await {
            Ok(Frame::Snapshot(s)) => {
                v.replace(s).await;
                v.confirm(clock.now_millis());
            }
            Ok(Frame::Changes(position, updates)) => {
                for u in updates {
                    v.apply_update(u);
                }
                v.set_position(position).await;
                v.confirm(clock.now_millis());
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "could not follow keygate; retrying");
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        }
        if failing {
            tracing::info!("following keygate again");
            failing = false;
        }
        backoff = Duration::from_millis(50);
    }
}

impl Remote {
    pub(crate) fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Has keygate check an LMv1 request; its refusal is passed on as it worded it.
    pub(crate) async fn check_lmv1(
        &self,
        cred: &Lmv1Credential,
        method: &str,
        path: &str,
        body: &[u8],
        ip: IpAddr,
    ) -> Result<Principal, GateError> {
        let header_value = format!(
            "LMv1 {}:{}:{}",
            cred.access_id, cred.signature, cred.epoch_millis
        );
        let resp = self
            .client
            .post(&self.check_url)
            .header(header::AUTHORIZATION, self.auth.clone())
            .header("x-keygate-authorization", header_value)
            .header("x-keygate-method", method)
            .header("x-keygate-path", path)
            .header("x-keygate-client-ip", ip.to_string())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(body.to_vec())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| GateError::Unreachable(describe(&e)))?;
        let status = resp.status();
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| GateError::Unreachable(describe(&e)))?;
        if !status.is_success() {
            return Err(GateError::Unreachable(format!(
                "keygate answered {}: {}",
                status.as_u16(),
                v["errorMessage"].as_str().unwrap_or_default()
            )));
        }
        if v["allowed"] != serde_json::Value::Bool(true) {
            return Err(GateError::Keygate {
                status: v["errorCode"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(401),
                message: v["errorMessage"].as_str().unwrap_or_default().to_owned(),
                detail: Some(v["errorDetail"].clone()).filter(|d| !d.is_null()),
                retry_after: v["retryAfter"].as_u64(),
            });
        }
        let grants = v["privileges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .map(Grants::of_name)
            .fold(Grants::NONE, Grants::union);
        Ok(Principal {
            user_id: v["userId"].as_i64().unwrap_or_default(),
            username: Arc::from(v["username"].as_str().unwrap_or_default()),
            grants,
            token_id: v["tokenId"].as_i64(),
            token_type: Some(TokenType::Lmv1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let c = RemoteConfig::new("http://keygate:8080", "kgtSECRETSECRET");
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("http://keygate:8080"), "{shown}");
    }
}
