//! Inputs and outputs of store calls that are not model types.

use keygate_core::lmv1::AccessKey;
use keygate_core::model::{
    EpochSeconds, Portal, Privilege, RoleId, TokenId, TokenStatus, UserId, UserStatus,
};
use keygate_core::policy::Grants;
use keygate_core::token::TokenDigest;

/// A user to create: the profile a client or operator gives. The password hash and
/// the creator are passed to [`crate::Store::create_user`] separately.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique sign-in name.
    pub username: String,
    /// Contact address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Role ids (at least one).
    pub role_ids: Vec<RoleId>,
    /// Active or suspended.
    pub status: UserStatus,
    /// Cannot sign in to the UI.
    pub api_only: bool,
    /// Free text.
    pub note: String,
}

/// Changes to a user; `None` leaves a property as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New username.
    pub username: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New roles.
    pub role_ids: Option<Vec<RoleId>>,
    /// New status.
    pub status: Option<UserStatus>,
    /// New API-only flag.
    pub api_only: Option<bool>,
    /// New note.
    pub note: Option<String>,
    /// New password hash.
    pub password_hash: Option<String>,
}

/// A role to create or the new content of one.
#[derive(Debug, Clone)]
pub struct RoleInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// What it grants.
    pub privileges: Vec<Privilege>,
}

/// Changes to a role; `None` leaves a property as it is.
#[derive(Debug, Clone, Default)]
pub struct RolePatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New privileges (replacing the old list).
    pub privileges: Option<Vec<Privilege>>,
}

/// Changes to portal settings.
#[derive(Debug, Clone, Default)]
pub struct PortalPatch {
    /// New company name.
    pub company_name: Option<String>,
    /// Traces (APM) on or off.
    pub traces_enabled: Option<bool>,
    /// New per-user token limit.
    pub max_tokens_per_user: Option<i64>,
    /// New LMv1 window.
    pub lmv1_clock_skew_seconds: Option<i64>,
    /// LMv1 replay protection on or off.
    pub lmv1_replay_protection: Option<bool>,
}

/// A bearer token to create: only its digest and masked form ever reach the store.
#[derive(Debug, Clone)]
pub struct NewBearerToken {
    /// SHA-256 of the token.
    pub digest: TokenDigest,
    /// The masked token, the public identifier.
    pub access_id: String,
    /// Free text.
    pub note: String,
    /// Initial status.
    pub status: TokenStatus,
    /// Creator's username.
    pub created_by: String,
}

/// An LMv1 token to create. The key is sealed under the master key before it is stored.
#[derive(Debug, Clone)]
pub struct NewLmv1Token {
    /// The public access id (20 characters).
    pub access_id: String,
    /// The access key.
    pub key: AccessKey,
    /// Free text.
    pub note: String,
    /// Initial status.
    pub status: TokenStatus,
    /// Creator's username.
    pub created_by: String,
}

/// Changes to a token: the only two properties that can change.
#[derive(Debug, Clone, Default)]
pub struct TokenPatch {
    /// New note.
    pub note: Option<String>,
    /// New status.
    pub status: Option<TokenStatus>,
}

/// What the Verifier needs of one bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenKey {
    /// Token id.
    pub id: TokenId,
    /// Owner.
    pub user_id: UserId,
    /// SHA-256 of the token.
    pub digest: TokenDigest,
    /// Whether it authenticates.
    pub enabled: bool,
}

/// What the Verifier needs of one LMv1 token, key unsealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lmv1Key {
    /// Token id.
    pub id: TokenId,
    /// Owner.
    pub user_id: UserId,
    /// The public access id.
    pub access_id: String,
    /// The access key (zeroed when dropped, never printed).
    pub key: AccessKey,
    /// Whether it authenticates.
    pub enabled: bool,
}

/// What the Verifier needs of one token of either type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexEntry {
    /// A bearer token.
    Bearer(TokenKey),
    /// An LMv1 token.
    Lmv1(Lmv1Key),
}

/// What a write returns, with the change-log position of the one entry it logged (so
/// the node that made it can apply it without reading it back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged<T> {
    /// What was written.
    pub value: T,
    /// Its change-log entry's position.
    pub seq: i64,
}

