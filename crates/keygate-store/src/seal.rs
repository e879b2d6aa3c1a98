//! The master key and the sealing of LMv1 access keys with AES-256-GCM.
//!
//! HMAC verification needs the access key itself, so it cannot be stored as a hash
//! like a bearer token. It is sealed under a 256-bit master key kept outside the
//! database: a random 96-bit nonce per seal, the token id as associated data (so a
//! sealed key copied onto another row does not open), nonce || ciphertext || tag stored.
//! The store keeps a check value (an HMAC of a fixed label under the master key),
//! never the key, so a wrong key is refused at start-up instead of failing later.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::StoreError;

const NONCE_LEN: usize = 12;
const CHECK_LABEL: &[u8] = b"keygate master key check v1";

/// The 256-bit key that seals LMv1 access keys. Zeroed when dropped; never printed.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

fn key_error(msg: String) -> StoreError {
    StoreError::MasterKey(msg)
}

impl MasterKey {
    /// A new key from the OS CSPRNG.
    pub fn generate() -> Result<Self, StoreError> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(k.as_mut())
            .map_err(|_| key_error("the system random number generator failed".into()))?;
        Ok(Self(k))
    }

    /// Reads a key file (64 hex characters), refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| key_error(format!("cannot read the master key file {shown}: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(key_error(format!(
                    "the master key file {shown} can be read by group or others (mode {mode:o}); run: chmod 600 {shown}"
                )));
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| key_error(format!("cannot read the master key file {shown}: {e}")))?,
        );
        let hex = text.trim();
        if hex.len() != 64 {
            return Err(key_error(format!(
                "the master key file {shown} must hold 64 hex characters"
            )));
        }
        let mut k = Zeroizing::new([0u8; 32]);
        for (byte, pair) in k.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let nibble = |c: u8| char::from(c).to_digit(16);
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(h), Some(l)) => *byte = (h * 16 + l) as u8,
                _ => {
                    return Err(key_error(format!(
                        "the master key file {shown} must hold 64 hex characters"
                    )));
                }
            }
        }
        Ok(Self(k))
    }

    /// Writes the key to a new file with mode 0600 (refusing to overwrite one), synced
    /// to disk before returning.
    pub fn write_new_file(&self, path: &Path) -> Result<(), StoreError> {
        let shown = path.display();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut f = options
            .open(path)
            .map_err(|e| key_error(format!("cannot create the master key file {shown}: {e}")))?;
        let mut hex = Zeroizing::new(String::with_capacity(65));
        for b in self.0.iter() {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        hex.push('\n');
        f.write_all(hex.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| key_error(format!("cannot write the master key file {shown}: {e}")))
    }

    /// The check value kept in the store: reveals nothing about the key.
    pub fn check_value(&self) -> Vec<u8> {
        // HMAC accepts any key length; the fallback only keeps this free of panics.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        mac.update(CHECK_LABEL);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `stored` is this key's check value (constant-time).
    pub fn matches(&self, stored: &[u8]) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.check_value().as_slice(), stored).into()
    }

    /// Seals `plaintext` for token `token_id`.
    pub fn seal(&self, plaintext: &[u8], token_id: i64) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|_| key_error("the system random number generator failed".into()))?;
        let cipher = Aes256Gcm::new_from_slice(self.0.as_ref())
            .map_err(|_| key_error("bad key length".into()))?;
        let aad = token_id.to_be_bytes();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| key_error("sealing failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`MasterKey::seal`] made for the same token id.
    pub fn open(&self, sealed: &[u8], token_id: i64) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if sealed.len() < NONCE_LEN {
            return Err(StoreError::Corrupt("sealed access key is too short"));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new_from_slice(self.0.as_ref())
            .map_err(|_| key_error("bad key length".into()))?;
        let aad = token_id.to_be_bytes();
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| StoreError::Unseal(token_id))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_binds_the_token_id() {
        let k = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let sealed = k.seal(b"secret-key", 7).unwrap_or_else(|e| panic!("{e}"));
        assert!(!sealed.windows(10).any(|w| w == b"secret-key"));
        assert_eq!(
            k.open(&sealed, 7).map(|p| p.to_vec()).ok(),
            Some(b"secret-key".to_vec())
        );
        assert!(
            k.open(&sealed, 8).is_err(),
            "moved to another row, it does not open"
        );
        let other = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert!(other.open(&sealed, 7).is_err());
        assert!(k.matches(&k.check_value()));
        assert!(!other.matches(&k.check_value()));
        let hex: String = k.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
        assert!(!format!("{k:?}").contains(&hex[..8]));
    }

    #[test]
    fn key_files_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("k");
        let k = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
        k.write_new_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(k.write_new_file(&path).is_err(), "never overwrites");
        let back = MasterKey::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(back.matches(&k.check_value()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .unwrap_or_else(|e| panic!("{e}"));
            let err = MasterKey::load(&path)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("chmod 600"), "{err}");
        }
        std::fs::write(dir.path().join("bad"), "zz").unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(
                dir.path().join("bad"),
                std::fs::Permissions::from_mode(0o600),
            );
        }
        assert!(MasterKey::load(&dir.path().join("bad")).is_err());
    }
}
