//! Who may do what: pure functions from an actor and a target to a decision.
//!
//! Mutating store methods take a capability ([`TokenWrite`], [`UserAdmin`],
//! [`PortalAdmin`]) that only this module can make, so a handler cannot reach a
//! privileged write without having asked the policy first.

use crate::model::{Privilege, TokenId, UserId};

/// The privileges keygate understands, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Grants(u8);

impl Grants {
    /// Nothing.
    pub const NONE: Self = Self(0);
    /// `setting useraccess write`: manage users, roles and every user's tokens.
    pub const USERACCESS_WRITE: Self = Self(1);
    /// `setting useraccess read`: view users, roles and every user's tokens.
    pub const USERACCESS_READ: Self = Self(2);
    /// `setting apitoken write`: "Allow Creation of API Tokens" for oneself.
    pub const APITOKEN_WRITE: Self = Self(4);
    /// `dataingestion * write`: required of a bearer token's owner.
    pub const DATAINGESTION: Self = Self(8);
    /// `setting portal write`: change portal settings.
    pub const PORTAL_WRITE: Self = Self(16);
    /// `setting tokenindex read`: follow the token index (digests, owners and their
    /// privileges; never a secret) and have LMv1 signatures checked, as a service that
    /// verifies keygate tokens itself does.
    pub const TOKEN_INDEX: Self = Self(32);
    /// Everything keygate understands.
    pub const ALL: Self = Self(63);

    /// The set as a byte, as the token index's wire format carries it.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set a byte names; bits keygate does not know are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & Self::ALL.0)
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// What `self` holds that `other` does not.
    #[must_use]
    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Whether nothing is held.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The privileges held, as the API spells them (`setting portal write`), joined
    /// by commas.
    pub fn names(self) -> String {
        self.list().join(", ")
    }

    /// The privileges held, as the API spells them, one per item.
    pub fn list(self) -> Vec<&'static str> {
        const NAMED: [(Grants, &str); 6] = [
            (Grants::USERACCESS_WRITE, "setting useraccess write"),
            (Grants::USERACCESS_READ, "setting useraccess read"),
            (Grants::APITOKEN_WRITE, "setting apitoken write"),
            (Grants::DATAINGESTION, "dataingestion * write"),
            (Grants::PORTAL_WRITE, "setting portal write"),
            (Grants::TOKEN_INDEX, "setting tokenindex read"),
        ];
        NAMED
            .iter()
            .filter(|(g, _)| self.contains(*g))
            .map(|(_, n)| *n)
            .collect()
    }

    /// What one stored privilege grants (nothing if keygate does not know it).
    pub fn of(p: &Privilege) -> Self {
        match (
            p.object_type.as_str(),
            p.object_id.as_str(),
            p.operation.as_str(),
        ) {
            ("setting", "useraccess", "write") => Self::USERACCESS_WRITE,
            ("setting", "useraccess", "read") => Self::USERACCESS_READ,
            ("setting", "apitoken", "write") => Self::APITOKEN_WRITE,
            ("dataingestion", "*", "write") => Self::DATAINGESTION,
            ("setting", "portal", "write") => Self::PORTAL_WRITE,
            ("setting", "tokenindex", "read") => Self::TOKEN_INDEX,
            _ => Self::NONE,
        }
    }

    /// What a privilege spelled as [`Grants::list`] spells it grants
    /// (`setting portal write`; nothing if keygate does not know it).
    pub fn of_name(name: &str) -> Self {
        let mut parts = name.split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(id), Some(op), None) => Self::of(&Privilege::new(t, id, op)),
            _ => Self::NONE,
        }
    }

    /// What a list of privileges grants together.
    pub fn of_all<'a>(ps: impl IntoIterator<Item = &'a Privilege>) -> Self {
        ps.into_iter()
            .fold(Self::NONE, |acc, p| acc.union(Self::of(p)))
    }
}

