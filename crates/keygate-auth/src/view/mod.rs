//! Tokens, users, roles and the portal settings as the management API reads them,
//! kept in memory beside the index and current the same way: the follower refreshes
//! the row a change-log entry names before the change is answered (read-your-writes)
//! and, on other nodes, within the propagation bound.
//!
//! Users, roles and the portal settings are loaded with every full load of the index
//! (the portal settings from the index's own snapshot). Token rows are loaded once
//! in the background after start-up (a million of them take a second or two, and
//! the index already serves meanwhile), then caught up with the change-log entries
//! that arrived during the load; every full reload after that reloads them too. Last
//! use, which the change log does not carry, is applied when this node writes its own
//! and read back every flush interval for what other nodes wrote.
//!
//! Until a part is loaded (and in a service that follows keygate's index over HTTP,
//! which never loads it) the view says so, and readers fall back to the store.
//!
//! # Layout
//!
//! - this module — [`ReadView`]: users, roles and the portal settings, and the
//!   token rows behind a lock.
//! - `tokens` — the compact token rows and their owner index.

mod tokens;

use std::collections::BTreeMap;
use std::sync::RwLock;

use keygate_core::model::{ApiToken, Portal, Role, RoleId, TokenId, TokenType, User, UserId};
use keygate_store::{RoleWithCount, Store, StoreError, Usage};

pub(crate) use tokens::{Loading, TokenRows};

use crate::error::AuthError;

#[derive(Debug, Default)]
struct Rows {
    loaded: bool,
    users: BTreeMap<UserId, User>,
    roles: BTreeMap<RoleId, Role>,
    /// The portal settings as the store last gave them (`None` until a full load).
    portal: Option<Portal>,
}

impl Rows {
    fn with_count(&self, role: &Role) -> RoleWithCount {
        let user_count = self
            .users
            .values()
            .filter(|u| u.role_ids.contains(&role.id))
            .count() as i64;
        RoleWithCount {
            role: role.clone(),
            user_count,
        }
    }
}

/// The in-memory tokens, users and roles (see the module documentation).
#[derive(Debug, Default)]
pub struct ReadView {
    rows: RwLock<Rows>,
    /// `None` until the token rows are loaded.
    tokens: RwLock<Option<TokenRows>>,
}

/// One page of a token list: how many tokens are in scope, and the page.
pub type TokenPage = (usize, Vec<ApiToken>);

/// Which page of a token list, in id order: the tokens of one type or both, skipping
/// `offset`, at most `size`, newest first when `descending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Bearer or LMv1 only, or both.
    pub kind: Option<TokenType>,
    /// Highest id first.
    pub descending: bool,
    /// Tokens to skip.
    pub offset: usize,
    /// Most tokens in the page.
    pub size: usize,
}

