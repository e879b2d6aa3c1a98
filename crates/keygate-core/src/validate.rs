//! Bounds and shapes of user-supplied values, checked before anything is stored.

use crate::Error;

/// Longest token or user note, in characters.
pub const MAX_NOTE: usize = 1024;
/// Longest username, in characters.
pub const MAX_USERNAME: usize = crate::username::MAX_LEN;
/// Longest email address.
pub const MAX_EMAIL: usize = 254;
/// Longest first or last name, role name, company name.
pub const MAX_NAME: usize = 128;
/// Longest role description.
pub const MAX_DESCRIPTION: usize = 1024;
/// Most privileges on one role.
pub const MAX_PRIVILEGES: usize = 64;
/// Most roles on one user.
pub const MAX_ROLES: usize = 32;
/// Most tokens a portal may allow per user.
pub const MAX_TOKENS_PER_USER_LIMIT: i64 = 1000;

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

fn no_control(field: &'static str, s: &str) -> Result<(), Error> {
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A note on a token or user: at most 1,024 characters, no control characters but
/// newline and tab.
pub fn note(field: &'static str, s: &str) -> Result<(), Error> {
    let n = s.chars().count();
    if n > MAX_NOTE {
        return Err(invalid(
            field,
            format!("is {n} characters long; at most {MAX_NOTE} are allowed"),
        ));
    }
    no_control(field, s)
}

/// A username: 1 to 128 characters in the profile of [`crate::username`]. Returns
/// the normal form to store.
pub fn username(s: &str) -> Result<String, Error> {
    crate::username::normalize(s)
}

/// An email address: something@something, at most 254 characters, no whitespace.
pub fn email(s: &str) -> Result<(), Error> {
    let ok = s.len() <= MAX_EMAIL
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(invalid("email", "must be an address like name@example.com"))
    }
}

/// A short single-line name (first/last name, role name, company name).
pub fn name(field: &'static str, s: &str, required: bool) -> Result<(), Error> {
    let n = s.chars().count();
    if required && s.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if n > MAX_NAME {
        return Err(invalid(
            field,
            format!("is {n} characters long; at most {MAX_NAME} are allowed"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A role description.
pub fn description(s: &str) -> Result<(), Error> {
    let n = s.chars().count();
    if n > MAX_DESCRIPTION {
        return Err(invalid(
            "description",
            format!("is {n} characters long; at most {MAX_DESCRIPTION} are allowed"),
        ));
    }
    no_control("description", s)
}

/// A password being set.
pub fn password(s: &str) -> Result<(), Error> {
    let n = s.chars().count();
    if !(crate::password::MIN_LEN..=crate::password::MAX_LEN).contains(&n) {
        return Err(invalid(
            "password",
            format!(
                "must be {} to {} characters",
                crate::password::MIN_LEN,
                crate::password::MAX_LEN
            ),
        ));
    }
    Ok(())
}

/// One part of a privilege (`objectType`, `objectId`, `operation`).
pub fn privilege_part(field: &'static str, s: &str) -> Result<(), Error> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(field, "must be 1 to 64 printable ASCII characters"));
    }
    Ok(())
}

/// `maxTokensPerUser`.
pub fn max_tokens_per_user(n: i64) -> Result<(), Error> {
    if (1..=MAX_TOKENS_PER_USER_LIMIT).contains(&n) {
        Ok(())
    } else {
        Err(invalid(
            "maxTokensPerUser",
            format!("must be from 1 to {MAX_TOKENS_PER_USER_LIMIT}"),
        ))
    }
}

/// `lmv1ClockSkewSeconds`.
pub fn clock_skew(n: i64) -> Result<(), Error> {
    if (1..=86_400).contains(&n) {
        Ok(())
    } else {
        Err(invalid("lmv1ClockSkewSeconds", "must be from 1 to 86400"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold() {
        assert!(note("note", &"a".repeat(1024)).is_ok());
        assert!(note("note", &"a".repeat(1025)).is_err());
        assert!(note("note", "bell\u{7}").is_err());
        assert!(username("alice").is_ok());
        assert!(username("al ice").is_err());
        assert!(username("").is_err());
        assert!(email("a@b").is_ok());
        assert!(email("ab").is_err());
        assert!(email("a@b@c").is_err());
        assert!(max_tokens_per_user(0).is_err());
        assert!(password("short").is_err());
    }
}