/// Who is acting: a user (through a token or session) or the local admin CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The acting user; `None` for the admin CLI, which works on the database directly.
    pub user_id: Option<UserId>,
    /// Recorded as `createdBy`.
    pub username: String,
    /// The user's privileges at the time of the request.
    pub grants: Grants,
    /// The client address the request came from (the audit log records it as text;
    /// it is formatted only when an entry is written).
    pub ip: Option<std::net::IpAddr>,
    /// The token the request was authenticated with (`None` for a UI session or the CLI).
    pub token_id: Option<TokenId>,
    /// That token as the audit log names it, once looked up (see [`Via`]).
    pub via: Option<Via>,
}

/// The token a change was made with, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The token's id.
    pub token_id: TokenId,
    /// Its public form: the masked bearer token or the LMv1 access id.
    pub token: String,
    /// Who created it, when that was someone other than its owner (empty otherwise):
    /// a change made with a token minted for someone else names both.
    pub created_by: String,
}

impl Actor {
    /// The admin CLI: whoever can open the database file already holds everything.
    pub fn local_admin() -> Self {
        Self {
            user_id: None,
            username: "keygate-cli".to_owned(),
            grants: Grants::ALL,
            ip: None,
            token_id: None,
            via: None,
        }
    }

    /// The same actor, acting from `ip`.
    pub fn from_ip(mut self, ip: std::net::IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// The actor as the audit log records it.
    pub fn by(&self) -> By {
        By {
            user_id: self.user_id,
            username: self.username.clone(),
            ip: self.ip.map(|ip| ip.to_string()),
            via: self.via.clone(),
        }
    }

    fn is(&self, user: UserId) -> bool {
        self.user_id == Some(user)
    }
}

/// What a caller may do to a token (the `userPermission` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// May not see it.
    None,
    /// May see it (masked).
    Read,
    /// May change and delete it.
    Write,
}

impl Access {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// Why the policy said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The caller lacks a privilege; the text names it.
    Forbidden(&'static str),
    /// The change would give (or touch) privileges the caller does not hold: nobody
    /// grants what they do not hold. `what` says which part of the change it is.
    Escalation {
        /// What carries the privileges ("this role would grant", ...).
        what: &'static str,
        /// The privileges the caller lacks.
        missing: Grants,
    },
    /// The target is invisible to the caller: answer exactly as for a missing one.
    Hidden,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Forbidden(why) => f.write_str(why),
            Self::Escalation { what, missing } => write!(
                f,
                "{what} privileges you do not hold yourself ({}); nobody grants what they do not hold, \
                 so only someone who holds them may do this",
                missing.names()
            ),
            Self::Hidden => f.write_str("not found"),
        }
    }
}

/// What a role (about to be) created or changed grants.
pub const ROLE_WOULD_GRANT: &str = "this role would grant";
/// What an existing role grants.
pub const ROLE_GRANTS: &str = "this role grants";
/// What the roles given to a user grant.
pub const ROLES_GRANT: &str = "these roles grant";
/// What a user being changed or deleted holds.
pub const USER_HOLDS: &str = "this user holds";
/// What a token minted for another user would act with.
pub const TOKEN_CARRIES: &str = "a token for this user would act with";

/// `Ok` when `holder` holds every privilege in `wanted`; otherwise
/// [`Denied::Escalation`] naming the missing ones.
pub fn within(holder: Grants, wanted: Grants, what: &'static str) -> Result<(), Denied> {
    let missing = wanted.without(holder);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Denied::Escalation { what, missing })
    }
}

/// Who exercises a capability: what the audit log records as the actor of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct By {
    /// The acting user; `None` for the admin CLI.
    pub user_id: Option<UserId>,
    /// The acting user's name (`keygate-cli` for the admin CLI).
    pub username: String,
    /// The client address, when the change came over HTTP.
    pub ip: Option<String>,
    /// The token the change was made with, if any.
    pub via: Option<Via>,
}

/// Proof that the caller may create or change tokens of `owner`.
#[derive(Debug)]
pub struct TokenWrite {
    owner: UserId,
    by: By,
    grants: Grants,
}

impl TokenWrite {
    /// Whose tokens this capability covers.
    pub fn owner(&self) -> UserId {
        self.owner
    }

    /// Who holds it.
    pub fn by(&self) -> &By {
        &self.by
    }

