//! Backend-independent pieces shared by the SQLite and PostgreSQL stores: what to
//! create on first start, the owner checks of a new token, and turning stored bytes
//! into typed values. Each backend keeps only its SQL and row decoding.

use keygate_core::model::{RoleId, UserStatus};
use keygate_core::token::TokenDigest;

use crate::error::{Result, StoreError};
use crate::types::{NewUser, PendingToken};

/// The user created on first start, with the administrator role.
pub(crate) fn bootstrap_admin(admin_role: RoleId) -> NewUser {
    NewUser {
        username: "admin".to_owned(),
        email: "admin@localhost".to_owned(),
        first_name: String::new(),
        last_name: String::new(),
        role_ids: vec![admin_role],
        status: UserStatus::Active,
        api_only: false,
        note: "Created on first start".to_owned(),
    }
}

/// A new token's owner must be active and under `maxTokensPerUser`.
pub(crate) fn check_new_token_owner(
    username: String,
    status: &str,
    count: i64,
    max_tokens: i64,
) -> Result<String> {
    if UserStatus::parse(status) != Some(UserStatus::Active) {
        return Err(StoreError::OwnerSuspended(username));
    }
    if count >= max_tokens {
        return Err(StoreError::TokenLimit(max_tokens));
    }
    Ok(username)
}

/// What privilege rows (`object_type, object_id, operation`) grant together.
pub(crate) fn grants_of_rows(rows: Vec<(String, String, String)>) -> keygate_core::policy::Grants {
    rows.into_iter()
        .map(
            |(object_type, object_id, operation)| keygate_core::model::Privilege {
                object_type,
                object_id,
                operation,
            },
        )
        .fold(keygate_core::policy::Grants::NONE, |g, p| {
            g.union(keygate_core::policy::Grants::of(&p))
        })
}

/// How many active users hold `setting useraccess write` (the privilege
/// [`keygate_core::policy::Grants::USERACCESS_WRITE`] stands for): the lock-out guard
/// keeps it above zero. The same text on both backends (it binds nothing).
pub(crate) const ACTIVE_USER_ADMINS: &str = "SELECT COUNT(DISTINCT u.id) FROM users u \
     JOIN user_roles ur ON ur.user_id = u.id JOIN role_privileges rp ON rp.role_id = ur.role_id \
     WHERE u.status = 'active' AND rp.object_type = 'setting' AND rp.object_id = 'useraccess' \
     AND rp.operation = 'write'";

/// A stored bearer digest (NULL for LMv1 tokens).
pub(crate) fn digest(bytes: Option<Vec<u8>>) -> Result<Option<TokenDigest>> {
    match bytes {
        None => Ok(None),
        Some(b) => <[u8; 32]>::try_from(b.as_slice())
            .map(|a| Some(TokenDigest(a)))
            .map_err(|_| StoreError::Corrupt("token digest is not 32 bytes")),
    }
}

/// A session's pending token from its three stored columns (all set, or none).
pub(crate) fn pending(
    digest_bytes: Option<Vec<u8>>,
    access_id: Option<String>,
    owner: Option<i64>,
) -> Result<Option<PendingToken>> {
    match (digest(digest_bytes)?, access_id, owner) {
        (Some(digest), Some(access_id), Some(owner)) => Ok(Some(PendingToken {
            digest,
            access_id,
            owner,
        })),
        _ => Ok(None),
    }
}

/// Turns (type, status code, count) rows into [`TokenCount`]s.
pub(crate) fn token_counts(rows: Vec<(String, i64, i64)>) -> Result<Vec<crate::types::TokenCount>> {
    rows.into_iter()
        .map(|(kind, status, count)| {
            Ok(crate::types::TokenCount {
                token_type: keygate_core::model::TokenType::parse(&kind)
                    .ok_or(StoreError::Corrupt("unknown token type"))?,
                status: keygate_core::model::TokenStatus::from_code(status)
                    .ok_or(StoreError::Corrupt("unknown token status"))?,
                count,
            })
        })
        .collect()
}

