//! Bearer token format: generation, parsing with precise errors, masking and hashing.
//!
//! A bearer token is `kgt` + 40 random base62 characters + 6 base62 characters of the
//! CRC32 of the preceding 43 characters (49 characters, `[A-Za-z0-9]` only). The
//! checksum lets a client, a secret scanner or the server tell a mistyped or truncated
//! token from a real one without a database.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::TokenFormatError;
use crate::random;

/// The fixed prefix of every bearer token.
pub const PREFIX: &str = "kgt";
/// Number of random characters after the prefix.
pub const RANDOM_LEN: usize = 40;
/// Number of checksum characters at the end.
pub const CHECKSUM_LEN: usize = 6;
/// Total length of a bearer token.
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// Characters shown at the start of a masked token.
pub const MASK_HEAD: usize = 7;
/// Characters shown at the end of a masked token.
pub const MASK_TAIL: usize = 4;

/// The base62 alphabet, in the order digits, upper case, lower case.
pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A well-formed bearer token (prefix, length, alphabet and checksum all checked).
///
/// Its `Debug` output never shows the secret, so it cannot leak through a log line.
/// It is held inline (every token has the same length): checking a request's token
/// allocates nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken([u8; TOKEN_LEN]);

/// SHA-256 of a bearer token: the only form in which a token is stored or indexed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest(pub [u8; 32]);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken({})", self.masked())
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not a secret, but a short prefix is all a reader ever needs.
        write!(f, "TokenDigest(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl BearerToken {
    /// Generates a new token from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, crate::Error> {
        let mut s = String::with_capacity(TOKEN_LEN);
        s.push_str(PREFIX);
        s.push_str(&random::base62(RANDOM_LEN)?);
        let sum = checksum(s.as_bytes());
        s.extend(sum.iter().map(|&b| char::from(b)));
        Ok(Self::parse(&s)?)
    }

    /// Parses a pasted token, saying precisely what is wrong with it if anything is.
    pub fn parse(input: &str) -> Result<Self, TokenFormatError> {
        if input.is_empty() {
            return Err(TokenFormatError::Empty);
        }
        if input.starts_with(char::is_whitespace) || input.ends_with(char::is_whitespace) {
            return Err(TokenFormatError::SurroundingWhitespace);
        }
        // The common case (every byte a letter or digit) is one pass over bytes, with
        // no early exit so that it runs many bytes at a time; the character position
        // is worked out only for the error.
        let alphanumeric = input
            .bytes()
            .fold(true, |ok, b| ok & b.is_ascii_alphanumeric());
        if let Some((index, ch)) = (!alphanumeric)
            .then(|| {
                input
                    .chars()
                    .enumerate()
                    .find(|(_, c)| !c.is_ascii_alphanumeric())
            })
            .flatten()
        {
            return Err(TokenFormatError::InvalidCharacter {
                position: index + 1,
                found: describe_char(ch),
            });
        }
        // Only ASCII from here on, so byte length equals character count.
        if input.len() != TOKEN_LEN {
            return Err(TokenFormatError::WrongLength {
                found: input.len(),
                expected: TOKEN_LEN,
            });
        }
        if !input.starts_with(PREFIX) {
            return Err(TokenFormatError::WrongPrefix { expected: PREFIX });
        }
        let (body, sum) = input.split_at(TOKEN_LEN - CHECKSUM_LEN);
        let expected = checksum(body.as_bytes());
        // The checksum is public information derived from the token; comparing it
        // in constant time costs nothing and keeps the habit uniform.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(sum.as_bytes(), &expected[..])) {
            return Err(TokenFormatError::ChecksumMismatch);
        }
        let mut bytes = [0u8; TOKEN_LEN];
        bytes.copy_from_slice(input.as_bytes());
        Ok(Self(bytes))
    }

    /// The full secret. Call only to show it once in a creation response.
    pub fn expose_secret(&self) -> &str {
        // Only letters and digits are ever stored (see `parse`), so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The masked form shown everywhere after creation.
    pub fn masked(&self) -> String {
        mask(self.expose_secret())
    }

    /// SHA-256 of the token, the form in which it is stored and looked up.
    pub fn digest(&self) -> TokenDigest {
        digest_of(&self.0)
    }
}

/// SHA-256 of arbitrary token bytes.
pub fn digest_of(bytes: &[u8]) -> TokenDigest {
    TokenDigest(Sha256::digest(bytes).into())
}

/// Masks a token: the first 7 characters, `*` for each hidden one, the last 4.
///
/// Inputs too short to hide anything are masked entirely, so a mask never reveals
/// more than 11 characters and never the whole of a short string.
pub fn mask(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() <= MASK_HEAD + MASK_TAIL {
        return "*".repeat(chars.len());
    }
    let hidden = chars.len() - MASK_HEAD - MASK_TAIL;
    let mut out = String::with_capacity(chars.len());
    out.extend(&chars[..MASK_HEAD]);
    out.extend(std::iter::repeat_n('*', hidden));
    out.extend(&chars[chars.len() - MASK_TAIL..]);
    out
}