    /// Whether a new token may be minted for the owner, whose roles grant
    /// `owner_grants` now: one's own always; someone else's only when the caller holds
    /// everything the token would act with (checked inside the creating transaction).
    pub fn may_mint(&self, owner_grants: Grants) -> Result<(), Denied> {
        if self.by.user_id == Some(self.owner) {
            Ok(())
        } else {
            within(self.grants, owner_grants, TOKEN_CARRIES)
        }
    }
}

/// Proof that the caller may manage users and roles — those, and only those, whose
/// privileges the caller holds too (see [`UserAdmin::may_touch`]).
#[derive(Debug)]
pub struct UserAdmin {
    by: By,
    grants: Grants,
}

impl UserAdmin {
    /// Who holds it.
    pub fn by(&self) -> &By {
        &self.by
    }

    /// Whether the caller may give, change or take away `grants` (a role's
    /// privileges, a user's roles, what a user being changed holds); `what` names it
    /// in the refusal. Nobody grants what they do not hold, and nobody changes a user
    /// or role more privileged than they are (a password reset would hand them that user).
    pub fn may_touch(&self, grants: Grants, what: &'static str) -> Result<(), Denied> {
        within(self.grants, grants, what)
    }
}

/// Proof that the caller may change portal settings.
#[derive(Debug)]
pub struct PortalAdmin(By);

impl PortalAdmin {
    /// Who holds it.
    pub fn by(&self) -> &By {
        &self.0
    }
}

/// What `actor` may do to the tokens of `owner`.
pub fn token_access(actor: &Actor, owner: UserId) -> Access {
    if actor.grants.contains(Grants::USERACCESS_WRITE)
        || (actor.is(owner) && actor.grants.contains(Grants::APITOKEN_WRITE))
    {
        Access::Write
    } else if actor.grants.contains(Grants::USERACCESS_READ) {
        Access::Read
    } else {
        Access::None
    }
}

/// May `actor` list the tokens of `owner`?
pub fn read_tokens_of(actor: &Actor, owner: UserId) -> Result<(), Denied> {
    match token_access(actor, owner) {
        Access::Read | Access::Write => Ok(()),
        Access::None => Err(token_denial(actor)),
    }
}

/// Grants the right to create or change tokens of `owner`.
///
/// A caller who may not even see the owner's tokens gets [`Denied::Hidden`] for
/// existing tokens (see [`token_write_existing`]); creating is a plain 403.
pub fn token_write(actor: &Actor, owner: UserId) -> Result<TokenWrite, Denied> {
    match token_access(actor, owner) {
        Access::Write => Ok(TokenWrite {
            owner,
            by: actor.by(),
            grants: actor.grants,
        }),
        Access::Read | Access::None => Err(token_denial(actor)),
    }
}

/// Like [`token_write`] for an existing token: invisible tokens are [`Denied::Hidden`].
pub fn token_write_existing(actor: &Actor, owner: UserId) -> Result<TokenWrite, Denied> {
    match token_access(actor, owner) {
        Access::Write => Ok(TokenWrite {
            owner,
            by: actor.by(),
            grants: actor.grants,
        }),
        Access::Read => Err(Denied::Forbidden(
            "changing this token needs the \"Manage users and roles\" privilege (setting useraccess write)",
        )),
        Access::None => Err(Denied::Hidden),
    }
}

fn token_denial(actor: &Actor) -> Denied {
    if actor.grants.contains(Grants::APITOKEN_WRITE) {
        Denied::Forbidden(
            "with \"Allow Creation of API Tokens\" you may manage only your own tokens; managing another user's needs setting useraccess write",
        )
    } else {
        Denied::Forbidden(
            "managing API tokens needs the \"Allow Creation of API Tokens\" privilege (setting apitoken write)",
        )
    }
}

/// Whether `actor` may follow the token index and have LMv1 signatures checked, as a
/// service verifying keygate tokens itself does.
pub fn may_follow_index(actor: &Actor) -> Result<(), Denied> {
    if actor.grants.contains(Grants::TOKEN_INDEX) {
        Ok(())
    } else {
        Err(Denied::Forbidden(
            "following the token index needs the setting tokenindex read privilege (the built-in verifier role holds it)",
        ))
    }
}

