//! The HTTP client of the client commands: one server, one bearer token, sent only in
//! the `Authorization` header of requests to that server (never in a URL, never
//! after a redirect).

use std::path::Path;
use std::time::Duration;

use keygate_core::token::BearerToken;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::error::ClientError;

/// The REST API's base path; paths given without it are taken relative to it.
pub const BASE_PATH: &str = "/santaba/rest";
/// The path that describes the calling token.
pub const SELF_PATH: &str = "/apitokens/self";
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A server's answer.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, as sent.
    pub body: Vec<u8>,
    /// The body as JSON, when it is JSON.
    pub json: Option<serde_json::Value>,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// LogicMonitor's `errorMessage`, when the answer carries one.
    pub fn error_message(&self) -> Option<&str> {
        self.json.as_ref()?.get("errorMessage")?.as_str()
    }

    /// The body for a person: indented JSON, or the text as sent.
    pub fn pretty(&self) -> String {
        match &self.json {
            Some(v) => serde_json::to_string_pretty(v)
                .unwrap_or_else(|_| String::from_utf8_lossy(&self.body).into_owned()),
            None => String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

/// The exit status for an answer: 0 for 2xx, 4 for 4xx, 5 for 5xx, 1 otherwise.
pub fn exit_status(status: u16) -> u8 {
    match status {
        200..=299 => 0,
        400..=499 => 4,
        500..=599 => 5,
        _ => 1,
    }
}

/// Checks and normalises a server URL: `http://` or `https://`, a host, no path
/// beyond `/`, no credentials, no query; returned without a trailing slash.
pub fn check_server(url: &str) -> Result<String, ClientError> {
    let bad = |why: &str| ClientError::ServerUrl(format!("\"{url}\" {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not carry a user name or password"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must not carry a query or fragment"));
    }
    if parsed.path() != "/" && !parsed.path().is_empty() {
        return Err(bad(
            "must be the server's address alone (https://host:port), without a path",
        ));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// Whether a server URL sends tokens across a network in clear text (`http://` to a
/// host other than this machine).
pub fn is_cleartext_remote(server: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(server) else {
        return false;
    };
    let host = u.host_str().unwrap_or("");
    let local = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    u.scheme() == "http" && !local
}

/// The path to request for `path` as a user gives it: `/setting/admins` means
/// `/santaba/rest/setting/admins`; a path already under `/santaba/` or `/rest/` is
/// kept. A full URL is refused, so the token never goes to another host.
pub fn api_path(path: &str) -> Result<String, ClientError> {
    if path.contains("://") {
        return Err(ClientError::ApiPath(format!(
            "give a path such as /setting/admins, not a URL: the token goes only to the profile's server ({path})"
        )));
    }
    if !path.starts_with('/') {
        return Err(ClientError::ApiPath(format!(
            "the path must start with /, as in /setting/admins (got \"{path}\")"
        )));
    }
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(ClientError::ApiPath(
            "the path has a space or control character; percent-encode it (%20)".to_owned(),
        ));
    }
    if path.starts_with("/santaba/") || path.starts_with("/rest/") {
        Ok(path.to_owned())
    } else {
        Ok(format!("{BASE_PATH}{path}"))
    }
}

/// Reads `--data`: checks that it is JSON, so a typo is caught before it is sent.
pub fn check_json(data: &[u8]) -> Result<(), ClientError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(data)
        .map(|_| ())
        .map_err(|e| ClientError::Data(e.to_string()))
}

/// A client for one server with one token.
pub struct Client {
    http: reqwest::Client,
    server: String,
    authorization: HeaderValue,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client sending `token` to `server` (already [`check_server`]ed), trusting
    /// the system's certificate authorities and `ca_cert` if given.
    pub fn new(
        server: &str,
        token: &BearerToken,
        ca_cert: Option<&Path>,
    ) -> Result<Self, ClientError> {
        // reqwest is built without a default crypto provider: use ring, as the server does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keygate-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            let ca_err = |reason: String| ClientError::CaCert {
                path: path.to_owned(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| ca_err(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| ClientError::Unreachable {
            server: server.to_owned(),
            reason: chain(&e),
        })?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| ClientError::Token(keygate_core::error::TokenFormatError::Empty))?;
        authorization.set_sensitive(true);
        Ok(Self {
            http,
            server: server.to_owned(),
            authorization,
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends one request; `path` as [`api_path`] takes it, `body` JSON.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| ClientError::ApiPath(format!("\"{method}\" is not an HTTP method")))?;
        let url = format!("{}{}", self.server, api_path(path)?);
        let mut rb = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header("X-Version", "3")
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            rb = rb.header(CONTENT_TYPE, "application/json").body(b);
        }
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            server: self.server.clone(),
            reason: chain(&e),
        };
        let resp = rb.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let is_json = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = resp.bytes().await.map_err(unreachable)?.to_vec();
        let json = if is_json {
            serde_json::from_slice(&body).ok()
        } else {
            None
        };
        Ok(Answer { status, body, json })
    }

    /// `GET /apitokens/self`: the token this client sends, as the server sees it.
    pub async fn whoami(&self) -> Result<Answer, ClientError> {
        self.call("GET", SELF_PATH, None).await
    }
}

/// An error and its causes on one line ("connection refused" is usually a cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn server_urls_are_checked_and_normalised() {
        assert_eq!(
            check_server("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            check_server("https://kg.example.com").unwrap(),
            "https://kg.example.com"
        );
        for bad in [
            "127.0.0.1:8080",
            "ftp://host",
            "http://user:pw@host",
            "http://host/santaba/rest",
            "http://host/?a=1",
        ] {
            assert!(check_server(bad).is_err(), "{bad}");
        }
        assert!(
            !check_server("http://user:s3cret@host")
                .unwrap_err()
                .to_string()
                .is_empty()
        );
    }

    #[test]
    fn only_plain_http_to_another_host_is_cleartext() {
        assert!(is_cleartext_remote("http://kg.example.com"));
        assert!(!is_cleartext_remote("http://127.0.0.1:8080"));
        assert!(!is_cleartext_remote("http://localhost:8080"));
        assert!(!is_cleartext_remote("http://[::1]:8080"));
        assert!(!is_cleartext_remote("https://kg.example.com"));
    }

    #[test]
    fn paths_are_relative_to_the_api_and_never_urls() {
        assert_eq!(
            api_path("/setting/admins").unwrap(),
            "/santaba/rest/setting/admins"
        );
        assert_eq!(
            api_path("/santaba/rest/setting/portal").unwrap(),
            "/santaba/rest/setting/portal"
        );
        assert_eq!(
            api_path("/rest/v2/metric/ingest").unwrap(),
            "/rest/v2/metric/ingest"
        );
        assert!(api_path("https://evil.example/x").is_err());
        assert!(api_path("setting/admins").is_err());
        assert!(api_path("/a b").is_err());
    }

    #[test]
    fn exit_statuses_separate_client_and_server_errors() {
        assert_eq!(exit_status(200), 0);
        assert_eq!(exit_status(204), 0);
        assert_eq!(exit_status(404), 4);
        assert_eq!(exit_status(401), 4);
        assert_eq!(exit_status(503), 5);
        assert_eq!(exit_status(302), 1);
    }

    #[test]
    fn bodies_must_be_json() {
        assert!(check_json(br#"{"note": "x"}"#).is_ok());
        let e = check_json(br#"{"note": }"#).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
