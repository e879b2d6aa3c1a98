//! HTTPS: PEM certificate files, HSTS, reload on SIGHUP without dropping open
//! connections, and `--tls-self-signed` printing the fingerprint it serves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate_server::ServerConfig;
use keygate_server::tls::{Certificates, fingerprint};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::logs::Running;
use super::support::*;

/// Accepts any certificate and remembers the fingerprint it was shown: the tests
/// check which certificate the server presents, not a chain of trust.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<String>>);

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.lock().expect("lock").push(fingerprint(end_entity));
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(m, c, d, &algs)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(m, c, d, &algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection to `addr`; returns it and the fingerprint the server showed.
async fn connect(addr: &str) -> (Tls, String) {
    let recorder = Arc::new(Recorder::default());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .dangerous()
    .with_custom_certificate_verifier(recorder.clone())
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    let seen = recorder
        .0
        .lock()
        .expect("lock")
        .first()
        .cloned()
        .expect("cert");
    (stream, seen)
}

/// One keep-alive GET on an open connection; returns the response head and body.
async fn get(stream: &mut Tls, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // The health answer is small: read until its JSON body is complete.
    while !out.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A certificate and key for localhost written to `dir`; returns the fingerprint.
fn write_cert(dir: &std::path::Path) -> String {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(dir.join("cert.pem"), c.cert.pem()).expect("cert file");
    std::fs::write(dir.join("key.pem"), c.signing_key.serialize_pem()).expect("key file");
    fingerprint(c.cert.der())
}

#[tokio::test]
async fn https_with_hsts_and_reload_keeps_open_connections() {
    let dir = tempfile::tempdir().expect("dir");
    let first = write_cert(dir.path());
    let certs = Arc::new(
        Certificates::from_files(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .expect("load"),
    );
    assert_eq!(certs.fingerprint(), first);
    let Some(s) = Server::start_with(ServerConfig {
        tls: Some(certs.clone()),
        ..test_config()
    })
    .await
    else {
        return;
    };
    let addr = s.addr.to_string();
    let (mut open, seen) = connect(&addr).await;
    assert_eq!(seen, first);
    let answer = get(&mut open, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{answer}"
    );

    // Plain HTTP to the HTTPS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered");

    // New files, reloaded: new connections see them, the open one carries on.
    let second = write_cert(dir.path());
    assert_ne!(first, second);
    certs.reload().expect("reload");
    let (mut fresh, seen) = connect(&addr).await;
    assert_eq!(seen, second);
    assert!(
        get(&mut fresh, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(get(&mut open, "/healthz").await.starts_with("HTTP/1.1 200"));

    // A broken key file is refused and the current certificate stays.
    std::fs::write(dir.path().join("key.pem"), "not a key").expect("write");
    let err = certs.reload().expect_err("a bad key must not load");
    assert!(err.to_string().contains("key.pem"), "{err}");
    assert!(!err.to_string().contains("not a key"), "{err}");
    // A key pasted onto one line: refused, and the message quotes none of it.
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let one_line = c.signing_key.serialize_pem().replace('\n', "");
    std::fs::write(dir.path().join("key.pem"), &one_line).expect("write");
    let err = certs
        .reload()
        .expect_err("a mangled key must not load")
        .to_string();
    let body: String = one_line
        .trim_start_matches("-----BEGIN PRIVATE KEY-----")
        .chars()
        .take(24)
        .collect();
    // Neither as text nor as the byte list some PEM errors print.
    let bytes: Vec<String> = body.bytes().map(|b| b.to_string()).collect();
    assert!(!err.contains(&body), "{err}");
    assert!(!err.contains(&bytes.join(", ")), "{err}");
    let (_, seen) = connect(&addr).await;
    assert_eq!(seen, second);
}

#[tokio::test]
async fn plain_http_sends_no_hsts() {
    let Some(s) = Server::start().await else {
        return;
    };
    let r = send(reqwest::Client::new().get(format!("http://{}/healthz", s.addr))).await;
    assert!(r.headers.get("strict-transport-security").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_files_of_the_real_binary() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("kg.db").display());
    let first = write_cert(dir.path());
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let running =
        Running::start_serving(&db, &[], &["--tls-cert", &cert, "--tls-key", &key], "info").await;
    let (mut open, seen) = connect(&running.addr).await;
    assert_eq!(seen, first);
    assert!(get(&mut open, "/healthz").await.starts_with("HTTP/1.1 200"));
    let second = write_cert(dir.path());
    running.signal("-HUP").await;
    let reloaded = eventually(Duration::from_secs(5), || async {
        connect(&running.addr).await.1 == second
    })
    .await;
    assert!(reloaded, "SIGHUP reloads the certificate");
    assert!(get(&mut open, "/healthz").await.starts_with("HTTP/1.1 200"));
    let lines = running.stop().await;
    assert!(lines.iter().any(|l| l.contains("TLS certificate reloaded")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_prints_the_fingerprint_it_serves() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("kg.db").display());
    let running = Running::start_serving(&db, &[], &["--tls-self-signed"], "info").await;
    let (mut c, seen) = connect(&running.addr).await;
    assert!(get(&mut c, "/healthz").await.starts_with("HTTP/1.1 200"));
    let lines = running.stop().await;
    let printed: Vec<&String> = lines.iter().filter(|l| l.trim() == seen).collect();
    assert_eq!(printed.len(), 1, "the banner shows {seen}: {lines:#?}");
}
