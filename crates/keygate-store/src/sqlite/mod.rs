//! The embedded SQLite backend: one file, WAL mode, foreign keys on, migrations
//! applied at start-up. Every mutation runs in a `BEGIN IMMEDIATE` transaction so a
//! read-then-write (such as the token limit check) cannot be raced by another writer,
//! including the admin CLI working on the same file.

use std::str::FromStr;
use std::time::Duration;

use keygate_core::model::{ApiToken, EpochSeconds, Portal, RoleId, TokenId, User, UserId};
use keygate_core::policy::{Grants, PortalAdmin, TokenWrite, UserAdmin};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::types::*;

mod changes;
mod migrate;
mod portal;
mod roles;
mod tokens;
mod users;

/// The SQLite store. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
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
    /// Opens (creating if missing) the database file at `path` and applies migrations.
    pub async fn open(path: &str) -> Result<Self> {
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
            .connect_with(options)
            .await?;
        migrate::run(&pool).await?;
        Ok(Self { pool })
    }

    /// The underlying pool, for tests and benchmarks that inspect the file.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl Store for SqliteStore {
    async fn bootstrap(&self, admin_password_hash: &str, now: EpochSeconds) -> Result<bool> {
        let mut tx = self.write().await?;
        let created = portal::bootstrap(&mut tx, admin_password_hash, now).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn portal(&self) -> Result<Portal> {
        let mut conn = self.pool.acquire().await?;
        portal::get(&mut conn).await
    }

    async fn update_portal(
        &self,
        _cap: &PortalAdmin,
        patch: &PortalPatch,
        now: EpochSeconds,
    ) -> Result<Portal> {
        let mut tx = self.write().await?;
        let p = portal::update(&mut tx, patch, now).await?;
        tx.commit().await?;
        Ok(p)
    }

    async fn roles(&self) -> Result<Vec<RoleWithCount>> {
        let mut conn = self.pool.acquire().await?;
        roles::list(&mut conn, None).await
    }

    async fn role(&self, id: RoleId) -> Result<RoleWithCount> {
        let mut conn = self.pool.acquire().await?;
        roles::get(&mut conn, id).await
    }

    async fn role_by_name(&self, name: &str) -> Result<RoleWithCount> {
        let mut conn = self.pool.acquire().await?;
        roles::by_name(&mut conn, name).await
    }

    async fn create_role(
        &self,
        _cap: &UserAdmin,
        input: &RoleInput,
        now: EpochSeconds,
    ) -> Result<RoleWithCount> {
        let mut tx = self.write().await?;
        let id = roles::create(&mut tx, input, now).await?;
        let r = roles::get(&mut tx, id).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn update_role(
        &self,
        _cap: &UserAdmin,
        id: RoleId,
        patch: &RolePatch,
        now: EpochSeconds,
    ) -> Result<RoleWithCount> {
        let mut tx = self.write().await?;
        roles::update(&mut tx, id, patch, now).await?;
        let r = roles::get(&mut tx, id).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn delete_role(&self, _cap: &UserAdmin, id: RoleId, now: EpochSeconds) -> Result<()> {
        let mut tx = self.write().await?;
        roles::delete(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn users(&self) -> Result<Vec<User>> {
        let mut conn = self.pool.acquire().await?;
        users::list(&mut conn).await
    }

    async fn user(&self, id: UserId) -> Result<User> {
        let mut conn = self.pool.acquire().await?;
        users::get(&mut conn, id).await
    }

    async fn user_by_username(&self, username: &str) -> Result<User> {
        let mut conn = self.pool.acquire().await?;
        users::by_username(&mut conn, username).await
    }

    async fn create_user(
        &self,
        _cap: &UserAdmin,
        new: &NewUser,
        password_hash: Option<&str>,
        created_by: &str,
        now: EpochSeconds,
    ) -> Result<User> {
        let mut tx = self.write().await?;
        let id = users::create(&mut tx, new, password_hash, created_by, now).await?;
        let u = users::get(&mut tx, id).await?;
        tx.commit().await?;
        Ok(u)
    }

    async fn update_user(
        &self,
        _cap: &UserAdmin,
        id: UserId,
        patch: &UserPatch,
        now: EpochSeconds,
    ) -> Result<User> {
        let mut tx = self.write().await?;
        users::update(&mut tx, id, patch, now).await?;
        let u = users::get(&mut tx, id).await?;
        tx.commit().await?;
        Ok(u)
    }

    async fn delete_user(&self, _cap: &UserAdmin, id: UserId, now: EpochSeconds) -> Result<()> {
        let mut tx = self.write().await?;
        users::delete(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tokens(&self, owner: Option<UserId>) -> Result<Vec<ApiToken>> {
        let mut conn = self.pool.acquire().await?;
        tokens::list(&mut conn, owner).await
    }

    async fn token(&self, id: TokenId) -> Result<ApiToken> {
        let mut conn = self.pool.acquire().await?;
        tokens::get(&mut conn, id).await
    }

    async fn create_bearer_token(
        &self,
        cap: &TokenWrite,
        new: &NewBearerToken,
        now: EpochSeconds,
    ) -> Result<ApiToken> {
        let mut tx = self.write().await?;
        let t = tokens::create_bearer(&mut tx, cap.owner(), new, now).await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn update_token(
        &self,
        cap: &TokenWrite,
        id: TokenId,
        patch: &TokenPatch,
        now: EpochSeconds,
    ) -> Result<ApiToken> {
        let mut tx = self.write().await?;
        tokens::update(&mut tx, cap.owner(), id, patch, now).await?;
        let t = tokens::get(&mut tx, id).await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn delete_token(&self, cap: &TokenWrite, id: TokenId, now: EpochSeconds) -> Result<()> {
        let mut tx = self.write().await?;
        tokens::delete(&mut tx, cap.owner(), id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        // One read transaction: WAL gives every statement in it the same view.
        let mut tx = self.pool.begin().await?;
        let s = changes::snapshot(&mut tx).await?;
        tx.commit().await?;
        Ok(s)
    }

    async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>> {
        let mut conn = self.pool.acquire().await?;
        changes::since(&mut conn, seq, limit).await
    }

    async fn token_key(&self, id: TokenId) -> Result<Option<TokenKey>> {
        let mut conn = self.pool.acquire().await?;
        changes::token_key_by_id(&mut conn, id).await
    }

    async fn user_key(&self, id: UserId) -> Result<Option<UserKey>> {
        let mut conn = self.pool.acquire().await?;
        changes::user_key(&mut conn, id).await
    }

    async fn role_grants(&self, id: RoleId) -> Result<Option<Grants>> {
        let mut conn = self.pool.acquire().await?;
        changes::role_grants(&mut conn, id).await
    }

    async fn record_usage(&self, batch: &[Usage]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        tokens::record_usage(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Appends one change-log entry inside the caller's transaction.
pub(crate) async fn log_change(
    conn: &mut sqlx::SqliteConnection,
    entity: Entity,
    id: i64,
    digest: Option<&[u8]>,
    now: EpochSeconds,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO change_log (entity, entity_id, digest, changed_on) VALUES (?, ?, ?, ?)",
    )
    .bind(entity.as_str())
    .bind(id)
    .bind(digest)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
