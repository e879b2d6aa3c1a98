//! keygate's management path, shared by the REST API, the web UI and the admin CLI:
//! ask the policy, validate, make one store call (one transaction), then bring this
//! node's Verifier up to date before returning — so once a disable or delete has been
//! answered, the very next request with that token is refused. No HTTP here: callers
//! turn [`ManageError`] into their own answers.
//!
//! # Layout
//!
//! - this file — [`Manager`] and the views it returns ([`TokenView`], [`UserView`]).
//! - `error` — [`ManageError`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use keygate_auth::Verifier;
use keygate_auth::feed::Update;
use keygate_auth::throttle::{FailureThrottle, ThrottleConfig};
pub use keygate_auth::view::Page;
use keygate_core::lmv1::{self, AccessKey};
use keygate_core::model::{
    ApiToken, Portal, Privilege, RoleId, TokenId, TokenStatus, TokenType, User, UserId, UserStatus,
};
use keygate_core::policy::{self, Access, Actor};
use keygate_core::token::BearerToken;
use keygate_core::{password, rules, validate};
use keygate_store::{
    AuditAction, AuditEntry, AuditRange, AuditRecord, Logged, NewBearerToken, NewLmv1Token,
    NewUser, PortalPatch, RoleInput, RolePatch, RoleWithCount, Store, StoreError, Suppressed,
    SuppressedWho, TokenKey, TokenPatch, UserPatch,
};

use keygate_core::clock::Clock;

mod error;
pub use error::ManageError;

/// A token as one caller sees it.
#[derive(Debug, Clone)]
pub struct TokenView {
    /// The token.
    pub token: ApiToken,
    /// The owner's username.
    pub owner_name: String,
    /// The owner's role names.
    pub roles: Vec<String>,
    /// What the caller may do to it.
    pub access: Access,
}

/// A user with everything needed to render it.
#[derive(Debug, Clone)]
pub struct UserView {
    /// The user.
    pub user: User,
    /// Roles, at least the user's (to render them as full objects).
    pub roles: Vec<RoleWithCount>,
}

/// A new token's note and initial status.
#[derive(Debug, Clone)]
pub struct TokenInput {
    /// Free text.
    pub note: String,
    /// Enabled unless asked otherwise.
    pub status: TokenStatus,
}

/// Changes to a user as given by a client.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// Store-level changes (password hash filled in from `password`).
    pub patch: UserPatch,
    /// New plain password.
    pub password: Option<String>,
}

/// Business operations over a store, with the local Verifier kept current.
pub struct Manager<S: Store> {
    store: S,
    verifier: Option<Verifier>,
    clock: Clock,
    /// A bucket per principal for refused changes: each one recorded in the audit log
    /// spends from it, and past the burst they are answered 429 and only counted, so
    /// no caller can grow the audit log without bound.
    refusals: Arc<FailureThrottle<i64>>,
}

fn token_missing(owner: UserId, id: TokenId) -> ManageError {
    // One message whether the token is absent or belongs to someone else.
    ManageError::NotFound(format!("API token {id} not found for user {owner}"))
}

fn not_found_as(e: StoreError, owner: UserId, id: TokenId) -> ManageError {
    match e {
        StoreError::NotFound(_) => token_missing(owner, id),
        other => other.into(),
    }
}

fn not_found() -> String {
    "not found".to_owned()
}

fn denied(d: policy::Denied) -> ManageError {
    ManageError::from_denied(d, || "not found".to_owned())
}

/// A change someone tried, for the audit entry written when the policy refuses it.
struct Attempt {
    action: AuditAction,
    target_type: &'static str,
    target_id: Option<i64>,
    target: String,
}

impl Attempt {
    fn new(action: AuditAction, target_type: &'static str, target_id: Option<i64>) -> Self {
        Self {
            action,
            target_type,
            target_id,
            target: String::new(),
        }
    }

    fn named(mut self, target: String) -> Self {
        self.target = target;
        self
    }

    /// The audit entry for this attempt by `actor`, with its outcome.
    fn record(&self, actor: &Actor, at: i64, success: bool, detail: String) -> AuditRecord {
        AuditRecord {
            at,
            user_id: actor.user_id,
            username: actor.username.clone(),
            ip: actor.ip.map(|ip| ip.to_string()),
            action: self.action,
            target_type: self.target_type.to_owned(),
            target_id: self.target_id,
            target: self.target.clone(),
            success,
            detail,
            via: actor.via.clone(),
        }
    }

