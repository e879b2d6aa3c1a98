//! TLS with rustls: a certificate and key from PEM files, reloadable while serving
//! (new handshakes get the new certificate; open connections keep theirs), or a
//! self-signed certificate generated at start-up for local use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Why a certificate could not be loaded or generated.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// The key does not fit the certificate, or rustls refused them.
    #[error("the certificate and key cannot be used together: {0}")]
    Key(#[from] rustls::Error),
    /// Generating a self-signed certificate failed.
    #[error("could not generate a self-signed certificate: {0}")]
    Generate(String),
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
enum Source {
    /// PEM files, read again on [`Certificates::reload`].
    Files { cert: PathBuf, key: PathBuf },
    /// Generated at start-up; reloading keeps it.
    SelfSigned,
}

/// The serving certificate, swappable while connections are open.
#[derive(Debug)]
pub struct Certificates {
    source: Source,
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let pem_err = |path: &Path, why: String| TlsError::Pem {
        path: path.to_path_buf(),
        why,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, pem_problem(&e, "certificate")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert, pem_problem(&e, "certificate")))?;
    if chain.is_empty() {
        return Err(pem_err(cert, "no CERTIFICATE block found".to_owned()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| pem_err(key, pem_problem(&e, "private key (PKCS#8, PKCS#1 or SEC1)")))?;
    Ok(CertifiedKey::from_der(chain, private, provider)?)
}

/// What is wrong with a PEM file, without quoting it: some PEM errors carry a line of
/// the file, and a key pasted without line breaks (or a certificate file that also
/// holds the key) would put key material in that line.
fn pem_problem(e: &rustls_pki_types::pem::Error, what: &str) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::Io(io) => format!("cannot be read ({})", io.kind()),
        E::NoItemsFound => format!("holds no PEM {what}"),
        _ => format!("is not a well-formed PEM {what}"),
    }
}

impl Certificates {
    /// Loads a certificate chain and key from PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let provider = provider();
        let current = load(cert, key, &provider)?;
        Ok(Self {
            source: Source::Files {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            },
            current: RwLock::new(Arc::new(current)),
            provider,
        })
    }

    /// Generates a self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn self_signed() -> Result<Self, TlsError> {
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let provider = provider();
        let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        let current = CertifiedKey::from_der(vec![generated.cert.der().clone()], key, &provider)?;
        Ok(Self {
            source: Source::SelfSigned,
            current: RwLock::new(Arc::new(current)),
            provider,
        })
    }

    /// Reads the PEM files again and serves the new certificate to new connections.
    /// On error the current certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Source::Files { cert, key } = &self.source else {
            return Ok(());
        };
        let fresh = Arc::new(load(cert, key, &self.provider)?);
        if let Ok(mut cur) = self.current.write() {
            *cur = fresh;
        }
        Ok(())
    }

    /// SHA-256 of the serving (end-entity) certificate, as colon-separated hex.
    pub fn fingerprint(&self) -> String {
        let cur = self.current.read().map(|c| c.clone()).ok();
        cur.and_then(|c| c.cert.first().map(|d| fingerprint(d.as_ref())))
            .unwrap_or_default()
    }

    /// A rustls server configuration that always uses the current certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        let mut c = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(c)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// SHA-256 of DER bytes as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The TLS handshake as a [`crate::listen::Acceptor`].
#[derive(Clone)]
pub struct TlsAcceptor(tokio_rustls::TlsAcceptor);

impl TlsAcceptor {
    /// An acceptor serving `certs`.
    pub fn new(certs: &Arc<Certificates>) -> Result<Self, TlsError> {
        Ok(Self(tokio_rustls::TlsAcceptor::from(Arc::new(
            certs.server_config()?,
        ))))
    }
}

impl crate::listen::Acceptor for TlsAcceptor {
    type Stream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    async fn accept(&self, tcp: tokio::net::TcpStream) -> std::io::Result<Self::Stream> {
        self.0.accept(tcp).await
    }
}
