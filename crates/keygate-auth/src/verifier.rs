//! The [`Verifier`]: credential → [`Principal`] from memory alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use keygate_core::credentials::Lmv1Credential;
use keygate_core::lmv1::{self, AccessKey, Signer, WindowError};
use keygate_core::model::{EpochSeconds, RoleId, TokenId, TokenType, UserId};
use keygate_core::policy::{Actor, Grants};
use keygate_core::token::BearerToken;
use keygate_store::{Lmv1Key, Snapshot, Store, UserKey};

use crate::error::AuthError;
use crate::index::{DigestState, IdMap, TokenEntry, TokenIndex};
use crate::replay::{Admission, DEFAULT_CAPACITY, DEFAULT_PER_TOKEN, ReplayCache};
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
    /// The token that authenticated the request (`None` for a UI session).
    pub token_id: Option<TokenId>,
    /// That token's type (`None` for a UI session).
    pub token_type: Option<TokenType>,
}

impl Principal {
    /// The principal as a policy actor.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.user_id),
            username: self.username.to_string(),
            grants: self.grants,
            ip: None,
            token_id: self.token_id,
            via: None,
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
    /// No LMv1 token has this access id.
    UnknownAccessId,
    /// The LMv1 signature does not match the request.
    SignatureMismatch,
    /// The LMv1 timestamp is outside the window around the server's clock.
    OutsideWindow {
        /// The server's clock, epoch milliseconds.
        server_millis: i64,
        /// Whether the timestamp looks like epoch seconds.
        looks_like_seconds: bool,
    },
    /// The same LMv1 request was seen before inside the window.
    Replayed,
    /// Replay protection is on and this token has signed the most requests the replay
    /// memory keeps for one token inside the window.
    ReplayQuota {
        /// Seconds until one of its signatures expires.
        retry_after_seconds: u64,
    },
    /// Replay protection is on and its memory is full of live entries.
    ReplayMemoryFull,
    /// This node has not been able to confirm its index is current for longer than
    /// the allowed staleness (the store is unreachable): it refuses rather than risk
    /// accepting a revoked credential.
    Stale {
        /// Seconds since the index was last confirmed current.
        seconds: i64,
    },
}

impl Refusal {
    /// A fixed name for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Disabled => "disabled",
            Self::OwnerSuspended => "owner_suspended",
            Self::TracesOff => "traces_off",
            Self::UnknownAccessId => "unknown",
            Self::SignatureMismatch => "bad_signature",
            Self::OutsideWindow { .. } => "outside_window",
            Self::Replayed => "replayed",
            Self::ReplayQuota { .. } => "replay_quota",
            Self::ReplayMemoryFull => "replay_memory_full",
            Self::Stale { .. } => "stale",
        }
    }
}

/// What the LMv1 index keeps per token. The key is zeroed when the last copy drops.
#[derive(Clone)]
pub(crate) struct Lmv1Entry {
    pub(crate) id: TokenId,
    pub(crate) user_id: UserId,
    pub(crate) enabled: bool,
    pub(crate) key: Arc<AccessKey>,
}

impl From<Lmv1Key> for Lmv1Entry {
    fn from(k: Lmv1Key) -> Self {
        Self {
            id: k.id,
            user_id: k.user_id,
            enabled: k.enabled,
            key: Arc::new(k.key),
        }
    }
}

/// An LMv1 verification in progress: the timestamp is in the window and the HMAC is
/// keyed; feed it the body with [`Lmv1Pending::update`], then call
/// [`Verifier::lmv1_finish`].
#[derive(Debug)]
pub struct Lmv1Pending<'a> {
    signer: Signer,
    cred: &'a Lmv1Credential,
}