    /// The action a token patch stands for (its status change first).
    fn token_patch(patch: &TokenPatch, id: TokenId) -> Self {
        let action = match patch.status {
            Some(TokenStatus::Enabled) => AuditAction::TokenEnable,
            Some(TokenStatus::Disabled) => AuditAction::TokenDisable,
            None => AuditAction::TokenNote,
        };
        Self::new(action, "apitoken", Some(id))
    }
}

impl<S: Store> Manager<S> {
    /// A manager over `store`. `verifier` is the node's index to keep current (the
    /// admin CLI has none: the server follows the change log for its writes).
    pub fn new(store: S, verifier: Option<Verifier>) -> Self {
        Self {
            store,
            verifier,
            clock: Clock::System,
            refusals: Arc::new(FailureThrottle::new(ThrottleConfig::default())),
        }
    }

    /// The same manager, recording refused changes per principal at most as `limit`
    /// allows (a burst, then a steady rate).
    #[must_use]
    pub fn with_refusal_limit(mut self, limit: ThrottleConfig) -> Self {
        self.refusals = Arc::new(FailureThrottle::new(limit));
        self
    }

    /// The actor with the token it acts through looked up, so that audit entries name
    /// it (and, for a token someone else created, its creator).
    async fn resolve(&self, actor: &Actor) -> Result<Actor, ManageError> {
        let (Some(id), None) = (actor.token_id, &actor.via) else {
            return Ok(actor.clone());
        };
        let via = match self.read_token(id).await {
            Ok(t) => policy::Via {
                token_id: id,
                token: t.access_id,
                created_by: if t.created_by == actor.username {
                    String::new()
                } else {
                    t.created_by
                },
            },
            // Deleted while the request ran: still named by its id.
            Err(StoreError::NotFound(_)) => policy::Via {
                token_id: id,
                token: String::new(),
                created_by: String::new(),
            },
            Err(e) => return Err(e.into()),
        };
        Ok(Actor {
            via: Some(via),
            ..actor.clone()
        })
    }

    /// Turns a policy decision into a capability or an error; a refusal for want of a
    /// privilege is recorded in the audit log first ([`Manager::refused`]).
    async fn allowed<C>(
        &self,
        actor: &Actor,
        attempt: &Attempt,
        decision: Result<C, policy::Denied>,
        hidden: impl FnOnce() -> String,
    ) -> Result<C, ManageError> {
        match decision {
            Ok(cap) => Ok(cap),
            Err(policy::Denied::Hidden) => {
                Err(ManageError::from_denied(policy::Denied::Hidden, hidden))
            }
            Err(d) => Err(self.refused(actor, attempt, d).await),
        }
    }

    /// A store call's result, with a refusal the store's transaction found (nobody
    /// grants what they do not hold) recorded as [`Manager::allowed`] records one.
    async fn checked<T>(
        &self,
        actor: &Actor,
        attempt: &Attempt,
        r: Result<T, StoreError>,
    ) -> Result<T, ManageError> {
        match r {
            Err(StoreError::Denied(d)) => Err(self.refused(actor, attempt, d).await),
            other => Ok(other?),
        }
    }

    /// Records a refused change in the audit log (outcome failure; nothing changed, so
    /// the entry stands alone, outside any transaction) and answers 403. Each
    /// principal's refusals spend from a bucket: past it they are answered 429 and
    /// only counted, and the next recorded one (or the periodic
    /// [`Manager::record_suppressed`]) says how many there were.
    async fn refused(&self, actor: &Actor, attempt: &Attempt, d: policy::Denied) -> ManageError {
        let now = self.clock.now();
        let earlier = match self
            .refusals
            .take(actor.user_id.unwrap_or(0), self.clock.now_millis())
        {
            Ok(n) => n,
            Err(wait) => {
                return ManageError::TooManyRefusals(
                    format!(
                        "too many refused changes from this user; retry after {} s",
                        wait.0
                    ),
                    wait.0,
                );
            }
        };
        if earlier > 0 {
            self.record_summary(actor.user_id.unwrap_or(0), &actor.username, earlier, now)
                .await;
        }
        let record = attempt.record(actor, now, false, format!("refused: {d}"));
        if let Err(e) = self.store.record_audit(&record).await {
            tracing::warn!(error = %e, "could not record a refused change in the audit log");
        }
        ManageError::from_denied(d, not_found)
    }

    async fn record_summary(&self, user: i64, name: &str, count: u64, now: i64) {
        let s = Suppressed {
            who: SuppressedWho::User {
                id: (user != 0).then_some(user),
                name: name.to_owned(),
            },
            count,
        };
        if let Err(e) = self
            .store
            .record_audit(&AuditRecord::suppressed(&s, now))
            .await
        {
            tracing::warn!(error = %e, "could not record suppressed refusals in the audit log");
        }
    }