/// CRC32 of `body` as exactly six base62 characters (62^6 > 2^32), most significant first.
/// The base62 CRC32 of a token's body (an array: parsing, on every request, allocates
/// nothing for it).
fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = u64::from(crc32fast::hash(body));
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits
}

fn describe_char(ch: char) -> String {
    if ch.is_whitespace() {
        "whitespace".to_owned()
    } else if ch.is_ascii_graphic() {
        format!("'{ch}'")
    } else {
        format!("U+{:04X}", u32::from(ch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fresh() -> BearerToken {
        match BearerToken::generate() {
            Ok(t) => t,
            Err(e) => panic!("generate: {e}"),
        }
    }

    #[test]
    fn generated_token_has_the_documented_shape() {
        let t = fresh();
        let s = t.expose_secret();
        assert_eq!(s.len(), 49);
        assert!(s.starts_with("kgt"));
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(BearerToken::parse(s), Ok(t.clone()));
        let m = t.masked();
        assert_eq!(m.len(), 49);
        assert_eq!(&m[..7], &s[..7]);
        assert_eq!(&m[45..], &s[45..]);
        assert!(m[7..45].bytes().all(|b| b == b'*'));
    }

    #[test]
    fn each_malformation_has_its_own_error() {
        let t = fresh();
        let s = t.expose_secret();
        assert_eq!(BearerToken::parse(""), Err(TokenFormatError::Empty));
        assert_eq!(
            BearerToken::parse(&format!(" {s}")),
            Err(TokenFormatError::SurroundingWhitespace)
        );
        assert_eq!(
            BearerToken::parse(&format!("{s}\n")),
            Err(TokenFormatError::SurroundingWhitespace)
        );
        let inner = format!("{} {}", &s[..10], &s[10..]);
        assert_eq!(
            BearerToken::parse(&inner),
            Err(TokenFormatError::InvalidCharacter {
                position: 11,
                found: "whitespace".into()
            })
        );
        let dash = format!("{}-{}", &s[..3], &s[4..]);
        assert_eq!(
            BearerToken::parse(&dash),
            Err(TokenFormatError::InvalidCharacter {
                position: 4,
                found: "'-'".into()
            })
        );
        assert_eq!(
            BearerToken::parse(&s[..48]),
            Err(TokenFormatError::WrongLength {
                found: 48,
                expected: 49
            })
        );
        assert_eq!(
            BearerToken::parse(&format!("{s}A")),
            Err(TokenFormatError::WrongLength {
                found: 50,
                expected: 49
            })
        );
        assert_eq!(
            BearerToken::parse(&format!("abc{}", &s[3..])),
            Err(TokenFormatError::WrongPrefix { expected: "kgt" })
        );
        let mut typo = s.as_bytes().to_vec();
        typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap_or_default();
        assert_eq!(
            BearerToken::parse(&typo),
            Err(TokenFormatError::ChecksumMismatch)
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let t = fresh();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(t.expose_secret()));
        assert!(dbg.contains(&t.masked()));
    }

    #[test]
    fn checksum_matches_an_independent_crc32() {
        // python3: zlib.crc32(b"kgt" + b"0" * 40) = 2738265677, in base62 "2zJTzR".
        let body = format!("kgt{}", "0".repeat(40));
        assert_eq!(&checksum(body.as_bytes()), b"2zJTzR");
        let token = format!("{body}2zJTzR");
        assert!(BearerToken::parse(&token).is_ok());
    }

    proptest! {
        #[test]
        fn any_single_character_change_is_detected(pos in 0usize..49, repl in 0usize..62) {
            let t = fresh();
            let mut bytes = t.expose_secret().as_bytes().to_vec();
            let new = BASE62[repl];
            prop_assume!(bytes[pos] != new);
            bytes[pos] = new;
            let changed = String::from_utf8(bytes).unwrap_or_default();
            prop_assert!(BearerToken::parse(&changed).is_err());
        }

        #[test]
        fn generate_parse_round_trip(_seed in 0u8..=255) {
            let t = fresh();
            prop_assert_eq!(BearerToken::parse(t.expose_secret()), Ok(t.clone()));
            prop_assert_eq!(t.digest(), digest_of(t.expose_secret().as_bytes()));
        }

        #[test]
        fn mask_never_shows_more_than_eleven_characters(s in "[A-Za-z0-9]{0,80}") {
            let m = mask(&s);
            let shown = m.chars().filter(|&c| c != '*').count();
            prop_assert!(shown <= 11);
            prop_assert_eq!(m.chars().count(), s.chars().count());
            if s.len() > 11 {
                prop_assert_eq!(shown, 11);
            } else {
                prop_assert_eq!(shown, 0);
            }
        }
    }
}
