//! The token index as updates, and on the wire.
//!
//! A change-log entry names what changed; [`resolve`] reads that thing's current
//! state into an [`Update`], and [`Verifier::apply_update`] puts it into an index. The
//! node's own follower does both in one process; a service that verifies keygate
//! tokens itself gets the updates over HTTP, in the compact binary form below, from
//! the server's index endpoint. It never carries a secret: bearer tokens travel as
//! their SHA-256 digests and LMv1 tokens not at all (their keys never leave keygate;
//! a service has keygate check an LMv1 signature instead).
//!
//! # Format (version 1)
//!
//! A frame is `KGIX`, a version byte (1), a kind byte (0: a full snapshot that
//! replaces the index; 1: changes after the position asked for), the position the
//! frame brings the index to (i64), then records to the end, each a tag byte and its
//! fields. Integers are little-endian; ids are i64.
//!
//! | tag | record | fields |
//! | --- | --- | --- |
//! | 1 | bearer token | digest (32 bytes), token id, owner id, enabled (u8) |
//! | 2 | token gone | digest (32 bytes) |
//! | 3 | user | id, active (u8), username length (u16) and UTF-8 bytes, role count (u16), role ids |
//! | 4 | user gone | id |
//! | 5 | role | id, privileges (u8, the bits of [`Grants::bits`]) |
//! | 6 | role gone | id |
//! | 7 | portal | Traces (APM) on (u8) |
//!
//! A bearer token costs 49 bytes on the wire.

use keygate_core::model::{ApiToken, Portal, RoleId, UserId};
use keygate_core::policy::Grants;
use keygate_core::token::TokenDigest;
use keygate_store::{
    Change, Entity, IndexEntry, Lmv1Key, Snapshot, Store, StoreError, TokenKey, TokenState, UserKey,
};

use crate::error::AuthError;
use crate::index::TokenEntry;
use crate::verifier::{Lmv1Entry, MAX_TOMBSTONES, OwnerEntry, Tombstones, Verifier, write};

/// The media type of a frame.
pub const MEDIA_TYPE: &str = "application/vnd.keygate.index";

const MAGIC: &[u8; 4] = b"KGIX";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 1 + 8;

/// The current state of one changed thing.
#[derive(Debug, Clone)]
pub enum Update {
    /// A bearer token, created or changed.
    Bearer(TokenKey),
    /// An LMv1 token, created or changed (never encoded: its key stays in keygate).
    Lmv1(Lmv1Key),
    /// A token deleted, or one that cannot be indexed (refused from now on).
    TokenGone {
        /// A bearer token's digest.
        digest: Option<TokenDigest>,
        /// An LMv1 token's access id.
        access_id: Option<String>,
    },
    /// A user, created or changed.
    User(UserKey),
    /// A user deleted.
    UserGone(UserId),
    /// A role and what it grants now.
    Role(RoleId, Grants),
    /// A role deleted.
    RoleGone(RoleId),
    /// Portal settings.
    Portal(Portal),
}

/// Reads the current state of what a change-log entry names.
pub async fn resolve<S: Store>(store: &S, c: &Change) -> Result<Update, AuthError> {
    Ok(match c.entity {
        Entity::Token => resolve_token(store, c).await?.0,
        Entity::User => match store.user_key(c.id).await? {
            Some(u) => Update::User(u),
            None => Update::UserGone(c.id),
        },
        Entity::Role => match store.role_grants(c.id).await? {
            Some(g) => Update::Role(c.id, g),
            None => Update::RoleGone(c.id),
        },
        Entity::Portal => Update::Portal(store.portal().await?),
    })
}

