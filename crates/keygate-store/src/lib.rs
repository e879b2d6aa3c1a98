//! keygate's storage: one async [`Store`] trait, implemented by the embedded SQLite
//! backend (and by PostgreSQL for multi-node deployments).
//!
//! # Layout
//!
//! - [`Store`] (this file): every read and write keygate makes. Mutations take a
//!   capability from [`keygate_core::policy`], run in one transaction, and append to
//!   the change log in that same transaction.
//! - [`types`] — inputs and outputs that are not model types (patches, snapshot, changes).
//! - [`data`] — ingested data (resources, instances, datapoints, values, logs) as the
//!   ingest path stores it and the read-back API returns it.
//! - [`seal`] — the master key and AES-256-GCM sealing of LMv1 access keys.
//! - `sql/` — every query and the one `Store` implementation, written once and
//!   compiled into each backend as its `sql` module (one SQL text serves both; on
//!   SQLite the calls run through `sqlite/db.rs`, which binds `$N` by number).
//! - [`postgres`] — the PostgreSQL backend for several nodes: connecting, migrations,
//!   the advisory write lock, NOTIFY/LISTEN, and its `dialect` seam.
//! - [`sqlite`] — the SQLite backend on rusqlite: the file (0600, identity checks), WAL,
//!   migrations, statements run by the calling thread (`db`), the read connections
//!   (`pool`), the write queue and shared commits (`writer`), and its `dialect` seam.
//! - [`error`] — [`StoreError`], with the one conversion from each driver's error.
//! - [`health`] — whether writes go through ([`Fault`]), as writes and a probe find out.
#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::Arc;

use keygate_core::model::{ApiToken, EpochSeconds, Portal, RoleId, TokenId, User, UserId};
use keygate_core::policy::{Grants, PortalAdmin, TokenWrite, UserAdmin};

/// One write transaction: begin, the body (which may use `?`), commit. A storage
/// fault on the way is noted in the store's health; a commit clears it.
macro_rules! write_tx {
    ($self:ident, $tx:ident => $body:expr) => {
        write_tx!($self, $self.write(), $tx => $body)
    };
    ($self:ident, $begin:expr, $tx:ident => $body:expr) => {{
        $self
            .health
            .watch(async {
                #[allow(unused_mut)]
                let mut $tx = $begin.await?;
                let out = $body;
                $tx.commit().await?;
                $self.health.ok();
                Ok(out)
            })
            .await
    }};
}

mod common;
pub mod data;
pub mod error;
pub mod health;
pub mod postgres;
pub mod seal;
pub mod sqlite;
pub mod types;

pub use error::{Result, StoreError};
pub use health::Fault;
pub use postgres::PgStore;
pub use seal::MasterKey;
pub use sqlite::SqliteStore;
pub use types::*;

