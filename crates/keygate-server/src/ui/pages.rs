//! One function per page. Each asks the [`crate::manage::Manager`] for what the viewer
//! may see (so the API's rules decide), renders it, and leaves changes to the script.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use keygate_core::model::{TokenStatus, TokenType, User};
use keygate_core::policy::{Access, Grants};
use keygate_store::{RoleWithCount, Store};

use super::Page;
use super::html::{Tab, esc, forbidden, page, time};
use crate::error::ApiError;
use crate::manage::TokenView;
use crate::state::AppState;

/// A page's query parameters.
pub(super) type Q = Query<HashMap<String, String>>;

fn deny(p: &Page, tab: Tab, what: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(forbidden(&p.viewer(), tab, what)),
    )
        .into_response()
}

/// An error as the API answers it.
pub(super) fn fail(e: impl Into<ApiError>) -> Response {
    let e: ApiError = e.into();
    axum::response::IntoResponse::into_response(e)
}

/// The named privileges the Roles tab shows as check boxes: key, object type, object
/// id, operation and label.
pub const NAMED_PRIVILEGES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "apitoken",
        "setting",
        "apitoken",
        "write",
        "Allow Creation of API Tokens",
    ),
    ("ingest", "dataingestion", "*", "write", "DataIngestion"),
    (
        "manage",
        "setting",
        "useraccess",
        "write",
        "Manage users and roles",
    ),
    (
        "view",
        "setting",
        "useraccess",
        "read",
        "View users and roles",
    ),
    (
        "portal",
        "setting",
        "portal",
        "write",
        "Manage portal settings",
    ),
    (
        "index",
        "setting",
        "tokenindex",
        "read",
        "Follow the token index (services that verify tokens themselves)",
    ),
];

fn named(p: &keygate_core::model::Privilege) -> Option<&'static str> {
    NAMED_PRIVILEGES.iter().find_map(|(_, t, i, op, label)| {
        (p.object_type == *t && p.object_id == *i && p.operation == *op).then_some(*label)
    })
}

fn grants_of(u: &User, roles: &[RoleWithCount]) -> Grants {
    roles
        .iter()
        .filter(|r| u.role_ids.contains(&r.role.id))
        .fold(Grants::NONE, |g, r| {
            g.union(Grants::of_all(&r.role.privileges))
        })
}

fn search_box(q: &HashMap<String, String>, placeholder: &str, with_filter: bool) -> String {
    let term = q.get("q").map_or("", String::as_str);
    let enabled = q.get("show").is_some_and(|s| s == "enabled");
    let filter = if with_filter {
        format!(
            "<label for=\"show\">Add Filter</label><select id=\"show\" name=\"show\" data-autosubmit>\
             <option value=\"\">Show: All</option><option value=\"enabled\"{}>Show: Enabled</option></select>",
            if enabled { " selected" } else { "" }
        )
    } else {
        String::new()
    };
    format!(
        "<form class=\"toolbar\" method=\"get\" role=\"search\"><label for=\"q\" class=\"sr-only\">Search</label>\
         <input id=\"q\" name=\"q\" type=\"search\" placeholder=\"{placeholder}\" value=\"{}\">{filter}\
         <button type=\"submit\">Search</button></form>",
        esc(term)
    )
}

fn matches(q: &HashMap<String, String>, fields: &[&str]) -> bool {
    let Some(term) = q
        .get("q")
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
    else {
        return true;
    };
    fields.iter().any(|f| f.to_lowercase().contains(&term))
}

// ---- tokens ----

