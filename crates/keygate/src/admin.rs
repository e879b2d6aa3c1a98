//! The admin CLI: works on the database directly, through the same management path
//! (`keygate-manage`) and rules as the API. A running server on the same SQLite file
//! applies each change before the command returns (see `keygate_server::wake`).

use anyhow::Result;
use keygate_core::model::{TokenStatus, UserStatus};
use keygate_core::policy::Actor;
use keygate_manage::{ManageError, Manager, TokenInput, UserChanges};
use keygate_store::{NewUser, PortalPatch, Store, TokenPatch};

use crate::cli::{PortalCommand, TokenCommand, TokenKind, UserCommand};

/// A refusal in the words the API gives it (`ManageError` words every failure once).
fn api<T>(r: Result<T, ManageError>) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("{}", e.message()))
}

/// Runs `keygate user ...`.
pub async fn user<S: Store>(m: &Manager<S>, cmd: UserCommand) -> Result<()> {
    let actor = Actor::local_admin();
    match cmd {
        UserCommand::Create {
            username,
            email,
            roles,
            api_only,
            note,
        } => {
            let mut role_ids = Vec::new();
            for name in &roles {
                role_ids.push(api(m.role_named(&actor, name).await)?.role.id);
            }
            let new = NewUser {
                username,
                email,
                first_name: String::new(),
                last_name: String::new(),
                role_ids,
                status: UserStatus::Active,
                api_only,
                note,
            };
            let v = api(m.create_user(&actor, new, None).await)?;
            println!("{}", v.user.id);
        }
        UserCommand::List => {
            let (users, roles) = api(m.users(&actor).await)?;
            println!(
                "{:<6} {:<24} {:<32} {:<10} ROLES",
                "ID", "USERNAME", "EMAIL", "STATUS"
            );
            for u in users {
                let names: Vec<&str> = u
                    .role_ids
                    .iter()
                    .filter_map(|id| roles.iter().find(|r| r.role.id == *id))
                    .map(|r| r.role.name.as_str())
                    .collect();
                println!(
                    "{:<6} {:<24} {:<32} {:<10} {}",
                    u.id,
                    u.username,
                    u.email,
                    u.status.as_str(),
                    names.join(",")
                );
            }
        }
        UserCommand::SetPassword { username } => {
            let user = api(m.user_named(&actor, &username).await)?;
            let password = crate::client::read_secret(&format!(
                "New password for {username} (input hidden): "
            ))?;
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                let again = crate::client::read_secret("Again, to confirm: ")?;
                if again != password {
                    anyhow::bail!("the two passwords differ; nothing was changed");
                }
            }
            let changes = UserChanges {
                password: Some(password),
                ..Default::default()
            };
            api(m.update_user(&actor, user.id, changes).await)?;
            eprintln!(
                "password changed for {username}; their web UI sessions have ended. A running server uses it at once."
            );
        }
    }
    Ok(())
}

/// Runs `keygate token ...`.
pub async fn token<S: Store>(m: &Manager<S>, cmd: TokenCommand) -> Result<()> {
    let actor = Actor::local_admin();
    match cmd {
        TokenCommand::Create { user, kind, note } => {
            let owner = api(m.user_named(&actor, &user).await)?;
            let input = TokenInput {
                note,
                status: TokenStatus::Enabled,
            };
            // stdout carries the secret alone, so `$(keygate token create ...)` works.
            match kind {
                TokenKind::Bearer => {
                    let (_, secret) = api(m.create_bearer_token(&actor, owner.id, input).await)?;
                    println!("{}", secret.expose_secret());
                }
                TokenKind::Lmv1 => {
                    let (view, key) = api(m.create_lmv1_token(&actor, owner.id, input).await)?;
                    println!("{} {}", view.token.access_id, key.expose_secret());
                }
            }
        }
        TokenCommand::List { user } => {
            let owner = match user {
                Some(u) => Some(api(m.user_named(&actor, &u).await)?.id),
                None => None,
            };
            let views = api(m.tokens(&actor, owner, None).await)?;
            println!(
                "{:<6} {:<16} {:<7} {:<50} {:<9} {:<23} NOTE",
                "ID", "USER", "TYPE", "ACCESS ID", "STATUS", "LAST USED"
            );
            for v in views {
                let t = &v.token;
                let status = if t.status == TokenStatus::Enabled {
                    "enabled"
                } else {
                    "disabled"
                };
                let last_used = if t.last_used_on > 0 {
                    keygate_core::date::utc(t.last_used_on)
                } else {
                    "never".to_owned()
                };
                println!(
                    "{:<6} {:<16} {:<7} {:<50} {:<9} {:<23} {}",
                    t.id,
                    v.owner_name,
                    t.token_type.as_str(),
                    t.access_id,
                    status,
                    last_used,
                    t.note.escape_debug()
                );
            }
        }
        TokenCommand::Disable { id } => set_status(m, &actor, id, TokenStatus::Disabled).await?,
        TokenCommand::Enable { id } => set_status(m, &actor, id, TokenStatus::Enabled).await?,
        TokenCommand::Check => anyhow::bail!("token check runs without a database"),
        TokenCommand::Delete { id } => {
            let owner = api(m.token_owner(&actor, id).await)?;
            api(m.delete_token(&actor, owner, id).await)?;
            eprintln!("token {id} deleted");
        }
    }
    Ok(())
}

async fn set_status<S: Store>(
    m: &Manager<S>,
    actor: &Actor,
    id: i64,
    status: TokenStatus,
) -> Result<()> {
    let owner = api(m.token_owner(actor, id).await)?;
    let patch = TokenPatch {
        note: None,
        status: Some(status),
    };
    api(m.update_token(actor, owner, id, patch).await)?;
    eprintln!(
        "token {id} {}",
        if status == TokenStatus::Enabled {
            "enabled"
        } else {
            "disabled"
        }
    );
    Ok(())
}

/// Runs `keygate portal ...`.
pub async fn portal<S: Store>(m: &Manager<S>, cmd: PortalCommand) -> Result<()> {
    let actor = Actor::local_admin();
    let p = match cmd {
        PortalCommand::Show => api(m.portal().await)?,
        PortalCommand::Set {
            traces_enabled,
            max_tokens_per_user,
            company_name,
            lmv1_clock_skew_seconds,
            lmv1_replay_protection,
        } => {
            let patch = PortalPatch {
                company_name,
                traces_enabled,
                max_tokens_per_user,
                lmv1_clock_skew_seconds,
                lmv1_replay_protection,
            };
            api(m.update_portal(&actor, patch).await)?
        }
    };
    println!("companyName: {}", p.company_name);
    println!("tracesEnabled: {}", p.traces_enabled);
    println!("maxTokensPerUser: {}", p.max_tokens_per_user);
    println!("lmv1ClockSkewSeconds: {}", p.lmv1_clock_skew_seconds);
    println!("lmv1ReplayProtection: {}", p.lmv1_replay_protection);
    Ok(())
}

/// Bootstraps an empty store, showing the admin password once.
pub async fn bootstrap<S: Store>(store: &S) -> Result<()> {
    let password = keygate_core::password::generate()?;
    let hash = keygate_core::password::hash(&password)?;
    let now = keygate_core::clock::Clock::System.now();
    if store.bootstrap(&hash, now).await? {
        eprintln!(
            "\n================================================================\n\
             keygate: first start. Created the user \"admin\" with password:\n\n    {password}\n\n\
             It is shown only this once. Sign in and change it.\n\
             ================================================================\n"
        );
    }
    Ok(())
}
