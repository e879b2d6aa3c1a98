//! Rules of the API that depend only on what is asked and by whom: where a new
//! token's type comes from, which system-generated properties a client may send back,
//! what nobody may do to their own user, and the fixed built-in administrator role.
//! Pure functions, so each rule has one home and its own tests; the handlers and the
//! management path read the facts and call these. (Who holds which privilege is
//! `policy`'s; bounds on values are `validate`'s.)

use crate::error::Error;
use crate::model::{RoleId, TokenType, UserId};

fn refuse(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The type of a token to create, from the body and the `type` query parameter. As in
/// LogicMonitor's API, neither means LMv1; the two must agree. An LMv1 signature does
/// not cover the query string, so a signed request (`signed_without_query`) takes a
/// type other than the default only from its signed body: a captured request
/// replayed with `?type=bearer` added cannot mint a bearer token.
pub fn new_token_type(
    in_body: Option<TokenType>,
    in_query: Option<TokenType>,
    signed_without_query: bool,
) -> Result<TokenType, Error> {
    match (in_body, in_query) {
        (Some(body), Some(query)) if body != query => Err(refuse(
            "type",
            format!(
                "{} in the query string but {} in the body; give one",
                query.as_str(),
                body.as_str()
            ),
        )),
        (Some(kind), _) => Ok(kind),
        (None, Some(TokenType::Bearer)) if signed_without_query => Err(refuse(
            "type",
            "an LMv1 signature does not cover the query string, so with LMv1 put the type in the signed body: {\"type\": \"bearer\"}",
        )),
        (None, Some(kind)) => Ok(kind),
        (None, None) => Ok(TokenType::Lmv1),
    }
}

/// The system-generated properties a request body carries, if any.
#[derive(Debug, Clone, Copy, Default)]
pub struct SentSystemFields<'a> {
    /// `accessKey`.
    pub access_key: Option<&'a str>,
    /// `accessId`.
    pub access_id: Option<&'a str>,
    /// `adminId`.
    pub admin_id: Option<i64>,
    /// `type`, as sent.
    pub kind: Option<&'a str>,
}

const SYSTEM_GENERATED: &str = "system generated, cannot be edited";

/// Refuses any attempt to set what the system generates. Values equal to the current
/// ones are accepted, because SDKs send read-only properties back. `current_access_id`
/// is the token's (`None` when creating); `admin_id` and `kind` are the owner and type
/// it has or will have.
pub fn system_fields_unchanged(
    sent: &SentSystemFields<'_>,
    current_access_id: Option<&str>,
    admin_id: i64,
    kind: TokenType,
) -> Result<(), Error> {
    if sent.access_key.is_some_and(|k| !k.is_empty()) {
        return Err(refuse("accessKey", SYSTEM_GENERATED));
    }
    if let Some(a) = sent.access_id
        && !a.is_empty()
        && current_access_id != Some(a)
    {
        return Err(refuse("accessId", SYSTEM_GENERATED));
    }
    if sent.admin_id.is_some_and(|a| a != admin_id) {
        return Err(refuse("adminId", SYSTEM_GENERATED));
    }
    if let Some(t) = sent.kind
        && TokenType::parse(t) != Some(kind)
    {
        return Err(refuse("type", SYSTEM_GENERATED));
    }
    Ok(())
}

/// What a user may not do to their own record: change their roles (sending them back
/// unchanged is fine, as SDKs send whole objects), suspend themselves, or delete
/// themselves — each would lock them out or escalate through a second admin.
pub fn own_user_change(
    current_roles: &[RoleId],
    wanted_roles: Option<&[RoleId]>,
    suspending: bool,
) -> Result<(), Error> {
    if let Some(wanted) = wanted_roles {
        let (mut current, mut wanted) = (current_roles.to_vec(), wanted.to_vec());
        current.sort_unstable();
        wanted.sort_unstable();
        wanted.dedup();
        if current != wanted {
            return Err(refuse(
                "roles",
                "you cannot change your own roles; ask another administrator",
            ));
        }
    }
    if suspending {
        return Err(refuse("status", "you cannot suspend yourself"));
    }
    Ok(())
}

/// Whether `actor` may delete the user `target` as far as self-deletion goes.
pub fn may_delete_user(actor: Option<UserId>, target: UserId) -> Result<(), Error> {
    if actor == Some(target) {
        Err(refuse("id", "you cannot delete your own user"))
    } else {
        Ok(())
    }
}

