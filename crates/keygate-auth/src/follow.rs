//! Keeping the index current: replaying the store's change log.
//!
//! The same replay serves every source of change. A mutation made through this
//! process calls [`Verifier::catch_up`] before its response is sent (read-your-writes);
//! a background task calls it every poll interval to pick up changes made by the
//! admin CLI or other nodes. Each entry names what changed; the follower re-reads
//! that thing's current state, so applying an entry twice or late is harmless.

use std::sync::atomic::Ordering;
use std::time::Duration;

use keygate_core::model::ApiToken;
use keygate_store::{Change, Entity, Store};

use crate::error::AuthError;
use crate::feed::Update;
use crate::verifier::Verifier;

/// Entries read per store round trip.
const BATCH: i64 = 500;

impl Verifier {
    /// Applies every change-log entry not yet applied. Returns how many it applied.
    pub async fn catch_up<S: Store>(&self, store: &S) -> Result<usize, AuthError> {
        let mut applied = self.inner.applied.lock().await;
        let mut count = 0;
        loop {
            let changes = store.changes_since(*applied, BATCH).await?;
            let Some(last) = changes.last().map(|c| c.seq) else {
                break;
            };
            // A gap after our position may be entries pruned before we read them (or,
            // on PostgreSQL, sequence values of rolled-back writes). If the floor says
            // pruned, replaying would miss changes: reload everything instead.
            if changes.first().is_some_and(|c| c.seq != *applied + 1)
                && store.change_floor().await? > *applied
            {
                tracing::info!(
                    node = *applied,
                    "the change log was pruned past this node's position: reloading the index"
                );
                let seq = self.reload(store).await?;
                *applied = seq;
                self.advanced(seq);
                return Ok(count + 1);
            }
            for c in &changes {
                self.apply(store, c).await?;
            }
            count += changes.len();
            *applied = last;
            self.advanced(last);
            if changes.len() < BATCH as usize {
                break;
            }
        }
        Ok(count)
    }

    /// Applies this node's own write, logged at `seq`, from what the write returned
    /// (`update` for the index, `row` for the read view) without reading it back —
    /// when every entry before it is applied already. Returns whether it did; if not,
    /// the caller catches up from the change log as for any change.
    pub async fn apply_own(&self, seq: i64, update: Update, row: ApiToken) -> bool {
        let mut applied = self.inner.applied.lock().await;
        if *applied + 1 != seq {
            return false;
        }
        let id = row.id;
        self.apply_update(update);
        self.inner.view.put_token(id, Some(row));
        *applied = seq;
        self.advanced(seq);
        true
    }

    async fn apply<S: Store>(&self, store: &S, c: &Change) -> Result<(), AuthError> {
        if c.entity == Entity::Token {
            let (update, row) = crate::feed::resolve_token(store, c).await?;
            self.apply_update(update);
            self.inner.view.put_token(c.id, row);
            return Ok(());
        }
        let update = crate::feed::resolve(store, c).await?;
        if let crate::feed::Update::Portal(p) = &update {
            self.inner.view.set_portal(p);
        }
        self.apply_update(update);
        match c.entity {
            Entity::User => self.inner.view.refresh_user(store, c.id).await,
            Entity::Role => self.inner.view.refresh_role(store, c.id).await,
            Entity::Token | Entity::Portal => Ok(()),
        }
    }

    /// Reads everything again: the index, users and roles, and the token rows (which
    /// also ends a first load of the rows still running: it finds them held and
    /// stops). Returns the position to continue the change log from; the caller holds
    /// `applied`.
    async fn reload<S: Store>(&self, store: &S) -> Result<i64, AuthError> {
        self.inner.reloads.fetch_add(1, Ordering::Relaxed);
        let snap = store.snapshot().await?;
        let seq = snap.seq;
        self.inner.view.set_portal(&snap.portal);
        self.install(snap);
        self.inner.view.load(store).await?;
        // Rows read at or after `seq`: entries after it re-read their current state,
        // so applying them again is harmless.
        let (rows, _) = crate::view::ReadView::read_tokens(store).await?;
        self.inner.view.install_tokens(rows);
        Ok(seq)
    }

    /// Reloads the whole index from the store (tokens this node saw deleted stay
    /// deleted), and continues the change log from the snapshot's position.
    pub async fn reconcile<S: Store>(&self, store: &S) -> Result<(), AuthError> {
        let mut applied = self.inner.applied.lock().await;
        let seq = self.reload(store).await?;
        *applied = seq;
        self.advanced(seq);
        Ok(())
    }

    /// Loads every token's row into the read view while the index already serves:
    /// reads them (without holding up the follower), then, holding the follower's
    /// position, re-reads each token the change log named between the read and that
    /// position, and installs the rows. Until it has, token reads go to the store.
    pub async fn load_token_rows<S: Store>(&self, store: &S) -> Result<(), AuthError> {
        let started = keygate_core::clock::Stopwatch::start();
        let (mut rows, mut pos) = crate::view::ReadView::read_tokens(store).await?;
        let applied = self.inner.applied.lock().await;
        if self.inner.view.holds_tokens() {
            // A full reload ran meanwhile and installed newer rows.
            return Ok(());
        }
        while pos < *applied {
            let changes = store.changes_since(pos, BATCH).await?;
            let Some(last) = changes.last().map(|c| c.seq) else {
                break;
            };
            if changes.first().is_some_and(|c| c.seq != pos + 1)
                && store.change_floor().await? > pos
            {
                return Err(AuthError::Overtaken(
                    "the change log was pruned while the token rows loaded",
                ));
            }
            for c in changes
                .iter()
                .filter(|c| c.entity == Entity::Token && c.seq <= *applied)
            {
                rows.put(c.id, crate::feed::resolve_token(store, c).await?.1);
            }
            pos = last;
        }
        let n = rows.len();
        self.inner.view.install_tokens(rows);
        drop(applied);
        tracing::info!(
            tokens = n,
            load_ms = started.elapsed().as_millis() as u64,
            "token rows loaded for management reads"
        );
        Ok(())
    }