    /// Writes one "N more" audit entry for every principal whose refused changes were
    /// over the limit and not yet reported (run every minute).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn record_suppressed(&self) {
        let now = self.clock.now();
        for (user, count) in self.refusals.drain_suppressed() {
            let name = match self.store.user(user).await {
                Ok(u) => u.username,
                Err(_) => format!("user {user}"),
            };
            self.record_summary(user, &name, count, now).await;
        }
    }

    /// The same manager, taking time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Applies committed changes to the local index (and the users and roles kept
    /// with it) before a response goes out; callers that write to the store directly
    /// (the UI's sign-in) call it too.
    pub async fn settle(&self) -> Result<(), ManageError> {
        let Some(v) = &self.verifier else {
            return Ok(());
        };
        let mut last = None;
        for attempt in 0..3u64 {
            match v.catch_up(&self.store).await {
                Ok(_) => {
                    v.confirm(self.clock.now_millis());
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
        }
        if let Some(e) = last {
            tracing::error!(error = %e, "change committed but not yet applied to this node's index");
        }
        Err(ManageError::NotApplied(
            "the change was saved but this node could not apply it yet; retry the request"
                .to_owned(),
        ))
    }

    /// [`Manager::settle`] for a write that logged one entry at `seq`: applied from
    /// what the write returned when nothing came in between (two reads fewer), from
    /// the change log otherwise.
    async fn settle_own(
        &self,
        seq: i64,
        update: Update,
        token: &ApiToken,
    ) -> Result<(), ManageError> {
        if let Some(v) = &self.verifier
            && v.apply_own(seq, update, token.clone()).await
        {
            v.confirm(self.clock.now_millis());
            return Ok(());
        }
        self.settle().await
    }

    async fn role_names(&self) -> Result<HashMap<RoleId, String>, ManageError> {
        Ok(self
            .store
            .roles()
            .await?
            .into_iter()
            .map(|r| (r.role.id, r.role.name))
            .collect())
    }

    async fn views(
        &self,
        actor: &Actor,
        tokens: Vec<ApiToken>,
    ) -> Result<Vec<TokenView>, ManageError> {
        let mut ids: Vec<UserId> = tokens.iter().map(|t| t.user_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let owners = self.owners(&ids).await?;
        Ok(tokens
            .into_iter()
            .map(|t| {
                let (owner_name, roles) = owners.get(&t.user_id).cloned().unwrap_or_default();
                TokenView {
                    owner_name,
                    roles,
                    access: policy::token_access(actor, t.user_id),
                    token: t,
                }
            })
            .collect())
    }

    /// Each of `ids`' username and role names, for token responses (absent: a user
    /// deleted meanwhile).
    async fn owners(
        &self,
        ids: &[UserId],
    ) -> Result<HashMap<UserId, (String, Vec<String>)>, ManageError> {
        if let Some(v) = self.memory() {
            return Ok(ids
                .iter()
                .filter_map(|&id| v.owner(id).map(|o| (id, o)))
                .collect());
        }
        // From the store: just the owners when they are few (one token, one user's
        // list), every user in one query otherwise.
        let mut users: HashMap<UserId, User> = HashMap::with_capacity(ids.len());
        if ids.len() <= FEW_OWNERS {
            for &id in ids {
                match self.store.user(id).await {
                    Ok(u) => {
                        users.insert(u.id, u);
                    }
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        } else {
            users.extend(self.store.users().await?.into_iter().map(|u| (u.id, u)));
        }
        let role_names = self.role_names().await?;
        Ok(users
            .into_values()
            .map(|u| {
                let roles = u
                    .role_ids
                    .iter()
                    .filter_map(|r| role_names.get(r).cloned())
                    .collect();
                (u.id, (u.username, roles))
            })
            .collect())
    }

    /// This node's users and roles in memory, where it keeps them (a server does,
    /// beside its index; the admin CLI reads the store).
    fn memory(&self) -> Option<&keygate_auth::view::ReadView> {
        self.verifier
            .as_ref()
            .map(Verifier::view)
            .filter(|v| v.loaded())
    }

    /// This node's token rows, where it holds them (a server does once they have
    /// loaded after start-up; the admin CLI reads the store).
    fn token_rows(&self) -> Option<&keygate_auth::view::ReadView> {
        self.verifier
            .as_ref()
            .map(Verifier::view)
            .filter(|v| v.holds_tokens())
    }

    /// A token, from memory where this node holds token rows.
    async fn read_token(&self, id: TokenId) -> Result<ApiToken, StoreError> {
        match self.token_rows().and_then(|v| v.token(id)) {
            Some(found) => found.ok_or_else(|| StoreError::no_token(id)),
            None => self.store.token(id).await,
        }
    }

    /// A user, from memory where this node keeps users.
    async fn read_user(&self, id: UserId) -> Result<User, StoreError> {
        match self.memory() {
            Some(v) => v.user(id).ok_or_else(|| StoreError::no_user(id)),
            None => self.store.user(id).await,
        }
    }

    /// Every user, from memory where this node keeps users.
    async fn read_users(&self) -> Result<Vec<User>, StoreError> {
        match self.memory().and_then(|v| v.users()) {
            Some(users) => Ok(users),
            None => self.store.users().await,
        }
    }

    /// Every role, from memory where this node keeps roles.
    async fn read_roles(&self) -> Result<Vec<RoleWithCount>, StoreError> {
        match self.memory().and_then(|v| v.roles()) {
            Some(roles) => Ok(roles),
            None => self.store.roles().await,
        }
    }

    /// The roles `user` holds, with their user counts: from memory, just those; from
    /// the store, every role in one query.
    async fn roles_of(&self, user: &User) -> Result<Vec<RoleWithCount>, StoreError> {
        match self.memory() {
            Some(v) => Ok(user.role_ids.iter().filter_map(|&id| v.role(id)).collect()),
            None => self.store.roles().await,
        }
    }

    /// A role, from memory where this node keeps roles.
    async fn read_role(&self, id: RoleId) -> Result<RoleWithCount, StoreError> {
        match self.memory() {
            Some(v) => v.role(id).ok_or_else(|| StoreError::no_role(id)),
            None => self.store.role(id).await,
        }
    }

    async fn view(&self, actor: &Actor, token: ApiToken) -> Result<TokenView, ManageError> {
        self.views(actor, vec![token])
            .await?
            .pop()
            .ok_or_else(|| ManageError::Internal("token view vanished".to_owned()))
    }

    // ---- tokens ----

    /// Creates a bearer token for `owner`. Returns the view and the secret, which
    /// exists in plain text only in this return value.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn create_bearer_token(
        &self,
        actor: &Actor,
        owner: UserId,
        input: TokenInput,
    ) -> Result<(TokenView, BearerToken), ManageError> {
        let secret = BearerToken::generate()?;
        let view = self
            .create_bearer_from(actor, owner, input, secret.digest(), secret.masked())
            .await?;
        Ok((view, secret))
    }

    /// Creates a bearer token from a token generated earlier (the UI's Add page shows
    /// it before Save); only its digest and masked form are needed.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn create_bearer_from(
        &self,
        actor: &Actor,
        owner: UserId,
        input: TokenInput,
        digest: keygate_core::token::TokenDigest,
        access_id: String,
    ) -> Result<TokenView, ManageError> {
        validate::note("note", &input.note)?;
        let actor = &self.resolve(actor).await?;
        let attempt = Attempt::new(AuditAction::TokenCreate, "apitoken", None)
            .named(format!("bearer token of user {owner}"));
        let cap = self
            .allowed(
                actor,
                &attempt,
                policy::token_write(actor, owner),
                not_found,
            )
            .await?;
        let new = NewBearerToken {
            digest,
            access_id,
            note: input.note,
            status: input.status,
            created_by: actor.username.clone(),
        };
        let r = self
            .store
            .create_bearer_token(&cap, &new, self.clock.now())
            .await;
        let Logged { value: token, seq } = self.checked(actor, &attempt, r).await?;
        let key = TokenKey {
            id: token.id,
            user_id: token.user_id,
            digest,
            enabled: token.status == TokenStatus::Enabled,
        };
        self.settle_own(seq, Update::Bearer(key), &token).await?;
        self.view(actor, token).await
    }

    /// Creates an LMv1 token for `owner`. Returns the view (its `accessId` is the
    /// access id) and the access key, which exists in plain text only in this value.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn create_lmv1_token(
        &self,
        actor: &Actor,
        owner: UserId,
        input: TokenInput,
    ) -> Result<(TokenView, AccessKey), ManageError> {
        validate::note("note", &input.note)?;
        let actor = &self.resolve(actor).await?;
        let attempt = Attempt::new(AuditAction::TokenCreate, "apitoken", None)
            .named(format!("lmv1 token of user {owner}"));
        let cap = self
            .allowed(
                actor,
                &attempt,
                policy::token_write(actor, owner),
                not_found,
            )
            .await?;
        let key = AccessKey::generate()?;
        let new = NewLmv1Token {
            access_id: lmv1::generate_access_id()?,
            key: key.clone(),
            note: input.note,
            status: input.status,
            created_by: actor.username.clone(),
        };
        let r = self
            .store
            .create_lmv1_token(&cap, &new, self.clock.now())
            .await;
        let token = self.checked(actor, &attempt, r).await?;
        self.settle().await?;
        Ok((self.view(actor, token).await?, key))
    }

    /// One token, addressed under its owner.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn token(
        &self,
        actor: &Actor,
        owner: UserId,
        id: TokenId,
    ) -> Result<TokenView, ManageError> {
        if policy::token_access(actor, owner) == Access::None {
            return Err(token_missing(owner, id));
        }
        let token = self
            .read_token(id)
            .await
            .map_err(|e| not_found_as(e, owner, id))?;
        if token.user_id != owner {
            return Err(token_missing(owner, id));
        }
        self.view(actor, token).await
    }

    /// The token that authenticated `actor`'s request, as its own caller sees it.
    /// Everyone may read the token they call with; a request without one (a UI
    /// session) gets 404.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn own_token(&self, actor: &Actor) -> Result<TokenView, ManageError> {
        let missing =
            || ManageError::NotFound("this request was not made with an API token".to_owned());
        let id = actor.token_id.ok_or_else(missing)?;
        let token = self.read_token(id).await.map_err(|e| match e {
            StoreError::NotFound(_) => missing(),
            other => other.into(),
        })?;
        self.view(actor, token).await
    }

    /// The bearer token with this value, for an administrator holding a token found
    /// where it should not be. Every lookup is audited, found or not, and takes the
    /// same steps either way (one indexed read by digest, one audit entry), so the
    /// answer time does not say more than the answer.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn token_by_value(
        &self,
        actor: &Actor,
        value: &BearerToken,
    ) -> Result<TokenView, ManageError> {
        let actor = &self.resolve(actor).await?;
        let attempt =
            Attempt::new(AuditAction::TokenLookup, "apitoken", None).named(value.masked());
        self.allowed(actor, &attempt, policy::look_up_tokens(actor), not_found)
            .await?;
        let found = self.store.token_by_hash(&value.digest().0).await?;
        let detail = match &found {
            Some(t) => format!("found token {} of user {}", t.id, t.user_id),
            None => "no token has this value".to_owned(),
        };
        let record = Attempt {
            target_id: found.as_ref().map(|t| t.id),
            ..attempt
        }
        .record(actor, self.clock.now(), true, detail);
        // An incident lookup that cannot be recorded is not answered.
        self.store.record_audit(&record).await?;
        match found {
            Some(t) => self.view(actor, t).await,
            None => {
                // The reads a found token's view makes (its owner, the role names),
                // made for the caller instead, so a miss takes as long as a hit.
                if let Some(me) = actor.user_id {
                    let _ = self.owners(&[me]).await;
                }
                Err(ManageError::NotFound(
                    "no API token has this value (it may have been deleted)".to_owned(),
                ))
            }
        }
    }

    /// The owner of a token, for callers that address tokens by id alone (the admin
    /// CLI). A token the caller may not see is reported as missing.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn token_owner(&self, actor: &Actor, id: TokenId) -> Result<UserId, ManageError> {
        let missing = || ManageError::NotFound(format!("API token {id} not found"));
        let token = self.read_token(id).await.map_err(|e| match e {
            StoreError::NotFound(_) => missing(),
            other => other.into(),
        })?;
        if policy::token_access(actor, token.user_id) == Access::None {
            return Err(missing());
        }
        Ok(token.user_id)
    }

    /// Which tokens a list of one owner's (`Some`) or everyone's (`None`) covers for
    /// this caller: `None` for every token.
    async fn list_scope(
        &self,
        actor: &Actor,
        owner: Option<UserId>,
    ) -> Result<Option<UserId>, ManageError> {
        Ok(match owner {
            Some(o) => {
                policy::read_tokens_of(actor, o).map_err(denied)?;
                self.read_user(o).await?;
                Some(o)
            }
            None => policy::token_list_scope(actor).map_err(denied)?,
        })
    }

    /// Tokens of one owner (`Some`) or of everyone the caller may see (`None`).
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn tokens(
        &self,
        actor: &Actor,
        owner: Option<UserId>,
        kind: Option<TokenType>,
    ) -> Result<Vec<TokenView>, ManageError> {
        let scope = self.list_scope(actor, owner).await?;
        let tokens = match self.token_rows().and_then(|v| v.tokens(scope, kind)) {
            Some(tokens) => tokens,
            None => self.stored_tokens(scope, kind).await?,
        };
        self.views(actor, tokens).await
    }

    /// The tokens in scope read from the store (where no rows are held), of one type
    /// or both, in id order.
    async fn stored_tokens(
        &self,
        scope: Option<UserId>,
        kind: Option<TokenType>,
    ) -> Result<Vec<ApiToken>, StoreError> {
        let mut tokens = self.store.tokens(scope).await?;
        tokens.retain(|t| kind.is_none_or(|k| t.token_type == k));
        Ok(tokens)
    }

    /// One page of [`Manager::tokens`] in id order, and how many tokens the list has:
    /// from memory, only the page's rows are read.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn token_page(
        &self,
        actor: &Actor,
        owner: Option<UserId>,
        page: &Page,
    ) -> Result<(usize, Vec<TokenView>), ManageError> {
        let scope = self.list_scope(actor, owner).await?;
        let (total, tokens) = match self.token_rows().and_then(|v| v.token_page(scope, page)) {
            Some(p) => p,
            None => {
                let mut tokens = self.stored_tokens(scope, page.kind).await?;
                if page.descending {
                    tokens.reverse();
                }
                let total = tokens.len();
                let tokens = tokens.into_iter().skip(page.offset).take(page.size);
                (total, tokens.collect())
            }
        };
        Ok((total, self.views(actor, tokens).await?))
    }

    /// Changes a token's note and/or status.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn update_token(
        &self,
        actor: &Actor,
        owner: UserId,
        id: TokenId,
        patch: TokenPatch,
    ) -> Result<TokenView, ManageError> {
        if let Some(n) = &patch.note {
            validate::note("note", n)?;
        }
        let actor = &self.resolve(actor).await?;
        let cap = self
            .allowed(
                actor,
                &Attempt::token_patch(&patch, id),
                policy::token_write_existing(actor, owner),
                || token_missing(owner, id).message(),
            )
            .await?;
        let token = self
            .store
            .update_token(&cap, id, &patch, self.clock.now())
            .await
            .map_err(|e| not_found_as(e, owner, id))?;
        self.settle().await?;
        self.view(actor, token).await
    }

    /// Deletes a token for good.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn delete_token(
        &self,
        actor: &Actor,
        owner: UserId,
        id: TokenId,
    ) -> Result<(), ManageError> {
        let actor = &self.resolve(actor).await?;
        let cap = self
            .allowed(
                actor,
                &Attempt::new(AuditAction::TokenDelete, "apitoken", Some(id)),
                policy::token_write_existing(actor, owner),
                || token_missing(owner, id).message(),
            )
            .await?;
        self.store
            .delete_token(&cap, id, self.clock.now())
            .await
            .map_err(|e| not_found_as(e, owner, id))?;
        self.settle().await
    }

    // ---- users ----

    /// All users.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn users(
        &self,
        actor: &Actor,
    ) -> Result<(Vec<User>, Vec<RoleWithCount>), ManageError> {
        policy::read_users(actor, None).map_err(denied)?;
        Ok((self.read_users().await?, self.read_roles().await?))
    }

    /// One user (everyone may read their own).
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn user(&self, actor: &Actor, id: UserId) -> Result<UserView, ManageError> {
        policy::read_users(actor, Some(id)).map_err(denied)?;
        let user = self.read_user(id).await?;
        Ok(UserView {
            roles: self.roles_of(&user).await?,
            user,
        })
    }

    /// Finds a user by username (admin CLI).
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn user_named(&self, actor: &Actor, username: &str) -> Result<User, ManageError> {
        policy::read_users(actor, None).map_err(denied)?;
        Ok(self.store.user_by_username(username).await?)
    }

    fn check_roles(ids: &[RoleId]) -> Result<(), ManageError> {
        if ids.is_empty() {
            return Err(ManageError::Invalid(
                "roles: a user needs at least one role".to_owned(),
            ));
        }
        if ids.len() > validate::MAX_ROLES {
            return Err(ManageError::Invalid(format!(
                "roles: at most {} roles",
                validate::MAX_ROLES
            )));
        }
        Ok(())
    }

    /// Creates a user; a plain `password` is checked and hashed here, never stored.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn create_user(
        &self,
        actor: &Actor,
        mut new: NewUser,
        password: Option<String>,
    ) -> Result<UserView, ManageError> {
        // Checked before anything is recorded, so a refused attempt is stored only with
        // input that passed validation.
        new.username = validate::username(&new.username)?;
        validate::email(&new.email)?;
        validate::name("firstName", &new.first_name, false)?;
        validate::name("lastName", &new.last_name, false)?;
        validate::note("note", &new.note)?;
        Self::check_roles(&new.role_ids)?;
        if let Some(p) = &password {
            validate::password(p)?;
        }
        let actor = &self.resolve(actor).await?;
        let attempt =
            Attempt::new(AuditAction::UserCreate, "user", None).named(new.username.clone());
        let cap = self
            .allowed(actor, &attempt, policy::user_admin(actor), not_found)
            .await?;
        let password_hash = match &password {
            Some(p) => Some(password::hash(p)?),
            None => None,
        };
        let r = self
            .store
            .create_user(
                &cap,
                &new,
                password_hash.as_deref(),
                &actor.username,
                self.clock.now(),
            )
            .await;
        let user = self.checked(actor, &attempt, r).await?;
        self.settle().await?;
        Ok(UserView {
            roles: self.roles_of(&user).await?,
            user,
        })
    }

    /// Changes a user. A role or status change applies to the user's next request.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: UserId,
        mut changes: UserChanges,
    ) -> Result<UserView, ManageError> {
        if let Some(u) = &changes.patch.username {
            changes.patch.username = Some(validate::username(u)?);
        }
        let p = &changes.patch;
        if let Some(e) = &p.email {
            validate::email(e)?;
        }
        if let Some(n) = &p.first_name {
            validate::name("firstName", n, false)?;
        }
        if let Some(n) = &p.last_name {
            validate::name("lastName", n, false)?;
        }
        if let Some(n) = &p.note {
            validate::note("note", n)?;
        }
        if let Some(r) = &p.role_ids {
            Self::check_roles(r)?;
        }
        if let Some(pw) = &changes.password {
            validate::password(pw)?;
        }
        let actor = &self.resolve(actor).await?;
        let attempt = Attempt::new(AuditAction::UserUpdate, "user", Some(id));
        let cap = self
            .allowed(actor, &attempt, policy::user_admin(actor), not_found)
            .await?;
        if actor.user_id == Some(id) {
            // The current roles matter only when roles are sent.
            let current = match changes.patch.role_ids {
                Some(_) => self.store.user(id).await?.role_ids,
                None => Vec::new(),
            };
            rules::own_user_change(
                &current,
                changes.patch.role_ids.as_deref(),
                changes.patch.status == Some(UserStatus::Suspended),
            )?;
        }
        if let Some(pw) = &changes.password {
            changes.patch.password_hash = Some(password::hash(pw)?);
        }
        let r = self
            .store
            .update_user(&cap, id, &changes.patch, self.clock.now())
            .await;
        let user = self.checked(actor, &attempt, r).await?;
        self.settle().await?;
        Ok(UserView {
            roles: self.roles_of(&user).await?,
            user,
        })
    }

    /// Deletes a user and every token it owns.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn delete_user(&self, actor: &Actor, id: UserId) -> Result<(), ManageError> {
        rules::may_delete_user(actor.user_id, id)?;
        let actor = &self.resolve(actor).await?;
        let attempt = Attempt::new(AuditAction::UserDelete, "user", Some(id));
        let cap = self
            .allowed(actor, &attempt, policy::user_admin(actor), not_found)
            .await?;
        let r = self.store.delete_user(&cap, id, self.clock.now()).await;
        self.checked(actor, &attempt, r).await?;
        self.settle().await
    }

    // ---- roles ----

    /// All roles.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn roles(&self, actor: &Actor) -> Result<Vec<RoleWithCount>, ManageError> {
        policy::read_users(actor, None).map_err(denied)?;
        Ok(self.read_roles().await?)
    }

    /// One role.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn role(&self, actor: &Actor, id: RoleId) -> Result<RoleWithCount, ManageError> {
        policy::read_users(actor, None).map_err(denied)?;
        Ok(self.read_role(id).await?)
    }

    /// Finds a role by name (admin CLI).
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn role_named(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<RoleWithCount, ManageError> {
        policy::read_users(actor, None).map_err(denied)?;
        Ok(self.store.role_by_name(name).await?)
    }

    fn check_privileges(ps: &[Privilege]) -> Result<(), ManageError> {
        if ps.len() > validate::MAX_PRIVILEGES {
            return Err(ManageError::Invalid(format!(
                "privileges: at most {} per role",
                validate::MAX_PRIVILEGES
            )));
        }
        for p in ps {
            validate::privilege_part("privileges.objectType", &p.object_type)?;
            validate::privilege_part("privileges.objectId", &p.object_id)?;
            validate::privilege_part("privileges.operation", &p.operation)?;
        }
        Ok(())
    }

    /// Creates a role.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn create_role(
        &self,
        actor: &Actor,
        input: RoleInput,
    ) -> Result<RoleWithCount, ManageError> {
        validate::name("name", &input.name, true)?;
        validate::description(&input.description)?;
        Self::check_privileges(&input.privileges)?;
        let actor = &self.resolve(actor).await?;
        let attempt = Attempt::new(AuditAction::RoleCreate, "role", None).named(input.name.clone());
        let cap = self
            .allowed(actor, &attempt, policy::user_admin(actor), not_found)
            .await?;
        let r = self.store.create_role(&cap, &input, self.clock.now()).await;
        let r = self.checked(actor, &attempt, r).await?;
        self.settle().await?;
        Ok(r)
    }

    /// Changes a role; its holders' next requests use the new privileges.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn update_role(
        &self,
        actor: &Actor,
        id: RoleId,
        patch: RolePatch,
    ) -> Result<RoleWithCount, ManageError> {
        if let Some(n) = &patch.name {
            validate::name("name", n, true)?;
        }
        if let Some(d) = &patch.description {
            validate::description(d)?;
        }
        if let Some(p) = &patch.privileges {
            Self::check_privileges(p)?;
        }
        let actor = &self.resolve(actor).await?;
        let attempt = Attempt::new(AuditAction::RoleUpdate, "role", Some(id));
        let cap = self
            .allowed(actor, &attempt, policy::user_admin(actor), not_found)
            .await?;
        self.refuse_builtin_administrator(id).await?;
        let r = self
            .store
            .update_role(&cap, id, &patch, self.clock.now())
            .await;
        let r = self.checked(actor, &attempt, r).await?;
        self.settle().await?;
        Ok(r)
    }

    /// The built-in administrator role is fixed: changing or deleting it could leave
    /// no one able to manage users, roles and tokens.
    async fn refuse_builtin_administrator(&self, id: RoleId) -> Result<(), ManageError> {
        Ok(rules::role_may_change(
            &self.store.role(id).await?.role.name,
        )?)
    }

    /// Deletes a role no user holds.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn delete_role(&self, actor: &Actor, id: RoleId) -> Result<(), ManageError> {
        let actor = &self.resolve(actor).await?;
        let attempt = Attempt::new(AuditAction::RoleDelete, "role", Some(id));
        let cap = self
            .allowed(actor, &attempt, policy::user_admin(actor), not_found)
            .await?;
        self.refuse_builtin_administrator(id).await?;
        let r = self.store.delete_role(&cap, id, self.clock.now()).await;
        self.checked(actor, &attempt, r).await?;
        self.settle().await
    }

    // ---- portal ----

    /// Portal settings (readable by every authenticated caller: the UI needs to know
    /// whether bearer tokens can be added).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn portal(&self) -> Result<Portal, ManageError> {
        // From memory where this node keeps the settings (a server does, beside its
        // index; the admin CLI reads the store).
        let held = self.verifier.as_ref().and_then(|v| v.view().portal());
        match held {
            Some(p) => Ok(p),
            None => Ok(self.store.portal().await?),
        }
    }

    /// Changes portal settings.
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn update_portal(
        &self,
        actor: &Actor,
        patch: PortalPatch,
    ) -> Result<Portal, ManageError> {
        if let Some(n) = &patch.company_name {
            validate::name("companyName", n, true)?;
        }
        if let Some(n) = patch.max_tokens_per_user {
            validate::max_tokens_per_user(n)?;
        }
        if let Some(n) = patch.lmv1_clock_skew_seconds {
            validate::clock_skew(n)?;
        }
        let actor = &self.resolve(actor).await?;
        let attempt =
            Attempt::new(AuditAction::PortalUpdate, "portal", None).named("portal".to_owned());
        let cap = self
            .allowed(actor, &attempt, policy::portal_admin(actor), not_found)
            .await?;
        let p = self
            .store
            .update_portal(&cap, &patch, self.clock.now())
            .await?;
        self.settle().await?;
        Ok(p)
    }

    // ---- audit log ----

    /// Audit entries in a time window, newest first: at most [`AUDIT_SCAN_LIMIT`].
    #[tracing::instrument(level = "debug", skip_all, fields(actor = actor.user_id))]
    pub async fn audit_log(
        &self,
        actor: &Actor,
        range: AuditRange,
    ) -> Result<Vec<AuditEntry>, ManageError> {
        policy::read_audit(actor).map_err(denied)?;
        Ok(self.store.audit_log(&range).await?)
    }
}

/// Up to this many distinct owners, token responses read their owners one by one
/// rather than every user.
const FEW_OWNERS: usize = 8;

/// Most audit entries one list request reads (the newest ones in its time window);
/// narrower `happenedOn` bounds reach further back.
pub const AUDIT_SCAN_LIMIT: i64 = 100_000;