/// The name of the built-in role that holds every privilege.
pub const BUILTIN_ADMINISTRATOR: &str = "administrator";

/// The built-in administrator role is fixed: changing or deleting it could leave no
/// one able to manage users, roles and tokens.
pub fn role_may_change(name: &str) -> Result<(), Error> {
    if name.eq_ignore_ascii_case(BUILTIN_ADMINISTRATOR) {
        Err(refuse(
            "name",
            "the built-in administrator role cannot be changed or deleted; create a new role instead",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenType::{Bearer, Lmv1};

    #[test]
    fn no_type_means_lmv1_and_body_and_query_must_agree() {
        assert_eq!(new_token_type(None, None, false).ok(), Some(Lmv1));
        assert_eq!(new_token_type(None, Some(Bearer), false).ok(), Some(Bearer));
        assert_eq!(new_token_type(Some(Bearer), None, true).ok(), Some(Bearer));
        assert_eq!(
            new_token_type(Some(Bearer), Some(Bearer), false).ok(),
            Some(Bearer)
        );
        let e = new_token_type(Some(Lmv1), Some(Bearer), false).unwrap_err();
        assert!(
            e.to_string()
                .contains("bearer in the query string but lmv1 in the body"),
            "{e}"
        );
    }

    #[test]
    fn an_lmv1_signed_request_takes_bearer_only_from_its_body() {
        let e = new_token_type(None, Some(Bearer), true).unwrap_err();
        assert!(
            e.to_string().contains("does not cover the query string"),
            "{e}"
        );
        assert_eq!(new_token_type(None, Some(Lmv1), true).ok(), Some(Lmv1));
    }

    #[test]
    fn system_fields_may_be_sent_back_unchanged_only() {
        let none = SentSystemFields::default();
        assert!(system_fields_unchanged(&none, None, 2, Bearer).is_ok());
        let echoed = SentSystemFields {
            access_key: Some(""),
            access_id: Some("kgtAb3d****wXyZ"),
            admin_id: Some(2),
            kind: Some("BEARER"),
        };
        assert!(system_fields_unchanged(&echoed, Some("kgtAb3d****wXyZ"), 2, Bearer).is_ok());
        for (sent, field) in [
            (
                SentSystemFields {
                    access_key: Some("x"),
                    ..none
                },
                "accessKey",
            ),
            (
                SentSystemFields {
                    access_id: Some("other"),
                    ..none
                },
                "accessId",
            ),
            (
                SentSystemFields {
                    admin_id: Some(3),
                    ..none
                },
                "adminId",
            ),
            (
                SentSystemFields {
                    kind: Some("lmv1"),
                    ..none
                },
                "type",
            ),
        ] {
            let e = system_fields_unchanged(&sent, Some("kgtAb3d****wXyZ"), 2, Bearer).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{field}: system generated, cannot be edited")
            );
        }
        // Creating: any access id sent is refused (there is none yet).
        let sent = SentSystemFields {
            access_id: Some("kgtAb3d****wXyZ"),
            ..none
        };
        assert!(system_fields_unchanged(&sent, None, 2, Bearer).is_err());
    }

    #[test]
    fn nobody_changes_their_own_roles_or_suspends_or_deletes_themselves() {
        assert!(own_user_change(&[1, 2], None, false).is_ok());
        assert!(
            own_user_change(&[1, 2], Some(&[2, 1, 2]), false).is_ok(),
            "sent back unchanged"
        );
        let e = own_user_change(&[1, 2], Some(&[1]), false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("roles: you cannot change your own roles"),
            "{e}"
        );
        let e = own_user_change(&[1], Some(&[1]), true).unwrap_err();
        assert_eq!(e.to_string(), "status: you cannot suspend yourself");
        assert!(may_delete_user(Some(3), 3).is_err());
        assert!(may_delete_user(Some(3), 4).is_ok());
        assert!(may_delete_user(None, 4).is_ok());
    }

    #[test]
    fn the_builtin_administrator_role_is_fixed() {
        for name in ["administrator", "Administrator"] {
            let e = role_may_change(name).unwrap_err();
            assert!(e.to_string().contains("built-in administrator role"), "{e}");
        }
        assert!(role_may_change("administrators").is_ok());
    }
}