/// Which tokens `actor` may see in a list across users.
pub fn token_list_scope(actor: &Actor) -> Result<Option<UserId>, Denied> {
    if actor.grants.contains(Grants::USERACCESS_WRITE)
        || actor.grants.contains(Grants::USERACCESS_READ)
    {
        Ok(None)
    } else if actor.grants.contains(Grants::APITOKEN_WRITE) {
        actor.user_id.map(Some).ok_or(Denied::Forbidden("no user"))
    } else {
        Err(token_denial(actor))
    }
}

/// Whether `actor` may see everyone's user access (users, roles, every token, the
/// audit log): `setting useraccess` read or write.
fn sees_user_access(actor: &Actor) -> bool {
    actor.grants.contains(Grants::USERACCESS_READ)
        || actor.grants.contains(Grants::USERACCESS_WRITE)
}

/// `Ok` when `allowed`, else 403 saying `what` needs `setting useraccess`.
fn needs_user_access(allowed: bool, what: &'static str) -> Result<(), Denied> {
    if allowed {
        Ok(())
    } else {
        Err(Denied::Forbidden(what))
    }
}

/// May `actor` look a token up by its value? Whoever may see every user's tokens.
pub fn look_up_tokens(actor: &Actor) -> Result<(), Denied> {
    needs_user_access(
        sees_user_access(actor),
        "looking a token up by its value needs setting useraccess read or write",
    )
}

/// May `actor` view users and roles? Everyone may view their own user record.
pub fn read_users(actor: &Actor, target: Option<UserId>) -> Result<(), Denied> {
    needs_user_access(
        sees_user_access(actor) || target.is_some_and(|t| actor.is(t)),
        "viewing users and roles needs setting useraccess read or write",
    )
}

/// May `actor` read the audit log? The same privilege as viewing users and roles.
pub fn read_audit(actor: &Actor) -> Result<(), Denied> {
    needs_user_access(
        sees_user_access(actor),
        "reading the audit log needs setting useraccess read or write",
    )
}

/// Grants the right to manage users and roles.
pub fn user_admin(actor: &Actor) -> Result<UserAdmin, Denied> {
    if actor.grants.contains(Grants::USERACCESS_WRITE) {
        Ok(UserAdmin {
            by: actor.by(),
            grants: actor.grants,
        })
    } else {
        Err(Denied::Forbidden(
            "managing users and roles needs setting useraccess write",
        ))
    }
}

/// Grants the right to change portal settings.
pub fn portal_admin(actor: &Actor) -> Result<PortalAdmin, Denied> {
    if actor.grants.contains(Grants::PORTAL_WRITE) {
        Ok(PortalAdmin(actor.by()))
    } else {
        Err(Denied::Forbidden(
            "changing portal settings needs setting portal write",
        ))
    }
}

/// Why a user cannot own a bearer token right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerRefusal {
    /// The owner's roles lack DataIngestion (400).
    NoDataIngestion,
    /// The portal's Traces (APM) feature is off (403).
    TracesOff,
}