    /// One round of following: a full reload if one was asked for or the change log
    /// went backwards (a restored backup), otherwise the entries since the last one.
    /// Success means the index is current.
    pub async fn follow_once<S: Store>(&self, store: &S) -> Result<(), AuthError> {
        // The node's position first, then the store's: every entry the node applied
        // was committed before, so the store's position read after it is at least as
        // far unless the log really went backwards. (Read the other way round, a write
        // this node applied from its own result between the two reads looked like a
        // log going backwards, and cost a full reload.)
        let applied = *self.inner.applied.lock().await;
        let current = store.change_seq().await?;
        if current < applied {
            tracing::warn!(
                store = current,
                node = applied,
                "the change log went backwards (a restored backup?): reloading; tokens deleted since this node started stay refused"
            );
            self.inner.reconcile_needed.store(true, Ordering::SeqCst);
        }
        if self.inner.reconcile_needed.swap(false, Ordering::SeqCst) {
            if let Err(e) = self.reconcile(store).await {
                self.inner.reconcile_needed.store(true, Ordering::SeqCst);
                return Err(e);
            }
            return Ok(());
        }
        if current > applied {
            self.catch_up(store).await?;
        }
        Ok(())
    }

    /// Writes pending usage records in one batch. On failure they are kept for the
    /// next attempt.
    pub async fn flush_usage<S: Store>(&self, store: &S) -> Result<usize, AuthError> {
        let batch = self.inner.usage.take();
        let n = batch.len();
        if n == 0 {
            return Ok(0);
        }
        if let Err(e) = store.record_usage(&batch).await {
            self.inner.usage.restore(batch);
            return Err(e.into());
        }
        self.inner.view.record_usage(&batch);
        Ok(n)
    }

    /// Reads back the last use other nodes recorded since the previous read (with
    /// `window` seconds of overlap for their flush delay and clock skew) into the
    /// token rows. `now` is epoch seconds.
    pub async fn follow_usage<S: Store>(
        &self,
        store: &S,
        now: i64,
        window: i64,
    ) -> Result<usize, AuthError> {
        if !self.inner.view.holds_tokens() {
            return Ok(0);
        }
        let previous = self.inner.usage_followed.swap(now, Ordering::SeqCst);
        let since = previous.min(now).saturating_sub(window);
        let used = store.usage_since(since).await.inspect_err(|_| {
            self.inner.usage_followed.store(previous, Ordering::SeqCst);
        })?;
        self.inner.view.record_usage(&used);
        Ok(used.len())
    }

    /// Runs until `shutdown` fires: follows the change log whenever woken (a change
    /// announcement) and every `poll`, confirming the index current after each
    /// successful round (`clock` gives epoch ms); flushes usage every `flush`, and once
    /// more on the way out.
    pub async fn run_background<S: Store>(
        self,
        store: S,
        poll: Duration,
        flush: Duration,
        clock: std::sync::Arc<dyn Fn() -> i64 + Send + Sync>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        // The token rows load beside the follower, retried every poll until they are in.
        let loader = {
            let (v, store, mut stop) = (self.clone(), store.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    match v.load_token_rows(&store).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not load the token rows; will retry")
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(poll) => {}
                        _ = stop.changed() => break,
                    }
                }
            })
        };
        // Other nodes' usage is read back with an overlap of two flushes (their flush
        // delay) and half a minute (their clocks).
        let window = i64::try_from(flush.as_secs()).unwrap_or(i64::MAX / 4) * 2 + 30;
        let mut poll_tick = tokio::time::interval(poll);
        let mut flush_tick = tokio::time::interval(flush);
        poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = poll_tick.tick() => self.follow_and_confirm(&store, &*clock).await,
                () = self.inner.wake.notified() => self.follow_and_confirm(&store, &*clock).await,
                _ = flush_tick.tick() => {
                    if let Err(e) = self.flush_usage(&store).await {
                        tracing::warn!(error = %e, "could not write token usage; will retry");
                    }
                    if let Err(e) = self.follow_usage(&store, clock() / 1000, window).await {
                        tracing::warn!(error = %e, "could not read other nodes' token usage; will retry");
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        loader.abort();
        match self.flush_usage(&store).await {
            Ok(n) => tracing::debug!(records = n, "flushed token usage on shutdown"),
            Err(e) => tracing::warn!(error = %e, "could not write token usage on shutdown"),
        }
    }

    async fn follow_and_confirm<S: Store>(
        &self,
        store: &S,
        clock: &(dyn Fn() -> i64 + Send + Sync),
    ) {
        match self.follow_once(store).await {
            Ok(()) => self.confirm(clock()),
            Err(e) => tracing::warn!(error = %e, "could not follow the change log"),
        }
    }
}