/// A token entry's current state in one read: the index update and the token's row
/// (`None` when it is gone).
pub(crate) async fn resolve_token<S: Store>(
    store: &S,
    c: &Change,
) -> Result<(Update, Option<ApiToken>), AuthError> {
    let gone = || Update::TokenGone {
        digest: c.digest,
        access_id: c.access_id.clone(),
    };
    // A key that will not unseal (sealed under another master key), or a row that
    // cannot be read: fail closed for this token and keep following, so later changes
    // still apply.
    let unreadable = |e: &StoreError| {
        matches!(
            e,
            StoreError::Unseal(_) | StoreError::MasterKey(_) | StoreError::Corrupt(_)
        )
    };
    let refuse = |e: StoreError| {
        tracing::error!(token = c.id, error = %e, "token cannot be indexed; refusing it");
        gone()
    };
    Ok(match store.token_state(c.id).await {
        Ok(Some(TokenState { token, entry })) => {
            let update = match entry {
                Ok(Some(IndexEntry::Bearer(k))) => Update::Bearer(k),
                Ok(Some(IndexEntry::Lmv1(k))) => Update::Lmv1(k),
                Ok(None) => gone(),
                Err(e) if unreadable(&e) => refuse(e),
                Err(e) => return Err(e.into()),
            };
            (update, Some(token))
        }
        Ok(None) => (gone(), None),
        Err(e) if unreadable(&e) => (refuse(e), None),
        Err(e) => return Err(e.into()),
    })
}

impl Verifier {
    /// Applies one update. Applying one twice, or an older one after a newer full
    /// load, is harmless: each carries a thing's whole current state.
    pub fn apply_update(&self, u: Update) {
        let i = &self.inner;
        match u {
            Update::Bearer(k) => i.tokens.insert(
                k.digest,
                TokenEntry {
                    id: k.id,
                    user_id: k.user_id,
                    enabled: k.enabled,
                },
            ),
            Update::Lmv1(k) => {
                write(&i.lmv1).insert(k.access_id.clone(), Lmv1Entry::from(k));
            }
            Update::TokenGone { digest, access_id } => self.forget_token(digest, access_id),
            Update::User(u) => {
                // Roles before owners: the one order in which locks are ever nested.
                let roles = i
                    .roles
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                write(&i.owners).insert(u.id, OwnerEntry::new(u, &roles));
            }
            Update::UserGone(id) => {
                write(&i.owners).remove(&id);
            }
            Update::Role(id, grants) => self.regrant(id, Some(grants)),
            Update::RoleGone(id) => self.regrant(id, None),
            Update::Portal(p) => self.set_portal(&p),
        }
    }

    fn regrant(&self, id: RoleId, grants: Option<Grants>) {
        let i = &self.inner;
        let mut roles = write(&i.roles);
        match grants {
            Some(g) => roles.insert(id, g),
            None => roles.remove(&id),
        };
        // Every holder's next request sees the new privileges.
        let mut owners = write(&i.owners);
        for o in owners.values_mut().filter(|o| o.role_ids.contains(&id)) {
            o.regrant(&roles);
        }
    }

    fn forget_token(&self, digest: Option<TokenDigest>, access_id: Option<String>) {
        let mut dead = self
            .inner
            .tombstones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if dead.digests.len() + dead.access_ids.len() >= MAX_TOMBSTONES {
            *dead = Tombstones::default();
        }
        if let Some(d) = digest {
            self.inner.tokens.remove(&d);
            dead.digests.insert(d);
        }
        if let Some(a) = access_id {
            write(&self.inner.lmv1).remove(&a);
            dead.access_ids.insert(a);
        }
    }

    /// The whole index as one snapshot frame, with the position it is current to.
    /// Read from memory, while no change is being applied, so no database work is
    /// done however many services ask.
    pub async fn export(&self) -> (i64, Vec<u8>) {
        let applied = self.inner.applied.lock().await;
        let position = *applied;
        let tokens = self.inner.tokens.len();
        let mut out = Vec::with_capacity(HEADER + tokens * 49 + 64);
        frame_header(&mut out, true, position);
        self.inner.tokens.for_each(|d, e| {
            put_token(
                &mut out,
                &TokenKey {
                    id: e.id,
                    user_id: e.user_id,
                    digest: *d,
                    enabled: e.enabled,
                },
            );
        });
        {
            let roles = self
                .inner
                .roles
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, g) in roles.iter() {
                encode(&Update::Role(*id, *g), &mut out);
            }
        }
        {
            let owners = self
                .inner
                .owners
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, o) in owners.iter() {
                put_user(&mut out, *id, o.active, &o.username, &o.role_ids);
            }
        }
        out.push(7);
        out.push(u8::from(self.traces_enabled()));
        drop(applied);
        (position, out)
    }
}