/// Checks the owner requirements of a new bearer token, given the owner's privileges
/// and whether the portal's Traces (APM) feature is on.
pub fn bearer_owner(owner_grants: Grants, traces_enabled: bool) -> Result<(), BearerRefusal> {
    if !traces_enabled {
        Err(BearerRefusal::TracesOff)
    } else if !owner_grants.contains(Grants::DATAINGESTION) {
        Err(BearerRefusal::NoDataIngestion)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: UserId, g: Grants) -> Actor {
        Actor {
            user_id: Some(id),
            username: format!("u{id}"),
            grants: g,
            ip: None,
            token_id: None,
            via: None,
        }
    }

    #[test]
    fn token_access_follows_the_contract() {
        assert_eq!(
            token_access(&actor(1, Grants::USERACCESS_WRITE), 2),
            Access::Write
        );
        assert_eq!(
            token_access(&actor(1, Grants::APITOKEN_WRITE), 1),
            Access::Write
        );
        assert_eq!(
            token_access(&actor(1, Grants::APITOKEN_WRITE), 2),
            Access::None
        );
        assert_eq!(
            token_access(&actor(1, Grants::USERACCESS_READ), 2),
            Access::Read
        );
        assert_eq!(
            token_access(&actor(1, Grants::DATAINGESTION), 1),
            Access::None
        );
        assert_eq!(
            token_write_existing(&actor(1, Grants::APITOKEN_WRITE), 2).map(|c| c.owner()),
            Err(Denied::Hidden)
        );
        assert!(matches!(
            token_write_existing(&actor(1, Grants::USERACCESS_READ), 2),
            Err(Denied::Forbidden(_))
        ));
        assert_eq!(
            token_write(&Actor::local_admin(), 7).map(|c| c.owner()),
            Ok(7)
        );
    }

    #[test]
    fn privileges_round_trip_through_their_names_and_bits() {
        for g in Grants::ALL.list() {
            assert!(!Grants::of_name(g).is_empty(), "{g}");
        }
        let names = Grants::ALL.list();
        let back = names
            .iter()
            .fold(Grants::NONE, |acc, n| acc.union(Grants::of_name(n)));
        assert_eq!(back, Grants::ALL);
        assert_eq!(
            Grants::of_name("setting tokenindex read"),
            Grants::TOKEN_INDEX
        );
        assert_eq!(Grants::of_name("setting tokenindex"), Grants::NONE);
        assert_eq!(
            Grants::of_name("setting tokenindex read extra"),
            Grants::NONE
        );
        assert_eq!(Grants::from_bits(Grants::ALL.bits() | 0x80), Grants::ALL);
        assert!(may_follow_index(&actor(1, Grants::USERACCESS_WRITE)).is_err());
        assert!(may_follow_index(&actor(1, Grants::TOKEN_INDEX)).is_ok());
    }

    #[test]
    fn nobody_grants_what_they_do_not_hold() {
        let ua = actor(1, Grants::USERACCESS_WRITE.union(Grants::USERACCESS_READ));
        let cap = user_admin(&ua).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(cap.may_touch(Grants::USERACCESS_READ, ROLES_GRANT), Ok(()));
        let d = cap
            .may_touch(Grants::ALL, ROLE_WOULD_GRANT)
            .expect_err("more than the caller holds");
        assert_eq!(
            d,
            Denied::Escalation {
                what: ROLE_WOULD_GRANT,
                missing: Grants::APITOKEN_WRITE
                    .union(Grants::DATAINGESTION)
                    .union(Grants::PORTAL_WRITE)
                    .union(Grants::TOKEN_INDEX)
            }
        );
        assert!(d.to_string().contains("setting portal write"), "{d}");
        let mint = token_write(&ua, 2).unwrap_or_else(|d| panic!("{d}"));
        assert!(
            mint.may_mint(Grants::ALL).is_err(),
            "a token for the administrator"
        );
        assert!(mint.may_mint(Grants::USERACCESS_READ).is_ok());
        let own =
            token_write(&actor(2, Grants::APITOKEN_WRITE), 2).unwrap_or_else(|d| panic!("{d}"));
        assert!(
            own.may_mint(Grants::ALL).is_ok(),
            "one's own token acts with one's own grants"
        );
        assert!(Actor::local_admin().grants.contains(Grants::ALL));
    }

    #[test]
    fn bearer_owner_needs_ingestion_and_traces() {
        assert_eq!(bearer_owner(Grants::DATAINGESTION, true), Ok(()));
        assert_eq!(
            bearer_owner(Grants::APITOKEN_WRITE, true),
            Err(BearerRefusal::NoDataIngestion)
        );
        assert_eq!(
            bearer_owner(Grants::DATAINGESTION, false),
            Err(BearerRefusal::TracesOff)
        );
    }

    #[test]
    fn unknown_privileges_grant_nothing() {
        let p = Privilege::new("setting", "useraccess", "admin");
        assert_eq!(Grants::of(&p), Grants::NONE);
        let all: Vec<Privilege> = crate::model::builtin_roles().remove(0).2;
        assert_eq!(Grants::of_all(&all), Grants::ALL);
    }
}