impl Lmv1Pending<'_> {
    /// Feeds the next piece of the request body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.signer.update(chunk);
    }
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
    /// LMv1 tokens by access id.
    pub(crate) lmv1: RwLock<HashMap<String, Lmv1Entry, DigestState>>,
    pub(crate) lmv1_skew_seconds: AtomicI64,
    pub(crate) lmv1_replay_protection: AtomicBool,
    pub(crate) replay: Mutex<ReplayCache>,
    /// When the index was last confirmed current (epoch ms); see [`Verifier::confirm`].
    pub(crate) confirmed_millis: AtomicI64,
    /// Longest the node trusts an unconfirmed index, ms.
    pub(crate) max_staleness_millis: AtomicI64,
    /// Tokens this node saw deleted: a full reload (after a restore) never revives them.
    pub(crate) tombstones: Mutex<Tombstones>,
    /// Wakes the follower at once (a change announcement arrived).
    pub(crate) wake: tokio::sync::Notify,
    /// Set when the follower must reload everything (announcements may have been missed).
    pub(crate) reconcile_needed: AtomicBool,
    /// Full reloads since start-up (the first load not counted).
    pub(crate) reloads: AtomicU64,
    pub(crate) usage: UsageRecorder,
    /// When other nodes' usage was last read back (epoch seconds; `i64::MAX` before
    /// the first read, which then reads only the overlap window).
    pub(crate) usage_followed: AtomicI64,
    /// Change-log position applied so far; the mutex serialises followers (cold path only).
    pub(crate) applied: tokio::sync::Mutex<i64>,
    /// The same position, for those waiting for it to move (the index endpoint's long
    /// polls).
    pub(crate) position: tokio::sync::watch::Sender<i64>,
    /// Users and roles as management reads show them (loaded only where the index is
    /// loaded from a store).
    pub(crate) view: crate::view::ReadView,
}

/// Tokens deleted while this node ran, by how the indexes key them.
#[derive(Debug, Default)]
pub(crate) struct Tombstones {
    pub(crate) digests: std::collections::HashSet<keygate_core::token::TokenDigest>,
    pub(crate) access_ids: std::collections::HashSet<String>,
}