/// Starts a frame: a snapshot (`reset`) or changes, bringing the index to `position`.
pub fn frame_header(out: &mut Vec<u8>, reset: bool, position: i64) {
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(if reset { 0 } else { 1 });
    out.extend_from_slice(&position.to_le_bytes());
}

fn put_token(out: &mut Vec<u8>, k: &TokenKey) {
    out.push(1);
    out.extend_from_slice(&k.digest.0);
    out.extend_from_slice(&k.id.to_le_bytes());
    out.extend_from_slice(&k.user_id.to_le_bytes());
    out.push(u8::from(k.enabled));
}

fn put_user(out: &mut Vec<u8>, id: UserId, active: bool, name: &str, roles: &[RoleId]) {
    // Usernames are at most 255 characters and users hold a handful of roles; the
    // lengths are clamped anyway so a frame always parses.
    let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
    let roles = &roles[..roles.len().min(usize::from(u16::MAX))];
    out.push(3);
    out.extend_from_slice(&id.to_le_bytes());
    out.push(u8::from(active));
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&(roles.len() as u16).to_le_bytes());
    for r in roles {
        out.extend_from_slice(&r.to_le_bytes());
    }
}

/// Appends one update's record. LMv1 tokens are not sent (their keys stay in
/// keygate), and a deleted one only matters to keygate itself, so neither adds bytes.
pub fn encode(u: &Update, out: &mut Vec<u8>) {
    match u {
        Update::Bearer(k) => put_token(out, k),
        Update::Lmv1(_) => {}
        Update::TokenGone { digest, .. } => {
            if let Some(d) = digest {
                out.push(2);
                out.extend_from_slice(&d.0);
            }
        }
        Update::User(u) => put_user(out, u.id, u.active, &u.username, &u.role_ids),
        Update::UserGone(id) => {
            out.push(4);
            out.extend_from_slice(&id.to_le_bytes());
        }
        Update::Role(id, g) => {
            out.push(5);
            out.extend_from_slice(&id.to_le_bytes());
            out.push(g.bits());
        }
        Update::RoleGone(id) => {
            out.push(6);
            out.extend_from_slice(&id.to_le_bytes());
        }
        Update::Portal(p) => {
            out.push(7);
            out.push(u8::from(p.traces_enabled));
        }
    }
}

