//! Users and roles as the management API reads them, kept in memory beside the index
//! and current the same way: loaded with every full load of the index, and refreshed
//! by the follower for each change-log entry that names a user or a role, before the
//! change is answered (read-your-writes) and, on other nodes, within the propagation
//! bound.
//!
//! Token responses name their owner and the owner's roles; user responses carry every
//! role. Read from here, those cost no database round trip. Until the first load (and
//! in a service that follows keygate's index over HTTP, which never loads it) the view
//! is empty and says so, and readers fall back to the store.

use std::collections::BTreeMap;
use std::sync::RwLock;

use keygate_core::model::{Role, RoleId, User, UserId};
use keygate_store::{RoleWithCount, Store, StoreError};

use crate::error::AuthError;

#[derive(Debug, Default)]
struct Rows {
    loaded: bool,
    users: BTreeMap<UserId, User>,
    roles: BTreeMap<RoleId, Role>,
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

/// The in-memory users and roles (see the module documentation).
#[derive(Debug, Default)]
pub struct ReadView {
    rows: RwLock<Rows>,
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

    /// Replaces everything with the store's users and roles.
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