/// One token's row and its index entry, read together: the follower applies both
/// (the row for management reads, the entry for authentication).
#[derive(Debug)]
pub struct TokenState {
    /// The row, as management reads serve it.
    pub token: keygate_core::model::ApiToken,
    /// Its index entry: `Ok(None)` for a bearer token without a digest, an error for
    /// an LMv1 key that will not unseal (the follower refuses such a token).
    pub entry: Result<Option<IndexEntry>, crate::StoreError>,
}

/// What the Verifier needs of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKey {
    /// User id.
    pub id: UserId,
    /// Username, for the principal.
    pub username: String,
    /// Whether its tokens authenticate.
    pub active: bool,
    /// Its roles.
    pub role_ids: Vec<RoleId>,
}

/// Everything the Verifier indexes, read in one consistent snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The change-log position this snapshot is current to.
    pub seq: i64,
    /// Bearer tokens.
    pub tokens: Vec<TokenKey>,
    /// LMv1 tokens.
    pub lmv1: Vec<Lmv1Key>,
    /// Users.
    pub users: Vec<UserKey>,
    /// Roles and what they grant.
    pub roles: Vec<(RoleId, Grants)>,
    /// Portal settings.
    pub portal: Portal,
}

/// The kind of thing a change-log entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// An API token.
    Token,
    /// A user.
    User,
    /// A role.
    Role,
    /// The portal settings.
    Portal,
}

impl Entity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::User => "user",
            Self::Role => "role",
            Self::Portal => "portal",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "token" => Some(Self::Token),
            "user" => Some(Self::User),
            "role" => Some(Self::Role),
            "portal" => Some(Self::Portal),
            _ => None,
        }
    }
}

/// One committed change: re-read `entity` `id` to learn its new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Position in the change log.
    pub seq: i64,
    /// What changed.
    pub entity: Entity,
    /// Its id.
    pub id: i64,
    /// For bearer tokens, the digest, so a deleted token can be dropped from an index.
    pub digest: Option<TokenDigest>,
    /// For LMv1 tokens, the access id, for the same reason.
    pub access_id: Option<String>,
}

/// A web UI session as stored (the id itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The signed-in user.
    pub user_id: UserId,
    /// The CSRF token the UI must send with every change.
    pub csrf: String,
    /// When it was created (for the absolute timeout).
    pub created_on: EpochSeconds,
    /// When it was last used (for the idle timeout).
    pub last_seen_on: EpochSeconds,
}

/// A bearer token generated for the Add page and not yet saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingToken {
    /// SHA-256 of the token.
    pub digest: TokenDigest,
    /// Its masked form.
    pub access_id: String,
    /// The user it was generated for.
    pub owner: UserId,
}

/// The last use of a token, as recorded by the Verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Token id.
    pub token_id: TokenId,
    /// When.
    pub at: EpochSeconds,
    /// Client address.
    pub ip: String,
}

/// A role with the number of users holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleWithCount {
    /// The role.
    pub role: keygate_core::model::Role,
    /// How many users hold it.
    pub user_count: i64,
}

/// How many tokens of one type have one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCount {
    /// Bearer or LMv1.
    pub token_type: keygate_core::model::TokenType,
    /// Enabled or disabled.
    pub status: TokenStatus,
    /// How many.
    pub count: i64,
}

/// What an audit-log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// A token was created.
    TokenCreate,
    /// A token was enabled.
    TokenEnable,
    /// A token was disabled.
    TokenDisable,
    /// A token's note was changed.
    TokenNote,
    /// A token was deleted.
    TokenDelete,
    /// A token was looked up by its value (found or not).
    TokenLookup,
    /// A user was created.
    UserCreate,
    /// A user was changed.
    UserUpdate,
    /// A user (and its tokens) was deleted.
    UserDelete,
    /// A role was created.
    RoleCreate,
    /// A role was changed.
    RoleUpdate,
    /// A role was deleted.
    RoleDelete,
    /// Portal settings were changed.
    PortalUpdate,
    /// A UI sign-in, successful or not.
    SignIn,
    /// Refused changes or throttled sign-ins beyond the rate limit, counted in one
    /// entry instead of one each.
    Suppressed,
}

