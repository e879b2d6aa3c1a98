//! Passwords: argon2id hashes with a random salt, and generated bootstrap passwords.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::{Error, random};

/// Shortest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted (bounds hashing work).
pub const MAX_LEN: usize = 256;

/// Hashes a password with argon2id and a fresh random salt (PHC string format).
pub fn hash(password: &str) -> Result<String, Error> {
    let salt_bytes = random::bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| Error::PasswordHash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| Error::PasswordHash)
}

/// Whether `password` matches a stored PHC hash (constant-time inside argon2).
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A random 24-character password for the bootstrap admin.
pub fn generate() -> Result<String, Error> {
    random::base62(24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trip() {
        let h = hash("correct horse").unwrap_or_else(|e| panic!("{e}"));
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }
}
