//! The [`Store`] implementation, once for both backends: each method is one read or
//! one transaction of the queries beside it. Writes that change what a follower
//! reads take the write lock (`write`); writes no follower reads (usage, sessions,
//! sign-ins, audit entries of refused changes) take `unlocked`, which on SQLite is the
//! same `BEGIN IMMEDIATE` and on PostgreSQL skips the advisory lock.

use std::sync::Arc;

use keygate_core::model::UserStatus;
use keygate_core::model::{ApiToken, EpochSeconds, Portal, RoleId, TokenId, User, UserId};
use keygate_core::policy::{self, Grants, PortalAdmin, TokenWrite, UserAdmin};

use super::dialect::{self, BackendStore, Row, query, query_scalar};
use super::{audit, changes, data, outbox, portal, roles, sessions, tokens, users};
use crate::Store;
use crate::common;
use crate::error::{Result, StoreError};
use crate::seal::MasterKey;
use crate::types::*;

/// A pooled connection for one read.
macro_rules! read {
    ($self:ident, $conn:ident => $body:expr) => {{
        let mut $conn = $self.pool.acquire().await?;
        $body
    }};
}

impl Store for BackendStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn bootstrap(&self, admin_password_hash: &str, now: EpochSeconds) -> Result<bool> {
        write_tx!(self, tx => portal::bootstrap(&mut tx, admin_password_hash, now).await?)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn portal(&self) -> Result<Portal> {
        read!(self, c => portal::get(&mut c).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_portal(
        &self,
        cap: &PortalAdmin,
        patch: &PortalPatch,
        now: EpochSeconds,
    ) -> Result<Portal> {
        write_tx!(self, tx => {
            let p = portal::update(&mut tx, patch, now).await?;
            audit::append(&mut tx, &common::audit::portal(cap.by(), patch, now)).await?;
            p
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn roles(&self) -> Result<Vec<RoleWithCount>> {
        read!(self, c => roles::list(&mut c, None).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn role(&self, id: RoleId) -> Result<RoleWithCount> {
        read!(self, c => roles::get(&mut c, id).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn role_by_name(&self, name: &str) -> Result<RoleWithCount> {
        read!(self, c => roles::by_name(&mut c, name).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_role(
        &self,
        cap: &UserAdmin,
        input: &RoleInput,
        now: EpochSeconds,
    ) -> Result<RoleWithCount> {
        write_tx!(self, tx => {
            cap.may_touch(Grants::of_all(&input.privileges), policy::ROLE_WOULD_GRANT)
                .map_err(StoreError::Denied)?;
            let id = roles::create(&mut tx, input, now).await?;
            let r = roles::get(&mut tx, id).await?;
            let e = common::audit::role(cap.by(), AuditAction::RoleCreate, &r, String::new(), now);
            audit::append(&mut tx, &e).await?;
            r
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_role(
        &self,
        cap: &UserAdmin,
        id: RoleId,
        patch: &RolePatch,
        now: EpochSeconds,
    ) -> Result<RoleWithCount> {
        write_tx!(self, tx => {
            let now_grants = changes::role_grants(&mut tx, id).await?;
            cap.may_touch(now_grants.unwrap_or(Grants::NONE), policy::ROLE_GRANTS)
                .map_err(StoreError::Denied)?;
            if let Some(ps) = &patch.privileges {
                cap.may_touch(Grants::of_all(ps), policy::ROLE_WOULD_GRANT)
                    .map_err(StoreError::Denied)?;
            }
            roles::update(&mut tx, id, patch, now).await?;
            if patch.privileges.is_some() {
                changes::ensure_a_user_admin(&mut tx).await?;
            }
            let r = roles::get(&mut tx, id).await?;
            let detail = common::audit::role_patch_detail(patch);
            let e = common::audit::role(cap.by(), AuditAction::RoleUpdate, &r, detail, now);
            audit::append(&mut tx, &e).await?;
            r
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_role(&self, cap: &UserAdmin, id: RoleId, now: EpochSeconds) -> Result<()> {
        write_tx!(self, tx => {
            let r = roles::get(&mut tx, id).await?;
            cap.may_touch(Grants::of_all(&r.role.privileges), policy::ROLE_GRANTS)
                .map_err(StoreError::Denied)?;
            roles::delete(&mut tx, id, now).await?;
            let e = common::audit::role(cap.by(), AuditAction::RoleDelete, &r, String::new(), now);
            audit::append(&mut tx, &e).await?;
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn users(&self) -> Result<Vec<User>> {
        read!(self, c => users::list(&mut c).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn user(&self, id: UserId) -> Result<User> {
        read!(self, c => users::get(&mut c, id).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_username(&self, username: &str) -> Result<User> {
        read!(self, c => users::by_username(&mut c, username).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_user(
        &self,
        cap: &UserAdmin,
        new: &NewUser,
        password_hash: Option<&str>,
        created_by: &str,
        now: EpochSeconds,
    ) -> Result<User> {
        write_tx!(self, tx => {
            let g = changes::roles_grants(&mut tx, &new.role_ids).await?;
            cap.may_touch(g, policy::ROLES_GRANT)
                .map_err(StoreError::Denied)?;
            let id = users::create(&mut tx, new, password_hash, created_by, now).await?;
            let u = users::get(&mut tx, id).await?;
            let e = common::audit::user(cap.by(), AuditAction::UserCreate, &u, String::new(), now);
            audit::append(&mut tx, &e).await?;
            u
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_user(
        &self,
        cap: &UserAdmin,
        id: UserId,
        patch: &UserPatch,
        now: EpochSeconds,
    ) -> Result<User> {
        write_tx!(self, tx => {
            // Read in the transaction: what the user holds now, and what they would.
            let held = changes::user_grants(&mut tx, id).await?;
            cap.may_touch(held, policy::USER_HOLDS)
                .map_err(StoreError::Denied)?;
            if let Some(r) = &patch.role_ids {
                let g = changes::roles_grants(&mut tx, r).await?;
                cap.may_touch(g, policy::ROLES_GRANT)
                    .map_err(StoreError::Denied)?;
            }
            users::update(&mut tx, id, patch, now).await?;
            if patch.role_ids.is_some() || patch.status.is_some() {
                changes::ensure_a_user_admin(&mut tx).await?;
            }
            if patch.password_hash.is_some() || patch.status == Some(UserStatus::Suspended) {
                // A new password or a suspension ends every session the user had.
                sessions::end_all(&mut tx, id).await?;
            }
            let u = users::get(&mut tx, id).await?;
            let detail = common::audit::user_patch_detail(patch);
            let e = common::audit::user(cap.by(), AuditAction::UserUpdate, &u, detail, now);
            audit::append(&mut tx, &e).await?;
            u
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_user(&self, cap: &UserAdmin, id: UserId, now: EpochSeconds) -> Result<()> {
        write_tx!(self, tx => {
            let u = users::get(&mut tx, id).await?;
            let held = changes::user_grants(&mut tx, id).await?;
            cap.may_touch(held, policy::USER_HOLDS)
                .map_err(StoreError::Denied)?;
            users::delete(&mut tx, id, now).await?;
            changes::ensure_a_user_admin(&mut tx).await?;
            let e = common::audit::user(cap.by(), AuditAction::UserDelete, &u, String::new(), now);
            audit::append(&mut tx, &e).await?;
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn tokens(&self, owner: Option<UserId>) -> Result<Vec<ApiToken>> {
        read!(self, c => tokens::list(&mut c, owner).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn token(&self, id: TokenId) -> Result<ApiToken> {
        read!(self, c => tokens::get(&mut c, id).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        read!(self, c => tokens::by_hash(&mut c, hash).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_bearer_token(
        &self,
        cap: &TokenWrite,
        new: &NewBearerToken,
        now: EpochSeconds,
    ) -> Result<Logged<ApiToken>> {
        write_tx!(self, tx => {
            let t = tokens::create_bearer(&mut tx, cap, new, now).await?;
            let e = common::audit::token(cap.by(), AuditAction::TokenCreate, &t.value, now);
            audit::append(&mut tx, &e).await?;
            t
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_lmv1_token(
        &self,
        cap: &TokenWrite,
        new: &NewLmv1Token,
        now: EpochSeconds,
    ) -> Result<ApiToken> {
        write_tx!(self, tx => {
            let t = tokens::create_lmv1(&mut tx, cap, new, &self.key, now).await?;
            let e = common::audit::token(cap.by(), AuditAction::TokenCreate, &t, now);
            audit::append(&mut tx, &e).await?;
            t
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_token(
        &self,
        cap: &TokenWrite,
        id: TokenId,
        patch: &TokenPatch,
        now: EpochSeconds,
    ) -> Result<ApiToken> {
        write_tx!(self, tx => {
            tokens::update(&mut tx, cap.owner(), id, patch, now).await?;
            let t = tokens::get(&mut tx, id).await?;
            for e in common::audit::token_patch(cap.by(), patch, &t, now) {
                audit::append(&mut tx, &e).await?;
            }
            t
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_token(&self, cap: &TokenWrite, id: TokenId, now: EpochSeconds) -> Result<()> {
        write_tx!(self, tx => {
            let t = tokens::get(&mut tx, id).await?;
            tokens::delete(&mut tx, cap.owner(), id, now).await?;
            let e = common::audit::token(cap.by(), AuditAction::TokenDelete, &t, now);
            audit::append(&mut tx, &e).await?;
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn snapshot(&self) -> Result<Snapshot> {
        let mut tx = self.snapshot_tx().await?;
        let s = dialect::long_read(changes::snapshot(&mut tx, &self.key)).await?;
        tx.commit().await?;
        Ok(s)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>> {
        read!(self, c => changes::since(&mut c, seq, limit).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn change_seq(&self) -> Result<i64> {
        read!(self, c => changes::position(&mut c).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn change_floor(&self) -> Result<i64> {
        read!(self, c => changes::floor(&mut c).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_changes(&self, before: EpochSeconds) -> Result<u64> {
        write_tx!(self, tx => {
            // The newest entry always stays: its seq is the log's position.
            let top: Option<i64> = query_scalar(
                "SELECT MAX(seq) FROM change_log WHERE changed_on < $1 AND seq < (SELECT MAX(seq) FROM change_log)",
            )
            .bind(before)
            .fetch_one(&mut *tx)
            .await?;
            let Some(top) = top else {
                return Ok(0);
            };
            let done = query("DELETE FROM change_log WHERE seq <= $1")
                .bind(top)
                .execute(&mut *tx)
                .await?;
            query("UPDATE change_log_floor SET seq = CASE WHEN seq > $1 THEN seq ELSE $1 END WHERE id = 1")
                .bind(top)
                .execute(&mut *tx)
                .await?;
            done.rows_affected()
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn token_state(&self, id: TokenId) -> Result<Option<TokenState>> {
        read!(self, c => tokens::state(&mut c, id, &self.key).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn each_token(&self, each: &mut (dyn FnMut(ApiToken) + Send)) -> Result<i64> {
        let mut tx = self.snapshot_tx().await?;
        let seq = changes::position(&mut tx).await?;
        dialect::long_read(tokens::each(&mut tx, each)).await?;
        tx.commit().await?;
        Ok(seq)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn usage_since(&self, since: EpochSeconds) -> Result<Vec<Usage>> {
        read!(self, c => tokens::used_since(&mut c, since).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_key(&self, id: UserId) -> Result<Option<UserKey>> {
        read!(self, c => changes::user_key(&mut c, id).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn role_grants(&self, id: RoleId) -> Result<Option<Grants>> {
        read!(self, c => changes::role_grants(&mut c, id).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_usage(&self, batch: &[Usage]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Usage is not a change any index follows: no change-log entry, and on
        // PostgreSQL no write lock.
        write_tx!(self, self.unlocked(), tx => tokens::record_usage(&mut tx, batch).await?)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn password_hash(&self, username: &str) -> Result<Option<(User, Option<String>)>> {
        read!(self, c => sessions::password_hash(&mut c, username).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_sign_in(&self, attempt: &SignInAttempt, now: EpochSeconds) -> Result<()> {
        match (attempt.success, attempt.user) {
            // The user's lastLoginOn changes: nodes keep users in memory for reads, so
            // the change is logged (under the write lock, as every logged change is).
            (true, Some(user)) => write_tx!(self, tx => {
                query("UPDATE users SET last_login_on = $1 WHERE id = $2")
                    .bind(now)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                super::log_change(&mut tx, Entity::User, user, now).await?;
                audit::append(&mut tx, &common::audit::sign_in(attempt, now)).await?;
            }),
            // A refused sign-in changes nothing any node follows: no write lock.
            _ => write_tx!(self, self.unlocked(), tx => {
                audit::append(&mut tx, &common::audit::sign_in(attempt, now)).await?;
            }),
        }
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn token_counts(&self) -> Result<Vec<TokenCount>> {
        read!(self, c => tokens::counts(&mut c).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_audit(&self, record: &AuditRecord) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => audit::append(&mut tx, record).await?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn audit_log(&self, range: &AuditRange) -> Result<Vec<AuditEntry>> {
        read!(self, c => audit::list(&mut c, range).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_audit(&self, before: EpochSeconds) -> Result<u64> {
        write_tx!(self, self.unlocked(), tx => {
            query("DELETE FROM audit_log WHERE at < $1")
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_session(
        &self,
        id_hash: &[u8; 32],
        user: UserId,
        csrf: &str,
        now: EpochSeconds,
    ) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => {
            query("INSERT INTO sessions (id_hash, user_id, csrf, created_on, last_seen_on) VALUES ($1, $2, $3, $4, $4)")
                .bind(&id_hash[..])
                .bind(user)
                .bind(csrf)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn session(&self, id_hash: &[u8; 32]) -> Result<Option<Session>> {
        read!(self, c => sessions::session(&mut c, id_hash).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn touch_session(&self, id_hash: &[u8; 32], now: EpochSeconds) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => {
            query("UPDATE sessions SET last_seen_on = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(&id_hash[..])
                .execute(&mut *tx)
                .await?;
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => {
            query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(&id_hash[..])
                .execute(&mut *tx)
                .await?;
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_sessions(
        &self,
        idle_before: EpochSeconds,
        created_before: EpochSeconds,
    ) -> Result<u64> {
        write_tx!(self, self.unlocked(), tx => {
            query("DELETE FROM sessions WHERE last_seen_on < $1 OR created_on < $2")
                .bind(idle_before)
                .bind(created_before)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_pending_token(&self, id_hash: &[u8; 32], pending: &PendingToken) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => {
            query("UPDATE sessions SET pending_digest = $1, pending_access_id = $2, pending_owner = $3 WHERE id_hash = $4")
                .bind(&pending.digest.0[..])
                .bind(&pending.access_id)
                .bind(pending.owner)
                .bind(&id_hash[..])
                .execute(&mut *tx)
                .await?;
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn take_pending_token(&self, id_hash: &[u8; 32]) -> Result<Option<PendingToken>> {
        // Read and cleared in one transaction, so a pending token is taken once.
        write_tx!(self, self.unlocked(), tx => sessions::take_pending(&mut tx, id_hash).await?)
    }
    fn watch_changes(
        &self,
        on_change: Arc<dyn Fn() + Send + Sync>,
        on_lost: Arc<dyn Fn() + Send + Sync>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.watch(on_change, on_lost, stop)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn writable(&self) -> Result<()> {
        self.check_file()?;
        match self.health.due() {
            (None, _) => Ok(()),
            (Some(f), false) => Err(StoreError::Degraded(f)),
            (Some(_), true) => write_tx!(self, self.unlocked(), tx => {
                query(
                    "INSERT INTO meta (name, value) VALUES ('write_probe', $1) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(&crate::health::probe_value()[..])
                .execute(&mut *tx)
                .await?;
            }),
        }
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn rotate_master_key(&self, new: &MasterKey) -> Result<usize> {
        write_tx!(self, tx => {
            tokens::ensure_current_key(&mut tx, &self.key).await?;
            let rows = query("SELECT id, sealed_key FROM api_tokens WHERE type = 'lmv1'").fetch_all(&mut *tx).await?;
            for row in &rows {
                let id: TokenId = row.try_get(0)?;
                let sealed: Option<Vec<u8>> = row.try_get(1)?;
                let sealed = sealed.ok_or(StoreError::Corrupt("LMv1 token without a sealed key"))?;
                let plain = self.key.open(&sealed, id)?;
                query("UPDATE api_tokens SET sealed_key = $1 WHERE id = $2")
                    .bind(new.seal(&plain, id)?)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            query("UPDATE meta SET value = $1 WHERE name = 'master_key_check'")
                .bind(new.check_value())
                .execute(&mut *tx)
                .await?;
            rows.len()
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn ingest_metrics(
        &self,
        by: UserId,
        elements: &[crate::data::MetricElement],
        create: bool,
        now: EpochSeconds,
        forward: Option<&crate::data::MakeOutgoing<'_>>,
    ) -> Result<Vec<Option<i64>>> {
        write_tx!(self, self.unlocked(), tx => {
            let mut seen = data::Lookups::default();
            let mut out = Vec::with_capacity(elements.len());
            for e in elements {
                let Some(resource) = seen.upsert_resource(&mut tx, &e.resource, create, by, now).await? else {
                    out.push(None);
                    continue;
                };
                for i in &e.instances {
                    let ds = (e.datasource.as_str(), e.datasource_display.as_str(), e.datasource_group.as_str());
                    let inst = seen.upsert_instance(&mut tx, resource, ds, (&i.name, &i.display_name), &i.properties, false, now).await?;
                    for dp in &i.datapoints {
                        let id = seen.datapoint(&mut tx, inst, dp).await?;
                        for &(at, v) in &dp.values {
                            data::put_value(&mut tx, id, at, v).await?;
                        }
                    }
                }
                out.push(Some(resource));
            }
            let stored: Vec<bool> = out.iter().map(Option::is_some).collect();
            if let Some(export) = forward.and_then(|make| make(&stored)) {
                outbox::put(&mut tx, &export).await?;
            }
            out
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_properties(
        &self,
        update: &crate::data::PropertyUpdate,
        now: EpochSeconds,
    ) -> Result<Option<i64>> {
        write_tx!(self, self.unlocked(), tx => {
            let mut seen = data::Lookups::default();
            match &update.instance {
                None => {
                    let found = seen.set_resource_properties(&mut tx, &update.ids, &update.properties, update.replace, now).await?;
                    if found { seen.resource_id(&mut tx, &update.ids).await? } else { None }
                }
                Some((ds, name)) => match seen.resource_id(&mut tx, &update.ids).await? {
                    Some(resource) => {
                        seen.upsert_instance(&mut tx, resource, (ds, "", ""), (name, ""), &update.properties, update.replace, now).await?;
                        Some(resource)
                    }
                    None => None,
                },
            }
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ingest_logs(
        &self,
        by: UserId,
        logs: &[crate::data::LogInput],
        forward: Option<&crate::data::Outgoing>,
    ) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => {
            if let Some(export) = forward {
                outbox::put(&mut tx, export).await?;
            }
            let mut seen = data::Lookups::default();
            // Lines of one request mostly name one resource: its key is made and
            // looked up once for each run of lines naming it.
            let mut keys: Vec<(Option<i64>, String)> = Vec::new();
            let mut which = Vec::with_capacity(logs.len());
            for (i, l) in logs.iter().enumerate() {
                if i == 0 || l.ids != logs[i - 1].ids {
                    let key = crate::data::resource_key(&l.ids);
                    let resource = seen.resource_id_by_key(&mut tx, &key).await?;
                    keys.push((resource, key));
                }
                which.push(keys.len() - 1);
            }
            let rows: Vec<_> = logs
                .iter()
                .zip(&which)
                .map(|(l, &k)| ((keys[k].0, keys[k].1.as_str()), l))
                .collect();
            data::put_logs(&mut tx, &rows, by).await?;
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn data_resources(
        &self,
        owner: Option<UserId>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<crate::data::DataResource>, i64)> {
        read!(self, c => data::resources(&mut c, owner, limit, offset).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn data_resource(
        &self,
        owner: Option<UserId>,
        id: i64,
    ) -> Result<crate::data::DataResource> {
        read!(self, c => data::resource(&mut c, owner, id).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn data_series(
        &self,
        owner: Option<UserId>,
        datapoint: i64,
        range: crate::data::TimeRange,
    ) -> Result<Vec<(i64, f64)>> {
        read!(self, c => data::series(&mut c, owner, datapoint, range).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn data_logs(&self, q: &crate::data::LogQuery) -> Result<Vec<crate::data::DataLog>> {
        read!(self, c => data::logs(&mut c, q).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ingest_spans(
        &self,
        by: UserId,
        spans: &[crate::data::SpanInput],
        forward: Option<&crate::data::Outgoing>,
    ) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => {
            if let Some(export) = forward {
                outbox::put(&mut tx, export).await?;
            }
            for s in spans {
                data::put_span(&mut tx, s, by).await?;
            }
        })
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn data_spans(&self, q: &crate::data::SpanQuery) -> Result<Vec<crate::data::DataSpan>> {
        read!(self, c => data::spans(&mut c, q).await)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_data(&self, before_ms: i64) -> Result<(u64, u64)> {
        write_tx!(self, self.unlocked(), tx => (data::prune(&mut tx, before_ms).await?, outbox::prune(&mut tx, before_ms).await?))
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<crate::data::Queued>> {
        write_tx!(self, self.unlocked(), tx => outbox::claim(&mut tx, now_ms, lease_ms, limit).await?)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_done(&self, ids: &[i64]) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => outbox::done(&mut tx, ids).await?)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_retry(&self, ids: &[i64], failed: Option<i64>, due_ms: i64) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => outbox::retry(&mut tx, ids, failed, due_ms).await?)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_release(&self, now_ms: i64) -> Result<()> {
        write_tx!(self, self.unlocked(), tx => outbox::release(&mut tx, now_ms).await?)
    }
    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_state(&self) -> Result<crate::data::OutboxState> {
        read!(self, c => outbox::state(&mut c).await)
    }
}