/// A decoded frame.
#[derive(Debug)]
pub enum Frame {
    /// Everything: replaces the index.
    Snapshot(Snapshot),
    /// Changes after the position asked for, and the position they bring the index to.
    Changes(i64, Vec<Update>),
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a keygate index frame: {0}")]
pub struct FrameError(pub &'static str);

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(FrameError("it ends inside a record"))?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take::<1>()?[0])
    }
    fn bool(&mut self) -> Result<bool, FrameError> {
        Ok(self.u8()? != 0)
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, FrameError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError("it ends inside a record"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
}

/// Reads a frame.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    let mut r = Reader(bytes);
    if &r.take::<4>()? != MAGIC {
        return Err(FrameError("it does not start with KGIX"));
    }
    if r.u8()? != VERSION {
        return Err(FrameError("it is of a version this build does not read"));
    }
    let reset = match r.u8()? {
        0 => true,
        1 => false,
        _ => return Err(FrameError("unknown frame kind")),
    };
    let position = r.i64()?;
    let mut snap = Snapshot {
        seq: position,
        tokens: Vec::new(),
        lmv1: Vec::new(),
        users: Vec::new(),
        roles: Vec::new(),
        portal: Portal::default(),
    };
    if reset {
        // Each token record is 50 bytes with its tag: reserve for what the frame holds.
        snap.tokens.reserve(bytes.len() / 50);
    }
    let mut changes = Vec::new();
    while !r.0.is_empty() {
        let u = match r.u8()? {
            1 => Update::Bearer(TokenKey {
                digest: TokenDigest(r.take()?),
                id: r.i64()?,
                user_id: r.i64()?,
                enabled: r.bool()?,
            }),
            2 => Update::TokenGone {
                digest: Some(TokenDigest(r.take()?)),
                access_id: None,
            },
            3 => {
                let id = r.i64()?;
                let active = r.bool()?;
                let n = usize::from(r.u16()?);
                let username = std::str::from_utf8(r.bytes(n)?)
                    .map_err(|_| FrameError("a username is not UTF-8"))?
                    .to_owned();
                let roles = usize::from(r.u16()?);
                let role_ids = (0..roles).map(|_| r.i64()).collect::<Result<_, _>>()?;
                Update::User(UserKey {
                    id,
                    username,
                    active,
                    role_ids,
                })
            }
            4 => Update::UserGone(r.i64()?),
            5 => Update::Role(r.i64()?, Grants::from_bits(r.u8()?)),
            6 => Update::RoleGone(r.i64()?),
            7 => Update::Portal(Portal {
                traces_enabled: r.bool()?,
                ..Portal::default()
            }),
            _ => return Err(FrameError("unknown record tag")),
        };
        if !reset {
            changes.push(u);
            continue;
        }
        match u {
            Update::Bearer(k) => snap.tokens.push(k),
            Update::User(u) => snap.users.push(u),
            Update::Role(id, g) => snap.roles.push((id, g)),
            Update::Portal(p) => snap.portal = p,
            _ => return Err(FrameError("a snapshot holds a removal")),
        }
    }
    Ok(if reset {
        Frame::Snapshot(snap)
    } else {
        Frame::Changes(position, changes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> TokenKey {
        TokenKey {
            id: i64::from(n),
            user_id: 7,
            digest: TokenDigest([n; 32]),
            enabled: n.is_multiple_of(2),
        }
    }

    #[test]
    fn changes_survive_the_wire() {
        let updates = [
            Update::Bearer(key(1)),
            Update::TokenGone {
                digest: Some(TokenDigest([9; 32])),
                access_id: Some("ignored".to_owned()),
            },
            Update::User(UserKey {
                id: 7,
                username: "zoë".to_owned(),
                active: true,
                role_ids: vec![1, 3],
            }),
            Update::UserGone(8),
            Update::Role(3, Grants::DATAINGESTION.union(Grants::TOKEN_INDEX)),
            Update::RoleGone(4),
        ];
        let mut out = Vec::new();
        frame_header(&mut out, false, 42);
        for u in &updates {
            encode(u, &mut out);
        }
        let Frame::Changes(pos, back) = decode(&out).unwrap() else {
            panic!("not changes")
        };
        assert_eq!(pos, 42);
        assert_eq!(
            format!("{updates:?}").replace("Some(\"ignored\")", "None"),
            format!("{back:?}")
        );
        assert_eq!(
            out.len(),
            HEADER + 50 + 33 + (1 + 8 + 1 + 2 + 4 + 2 + 16) + 9 + 10 + 9
        );
    }

    #[test]
    fn a_snapshot_replaces_everything_and_a_cut_frame_is_refused() {
        let v = Verifier::from_snapshot(Snapshot {
            seq: 5,
            tokens: vec![key(1), key(2)],
            lmv1: Vec::new(),
            users: vec![UserKey {
                id: 7,
                username: "ann".to_owned(),
                active: true,
                role_ids: vec![1],
            }],
            roles: vec![(1, Grants::DATAINGESTION)],
            portal: Portal::default(),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (pos, bytes) = rt.block_on(v.export());
        assert_eq!(pos, 5);
        let Frame::Snapshot(s) = decode(&bytes).unwrap() else {
            panic!("not a snapshot")
        };
        assert_eq!(s.tokens.len(), 2);
        assert_eq!(s.users[0].username, "ann");
        assert_eq!(s.roles, vec![(1, Grants::DATAINGESTION)]);
        assert!(s.portal.traces_enabled);
        for cut in [3, HEADER + 10, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut bad = bytes.clone();
        bad[4] = 2;
        assert_eq!(
            decode(&bad).unwrap_err().to_string(),
            "not a keygate index frame: it is of a version this build does not read"
        );
    }
}