async fn token_page<S: Store>(
    st: AppState<S>,
    p: Page,
    q: HashMap<String, String>,
    kind: TokenType,
) -> Response {
    let (tab, title) = match kind {
        TokenType::Bearer => (Tab::Bearer, "Bearer Tokens"),
        TokenType::Lmv1 => (Tab::Lmv1, "LMv1 API Tokens"),
    };
    let v = p.viewer();
    if !v.sees_tokens() {
        return deny(
            &p,
            tab,
            "API tokens are shown to users with the \"Allow Creation of API Tokens\" privilege or who may view users and roles.",
        );
    }
    let actor = p.actor();
    let views = match st.manager.tokens(&actor, None, Some(kind)).await {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let portal = match st.manager.portal().await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let enabled_only = q.get("show").is_some_and(|s| s == "enabled");
    let rows: Vec<&TokenView> = views
        .iter()
        .filter(|t| !enabled_only || t.token.status == TokenStatus::Enabled)
        .filter(|t| matches(&q, &[&t.owner_name, &t.token.note]))
        .collect();
    let can_add = v.grants.contains(Grants::APITOKEN_WRITE) || v.manages_users();
    let mut body = String::new();
    let (add_href, add_label, slug) = match kind {
        TokenType::Bearer => (
            "/settings/user-access/bearer-tokens/add",
            "Add Bearer Token +",
            "bearer",
        ),
        TokenType::Lmv1 => (
            "/settings/user-access/lmv1-tokens/add",
            "Add LMv1 API Token +",
            "lmv1",
        ),
    };
    let traces_off = kind == TokenType::Bearer && !portal.traces_enabled;
    if traces_off {
        body.push_str(
            "<p class=\"notice\" role=\"status\" id=\"traces-off\">Bearer tokens cannot be added or used while the \
             portal's Traces (APM) feature is off. An administrator can turn it on in Portal settings.</p>",
        );
    }
    body.push_str("<div class=\"bar\">");
    body.push_str(&search_box(&q, "Search by user or note", true));
    if can_add {
        if traces_off {
            let _ = write!(
                body,
                "<button class=\"add\" id=\"add-{slug}\" disabled title=\"Traces (APM) is off\">{add_label}</button>"
            );
        } else {
            let _ = write!(
                body,
                "<a class=\"add button primary\" id=\"add-{slug}\" href=\"{add_href}\">{add_label}</a>"
            );
        }
    }
    body.push_str("</div>");
    // The confirmation names a token this viewer can see, by the server's own words:
    // whatever else the link carries is not shown (it could be anyone's text).
    let added = q
        .get("added")
        .and_then(|a| a.parse::<i64>().ok())
        .and_then(|id| views.iter().find(|t| t.token.id == id));
    if let Some(t) = added {
        let _ = write!(
            body,
            "<p class=\"flash\" role=\"status\">Token {} added for {}.</p>",
            esc(&t.token.access_id),
            esc(&t.owner_name)
        );
    }
    // Where the row scripts report what they did (enabled, disabled, deleted).
    body.push_str("<p class=\"page-status\" id=\"page-status\" role=\"status\"></p>");
    let (what, list_href) = if kind == TokenType::Bearer {
        ("bearer tokens", "/settings/user-access/bearer-tokens")
    } else {
        ("LMv1 API tokens", "/settings/user-access/lmv1-tokens")
    };
    let add = if can_add && !traces_off {
        format!(
            " — <a href=\"{add_href}\">{}</a>",
            add_label.trim_end_matches(" +")
        )
    } else {
        String::new()
    };
    // An empty list, and the table once its last row is deleted, say the same.
    let none_yet = format!("No {what} yet{add}");
    if rows.is_empty() {
        let search = q.get("q").map(String::as_str).unwrap_or("").trim();
        let none = if !search.is_empty() || enabled_only {
            // Name the filter that emptied the list, and the way back.
            let mut filter = Vec::new();
            if !search.is_empty() {
                filter.push(format!("the search \u{201c}{}\u{201d}", esc(search)));
            }
            if enabled_only {
                filter.push("Show: Enabled".to_owned());
            }
            format!(
                "No {what} match {}. <a href=\"{list_href}\" id=\"clear-filter\">Clear the filter</a> to see them all.",
                filter.join(" and ")
            )
        } else {
            none_yet
        };
        let _ = write!(body, "<p class=\"empty\" id=\"empty\">{none}</p>");
    } else {
        let id_head = if kind == TokenType::Bearer {
            "Token"
        } else {
            "Access ID"
        };
        // Shown by the script when the last row is deleted, instead of a bare header.
        let _ = write!(
            body,
            "<p class=\"empty\" id=\"empty\" hidden>{none_yet}</p>"
        );
        let _ = write!(
            body,
            "<div class=\"table-wrap\"><table class=\"tokens\" id=\"tokens\"><thead><tr><th>User</th><th>{id_head}</th><th>Note</th><th>Created on</th>\
             <th>Created by</th><th>Last used</th><th>Last IP</th><th>Enable</th><th><span class=\"sr-only\">Delete</span></th></tr></thead><tbody>"
        );
        for t in rows {
            let writable = t.access == Access::Write;
            let disabled = if writable { "" } else { " disabled" };
            let checked = if t.token.status == TokenStatus::Enabled {
                " checked"
            } else {
                ""
            };
            let label = format!("token {} of {}", short_id(&t.token.access_id), t.owner_name);
            let enabled = t.token.status == TokenStatus::Enabled;
            let _ = write!(
                body,
                "<tr data-owner=\"{owner}\" data-id=\"{id}\" data-token=\"{short}\" data-user=\"{user}\"{dim}><td data-label=\"User\">{user}</td><td data-label=\"{id_head}\"><code title=\"{access}\">{short}</code></td>\
                 <td data-label=\"Note\"><form class=\"note-form\" data-action=\"note\"><label class=\"sr-only\" for=\"note-{id}\">Note for {label}</label>\
                 <input id=\"note-{id}\" name=\"note\" maxlength=\"1024\" value=\"{note}\"{disabled}> <button type=\"submit\"{disabled}>Save</button></form></td>\
                 <td data-label=\"Created on\">{created}</td><td data-label=\"Created by\">{by}</td><td data-label=\"Last used\">{used}</td><td data-label=\"Last IP\">{ip}</td>\
                 <td data-label=\"Enable\"><label class=\"check state\"><input type=\"checkbox\" data-action=\"status\" aria-label=\"Enable {label}\"{checked}{disabled}> <span class=\"token-state\">{state}</span></label></td>\
                 <td><button type=\"button\" class=\"danger\" data-action=\"delete\" aria-label=\"Delete {label}\"{disabled}>Delete</button>\
                 <span class=\"row-error\" role=\"alert\"></span></td></tr>",
                owner = t.token.user_id,
                id = t.token.id,
                user = esc(&t.owner_name),
                access = esc(&t.token.access_id),
                short = esc(&short_id(&t.token.access_id)),
                note = esc(&t.token.note),
                label = esc(&label),
                dim = if enabled {
                    ""
                } else {
                    " class=\"disabled-row\""
                },
                state = if enabled { "Enabled" } else { "Disabled" },
                created = time(t.token.created_on),
                by = esc(&t.token.created_by),
                used = time(t.token.last_used_on),
                ip = if t.token.last_auth_ip.is_empty() {
                    "<span class=\"muted\">—</span>".to_owned()
                } else {
                    esc(&t.token.last_auth_ip)
                },
            );
        }
        body.push_str("</tbody></table></div>");
    }
    Html(page(title, &v, tab, &body)).into_response()
}

/// A masked bearer token shown compactly (`kgtAb3d…wXyZ`); LMv1 access ids as they are.
fn short_id(access_id: &str) -> String {
    match (access_id.find('*'), access_id.rfind('*')) {
        (Some(first), Some(last)) => format!("{}…{}", &access_id[..first], &access_id[last + 1..]),
        _ => access_id.to_owned(),
    }
}

/// The Bearer Tokens tab.
pub async fn bearer_tokens<S: Store>(
    State(st): State<AppState<S>>,
    p: Page,
    Query(q): Q,
) -> Response {
    token_page(st, p, q, TokenType::Bearer).await
}

/// The LMv1 API Tokens tab.
pub async fn lmv1_tokens<S: Store>(
    State(st): State<AppState<S>>,
    p: Page,
    Query(q): Q,
) -> Response {
    token_page(st, p, q, TokenType::Lmv1).await
}

/// Says which users the User list leaves out for want of DataIngestion, so nobody
/// wonders where they went.
fn left_out_hint(names: &[String]) -> String {
    const SHOWN: usize = 8;
    if names.is_empty() {
        return String::new();
    }
    let mut list: Vec<String> = names.iter().take(SHOWN).map(|n| esc(n)).collect();
    if names.len() > SHOWN {
        list.push(format!("{} more", names.len() - SHOWN));
    }
    format!(
        "<p class=\"muted hint\" id=\"left-out\">Not listed: {} — bearer tokens need the DataIngestion privilege, \
         which their roles do not grant. Give them a role with DataIngestion (Roles tab) to add one.</p>",
        list.join(", ")
    )
}

/// The users a viewer may create tokens for (`bearer`: only those with DataIngestion),
/// and the names of the active users left out only for want of DataIngestion.
async fn token_owners<S: Store>(
    st: &AppState<S>,
    p: &Page,
    bearer: bool,
) -> Result<(Vec<User>, Vec<String>), ApiError> {
    let actor = p.actor();
    let (users, roles) = if p.viewer().manages_users() {
        st.manager.users(&actor).await?
    } else {
        let me = st.manager.user(&actor, p.principal.user_id).await?;
        (vec![me.user], me.roles)
    };
    let me = p.principal.user_id;
    let (offered, left_out): (Vec<User>, Vec<User>) = users
        .into_iter()
        .filter(|u| u.status == keygate_core::model::UserStatus::Active)
        // Nobody mints a token more privileged than themselves: such users are not
        // offered (saving would be refused anyway).
        .filter(|u| u.id == me || grants_of(u, &roles).without(p.principal.grants).is_empty())
        .partition(|u| !bearer || grants_of(u, &roles).contains(Grants::DATAINGESTION));
    Ok((offered, left_out.into_iter().map(|u| u.username).collect()))
}

fn owner_select(users: &[User]) -> String {
    let mut s = String::from(
        "<label for=\"owner\">User</label><select id=\"owner\" name=\"adminId\" required><option value=\"\">Select a user…</option>",
    );
    for u in users {
        let _ = write!(
            s,
            "<option value=\"{}\">{}</option>",
            u.id,
            esc(&u.username)
        );
    }
    s.push_str("</select>");
    s
}

/// Add Bearer Token.
pub async fn add_bearer<S: Store>(State(st): State<AppState<S>>, p: Page) -> Response {
    let v = p.viewer();
    if !(v.grants.contains(Grants::APITOKEN_WRITE) || v.manages_users()) {
        return deny(
            &p,
            Tab::Bearer,
            "Adding tokens needs the \"Allow Creation of API Tokens\" privilege.",
        );
    }
    match st.manager.portal().await {
        Ok(portal) if !portal.traces_enabled => {
            return deny(
                &p,
                Tab::Bearer,
                "Bearer tokens cannot be added while the portal's Traces (APM) feature is off.",
            );
        }
        Ok(_) => {}
        Err(e) => return fail(e),
    }
    let (users, without_ingestion) = match token_owners(&st, &p, true).await {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let none = if users.is_empty() {
        "<p class=\"notice\">No user you may create tokens for has the DataIngestion privilege.</p>"
    } else {
        ""
    };
    let body = format!(
        "<section class=\"panel\"><h2>Add Bearer Token</h2>{none}\
         <form id=\"add-bearer-form\" autocomplete=\"off\" data-next=\"/settings/user-access/bearer-tokens\">{select}{left_out}\
         <label for=\"token\">Token</label><div class=\"copy-row\"><input id=\"token\" readonly autocomplete=\"off\" spellcheck=\"false\" placeholder=\"Select a user to generate a token\">\
         <button type=\"button\" data-copy=\"token\" id=\"copy-token\">Copy</button><span class=\"copy-status\" role=\"status\"></span></div>\
         <p class=\"warning\" id=\"token-warning\">Copy the token now: it will not be shown again. \
         It works only once you click Save; leaving this page without saving discards it.</p>\
         <label for=\"note\">Note <span class=\"muted\">(optional)</span></label><input id=\"note\" name=\"note\" maxlength=\"1024\">\
         <p class=\"form-error\" role=\"alert\"></p>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\" id=\"save\">Save</button>\
         <a class=\"button\" href=\"/settings/user-access/bearer-tokens\" id=\"cancel\">Cancel</a></div></form></section>",
        select = owner_select(&users),
        left_out = left_out_hint(&without_ingestion),
    );
    Html(page("Add Bearer Token", &v, Tab::Bearer, &body)).into_response()
}

/// Add LMv1 API Token: the access id and key appear after Save, once.
pub async fn add_lmv1<S: Store>(State(st): State<AppState<S>>, p: Page) -> Response {
    let v = p.viewer();
    if !(v.grants.contains(Grants::APITOKEN_WRITE) || v.manages_users()) {
        return deny(
            &p,
            Tab::Lmv1,
            "Adding tokens needs the \"Allow Creation of API Tokens\" privilege.",
        );
    }
    let users = match token_owners(&st, &p, false).await {
        Ok((u, _)) => u,
        Err(e) => return fail(e),
    };
    let body = format!(
        "<section class=\"panel\"><h2>Add LMv1 API Token</h2>\
         <form id=\"add-lmv1-form\">{select}\
         <label for=\"note\">Note <span class=\"muted\">(optional)</span></label><input id=\"note\" name=\"note\" maxlength=\"1024\">\
         <p class=\"form-error\" role=\"alert\"></p>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\" id=\"save\">Save</button>\
         <a class=\"button\" href=\"/settings/user-access/lmv1-tokens\" id=\"cancel\">Cancel</a></div></form>\
         <div id=\"lmv1-result\" hidden><p class=\"warning\">Copy the access key now: it will not be shown again.</p>\
         <label for=\"access-id\">Access ID</label><div class=\"copy-row\"><input id=\"access-id\" readonly>\
         <button type=\"button\" data-copy=\"access-id\">Copy</button><span class=\"copy-status\" role=\"status\"></span></div>\
         <label for=\"access-key\">Access Key</label><div class=\"copy-row\"><input id=\"access-key\" readonly autocomplete=\"off\">\
         <button type=\"button\" data-copy=\"access-key\">Copy</button><span class=\"copy-status\" role=\"status\"></span></div>\
         <div class=\"actions\"><a class=\"button primary\" href=\"/settings/user-access/lmv1-tokens\" id=\"done\">Done</a></div></div></section>",
        select = owner_select(&users),
    );
    Html(page("Add LMv1 API Token", &v, Tab::Lmv1, &body)).into_response()
}

// ---- users and roles ----

/// The Users tab.
pub async fn users<S: Store>(State(st): State<AppState<S>>, p: Page, Query(q): Q) -> Response {
    let v = p.viewer();
    if !v.sees_users() {
        return deny(
            &p,
            Tab::Users,
            "Users are shown to those who may view users and roles.",
        );
    }
    let (users, roles) = match st.manager.users(&p.actor()).await {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let mut body = String::from("<div class=\"bar\">");
    body.push_str(&search_box(&q, "Search by username or email", false));
    if v.manages_users() {
        body.push_str("<a class=\"button primary add\" id=\"add-user\" href=\"/settings/user-access/users/add\">Add User +</a>");
    }
    body.push_str("</div><table id=\"users\"><thead><tr><th>Username</th><th>Email</th><th>Roles</th><th>Status</th><th>Last sign-in</th><th><span class=\"sr-only\">Actions</span></th></tr></thead><tbody>");
    for u in users
        .iter()
        .filter(|u| matches(&q, &[&u.username, &u.email]))
    {
        let names: Vec<String> = roles
            .iter()
            .filter(|r| u.role_ids.contains(&r.role.id))
            .map(|r| esc(&r.role.name))
            .collect();
        let actions = if v.manages_users() && u.id != p.principal.user_id {
            let (next, label) = if u.status == keygate_core::model::UserStatus::Active {
                ("suspended", "Suspend")
            } else {
                ("active", "Activate")
            };
            format!(
                "<a class=\"button\" href=\"/settings/user-access/users/{id}/edit\">Edit</a> \
                 <button type=\"button\" data-action=\"user-status\" data-status=\"{next}\">{label}</button> \
                 <button type=\"button\" class=\"danger\" data-action=\"user-delete\">Delete</button><span class=\"row-error\" role=\"alert\"></span>",
                id = u.id
            )
        } else if v.manages_users() {
            format!(
                "<a class=\"button\" href=\"/settings/user-access/users/{}/edit\">Edit</a>",
                u.id
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr data-id=\"{id}\" data-name=\"{name}\"><td>{name}</td><td>{email}</td><td>{roles}</td><td><span class=\"status {status}\">{status}</span></td><td>{login}</td><td>{actions}</td></tr>",
            id = u.id,
            name = esc(&u.username),
            email = esc(&u.email),
            roles = names.join(", "),
            status = u.status.as_str(),
            login = time(u.last_login_on),
        );
    }
    body.push_str("</tbody></table>");
    Html(page("Users", &v, Tab::Users, &body)).into_response()
}

/// Add User, or Edit User with `id`.
pub async fn user_form<S: Store>(
    State(st): State<AppState<S>>,
    p: Page,
    id: Option<Path<i64>>,
) -> Response {
    let v = p.viewer();
    if !v.manages_users() {
        return deny(
            &p,
            Tab::Users,
            "Adding and editing users needs the \"Manage users and roles\" privilege.",
        );
    }
    let actor = p.actor();
    let roles = match st.manager.roles(&actor).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let user = match id {
        Some(Path(id)) => match st.manager.user(&actor, id).await {
            Ok(u) => Some(u.user),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let val = |f: fn(&User) -> &str| user.as_ref().map_or(String::new(), |u| esc(f(u)));
    let mut role_boxes = String::new();
    for r in &roles {
        let checked = if user
            .as_ref()
            .is_some_and(|u| u.role_ids.contains(&r.role.id))
        {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            role_boxes,
            "<label class=\"check\"><input type=\"checkbox\" name=\"roles\" value=\"{}\"{checked}> {}</label>",
            r.role.id,
            esc(&r.role.name)
        );
    }
    let (title, method, path) = match &user {
        Some(u) => ("Edit User", "PATCH", format!("/setting/admins/{}", u.id)),
        None => ("Add User", "POST", "/setting/admins".to_owned()),
    };
    let suspended = user
        .as_ref()
        .is_some_and(|u| u.status == keygate_core::model::UserStatus::Suspended);
    let api_only = if user.as_ref().is_some_and(|u| u.api_only) {
        " checked"
    } else {
        ""
    };
    let body = format!(
        "<section class=\"panel\"><h2>{title}</h2><form id=\"user-form\" data-api-form data-method=\"{method}\" data-path=\"{path}\" data-next=\"/settings/user-access/users\">\
         <label for=\"username\">Username</label><input id=\"username\" name=\"username\" required value=\"{username}\">\
         <label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" required value=\"{email}\">\
         <label for=\"firstName\">First name</label><input id=\"firstName\" name=\"firstName\" value=\"{first}\">\
         <label for=\"lastName\">Last name</label><input id=\"lastName\" name=\"lastName\" value=\"{last}\">\
         <label for=\"password\">Password <span class=\"muted\">({pw_hint})</span></label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\">\
         <fieldset><legend>Roles</legend>{role_boxes}</fieldset>\
         <label for=\"status\">Status</label><select id=\"status\" name=\"status\"><option value=\"active\">active</option><option value=\"suspended\"{susp}>suspended</option></select>\
         <label class=\"check\"><input type=\"checkbox\" name=\"apionly\" data-type=\"bool\"{api_only}> API only (cannot sign in)</label>\
         <label for=\"note\">Note</label><input id=\"note\" name=\"note\" maxlength=\"1024\" value=\"{note}\">\
         <p class=\"form-error\" role=\"alert\"></p><div class=\"actions\"><button type=\"submit\" class=\"primary\" id=\"save\">Save</button>\
         <a class=\"button\" href=\"/settings/user-access/users\">Cancel</a></div></form></section>",
        username = val(|u| &u.username),
        email = val(|u| &u.email),
        first = val(|u| &u.first_name),
        last = val(|u| &u.last_name),
        note = val(|u| &u.note),
        pw_hint = if user.is_some() {
            "leave empty to keep"
        } else {
            "optional, 8 characters or more"
        },
        susp = if suspended { " selected" } else { "" },
    );
    Html(page(title, &v, Tab::Users, &body)).into_response()
}

/// The Roles tab.
pub async fn roles<S: Store>(State(st): State<AppState<S>>, p: Page, Query(q): Q) -> Response {
    let v = p.viewer();
    if !v.sees_users() {
        return deny(
            &p,
            Tab::Roles,
            "Roles are shown to those who may view users and roles.",
        );
    }
    let roles = match st.manager.roles(&p.actor()).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut body = String::from("<div class=\"bar\">");
    body.push_str(&search_box(&q, "Search by name", false));
    if v.manages_users() {
        body.push_str("<a class=\"button primary add\" id=\"add-role\" href=\"/settings/user-access/roles/add\">Add Role +</a>");
    }
    body.push_str("</div><table id=\"roles\"><thead><tr><th>Name</th><th>Description</th><th>Privileges</th><th>Users</th><th><span class=\"sr-only\">Actions</span></th></tr></thead><tbody>");
    for r in roles
        .iter()
        .filter(|r| matches(&q, &[&r.role.name, &r.role.description]))
    {
        let privs: Vec<String> = r
            .role
            .privileges
            .iter()
            .map(|p| {
                named(p).map_or_else(
                    || {
                        esc(&format!(
                            "{} {} {}",
                            p.object_type, p.object_id, p.operation
                        ))
                    },
                    str::to_owned,
                )
            })
            .collect();
        let actions = if v.manages_users() {
            format!(
                "<a class=\"button\" href=\"/settings/user-access/roles/{}/edit\">Edit</a> \
                 <button type=\"button\" class=\"danger\" data-action=\"role-delete\">Delete</button><span class=\"row-error\" role=\"alert\"></span>",
                r.role.id
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr data-id=\"{id}\" data-name=\"{name}\"><td>{name}</td><td>{desc}</td><td>{privs}</td><td>{count}</td><td>{actions}</td></tr>",
            id = r.role.id,
            name = esc(&r.role.name),
            desc = esc(&r.role.description),
            privs = privs.join(", "),
            count = r.user_count,
        );
    }
    body.push_str("</tbody></table>");
    Html(page("Roles", &v, Tab::Roles, &body)).into_response()
}

/// Most audit entries the Audit Log tab shows (the API pages through all of them).
const AUDIT_PAGE: i64 = 500;

/// The Audit Log tab: the newest entries, searchable.
pub async fn audit<S: Store>(State(st): State<AppState<S>>, p: Page, Query(q): Q) -> Response {
    let v = p.viewer();
    if !v.sees_users() {
        return deny(
            &p,
            Tab::Audit,
            "The audit log is shown to those who may view users and roles.",
        );
    }
    let range = keygate_store::AuditRange {
        from: None,
        to: None,
        limit: AUDIT_PAGE,
        id: None,
    };
    let entries = match st.manager.audit_log(&p.actor(), range).await {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let mut body = String::from("<div class=\"bar\">");
    body.push_str(&search_box(
        &q,
        "Search by user, action, target or address",
        false,
    ));
    let _ = write!(
        body,
        "</div><p class=\"muted\">The newest {AUDIT_PAGE} entries; <code>GET /santaba/rest/setting/accesslogs</code> pages through all of them.</p>\
         <table id=\"audit\"><thead><tr><th>When</th><th>User</th><th>Address</th><th>Action</th><th>Target</th><th>Outcome</th><th>Detail</th><th>Token</th></tr></thead><tbody>"
    );
    for e in &entries {
        let r = &e.record;
        let ip = r.ip.as_deref().unwrap_or("");
        let target = match r.target_id {
            Some(id) => format!("{} {} (id {id})", r.target_type, r.target),
            None => format!("{} {}", r.target_type, r.target),
        };
        let token = r.via.as_ref().map_or(String::new(), |v| {
            if v.created_by.is_empty() {
                format!("{} (id {})", v.token, v.token_id)
            } else {
                format!(
                    "{} (id {}), created by {}",
                    v.token, v.token_id, v.created_by
                )
            }
        });
        if !matches(
            &q,
            &[
                &r.username,
                r.action.as_str(),
                &target,
                ip,
                &r.detail,
                &token,
            ],
        ) {
            continue;
        }
        let outcome = if r.success { "success" } else { "failure" };
        let _ = write!(
            body,
            "<tr data-id=\"{id}\"><td>{when}</td><td>{user}</td><td>{ip}</td><td><code>{action}</code></td><td>{target}</td><td class=\"outcome-{outcome}\">{outcome}</td><td>{detail}</td><td>{token}</td></tr>",
            id = e.id,
            when = time(r.at),
            user = esc(&r.username),
            ip = esc(ip),
            action = r.action.as_str(),
            target = esc(&target),
            detail = esc(&r.detail),
            token = esc(&token),
        );
    }
    body.push_str("</tbody></table>");
    Html(page("Audit Log", &v, Tab::Audit, &body)).into_response()
}

/// Add Role, or Edit Role with `id`. Privileges keygate does not name are kept.
pub async fn role_form<S: Store>(
    State(st): State<AppState<S>>,
    p: Page,
    id: Option<Path<i64>>,
) -> Response {
    let v = p.viewer();
    if !v.manages_users() {
        return deny(
            &p,
            Tab::Roles,
            "Adding and editing roles needs the \"Manage users and roles\" privilege.",
        );
    }
    let role = match id {
        Some(Path(id)) => match st.manager.role(&p.actor(), id).await {
            Ok(r) => Some(r.role),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let mut boxes = String::new();
    for (_, t, i, op, label) in NAMED_PRIVILEGES {
        let on = role.as_ref().is_some_and(|r| {
            r.privileges
                .iter()
                .any(|p| p.object_type == *t && p.object_id == *i && p.operation == *op)
        });
        let _ = write!(
            boxes,
            "<label class=\"check\"><input type=\"checkbox\" name=\"privilege\" data-object-type=\"{t}\" data-object-id=\"{i}\" data-operation=\"{op}\"{}> {label}</label>",
            if on { " checked" } else { "" }
        );
    }
    let kept: Vec<serde_json::Value> = role
        .as_ref()
        .map(|r| {
            r.privileges
                .iter()
                .filter(|p| named(p).is_none())
                .map(|p| serde_json::json!({"objectType": p.object_type, "objectId": p.object_id, "operation": p.operation}))
                .collect()
        })
        .unwrap_or_default();
    let (title, method, path) = match &role {
        Some(r) => ("Edit Role", "PATCH", format!("/setting/roles/{}", r.id)),
        None => ("Add Role", "POST", "/setting/roles".to_owned()),
    };
    let body = format!(
        "<section class=\"panel\"><h2>{title}</h2><form id=\"role-form\" data-api-form data-method=\"{method}\" data-path=\"{path}\" data-next=\"/settings/user-access/roles\" data-kept=\"{kept}\">\
         <label for=\"name\">Name</label><input id=\"name\" name=\"name\" required value=\"{name}\">\
         <label for=\"description\">Description</label><input id=\"description\" name=\"description\" value=\"{desc}\">\
         <fieldset><legend>Privileges</legend>{boxes}</fieldset>\
         <p class=\"form-error\" role=\"alert\"></p><div class=\"actions\"><button type=\"submit\" class=\"primary\" id=\"save\">Save</button>\
         <a class=\"button\" href=\"/settings/user-access/roles\">Cancel</a></div></form></section>",
        kept = esc(&serde_json::Value::Array(kept).to_string()),
        name = role.as_ref().map_or(String::new(), |r| esc(&r.name)),
        desc = role.as_ref().map_or(String::new(), |r| esc(&r.description)),
    );
    Html(page(title, &v, Tab::Roles, &body)).into_response()
}

// ---- portal ----

/// Portal settings.
pub async fn portal<S: Store>(State(st): State<AppState<S>>, p: Page) -> Response {
    let v = p.viewer();
    if !v.manages_portal() {
        return deny(
            &p,
            Tab::Portal,
            "Portal settings need the \"Manage portal settings\" privilege.",
        );
    }
    let portal = match st.manager.portal().await {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let body = format!(
        "<section class=\"panel\"><form id=\"portal-form\" data-api-form data-method=\"PATCH\" data-path=\"/setting/portal\" data-next=\"/settings/portal?saved=1\">\
         <label class=\"check switch\"><input type=\"checkbox\" id=\"tracesEnabled\" name=\"tracesEnabled\" data-type=\"bool\"{traces}> Traces (APM) — bearer tokens work only while this is on</label>\
         <label for=\"companyName\">Company name</label><input id=\"companyName\" name=\"companyName\" required value=\"{company}\">\
         <label for=\"maxTokensPerUser\">Most API tokens per user</label><input id=\"maxTokensPerUser\" name=\"maxTokensPerUser\" type=\"number\" min=\"1\" max=\"1000\" data-type=\"int\" value=\"{max}\">\
         <label for=\"lmv1ClockSkewSeconds\">LMv1 clock window, seconds either side</label><input id=\"lmv1ClockSkewSeconds\" name=\"lmv1ClockSkewSeconds\" type=\"number\" min=\"1\" max=\"86400\" data-type=\"int\" value=\"{skew}\">\
         <label class=\"check\"><input type=\"checkbox\" name=\"lmv1ReplayProtection\" data-type=\"bool\"{replay}> Refuse replayed LMv1 requests</label>\
         <p class=\"form-error\" role=\"alert\"></p><div class=\"actions\"><button type=\"submit\" class=\"primary\" id=\"save\">Save</button></div></form></section>",
        traces = if portal.traces_enabled {
            " checked"
        } else {
            ""
        },
        company = esc(&portal.company_name),
        max = portal.max_tokens_per_user,
        skew = portal.lmv1_clock_skew_seconds,
        replay = if portal.lmv1_replay_protection {
            " checked"
        } else {
            ""
        },
    );
    Html(page("Portal settings", &v, Tab::Portal, &body)).into_response()
}

// ---- REST API ----

/// The REST API page: the operations of keygate's OpenAPI document, grouped by tag,
/// each with "Try it". A bearer token pasted into the Token field lives in the page's
/// memory only and goes only into the `Authorization` header of requests made from
/// the page (`assets/api.js`); those requests carry no cookie, so they act as the
/// token's owner, exactly as a client would.
pub async fn api_console(p: Page) -> Response {
    let v = p.viewer();
    let body = "<section class=\"panel api-token\">\
        <p>Paste a bearer token once to make requests from this page as a client would. \
        It stays in this page's memory: it is never stored, and it is sent only in the \
        <code>Authorization</code> header of the requests you make here. They act as the \
        token's owner, not as you.</p>\
        <label for=\"api-token\">Token</label>\
        <div class=\"copy-row\"><input id=\"api-token\" type=\"password\" autocomplete=\"off\" \
        spellcheck=\"false\" autocapitalize=\"off\" aria-describedby=\"token-diagnosis\">\
        <label class=\"check\"><input type=\"checkbox\" id=\"api-token-show\"> Show</label>\
        <button type=\"button\" id=\"api-token-clear\">Clear</button></div>\
        <p id=\"token-diagnosis\" class=\"diagnosis\" role=\"status\" aria-live=\"polite\">No token yet: requests go without one.</p>\
        </section>\
        <p class=\"muted\">From <a href=\"/santaba/rest/openapi.json\">keygate's OpenAPI document</a>; \
        the same calls work with <code>keygate api</code> and any HTTP client.</p>\
        <div id=\"api-operations\" data-spec=\"/santaba/rest/openapi.json\"><p class=\"muted\">Loading the operations…</p></div>\
        <script src=\"/assets/api.js\" defer></script>";
    Html(page("REST API", &v, Tab::Api, body)).into_response()
}