impl ReadView {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rows> {
        self.rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rows> {
        self.rows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the view holds the store's users and roles (else read the store).
    pub fn loaded(&self) -> bool {
        self.read().loaded
    }

    fn token_rows(&self) -> std::sync::RwLockReadGuard<'_, Option<TokenRows>> {
        self.tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn token_rows_mut(&self) -> std::sync::RwLockWriteGuard<'_, Option<TokenRows>> {
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the view holds the store's tokens (else read the store). Once true it
    /// stays true: a reload replaces the rows whole.
    pub fn holds_tokens(&self) -> bool {
        self.token_rows().is_some()
    }

    /// One token: `Some(None)` when there is no such token, `None` when the view does
    /// not hold tokens.
    pub fn token(&self, id: TokenId) -> Option<Option<ApiToken>> {
        self.token_rows().as_ref().map(|t| t.get(id))
    }

    /// One owner's tokens (or everyone's): how many `page` covers and its tokens. Only
    /// the page's rows are made into tokens.
    pub fn token_page(&self, owner: Option<UserId>, page: &Page) -> Option<TokenPage> {
        self.token_rows().as_ref().map(|t| t.page(owner, page))
    }

    /// Every token in scope, in id order (for lists that filter on what they show).
    pub fn tokens(&self, owner: Option<UserId>, kind: Option<TokenType>) -> Option<Vec<ApiToken>> {
        self.token_rows().as_ref().map(|t| t.all(owner, kind))
    }

    /// Number of token rows held (0 before they are loaded).
    pub fn token_rows_held(&self) -> usize {
        self.token_rows().as_ref().map_or(0, TokenRows::len)
    }

    /// Puts one token's current state (`None`: gone) into the rows, if they are held.
    pub(crate) fn put_token(&self, id: TokenId, token: Option<ApiToken>) {
        if let Some(t) = self.token_rows_mut().as_mut() {
            t.put(id, token);
        }
    }

    /// Installs rows from a full load.
    pub(crate) fn install_tokens(&self, rows: TokenRows) {
        *self.token_rows_mut() = Some(rows);
    }

    /// Applies last-use records to the rows, if they are held.
    pub(crate) fn record_usage(&self, batch: &[Usage]) {
        if let Some(t) = self.token_rows_mut().as_mut() {
            t.record_usage(batch);
        }
    }

    /// Reads every token into rows, and the change-log position they are current to.
    pub(crate) async fn read_tokens<S: Store>(store: &S) -> Result<(TokenRows, i64), AuthError> {
        let mut loading = Loading::default();
        let seq = store.each_token(&mut |t| loading.add(t)).await?;
        Ok((loading.finish(), seq))
    }

    /// A user, `None` when there is no such user or the view is not loaded.
    pub fn user(&self, id: UserId) -> Option<User> {
        self.read().users.get(&id).cloned()
    }

    /// A user's username and role names, for a token's response.
    pub fn owner(&self, id: UserId) -> Option<(String, Vec<String>)> {
        let rows = self.read();
        let u = rows.users.get(&id)?;
        let roles = u
            .role_ids
            .iter()
            .filter_map(|r| rows.roles.get(r).map(|r| r.name.clone()))
            .collect();
        Some((u.username.clone(), roles))
    }

    /// Every user by id, `None` when the view is not loaded.
    pub fn users(&self) -> Option<Vec<User>> {
        let rows = self.read();
        rows.loaded.then(|| rows.users.values().cloned().collect())
    }

    /// Every role by id with its user count, `None` when the view is not loaded.
    pub fn roles(&self) -> Option<Vec<RoleWithCount>> {
        let rows = self.read();
        rows.loaded
            .then(|| rows.roles.values().map(|r| rows.with_count(r)).collect())
    }

    /// A role with its user count, `None` when there is none or the view is not loaded.
    pub fn role(&self, id: RoleId) -> Option<RoleWithCount> {
        let rows = self.read();
        rows.roles.get(&id).map(|r| rows.with_count(r))
    }

    /// The portal settings, `None` when the view does not hold them (read the store).
    pub fn portal(&self) -> Option<Portal> {
        self.read().portal.clone()
    }

    /// Keeps the portal settings a full load or a change-log entry read from the store.
    pub(crate) fn set_portal(&self, p: &Portal) {
        self.write().portal = Some(p.clone());
    }

    /// Replaces the users and roles with the store's (the portal settings come with
    /// the index's snapshot: [`ReadView::set_portal`]).
    pub(crate) async fn load<S: Store>(&self, store: &S) -> Result<(), AuthError> {
        let users = store.users().await?;
        let roles = store.roles().await?;
        let mut rows = self.write();
        rows.users = users.into_iter().map(|u| (u.id, u)).collect();
        rows.roles = roles.into_iter().map(|r| (r.role.id, r.role)).collect();
        rows.loaded = true;
        Ok(())
    }

    /// Reads one user's current state (or its absence) into the view.
    pub(crate) async fn refresh_user<S: Store>(
        &self,
        store: &S,
        id: UserId,
    ) -> Result<(), AuthError> {
        if !self.loaded() {
            return Ok(());
        }
        let current = match store.user(id).await {
            Ok(u) => Some(u),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let mut rows = self.write();
        match current {
            Some(u) => rows.users.insert(id, u),
            None => rows.users.remove(&id),
        };
        Ok(())
    }

    /// Reads one role's current state (or its absence) into the view.
    pub(crate) async fn refresh_role<S: Store>(
        &self,
        store: &S,
        id: RoleId,
    ) -> Result<(), AuthError> {
        if !self.loaded() {
            return Ok(());
        }
        let current = match store.role(id).await {
            Ok(r) => Some(r.role),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let mut rows = self.write();
        match current {
            Some(r) => rows.roles.insert(id, r),
            None => rows.roles.remove(&id),
        };
        Ok(())
    }
}