/// Most tombstones kept (32 bytes each); beyond it the oldest knowledge is dropped.
pub(crate) const MAX_TOMBSTONES: usize = 1_000_000;

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
        let started = keygate_core::clock::Stopwatch::start();
        let snap = store.snapshot().await?;
        let read = started.elapsed();
        let portal = snap.portal.clone();
        let v = Self::from_snapshot(snap);
        v.inner.view.set_portal(&portal);
        v.inner.view.load(store).await?;
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
                lmv1: RwLock::new(HashMap::default()),
                lmv1_skew_seconds: AtomicI64::new(0),
                lmv1_replay_protection: AtomicBool::new(false),
                replay: Mutex::new(ReplayCache::new(DEFAULT_CAPACITY, DEFAULT_PER_TOKEN)),
                confirmed_millis: AtomicI64::new(i64::MAX),
                max_staleness_millis: AtomicI64::new(30_000),
                tombstones: Mutex::new(Tombstones::default()),
                wake: tokio::sync::Notify::new(),
                reconcile_needed: AtomicBool::new(false),
                reloads: AtomicU64::new(0),
                usage: UsageRecorder::default(),
                usage_followed: AtomicI64::new(i64::MAX),
                applied: tokio::sync::Mutex::new(snap.seq),
                position: tokio::sync::watch::Sender::new(snap.seq),
                view: crate::view::ReadView::default(),
            }),
        };
        v.install(snap);
        v
    }

    /// Replaces the whole index with `snap`.
    pub(crate) fn install(&self, snap: Snapshot) {
        let i = &self.inner;
        // Tokens this node saw deleted are never re-added by a reload. The set is empty
        // at start-up, so a first load skips the lookups entirely.
        let dead = i
            .tombstones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (check_digests, check_ids) = (!dead.digests.is_empty(), !dead.access_ids.is_empty());
        let live = snap
            .tokens
            .into_iter()
            .filter(|t| !(check_digests && dead.digests.contains(&t.digest)));
        i.tokens.replace_all(live.map(|t| {
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
        *write(&i.lmv1) = snap
            .lmv1
            .into_iter()
            .filter(|k| !(check_ids && dead.access_ids.contains(&k.access_id)))
            .map(|k| (k.access_id.clone(), Lmv1Entry::from(k)))
            .collect();
        drop(dead);
        self.set_portal(&snap.portal);
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
        self.fresh(now.saturating_mul(1000))?;
        let entry = i.tokens.get(&token.digest()).ok_or(Refusal::Unknown)?;
        if !entry.enabled {
            return Err(Refusal::Disabled);
        }
        let (username, grants) = self.owner(entry.user_id)?;
        if !i.traces_enabled.load(Ordering::SeqCst) {
            return Err(Refusal::TracesOff);
        }
        i.usage.record(entry.id, now, ip);
        Ok(Principal {
            user_id: entry.user_id,
            username,
            grants,
            token_id: Some(entry.id),
            token_type: Some(TokenType::Bearer),
        })
    }

    /// Applies portal settings the Verifier acts on.
    pub(crate) fn set_portal(&self, p: &keygate_core::model::Portal) {
        let i = &self.inner;
        i.traces_enabled.store(p.traces_enabled, Ordering::SeqCst);
        i.lmv1_skew_seconds
            .store(p.lmv1_clock_skew_seconds, Ordering::SeqCst);
        i.lmv1_replay_protection
            .store(p.lmv1_replay_protection, Ordering::SeqCst);
    }

    /// Records that the index is current as of `now_millis` (a successful catch-up).
    pub fn confirm(&self, now_millis: i64) {
        self.inner
            .confirmed_millis
            .store(now_millis, Ordering::SeqCst);
    }

    /// Sizes the LMv1 replay memory: at most `capacity` signatures in all, at most
    /// `per_token` of one token (what is remembered now is forgotten).
    pub fn set_replay_limits(&self, capacity: usize, per_token: usize) {
        *self
            .inner
            .replay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            ReplayCache::new(capacity, per_token);
    }

    /// Sets how long an unconfirmed index is trusted.
    pub fn set_max_staleness(&self, d: std::time::Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.inner.max_staleness_millis.store(ms, Ordering::SeqCst);
    }

    /// How long ago, in ms, the index was last confirmed current (by a change-log
    /// read or a full reconciliation).
    pub fn confirmed_age_millis(&self, now_millis: i64) -> i64 {
        now_millis.saturating_sub(self.inner.confirmed_millis.load(Ordering::SeqCst))
    }

    /// How long, in ms, the index has gone unconfirmed; `None` while within bounds.
    pub fn staleness(&self, now_millis: i64) -> Option<i64> {
        let age = now_millis.saturating_sub(self.inner.confirmed_millis.load(Ordering::SeqCst));
        (age > self.inner.max_staleness_millis.load(Ordering::SeqCst)).then_some(age)
    }

    fn fresh(&self, now_millis: i64) -> Result<(), Refusal> {
        match self.staleness(now_millis) {
            Some(age) => Err(Refusal::Stale {
                seconds: age / 1000,
            }),
            None => Ok(()),
        }
    }

    /// Wakes the follower at once (a change was announced).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Asks the follower to reload the whole index before trusting it again.
    pub fn request_reconcile(&self) {
        self.inner.reconcile_needed.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// The owner's state for a principal: name and grants, if active.
    fn owner(&self, user: UserId) -> Result<(Arc<str>, Grants), Refusal> {
        let owners = read(&self.inner.owners);
        let owner = owners.get(&user).ok_or(Refusal::Unknown)?;
        if !owner.active {
            return Err(Refusal::OwnerSuspended);
        }
        Ok((owner.username.clone(), owner.grants))
    }

    /// Starts verifying an LMv1 request: finds the access id and checks the timestamp
    /// window before any HMAC work, then keys the HMAC with `verb` and the timestamp.
    pub fn lmv1_begin<'a>(
        &self,
        cred: &'a Lmv1Credential,
        verb: &str,
        now_millis: i64,
    ) -> Result<Lmv1Pending<'a>, Refusal> {
        self.fresh(now_millis)?;
        let key = read(&self.inner.lmv1)
            .get(&cred.access_id)
            .map(|e| e.key.clone())
            .ok_or(Refusal::UnknownAccessId)?;
        let skew = self.inner.lmv1_skew_seconds.load(Ordering::SeqCst);
        lmv1::check_window(cred.epoch_millis, now_millis, skew).map_err(|e| match e {
            WindowError::Outside {
                server_millis,
                looks_like_seconds,
            } => Refusal::OutsideWindow {
                server_millis,
                looks_like_seconds,
            },
        })?;
        Ok(Lmv1Pending {
            signer: key.signer(verb, cred.epoch_millis),
            cred,
        })
    }

    /// Finishes an LMv1 verification with the resource path (after `/santaba/rest`,
    /// without the query string). The signature is checked first, in constant time;
    /// only a correctly signed request learns whether the token is disabled.
    pub fn lmv1_finish(
        &self,
        p: Lmv1Pending,
        resource_path: &str,
        ip: IpAddr,
        now_millis: i64,
    ) -> Result<Principal, Refusal> {
        if !p.signer.finish(resource_path).matches(&p.cred.signature) {
            return Err(Refusal::SignatureMismatch);
        }
        // Read again: the token may have changed while the body streamed in.
        let entry = read(&self.inner.lmv1)
            .get(&p.cred.access_id)
            .cloned()
            .ok_or(Refusal::UnknownAccessId)?;
        if !entry.enabled {
            return Err(Refusal::Disabled);
        }
        let (username, grants) = self.owner(entry.user_id)?;
        if self.inner.lmv1_replay_protection.load(Ordering::SeqCst) {
            let skew_ms = self
                .inner
                .lmv1_skew_seconds
                .load(Ordering::SeqCst)
                .saturating_mul(1000);
            let expires = p.cred.epoch_millis.saturating_add(skew_ms);
            let mut cache = self
                .inner
                .replay
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match cache.admit(entry.id, &p.cred.signature, expires, now_millis) {
                Admission::Fresh => {}
                Admission::Replayed => return Err(Refusal::Replayed),
                Admission::TokenFull { retry_after_millis } => {
                    let secs =
                        u64::try_from(retry_after_millis.saturating_add(999) / 1000).unwrap_or(1);
                    return Err(Refusal::ReplayQuota {
                        retry_after_seconds: secs.max(1),
                    });
                }
                Admission::Full => return Err(Refusal::ReplayMemoryFull),
            }
        }
        self.inner
            .usage
            .record(entry.id, now_millis.div_euclid(1000), ip);
        Ok(Principal {
            user_id: entry.user_id,
            username,
            grants,
            token_id: Some(entry.id),
            token_type: Some(TokenType::Lmv1),
        })
    }

    /// The principal for a signed-in UI session of `user`: refused if the user is gone
    /// or suspended. Privileges are the user's as they are now.
    pub fn session_principal(&self, user: UserId, now_millis: i64) -> Result<Principal, Refusal> {
        self.fresh(now_millis)?;
        let (username, grants) = self.owner(user)?;
        Ok(Principal {
            user_id: user,
            username,
            grants,
            token_id: None,
            token_type: None,
        })
    }

    /// Records that the index has applied the change log up to `seq`.
    pub(crate) fn advanced(&self, seq: i64) {
        self.inner.position.send_replace(seq);
    }

    /// The change-log position the index has applied.
    pub fn position(&self) -> i64 {
        *self.inner.position.borrow()
    }

    /// Waits until the index has applied changes past `after`, at most `timeout`.
    /// Returns whether it has.
    pub async fn wait_past(&self, after: i64, timeout: std::time::Duration) -> bool {
        let mut rx = self.inner.position.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|p| *p > after)).await,
            Ok(Ok(_))
        )
    }

    /// Sets the position of an index fed from elsewhere (a keygate server's index
    /// endpoint) after applying what brought it there.
    pub async fn set_position(&self, seq: i64) {
        *self.inner.applied.lock().await = seq;
        self.advanced(seq);
    }

    /// Replaces the whole index with a snapshot read from elsewhere (tokens this index
    /// saw deleted stay deleted), at the snapshot's position.
    pub async fn replace(&self, snap: Snapshot) {
        let mut applied = self.inner.applied.lock().await;
        let seq = snap.seq;
        self.install(snap);
        *applied = seq;
        self.advanced(seq);
    }

    /// Whether bearer tokens are accepted (the portal's Traces feature).
    pub fn traces_enabled(&self) -> bool {
        self.inner.traces_enabled.load(Ordering::SeqCst)
    }

    /// Users and roles in memory for management reads (see [`crate::view`]).
    pub fn view(&self) -> &crate::view::ReadView {
        &self.inner.view
    }

    /// Number of bearer tokens indexed.
    pub fn token_count(&self) -> usize {
        self.inner.tokens.len()
    }

    /// Full reloads of the index since start-up: each re-reads every token, so a
    /// node that keeps reloading is worth a look (see the follower's warnings).
    pub fn reloads(&self) -> u64 {
        self.inner.reloads.load(Ordering::Relaxed)
    }
}
