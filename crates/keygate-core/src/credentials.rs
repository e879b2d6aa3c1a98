//! Parsing of the `Authorization` header into a credential, without any lookup.

use std::fmt;

use crate::error::CredentialError;
use crate::token::BearerToken;

/// Longest LMv1 access id accepted (keygate issues 20 characters).
const MAX_ACCESS_ID: usize = 64;
/// Longest LMv1 signature accepted (base64 of 64 hex characters is 88).
const MAX_SIGNATURE: usize = 128;
/// Most digits in an LMv1 timestamp (i64 milliseconds fit in 19).
const MAX_TIMESTAMP_DIGITS: usize = 19;

/// A credential read from an `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Bearer <token>`.
    Bearer(BearerToken),
    /// `LMv1 <accessId>:<signature>:<epochMillis>`.
    Lmv1(Lmv1Credential),
}

/// The parts of an LMv1 credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Lmv1Credential {
    /// The public access id.
    pub access_id: String,
    /// base64 of the lowercase hex HMAC-SHA256 (secret-derived: compare in constant time).
    pub signature: String,
    /// The client's clock in epoch milliseconds.
    pub epoch_millis: i64,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer(t) => t.fmt(f),
            Self::Lmv1(c) => c.fmt(f),
        }
    }
}

impl fmt::Debug for Lmv1Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The signature is secret-derived; the access id and time are not.
        write!(
            f,
            "Lmv1({}, <signature>, {})",
            self.access_id, self.epoch_millis
        )
    }
}

/// Parses one `Authorization` header value.
///
/// The scheme word is case-insensitive; exactly one space separates it from the
/// credential, so stray spaces are reported by the token parser with their position.
pub fn parse_authorization(value: &[u8]) -> Result<Credential, CredentialError> {
    if value.is_empty() {
        return Err(CredentialError::EmptyHeader);
    }
    // The common case, `Bearer <token>`, is told apart on the bytes: a token is ASCII
    // letters and digits, which its parser checks, so the header need not be decoded
    // as text first. Anything else takes the path below, with its precise errors.
    if let Some((scheme, token)) = value.split_at_checked(7)
        && scheme.eq_ignore_ascii_case(b"bearer ")
        && let Ok(token) = std::str::from_utf8(token)
        && !token.is_empty()
    {
        return Ok(Credential::Bearer(BearerToken::parse(token)?));
    }
    let value = std::str::from_utf8(value).map_err(|_| CredentialError::NotAscii)?;
    let (scheme, rest) = match value.split_once(' ') {
        Some((s, r)) => (s, Some(r)),
        None => (value, None),
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        let rest = rest.ok_or(CredentialError::MissingBearerToken)?;
        if rest.is_empty() {
            return Err(CredentialError::MissingBearerToken);
        }
        return Ok(Credential::Bearer(BearerToken::parse(rest)?));
    }
    if scheme.eq_ignore_ascii_case("lmv1") {
        return parse_lmv1(rest.unwrap_or("")).map(Credential::Lmv1);
    }
    Err(CredentialError::UnsupportedScheme)
}

fn parse_lmv1(rest: &str) -> Result<Lmv1Credential, CredentialError> {
    let mut parts = rest.split(':');
    let (Some(access_id), Some(signature), Some(ts), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CredentialError::Lmv1(
            "expected exactly three parts accessId:signature:epochMillis",
        ));
    };
    if access_id.is_empty() || access_id.len() > MAX_ACCESS_ID {
        return Err(CredentialError::Lmv1("the access id is empty or too long"));
    }
    if !access_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CredentialError::Lmv1(
            "the access id may contain only letters and digits",
        ));
    }
    if signature.is_empty() || signature.len() > MAX_SIGNATURE {
        return Err(CredentialError::Lmv1("the signature is empty or too long"));
    }
    if !signature
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(CredentialError::Lmv1("the signature is not base64"));
    }
    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CredentialError::Lmv1(
            "the timestamp must be epoch milliseconds (digits only)",
        ));
    }
    if ts.len() > MAX_TIMESTAMP_DIGITS {
        return Err(CredentialError::Lmv1(
            "the timestamp has too many digits for epoch milliseconds",
        ));
    }
    let epoch_millis = ts
        .parse::<i64>()
        .map_err(|_| CredentialError::Lmv1("the timestamp is out of range"))?;
    Ok(Lmv1Credential {
        access_id: access_id.to_owned(),
        signature: signature.to_owned(),
        epoch_millis,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TokenFormatError;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let t = BearerToken::generate().unwrap_or_else(|e| panic!("{e}"));
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let h = format!("{scheme} {}", t.expose_secret());
            assert_eq!(
                parse_authorization(h.as_bytes()),
                Ok(Credential::Bearer(t.clone()))
            );
        }
    }

    #[test]
    fn header_faults_are_named() {
        assert_eq!(parse_authorization(b""), Err(CredentialError::EmptyHeader));
        assert_eq!(
            parse_authorization(b"Bearer"),
            Err(CredentialError::MissingBearerToken)
        );
        assert_eq!(
            parse_authorization(b"Bearer "),
            Err(CredentialError::MissingBearerToken)
        );
        assert_eq!(
            parse_authorization(b"Basic abc"),
            Err(CredentialError::UnsupportedScheme)
        );
        assert_eq!(
            parse_authorization(b"Bearer  kgt"),
            Err(CredentialError::Token(
                TokenFormatError::SurroundingWhitespace
            ))
        );
        assert!(matches!(
            parse_authorization(b"LMv1 a:b"),
            Err(CredentialError::Lmv1(_))
        ));
        assert!(matches!(
            parse_authorization(b"LMv1 a:b:1234567890123456789012345"),
            Err(CredentialError::Lmv1(_))
        ));
        assert!(matches!(
            parse_authorization(b"LMv1 a:b:-1"),
            Err(CredentialError::Lmv1(_))
        ));
        assert!(matches!(
            parse_authorization(b"LMv1 a:b:9999999999999999999"),
            Err(CredentialError::Lmv1(_))
        ));
    }

    #[test]
    fn lmv1_parts_are_read() {
        let c = parse_authorization(b"LMv1 abc123:c2lnbmF0dXJl:1700000000000");
        assert_eq!(
            c,
            Ok(Credential::Lmv1(Lmv1Credential {
                access_id: "abc123".into(),
                signature: "c2lnbmF0dXJl".into(),
                epoch_millis: 1_700_000_000_000,
            }))
        );
    }
}