/// Audit-log entries: built here so both backends record exactly the same.
pub(crate) mod audit {
    use keygate_core::model::{ApiToken, EpochSeconds, TokenStatus, User};
    use keygate_core::policy::By;

    use crate::types::{
        AuditAction, AuditRecord, PortalPatch, RolePatch, RoleWithCount, SignInAttempt, TokenPatch,
        UserPatch,
    };

    /// Longest audit text kept, in characters; longer text is cut.
    const MAX_TEXT: usize = 256;

    /// Audit text as stored (every entry passes through this in its backend's insert,
    /// so the builders here keep text as given): at most [`MAX_TEXT`] characters, with control, format and
    /// line-separator characters written as `\u{..}` escapes — so an entry can neither
    /// grow the table without bound nor forge a line in an export, a terminal or a
    /// page, and PostgreSQL (which refuses NUL in text) stores it like SQLite.
    pub(crate) fn clean(s: &str) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(s.len().min(MAX_TEXT * 4));
        // Counted as stored: an escape counts for the characters it is written as.
        let mut kept = 0;
        let mut escape = String::new();
        for c in s.chars() {
            escape.clear();
            if hidden(c) {
                let _ = write!(escape, "\\u{{{:x}}}", c as u32);
            } else {
                escape.push(c);
            }
            let n = escape.chars().count();
            if kept + n > MAX_TEXT {
                out.push('…');
                break;
            }
            out.push_str(&escape);
            kept += n;
        }
        out
    }

    /// Characters that do not show as themselves: controls (C0, DEL, C1), the line and
    /// paragraph separators, zero-width and bidirectional formatting, soft hyphen, BOM.
    fn hidden(c: char) -> bool {
        c.is_control()
            || matches!(c,
                '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
    }

    fn record(
        by: &By,
        action: AuditAction,
        target_type: &'static str,
        target_id: Option<i64>,
        target: &str,
        detail: String,
        now: EpochSeconds,
    ) -> AuditRecord {
        AuditRecord {
            at: now,
            user_id: by.user_id,
            username: by.username.clone(),
            ip: by.ip.clone(),
            action,
            target_type: target_type.to_owned(),
            target_id,
            target: target.to_owned(),
            success: true,
            detail,
            via: by.via.clone(),
        }
    }

    /// A token event: the token is named by id and public access id only.
    pub(crate) fn token(
        by: &By,
        action: AuditAction,
        t: &ApiToken,
        now: EpochSeconds,
    ) -> AuditRecord {
        let mut detail = format!("{} token of user {}", t.token_type.as_str(), t.user_id);
        if action == AuditAction::TokenCreate && by.user_id != Some(t.user_id) {
            // Made for someone else: it acts as its owner, so say who minted it.
            detail.push_str(&format!(", created for that user by {}", by.username));
        }
        record(
            by,
            action,
            "apitoken",
            Some(t.id),
            &t.access_id,
            detail,
            now,
        )
    }

    /// The entries a token patch makes: one per thing it changes.
    pub(crate) fn token_patch(
        by: &By,
        patch: &TokenPatch,
        t: &ApiToken,
        now: EpochSeconds,
    ) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        match patch.status {
            Some(TokenStatus::Enabled) => out.push(token(by, AuditAction::TokenEnable, t, now)),
            Some(TokenStatus::Disabled) => out.push(token(by, AuditAction::TokenDisable, t, now)),
            None => {}
        }
        if patch.note.is_some() {
            out.push(token(by, AuditAction::TokenNote, t, now));
        }
        out
    }

    /// A user event.
    pub(crate) fn user(
        by: &By,
        action: AuditAction,
        u: &User,
        detail: String,
        now: EpochSeconds,
    ) -> AuditRecord {
        record(by, action, "user", Some(u.id), &u.username, detail, now)
    }

    /// Which properties a user patch sets (names only: never a password or its hash).
    pub(crate) fn user_patch_detail(p: &UserPatch) -> String {
        let set = [
            ("username", p.username.is_some()),
            ("email", p.email.is_some()),
            ("firstName", p.first_name.is_some()),
            ("lastName", p.last_name.is_some()),
            ("roles", p.role_ids.is_some()),
            ("status", p.status.is_some()),
            ("apionly", p.api_only.is_some()),
            ("note", p.note.is_some()),
            ("password", p.password_hash.is_some()),
        ];
        changed(&set)
    }

    /// A role event.
    pub(crate) fn role(
        by: &By,
        action: AuditAction,
        r: &RoleWithCount,
        detail: String,
        now: EpochSeconds,
    ) -> AuditRecord {
        record(
            by,
            action,
            "role",
            Some(r.role.id),
            &r.role.name,
            detail,
            now,
        )
    }

    /// Which properties a role patch sets.
    pub(crate) fn role_patch_detail(p: &RolePatch) -> String {
        changed(&[
            ("name", p.name.is_some()),
            ("description", p.description.is_some()),
            ("privileges", p.privileges.is_some()),
        ])
    }

    /// A portal-settings change, naming the settings and their new values (none secret).
    pub(crate) fn portal(by: &By, p: &PortalPatch, now: EpochSeconds) -> AuditRecord {
        let mut parts = Vec::new();
        if let Some(v) = &p.company_name {
            parts.push(format!("companyName={v:?}"));
        }
        if let Some(v) = p.traces_enabled {
            parts.push(format!("tracesEnabled={v}"));
        }
        if let Some(v) = p.max_tokens_per_user {
            parts.push(format!("maxTokensPerUser={v}"));
        }
        if let Some(v) = p.lmv1_clock_skew_seconds {
            parts.push(format!("lmv1ClockSkewSeconds={v}"));
        }
        if let Some(v) = p.lmv1_replay_protection {
            parts.push(format!("lmv1ReplayProtection={v}"));
        }
        record(
            by,
            AuditAction::PortalUpdate,
            "portal",
            None,
            "portal",
            parts.join(", "),
            now,
        )
    }

    /// A UI sign-in attempt.
    pub(crate) fn sign_in(a: &SignInAttempt, now: EpochSeconds) -> AuditRecord {
        AuditRecord {
            at: now,
            user_id: a.user,
            username: a.username.clone(),
            ip: Some(a.ip.clone()),
            action: AuditAction::SignIn,
            target_type: "user".to_owned(),
            target_id: a.user,
            target: a.username.clone(),
            success: a.success,
            detail: a.reason.to_owned(),
            via: None,
        }
    }

    /// One entry standing for `count` refused changes (or throttled sign-ins) that
    /// were over the rate limit and so not recorded one by one.
    pub(crate) fn suppressed(s: &crate::types::Suppressed, now: EpochSeconds) -> AuditRecord {
        use crate::types::SuppressedWho;
        let (what, target_type, name, user_id, ip) = match &s.who {
            SuppressedWho::User { id, name } => (
                "refused changes by this user",
                "user",
                name.clone(),
                *id,
                None,
            ),
            SuppressedWho::Address(ip) => (
                "failed authentications (sign-ins, tokens) from this address",
                "address",
                ip.clone(),
                None,
                Some(ip.clone()),
            ),
        };
        AuditRecord {
            at: now,
            user_id,
            username: name.clone(),
            ip,
            action: AuditAction::Suppressed,
            target_type: target_type.to_owned(),
            target_id: user_id,
            target: name,
            success: false,
            detail: format!(
                "{} more {what} were over the rate limit and not recorded one by one",
                s.count
            ),
            via: None,
        }
    }

    fn changed(set: &[(&str, bool)]) -> String {
        let names: Vec<&str> = set.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
        if names.is_empty() {
            "no changes".to_owned()
        } else {
            format!("changed: {}", names.join(", "))
        }
    }
}