/// Every read and write keygate makes of its database.
///
/// The backend is chosen once at start-up and the server is generic over it, so there
/// is no dynamic dispatch on any path.
pub trait Store: Clone + Send + Sync + 'static {
    /// On an empty store, creates the portal, the built-in roles and the user `admin`
    /// with the given password hash. Returns whether it did (so the caller shows the
    /// password once).
    fn bootstrap(
        &self,
        admin_password_hash: &str,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Portal settings.
    fn portal(&self) -> impl Future<Output = Result<Portal>> + Send;
    /// Changes portal settings.
    fn update_portal(
        &self,
        cap: &PortalAdmin,
        patch: &PortalPatch,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<Portal>> + Send;

    /// All roles, with user counts.
    fn roles(&self) -> impl Future<Output = Result<Vec<RoleWithCount>>> + Send;
    /// One role.
    fn role(&self, id: RoleId) -> impl Future<Output = Result<RoleWithCount>> + Send;
    /// Looks a role up by name (case-insensitive).
    fn role_by_name(&self, name: &str) -> impl Future<Output = Result<RoleWithCount>> + Send;
    /// Creates a role.
    fn create_role(
        &self,
        cap: &UserAdmin,
        input: &RoleInput,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<RoleWithCount>> + Send;
    /// Changes a role.
    fn update_role(
        &self,
        cap: &UserAdmin,
        id: RoleId,
        patch: &RolePatch,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<RoleWithCount>> + Send;
    /// Deletes a role that no user holds.
    fn delete_role(
        &self,
        cap: &UserAdmin,
        id: RoleId,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<()>> + Send;

    /// All users.
    fn users(&self) -> impl Future<Output = Result<Vec<User>>> + Send;
    /// One user.
    fn user(&self, id: UserId) -> impl Future<Output = Result<User>> + Send;
    /// Looks a user up by username (case-insensitive).
    fn user_by_username(&self, username: &str) -> impl Future<Output = Result<User>> + Send;
    /// Creates a user, with an argon2id password hash if it has a password, recording
    /// `created_by` as its creator.
    fn create_user(
        &self,
        cap: &UserAdmin,
        new: &NewUser,
        password_hash: Option<&str>,
        created_by: &str,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<User>> + Send;
    /// Changes a user.
    fn update_user(
        &self,
        cap: &UserAdmin,
        id: UserId,
        patch: &UserPatch,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<User>> + Send;
    /// Deletes a user and every token it owns.
    fn delete_user(
        &self,
        cap: &UserAdmin,
        id: UserId,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Tokens, of one owner or of all.
    fn tokens(&self, owner: Option<UserId>) -> impl Future<Output = Result<Vec<ApiToken>>> + Send;
    /// One token.
    fn token(&self, id: TokenId) -> impl Future<Output = Result<ApiToken>> + Send;
    /// The bearer token whose secret has this SHA-256 digest (for looking a found
    /// token up by its value), if there is one.
    fn token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> impl Future<Output = Result<Option<ApiToken>>> + Send;
    /// How many tokens there are of each type and status.
    fn token_counts(&self) -> impl Future<Output = Result<Vec<TokenCount>>> + Send;
    /// Creates a bearer token for the capability's owner, checking in the same
    /// transaction that the owner exists, is active, holds DataIngestion, that Traces
    /// is on and that the owner is under `maxTokensPerUser`.
    fn create_bearer_token(
        &self,
        cap: &TokenWrite,
        new: &NewBearerToken,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<Logged<ApiToken>>> + Send;
    /// Creates an LMv1 token for the capability's owner (active, under
    /// `maxTokensPerUser`), its key sealed under the master key, in one transaction.
    fn create_lmv1_token(
        &self,
        cap: &TokenWrite,
        new: &NewLmv1Token,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<ApiToken>> + Send;
    /// Changes the note or status of one of the capability owner's tokens.
    fn update_token(
        &self,
        cap: &TokenWrite,
        id: TokenId,
        patch: &TokenPatch,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<ApiToken>> + Send;
    /// Deletes one of the capability owner's tokens for good.
    fn delete_token(
        &self,
        cap: &TokenWrite,
        id: TokenId,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Everything the Verifier indexes, in one consistent read.
    fn snapshot(&self) -> impl Future<Output = Result<Snapshot>> + Send;
    /// Change-log entries after `seq`, oldest first, at most `limit`.
    fn changes_since(
        &self,
        seq: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Change>>> + Send;
    /// The newest change-log position: a cheap counter that tells an idle follower it
    /// is current (and, if it went backwards, that a backup was restored).
    fn change_seq(&self) -> impl Future<Output = Result<i64>> + Send;
    /// The change-log floor: entries up to this position may have been pruned, so a
    /// follower that has applied less must reload everything.
    fn change_floor(&self) -> impl Future<Output = Result<i64>> + Send;
    /// Deletes change-log entries older than `before` (never the newest one) and
    /// raises the floor past them; returns how many went.
    fn prune_changes(&self, before: EpochSeconds) -> impl Future<Output = Result<u64>> + Send;
    /// One token's row and index entry in one read, if the token exists.
    fn token_state(&self, id: TokenId) -> impl Future<Output = Result<Option<TokenState>>> + Send;
    /// Every token, passed to `each` one at a time as it is read (a million rows never
    /// sit in memory as full rows at once), in one consistent read; returns the
    /// change-log position the rows are current to.
    fn each_token(
        &self,
        each: &mut (dyn FnMut(ApiToken) + Send),
    ) -> impl Future<Output = Result<i64>> + Send;
    /// The last use of every token used at or after `since` (epoch seconds), as any
    /// node recorded it: how a node learns of other nodes' usage, which the change
    /// log does not carry.
    fn usage_since(&self, since: EpochSeconds) -> impl Future<Output = Result<Vec<Usage>>> + Send;
    /// The Verifier's view of one user, if it exists.
    fn user_key(&self, id: UserId) -> impl Future<Output = Result<Option<UserKey>>> + Send;
    /// What one role grants, if it exists.
    fn role_grants(&self, id: RoleId) -> impl Future<Output = Result<Option<Grants>>> + Send;
    /// Writes a batch of last-use records in one transaction (never moving a time back).
    fn record_usage(&self, batch: &[Usage]) -> impl Future<Output = Result<()>> + Send;
    /// A user's password hash (argon2id PHC string) by username, for sign-in.
    fn password_hash(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<(User, Option<String>)>>> + Send;
    /// Records a UI sign-in attempt in the audit log (and, when it succeeded, as the
    /// user's last sign-in), in one transaction.
    fn record_sign_in(
        &self,
        attempt: &SignInAttempt,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Appends one audit entry on its own: for attempts that changed nothing (a change
    /// the policy refused). Changes write theirs inside their own transaction.
    fn record_audit(&self, record: &AuditRecord) -> impl Future<Output = Result<()>> + Send;
    /// Audit-log entries in a time window, newest first.
    fn audit_log(&self, range: &AuditRange)
    -> impl Future<Output = Result<Vec<AuditEntry>>> + Send;
    /// Deletes audit-log entries older than `before`; returns how many.
    fn prune_audit(&self, before: EpochSeconds) -> impl Future<Output = Result<u64>> + Send;
    /// Stores a new session (by the hash of its id).
    fn create_session(
        &self,
        id_hash: &[u8; 32],
        user: UserId,
        csrf: &str,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<()>> + Send;
    /// A session by the hash of its id, if it exists.
    fn session(&self, id_hash: &[u8; 32]) -> impl Future<Output = Result<Option<Session>>> + Send;
    /// Marks a session as used now.
    fn touch_session(
        &self,
        id_hash: &[u8; 32],
        now: EpochSeconds,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Ends a session.
    fn delete_session(&self, id_hash: &[u8; 32]) -> impl Future<Output = Result<()>> + Send;
    /// Deletes sessions older than the given times (idle or absolute); returns how many.
    fn prune_sessions(
        &self,
        idle_before: EpochSeconds,
        created_before: EpochSeconds,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Remembers a generated, unsaved bearer token for a session (replacing any other).
    fn set_pending_token(
        &self,
        id_hash: &[u8; 32],
        pending: &PendingToken,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Takes (and forgets) a session's pending token.
    fn take_pending_token(
        &self,
        id_hash: &[u8; 32],
    ) -> impl Future<Output = Result<Option<PendingToken>>> + Send;
    /// Starts a task that calls `on_change` whenever another process announces a change,
    /// and `on_lost` when announcements may have been missed (the listening connection
    /// dropped and came back). Backends without announcements (SQLite: the followers
    /// poll) return `None`.
    fn watch_changes(
        &self,
        on_change: Arc<dyn Fn() + Send + Sync>,
        on_lost: Arc<dyn Fn() + Send + Sync>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let _ = (on_change, on_lost, stop);
        None
    }
    /// Whether the store takes writes now: `Ok`, or [`StoreError::Degraded`] with the
    /// reason. Cheap: a store not known to be faulty is checked without writing
    /// (SQLite: that its file is still the one opened, and writable); a faulty one is
    /// probed with a one-row write at most once a second.
    fn writable(&self) -> impl Future<Output = Result<()>> + Send;
    /// Re-seals every LMv1 access key under `new` and replaces the check value, in one
    /// transaction. Returns how many keys were re-sealed. Processes that opened the
    /// store with the old key must be restarted with the new one.
    fn rotate_master_key(&self, new: &MasterKey) -> impl Future<Output = Result<usize>> + Send;

    /// Stores a metrics payload's elements in one transaction, by the token owner
    /// `by`: for each element, the id of its resource, or `None` when the resource
    /// does not exist and `create` is false (nothing of that element is stored).
    /// `forward`, given which elements were stored, makes the export to queue in the
    /// same transaction (none when it returns `None`).
    fn ingest_metrics(
        &self,
        by: UserId,
        elements: &[data::MetricElement],
        create: bool,
        now: EpochSeconds,
        forward: Option<&data::MakeOutgoing<'_>>,
    ) -> impl Future<Output = Result<Vec<Option<i64>>>> + Send;
    /// Replaces or merges a resource's or an instance's properties; the resource's
    /// id, or `None` when no resource has those ids.
    fn update_properties(
        &self,
        update: &data::PropertyUpdate,
        now: EpochSeconds,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// Stores log lines in one transaction, each with the resource it names if that
    /// exists.
    /// `forward` is queued in the outbox in the same transaction.
    fn ingest_logs(
        &self,
        by: UserId,
        logs: &[data::LogInput],
        forward: Option<&data::Outgoing>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Resources (created with `owner`'s tokens, when given), newest first, and how
    /// many there are.
    fn data_resources(
        &self,
        owner: Option<UserId>,
        limit: i64,
        offset: i64,
    ) -> impl Future<Output = Result<(Vec<data::DataResource>, i64)>> + Send;
    /// One resource with its instances and datapoints (`NotFound` when it is not
    /// `owner`'s, when given).
    fn data_resource(
        &self,
        owner: Option<UserId>,
        id: i64,
    ) -> impl Future<Output = Result<data::DataResource>> + Send;
    /// A datapoint's values in a time range, oldest first (`NotFound` when its
    /// resource is not `owner`'s, when given).
    fn data_series(
        &self,
        owner: Option<UserId>,
        datapoint: i64,
        range: data::TimeRange,
    ) -> impl Future<Output = Result<Vec<(i64, f64)>>> + Send;
    /// Log lines, newest first.
    fn data_logs(
        &self,
        query: &data::LogQuery,
    ) -> impl Future<Output = Result<Vec<data::DataLog>>> + Send;
    /// Stores spans in one transaction (a span sent again replaces the first).
    /// `forward` is queued in the outbox in the same transaction.
    fn ingest_spans(
        &self,
        by: UserId,
        spans: &[data::SpanInput],
        forward: Option<&data::Outgoing>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Spans: one trace's oldest first, otherwise newest first.
    fn data_spans(
        &self,
        query: &data::SpanQuery,
    ) -> impl Future<Output = Result<Vec<data::DataSpan>>> + Send;
    /// Deletes values, log lines, spans and outbox entries from before `before_ms`;
    /// returns how many rows of data, and how many outbox entries.
    fn prune_data(&self, before_ms: i64) -> impl Future<Output = Result<(u64, u64)>> + Send;
    /// Claims up to `limit` outbox entries due at `now_ms`, oldest first, for
    /// `lease_ms`: until then no other node (or later claim) takes them. An entry the
    /// claimer neither sends nor reschedules is due again when the lease ends.
    fn outbox_claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<data::Queued>>> + Send;
    /// Deletes entries that were delivered (or that never will be), in one
    /// transaction.
    fn outbox_done(&self, ids: &[i64]) -> impl Future<Output = Result<()>> + Send;
    /// Makes entries due again at `due_ms`, counting a failed attempt for `failed`.
    fn outbox_retry(
        &self,
        ids: &[i64],
        failed: Option<i64>,
        due_ms: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// How many entries wait, and since when.
    fn outbox_state(&self) -> impl Future<Output = Result<data::OutboxState>> + Send;
    /// Makes every entry due at `now_ms`: for a sender that knows it is the only one
    /// (SQLite, one server a file), so that what a killed process had claimed is sent
    /// at once instead of when its lease ends.
    fn outbox_release(&self, now_ms: i64) -> impl Future<Output = Result<()>> + Send;
}
