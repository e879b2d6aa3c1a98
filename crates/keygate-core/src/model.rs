//! The things keygate keeps: users, roles, privileges, API tokens and portal settings.
//!
//! These are plain data. Their JSON shape belongs to the server; their rules to
//! [`crate::policy`] and [`crate::validate`].

/// Identifier of a user ("admin" in the API).
pub type UserId = i64;
/// Identifier of a role.
pub type RoleId = i64;
/// Identifier of an API token.
pub type TokenId = i64;
/// Seconds since the Unix epoch (UTC), the unit of every time in the API.
pub type EpochSeconds = i64;

/// One privilege as stored: `{objectType, objectId, operation}`.
///
/// Privileges keygate does not understand are kept and returned and grant nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Privilege {
    /// For example `setting` or `dataingestion`.
    pub object_type: String,
    /// For example `useraccess`, `apitoken`, `portal` or `*`.
    pub object_id: String,
    /// `read` or `write`.
    pub operation: String,
}

impl Privilege {
    /// Builds a privilege from its three parts.
    pub fn new(object_type: &str, object_id: &str, operation: &str) -> Self {
        Self {
            object_type: object_type.to_owned(),
            object_id: object_id.to_owned(),
            operation: operation.to_owned(),
        }
    }
}

/// A role: a named set of privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Its id.
    pub id: RoleId,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// What the role grants.
    pub privileges: Vec<Privilege>,
}

/// Whether a user may act at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// May sign in and use tokens.
    Active,
    /// Every token of the user is refused.
    Suspended,
}

impl UserStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    /// Reads the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// A user ("admin" in the API). The password hash is kept apart and never loaded here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Unique sign-in name.
    pub username: String,
    /// Contact address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Roles, by id, in the order assigned.
    pub role_ids: Vec<RoleId>,
    /// Active or suspended.
    pub status: UserStatus,
    /// Cannot sign in to the UI.
    pub api_only: bool,
    /// Free text.
    pub note: String,
    /// Username of whoever created it.
    pub created_by: String,
    /// When it was created.
    pub created_on: EpochSeconds,
    /// Last UI sign-in, 0 for never.
    pub last_login_on: EpochSeconds,
}

/// The two kinds of API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: LMv1 <accessId>:<signature>:<epochMillis>`.
    Lmv1,
}

impl TokenType {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Lmv1 => "lmv1",
        }
    }

    /// Reads the API spelling (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("bearer") {
            Some(Self::Bearer)
        } else if s.eq_ignore_ascii_case("lmv1") {
            Some(Self::Lmv1)
        } else {
            None
        }
    }
}

/// Whether a token authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Refused until re-enabled (API value 1).
    Disabled,
    /// Authenticates (API value 2).
    Enabled,
}

impl TokenStatus {
    /// The API number.
    pub fn code(self) -> i64 {
        match self {
            Self::Disabled => 1,
            Self::Enabled => 2,
        }
    }

    /// Reads the API number.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(Self::Disabled),
            2 => Some(Self::Enabled),
            _ => None,
        }
    }
}

/// An API token as stored and listed. The secret is not here: bearer tokens are kept
/// only as a SHA-256 digest, which never leaves the store and the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its id.
    pub id: TokenId,
    /// The owner.
    pub user_id: UserId,
    /// Bearer or LMv1.
    pub token_type: TokenType,
    /// Public identifier: the masked token for bearer tokens.
    pub access_id: String,
    /// Free text.
    pub note: String,
    /// Enabled or disabled.
    pub status: TokenStatus,
    /// When it was created.
    pub created_on: EpochSeconds,
    /// Username of whoever created it.
    pub created_by: String,
    /// Last successful authentication, 0 for never.
    pub last_used_on: EpochSeconds,
    /// Client address of the last successful authentication, empty for never.
    pub last_auth_ip: String,
}

/// Portal-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    /// Display name.
    pub company_name: String,
    /// The Traces (APM) feature; bearer tokens are created and accepted only while on.
    pub traces_enabled: bool,
    /// Most tokens one user may hold.
    pub max_tokens_per_user: i64,
    /// LMv1 timestamp window, in seconds either side of server time.
    pub lmv1_clock_skew_seconds: i64,
    /// Refuse a second LMv1 request with the same access id and signature inside the
    /// window (off by default: clients may send identical requests in one millisecond).
    pub lmv1_replay_protection: bool,
}

impl Default for Portal {
    fn default() -> Self {
        Self {
            company_name: "keygate".to_owned(),
            traces_enabled: true,
            max_tokens_per_user: 10,
            lmv1_clock_skew_seconds: 1800,
            lmv1_replay_protection: false,
        }
    }
}

/// The built-in roles created on first start: name, description, privileges.
pub fn builtin_roles() -> Vec<(String, String, Vec<Privilege>)> {
    let useraccess_write = Privilege::new("setting", "useraccess", "write");
    let useraccess_read = Privilege::new("setting", "useraccess", "read");
    let apitoken = Privilege::new("setting", "apitoken", "write");
    let ingest = Privilege::new("dataingestion", "*", "write");
    let portal = Privilege::new("setting", "portal", "write");
    let index = Privilege::new("setting", "tokenindex", "read");
    vec![
        (
            "administrator".to_owned(),
            "Full access: users, roles, every token and portal settings".to_owned(),
            vec![
                useraccess_write,
                useraccess_read.clone(),
                apitoken.clone(),
                ingest.clone(),
                portal,
                index.clone(),
            ],
        ),
        (
            "dataingestion".to_owned(),
            "Creates its own API tokens and pushes data".to_owned(),
            vec![apitoken, ingest],
        ),
        (
            "readonly".to_owned(),
            "Views users, roles and tokens".to_owned(),
            vec![useraccess_read],
        ),
        (
            "verifier".to_owned(),
            "For services that verify keygate tokens themselves: follows the token index \
             (digests, owners, privileges; never a secret) and has LMv1 signatures checked"
                .to_owned(),
            vec![index],
        ),
    ]
}
