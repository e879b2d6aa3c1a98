//! Usernames: one normal form, one identity, one look.
//!
//! A username is stored in its normal form ([`normalize`]): NFKC, which folds
//! fullwidth and other compatibility forms (`ａｄｍｉｎ` is `admin`) and composes
//! decomposed letters (an NFD `é` is the NFC `é`). Its identity ([`key`]) is that form
//! lowercased and recomposed — the case mapping of RFC 8265's UsernameCaseMapped
//! profile — computed here, not by the database, so SQLite and PostgreSQL agree
//! (`Ärger` and `ärger` are one user on both). Its look ([`skeleton`]) is the UTS #39
//! confusable skeleton of the identity: a new name that looks like an existing one
//! (`adrnin` beside `admin`) is refused.
//!
//! What a username may contain: ASCII letters and digits, `.`, `_`, `-`, `@`, `+`, and
//! letters, marks and digits that UTS #39 lists as allowed in identifiers — all from
//! one script (a Cyrillic `а` inside a Latin name is refused). No whitespace, control,
//! zero-width, bidirectional or other invisible characters.

use unicode_normalization::UnicodeNormalization as _;
use unicode_security::{GeneralSecurityProfile as _, MixedScript as _};

use crate::Error;

/// Longest username, in characters (after normalization).
pub const MAX_LEN: usize = 128;

fn invalid(reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: "username",
        reason: reason.into(),
    }
}

/// ASCII punctuation allowed in usernames (email-style names, `first.last`, `ci-bot`).
fn ascii_punct(c: char) -> bool {
    matches!(c, '.' | '_' | '-' | '@' | '+')
}

/// The normal form of a username as given, or why it cannot be one.
pub fn normalize(given: &str) -> Result<String, Error> {
    let s: String = given.nfkc().collect();
    let n = s.chars().count();
    if n == 0 || n > MAX_LEN {
        return Err(invalid(format!("must be 1 to {MAX_LEN} characters")));
    }
    for (i, c) in s.chars().enumerate() {
        let ok = c.is_ascii_alphanumeric()
            || ascii_punct(c)
            || (!c.is_ascii() && c.identifier_allowed());
        if !ok {
            let what = if c.is_whitespace() {
                "whitespace".to_owned()
            } else if c.is_control() {
                "a control character".to_owned()
            } else if !c.is_ascii() && !c.is_alphanumeric() {
                format!("U+{:04X}, an invisible or symbol character", c as u32)
            } else {
                format!("U+{:04X}", c as u32)
            };
            return Err(invalid(format!(
                "character {} is {what}; usernames may use letters, digits and . _ - @ +",
                i + 1
            )));
        }
    }
    if !s.as_str().is_single_script() {
        return Err(invalid(
            "mixes letters of different scripts (such as a Cyrillic letter among Latin ones)",
        ));
    }
    Ok(s)
}

/// The identity of a username: its normal form lowercased (and recomposed). Two
/// usernames with the same key are the same user.
pub fn key(name: &str) -> String {
    let s: String = name.nfkc().collect();
    s.to_lowercase().nfc().collect()
}

/// How a username looks: the UTS #39 skeleton of its key. A new username whose
/// skeleton another user already has would pass for that user.
pub fn skeleton(name: &str) -> String {
    unicode_security::skeleton(&key(name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_of_admin_are_normalized_or_refused() {
        // Fullwidth and NFD forms become the plain name (and so collide with it).
        assert_eq!(normalize("ａｄｍｉｎ").as_deref(), Ok("admin"));
        assert_eq!(normalize("e\u{301}lise").as_deref(), Ok("\u{e9}lise"));
        // Invisible and control characters are refused, naming the position.
        for bad in [
            "ad\u{200b}min",
            "ad\u{ad}min",
            "\u{202e}nimda",
            "adm\u{200d}in",
            "admin\u{0}",
            "ad min",
            "admin\u{feff}",
        ] {
            let e = normalize(bad).expect_err(bad);
            assert!(e.to_string().contains("character"), "{bad:?}: {e}");
        }
        // A Cyrillic а among Latin letters.
        assert!(normalize("\u{430}dmin").is_err());
        // One script at a time is fine.
        assert!(normalize("админ").is_ok());
        assert!(normalize("ingest@example.com").is_ok());
        assert!(normalize("first.last-2_x+y").is_ok());
    }

    #[test]
    fn keys_fold_case_beyond_ascii_and_skeletons_catch_confusables() {
        assert_eq!(key("Ärger"), key("ärger"));
        assert_eq!(key("ADMIN"), "admin");
        assert_eq!(key("A\u{308}rger"), key("ärger"), "NFD and NFC");
        assert_eq!(skeleton("adrnin"), skeleton("admin"), "rn looks like m");
        assert_eq!(skeleton("admin1"), skeleton("adminl"));
        assert_ne!(skeleton("alice"), skeleton("bob"));
    }
}
