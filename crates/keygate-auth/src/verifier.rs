//! The [`Verifier`]: credential → [`Principal`] from memory alone.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use keygate_core::model::{EpochSeconds, RoleId, TokenId, UserId};
use keygate_core::policy::{Actor, Grants};
use keygate_core::token::BearerToken;
use keygate_store::{Snapshot, Store, UserKey};

use crate::error::AuthError;
use crate::index::{IdMap, TokenEntry, TokenIndex};
use crate::usage::UsageRecorder;

/// An authenticated caller, with the owner's privileges as they are right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's owner.
    pub user_id: UserId,
    /// The owner's username.
    pub username: Arc<str>,
    /// The owner's privileges at the time of this request.
    pub grants: Grants,
    /// The token that authenticated the request.
    pub token_id: TokenId,
}

impl Principal {
    /// The principal as a policy actor.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.user_id),
            username: self.username.to_string(),
            grants: self.grants,
        }
    }
}

/// Why a well-formed credential was refused (each becomes its own 401 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Never issued, or deleted.
    Unknown,
    /// Disabled by its owner or an administrator.
    Disabled,
    /// The owner is suspended.
    OwnerSuspended,
    /// The portal's Traces (APM) feature is off, so bearer tokens are not accepted.
    TracesOff,
}

/// What the index keeps per user. `grants` is the union of the user's roles,
/// recomputed on the cold path whenever a user or role changes, so a verification
/// reads one entry and never walks roles.
#[derive(Debug, Clone)]
pub(crate) struct OwnerEntry {
    pub(crate) username: Arc<str>,
    pub(crate) active: bool,
    pub(crate) role_ids: Box<[RoleId]>,
    pub(crate) grants: Grants,
}

impl OwnerEntry {
    pub(crate) fn new(u: UserKey, roles: &IdMap<RoleId, Grants>) -> Self {
        let mut e = Self {
            username: u.username.into(),
            active: u.active,
            role_ids: u.role_ids.into(),
            grants: Grants::NONE,
        };
        e.regrant(roles);
        e
    }

    pub(crate) fn regrant(&mut self, roles: &IdMap<RoleId, Grants>) {
        self.grants = self
            .role_ids
            .iter()
            .filter_map(|r| roles.get(r))
            .fold(Grants::NONE, |g, r| g.union(*r));
    }
}

pub(crate) struct Inner {
    pub(crate) tokens: TokenIndex,
    pub(crate) owners: RwLock<IdMap<UserId, OwnerEntry>>,
    /// Role grants. When both locks are held, roles is taken first.
    pub(crate) roles: RwLock<IdMap<RoleId, Grants>>,
    pub(crate) traces_enabled: AtomicBool,
    pub(crate) usage: UsageRecorder,
    /// Change-log position applied so far; the mutex serialises followers (cold path only).
    pub(crate) applied: tokio::sync::Mutex<i64>,
}

/// The in-memory credential index. Cloning shares it.
#[derive(Clone)]
pub struct Verifier {
    pub(crate) inner: Arc<Inner>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Verifier {
    /// Builds the index from one consistent snapshot of the store.
    pub async fn load<S: Store>(store: &S) -> Result<Self, AuthError> {
        let started = std::time::Instant::now();
        let snap = store.snapshot().await?;
        let read = started.elapsed();
        let v = Self::from_snapshot(snap);
        tracing::info!(
            tokens = v.token_count(),
            read_ms = read.as_millis() as u64,
            index_ms = (started.elapsed() - read).as_millis() as u64,
            "credential index loaded"
        );
        Ok(v)
    }

    /// Builds the index from a snapshot already read.
    pub fn from_snapshot(snap: Snapshot) -> Self {
        let v = Self {
            inner: Arc::new(Inner {
                tokens: TokenIndex::default(),
                owners: RwLock::new(IdMap::default()),
                roles: RwLock::new(IdMap::default()),
                traces_enabled: AtomicBool::new(false),
                usage: UsageRecorder::default(),
                applied: tokio::sync::Mutex::new(snap.seq),
            }),
        };
        v.install(snap);
        v
    }

    /// Replaces the whole index with `snap`.
    pub(crate) fn install(&self, snap: Snapshot) {
        let i = &self.inner;
        i.tokens.replace_all(snap.tokens.into_iter().map(|t| {
            (
                t.digest,
                TokenEntry {
                    id: t.id,
                    user_id: t.user_id,
                    enabled: t.enabled,
                },
            )
        }));
        let roles: IdMap<RoleId, Grants> = snap.roles.into_iter().collect();
        *write(&i.owners) = snap
            .users
            .into_iter()
            .map(|u| (u.id, OwnerEntry::new(u, &roles)))
            .collect();
        *write(&i.roles) = roles;
        i.traces_enabled
            .store(snap.portal.traces_enabled, Ordering::SeqCst);
    }

    /// Verifies a well-formed bearer token. Reads memory only; takes read locks
    /// briefly and never across an await; records the use for the next batch write.
    pub fn verify_bearer(
        &self,
        token: &BearerToken,
        ip: IpAddr,
        now: EpochSeconds,
    ) -> Result<Principal, Refusal> {
        let i = &self.inner;
        let entry = i.tokens.get(&token.digest()).ok_or(Refusal::Unknown)?;
        if !entry.enabled {
            return Err(Refusal::Disabled);
        }
        let (username, grants) = {
            let owners = read(&i.owners);
            let owner = owners.get(&entry.user_id).ok_or(Refusal::Unknown)?;
            if !owner.active {
                return Err(Refusal::OwnerSuspended);
            }
            (owner.username.clone(), owner.grants)
        };
        if !i.traces_enabled.load(Ordering::SeqCst) {
            return Err(Refusal::TracesOff);
        }
        i.usage.record(entry.id, now, ip);
        Ok(Principal {
            user_id: entry.user_id,
            username,
            grants,
            token_id: entry.id,
        })
    }

    /// The privileges a user holds right now according to the index.
    pub fn grants_of(&self, user: UserId) -> Option<Grants> {
        read(&self.inner.owners).get(&user).map(|o| o.grants)
    }

    /// Number of bearer tokens indexed.
    pub fn token_count(&self) -> usize {
        self.inner.tokens.len()
    }

    /// Whether the Traces (APM) feature is on, as last seen.
    pub fn traces_enabled(&self) -> bool {
        self.inner.traces_enabled.load(Ordering::SeqCst)
    }
}