impl AuditAction {
    /// Every action, for parsing and documentation.
    pub const ALL: [Self; 15] = [
        Self::TokenCreate,
        Self::TokenEnable,
        Self::TokenDisable,
        Self::TokenNote,
        Self::TokenDelete,
        Self::TokenLookup,
        Self::UserCreate,
        Self::UserUpdate,
        Self::UserDelete,
        Self::RoleCreate,
        Self::RoleUpdate,
        Self::RoleDelete,
        Self::PortalUpdate,
        Self::SignIn,
        Self::Suppressed,
    ];

    /// The stored and served spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenCreate => "apitoken.create",
            Self::TokenEnable => "apitoken.enable",
            Self::TokenDisable => "apitoken.disable",
            Self::TokenNote => "apitoken.note",
            Self::TokenDelete => "apitoken.delete",
            Self::TokenLookup => "apitoken.lookup",
            Self::UserCreate => "user.create",
            Self::UserUpdate => "user.update",
            Self::UserDelete => "user.delete",
            Self::RoleCreate => "role.create",
            Self::RoleUpdate => "role.update",
            Self::RoleDelete => "role.delete",
            Self::PortalUpdate => "portal.update",
            Self::SignIn => "signin",
            Self::Suppressed => "suppressed",
        }
    }

    /// The action a stored spelling names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A new audit-log entry. Tokens appear only by id and masked value (or LMv1 access
/// id); no secret is ever part of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When it happened.
    pub at: EpochSeconds,
    /// The acting user (`None` for the admin CLI or an unknown sign-in name).
    pub user_id: Option<UserId>,
    /// The acting user's name, or the name a failed sign-in gave.
    pub username: String,
    /// The client address, when over HTTP.
    pub ip: Option<String>,
    /// What was done.
    pub action: AuditAction,
    /// The kind of target: `apitoken`, `user`, `role` or `portal`.
    pub target_type: String,
    /// The target's id, if it has one.
    pub target_id: Option<i64>,
    /// The target's name: a username, role name or masked token.
    pub target: String,
    /// Whether it succeeded.
    pub success: bool,
    /// What changed, in words (property names, never values of secrets).
    pub detail: String,
    /// The token the change was made with (`None`: a UI session, the admin CLI, a
    /// sign-in).
    pub via: Option<keygate_core::policy::Via>,
}

impl AuditRecord {
    /// The one entry standing for refused changes (or throttled sign-ins) that were
    /// over the rate limit and so not recorded one by one.
    pub fn suppressed(s: &Suppressed, now: EpochSeconds) -> Self {
        crate::common::audit::suppressed(s, now)
    }
}

/// Attempts over the audit rate limit, counted instead of recorded one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    /// Whose attempts.
    pub who: SuppressedWho,
    /// How many were not recorded.
    pub count: u64,
}

/// Whose attempts were suppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuppressedWho {
    /// Refused changes by a user.
    User {
        /// The user (`None` for the admin CLI).
        id: Option<UserId>,
        /// The username.
        name: String,
    },
    /// Throttled sign-ins from a client address.
    Address(String),
}

/// An audit-log entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its id, increasing with time.
    pub id: i64,
    /// The entry.
    pub record: AuditRecord,
}

/// Which audit entries to read: a time window (inclusive), newest first, at most
/// `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRange {
    /// Earliest time, if bounded.
    pub from: Option<EpochSeconds>,
    /// Latest time, if bounded.
    pub to: Option<EpochSeconds>,
    /// Most entries returned.
    pub limit: i64,
    /// Only the entry with this id.
    pub id: Option<i64>,
}

/// A UI sign-in attempt, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInAttempt {
    /// The user, if the name matched one.
    pub user: Option<UserId>,
    /// The name given (bounded by the sign-in form's limits).
    pub username: String,
    /// The client address.
    pub ip: String,
    /// Whether the password was right and the user may sign in.
    pub success: bool,
    /// Why it failed, when it did.
    pub reason: &'static str,
}
