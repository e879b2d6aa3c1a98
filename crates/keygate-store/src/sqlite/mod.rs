//! The embedded SQLite backend: one file, WAL mode, foreign keys on, migrations
//! applied at start-up. Every mutation runs in a `BEGIN IMMEDIATE` transaction so a
//! read-then-write (such as the token limit check) cannot be raced by another writer,
//! including the admin CLI working on the same file.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use keygate_core::model::UserStatus;
use keygate_core::model::{ApiToken, EpochSeconds, Portal, RoleId, TokenId, User, UserId};
use keygate_core::policy::{self, Grants, PortalAdmin, TokenWrite, UserAdmin};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::Store;
use crate::common;
use crate::error::{Result, StoreError};
use crate::health::Health;
use crate::seal::MasterKey;
use crate::types::*;

mod audit;
mod changes;
mod file;
mod migrate;
mod portal;
mod roles;
mod sessions;
mod tokens;
mod users;

/// The SQLite store. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Seals and unseals LMv1 access keys.
    key: Arc<MasterKey>,
    /// The database file as opened: writes commit only while it is still this file.
    file: Arc<file::DbFile>,
    /// Whether writes are going through.
    health: Arc<Health>,
}

/// A database URL keygate understands for SQLite: `sqlite://PATH`, `sqlite:PATH` or a
/// plain path. Returns `None` for anything else.
pub fn sqlite_path(url: &str) -> Option<&str> {
    if url.contains("://") && !url.starts_with("sqlite://") {
        return None;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty()).then_some(path)
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`, applies migrations and
    /// checks `key` against the store's check value (recording it on a new store).
    pub async fn open(path: &str, key: MasterKey) -> Result<Self> {
        // Created (or tightened) to 0600 before SQLite opens it: it holds password hashes,
        // token digests and sealed keys, and SQLite gives its WAL and shared-memory
        // files the database file's mode.
        file::create_private(std::path::Path::new(path))?;
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(StoreError::Database)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a success response means the change survives a power cut too.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Rows cross from SQLite's worker thread in batches; larger batches cut the
            // per-row hand-off cost of loading the token index.
            .row_buffer_size(1024);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            // A connection whose transaction could not be rolled back (SQLite may end a
            // transaction on its own after SQLITE_FULL or an I/O error, and sqlx then
            // still counts it as open) is closed rather than handed to the next write.
            .before_acquire(|conn, _| {
                let ok = crate::health::reusable(conn);
                Box::pin(async move { Ok(ok) })
            })
            // The pool already pings every connection as it is released (which also
            // carries out a rollback queued by a dropped transaction); an in-process
            // SQLite connection needs no second ping when it is taken again.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        migrate::run(&pool).await?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM meta WHERE name = 'master_key_check'")
                .fetch_optional(&mut *tx)
                .await?;
        match stored {
            Some(v) if key.matches(&v) => {}
            Some(_) => {
                return Err(StoreError::MasterKey(format!(
                    "the master key does not match the one the database {path} was set up with; \
                     start keygate with the original key (--master-key-file)"
                )));
            }
            None => {
                sqlx::query("INSERT INTO meta (name, value) VALUES ('master_key_check', ?)")
                    .bind(key.check_value())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Self {
            pool,
            key: Arc::new(key),
            file: Arc::new(file::DbFile::opened(std::path::Path::new(path))?),
            health: Arc::new(Health::default()),
        })
    }

    /// The underlying pool, for tests and benchmarks that inspect the file.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write(&self) -> Result<WriteTx> {
        Ok(WriteTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            file: self.file.clone(),
        })
    }
}

/// A write transaction that commits only while the database file on disk is still the
/// one this store opened and can be written: a change committed into a deleted file
/// would be acknowledged and then lost at the next start.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    file: Arc<file::DbFile>,
}

impl WriteTx {
    /// Checks the file, then commits.
    pub(crate) async fn commit(self) -> Result<()> {
        self.file.check()?;
        self.tx.commit().await?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Store for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn bootstrap(&self, admin_password_hash: &str, now: EpochSeconds) -> Result<bool> {
        write_tx!(self, tx => {
            portal::bootstrap(&mut tx, admin_password_hash, now).await?
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn portal(&self) -> Result<Portal> {
        let mut conn = self.pool.acquire().await?;
        portal::get(&mut conn).await
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
        let mut conn = self.pool.acquire().await?;
        roles::list(&mut conn, None).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn role(&self, id: RoleId) -> Result<RoleWithCount> {
        let mut conn = self.pool.acquire().await?;
        roles::get(&mut conn, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn role_by_name(&self, name: &str) -> Result<RoleWithCount> {
        let mut conn = self.pool.acquire().await?;
        roles::by_name(&mut conn, name).await
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
        let mut conn = self.pool.acquire().await?;
        users::list(&mut conn).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user(&self, id: UserId) -> Result<User> {
        let mut conn = self.pool.acquire().await?;
        users::get(&mut conn, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_username(&self, username: &str) -> Result<User> {
        let mut conn = self.pool.acquire().await?;
        users::by_username(&mut conn, username).await
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
        let mut conn = self.pool.acquire().await?;
        tokens::list(&mut conn, owner).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn token(&self, id: TokenId) -> Result<ApiToken> {
        let mut conn = self.pool.acquire().await?;
        tokens::get(&mut conn, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        let mut conn = self.pool.acquire().await?;
        tokens::by_hash(&mut conn, hash).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_bearer_token(
        &self,
        cap: &TokenWrite,
        new: &NewBearerToken,
        now: EpochSeconds,
    ) -> Result<ApiToken> {
        write_tx!(self, tx => {
            let t = tokens::create_bearer(&mut tx, cap, new, now).await?;
            let e = common::audit::token(cap.by(), AuditAction::TokenCreate, &t, now);
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
        // One read transaction: WAL gives every statement in it the same view.
        let mut tx = self.pool.begin().await?;
        let s = changes::snapshot(&mut tx, &self.key).await?;
        tx.commit().await?;
        Ok(s)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>> {
        let mut conn = self.pool.acquire().await?;
        changes::since(&mut conn, seq, limit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn change_seq(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM change_log")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn change_floor(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM change_log_floor WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_changes(&self, before: EpochSeconds) -> Result<u64> {
        write_tx!(self, tx => {
            // The newest entry always stays: its seq is the log's position.
            let top: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(seq) FROM change_log WHERE changed_on < ? AND seq < (SELECT MAX(seq) FROM change_log)",
            )
            .bind(before)
            .fetch_one(&mut *tx)
            .await?;
            let Some(top) = top else {
                return Ok(0);
            };
            let done = sqlx::query("DELETE FROM change_log WHERE seq <= ?")
                .bind(top)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE change_log_floor SET seq = MAX(seq, ?) WHERE id = 1")
                .bind(top)
                .execute(&mut *tx)
                .await?;
            done.rows_affected()
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn index_entry(&self, id: TokenId) -> Result<Option<IndexEntry>> {
        let mut conn = self.pool.acquire().await?;
        changes::index_entry(&mut conn, id, &self.key).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_key(&self, id: UserId) -> Result<Option<UserKey>> {
        let mut conn = self.pool.acquire().await?;
        changes::user_key(&mut conn, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn role_grants(&self, id: RoleId) -> Result<Option<Grants>> {
        let mut conn = self.pool.acquire().await?;
        changes::role_grants(&mut conn, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_usage(&self, batch: &[Usage]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        write_tx!(self, tx => {
            tokens::record_usage(&mut tx, batch).await?;
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn password_hash(&self, username: &str) -> Result<Option<(User, Option<String>)>> {
        let mut conn = self.pool.acquire().await?;
        sessions::password_hash(&mut conn, username).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_sign_in(&self, attempt: &SignInAttempt, now: EpochSeconds) -> Result<()> {
        // Not a change any index cares about, so no change-log entry.
        write_tx!(self, tx => {
            if let (true, Some(user)) = (attempt.success, attempt.user) {
                sqlx::query("UPDATE users SET last_login_on = ? WHERE id = ?")
                    .bind(now)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
            }
            audit::append(&mut tx, &common::audit::sign_in(attempt, now)).await?;
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn token_counts(&self) -> Result<Vec<TokenCount>> {
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT type, status, COUNT(*) FROM api_tokens GROUP BY type, status")
                .fetch_all(&self.pool)
                .await?;
        common::token_counts(rows)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_audit(&self, record: &AuditRecord) -> Result<()> {
        write_tx!(self, tx => audit::append(&mut tx, record).await?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn audit_log(&self, range: &AuditRange) -> Result<Vec<AuditEntry>> {
        let mut conn = self.pool.acquire().await?;
        audit::list(&mut conn, range).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_audit(&self, before: EpochSeconds) -> Result<u64> {
        write_tx!(self, tx => {
            sqlx::query("DELETE FROM audit_log WHERE at < ?")
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
        write_tx!(self, tx => {
            sqlx::query("INSERT INTO sessions (id_hash, user_id, csrf, created_on, last_seen_on) VALUES (?, ?, ?, ?, ?)")
                .bind(&id_hash[..])
                .bind(user)
                .bind(csrf)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn session(&self, id_hash: &[u8; 32]) -> Result<Option<Session>> {
        let mut conn = self.pool.acquire().await?;
        sessions::session(&mut conn, id_hash).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn touch_session(&self, id_hash: &[u8; 32], now: EpochSeconds) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("UPDATE sessions SET last_seen_on = ? WHERE id_hash = ?")
                .bind(now)
                .bind(&id_hash[..])
                .execute(&mut *tx)
                .await?;
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
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
        write_tx!(self, tx => {
            sqlx::query("DELETE FROM sessions WHERE last_seen_on < ? OR created_on < ?")
                .bind(idle_before)
                .bind(created_before)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_pending_token(&self, id_hash: &[u8; 32], pending: &PendingToken) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query(
                "UPDATE sessions SET pending_digest = ?, pending_access_id = ?, pending_owner = ? WHERE id_hash = ?",
            )
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
        write_tx!(self, tx => {
            sessions::take_pending(&mut tx, id_hash).await?
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn writable(&self) -> Result<()> {
        if let Err(e) = self.file.check().and_then(|()| self.file.space()) {
            if let StoreError::Degraded(f) = e {
                self.health.fault(f);
            }
            return Err(e);
        }
        match self.health.due() {
            (None, _) => Ok(()),
            (Some(f), false) => Err(StoreError::Degraded(f)),
            (Some(_), true) => write_tx!(self, tx => {
                sqlx::query(
                    "INSERT INTO meta (name, value) VALUES ('write_probe', ?) \
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
            let rows = sqlx::query("SELECT id, sealed_key FROM api_tokens WHERE type = 'lmv1'")
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                use sqlx::Row as _;
                let id: TokenId = row.try_get(0)?;
                let sealed: Option<Vec<u8>> = row.try_get(1)?;
                let sealed = sealed.ok_or(StoreError::Corrupt("LMv1 token without a sealed key"))?;
                let plain = self.key.open(&sealed, id)?;
                sqlx::query("UPDATE api_tokens SET sealed_key = ? WHERE id = ?")
                    .bind(new.seal(&plain, id)?)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE meta SET value = ? WHERE name = 'master_key_check'")
                .bind(new.check_value())
                .execute(&mut *tx)
                .await?;
            rows.len()
        })
    }
}

/// Appends one change-log entry for a user, role or the portal, inside the caller's
/// transaction.
pub(crate) async fn log_change(
    conn: &mut sqlx::SqliteConnection,
    entity: Entity,
    id: i64,
    now: EpochSeconds,
) -> Result<()> {
    sqlx::query("INSERT INTO change_log (entity, entity_id, changed_on) VALUES (?, ?, ?)")
        .bind(entity.as_str())
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// What identifies a token in the indexes, for its change-log entry.
pub(crate) struct TokenRef {
    /// Bearer: the SHA-256 digest.
    pub(crate) digest: Option<Vec<u8>>,
    /// LMv1: the access id.
    pub(crate) access_id: Option<String>,
}

impl TokenRef {
    /// Reads it from a row of (`type`, `secret_hash`, `access_id`).
    pub(crate) fn from_row(row: &sqlx::sqlite::SqliteRow, first: usize) -> Result<Self> {
        use sqlx::Row as _;
        let kind: String = row.try_get(first)?;
        Ok(if kind == "lmv1" {
            Self {
                digest: None,
                access_id: Some(row.try_get(first + 2)?),
            }
        } else {
            Self {
                digest: row.try_get(first + 1)?,
                access_id: None,
            }
        })
    }
}

/// Appends one change-log entry for a token inside the caller's transaction.
pub(crate) async fn log_token_change(
    conn: &mut sqlx::SqliteConnection,
    id: i64,
    token: &TokenRef,
    now: EpochSeconds,
) -> Result<()> {
    sqlx::query("INSERT INTO change_log (entity, entity_id, digest, access_id, changed_on) VALUES ('token', ?, ?, ?, ?)")
        .bind(id)
        .bind(token.digest.as_deref())
        .bind(token.access_id.as_deref())
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}
