//! The web UI in a real headless Chromium: every numbered step of the UI's
//! specification, escaping, and one screenshot per page (target/ui-screenshots/).

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;
use crate::webdriver::{Browser, available};

/// Signs in through the form and waits for the answer.
pub(super) async fn sign_in(b: &Browser, s: &Server, user: &str, password: &str) {
    b.goto(&format!("http://{}/signin", s.addr)).await;
    let u = b.find("#username").await;
    b.clear(&u).await;
    b.type_into(&u, user).await;
    b.type_into(&b.find("#password").await, password).await;
    b.click(&b.find("button[type=submit]").await).await;
    // Wait for the answer: another page on success, the error on the form otherwise.
    b.until(
        "the sign-in answer",
        "return document.readyState === 'complete' && (location.pathname !== '/signin' || !!document.querySelector('#signin-error'))",
    )
    .await;
}

const ROWS: &str = "return document.querySelectorAll('#tokens tbody tr').length";

fn base(s: &Server) -> String {
    format!("http://{}", s.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_navigate_and_sign_out() {
    if !available("sign_in_navigate_and_sign_out") {
        return;
    }
    let Some(s) = Server::start().await else {
        return;
    };
    let role = s.role("pusher", &[("dataingestion", "*", "write")]).await;
    s.post(&s.admin_token, "/setting/admins", json!({"username": "pusher", "email": "p@x.io", "roles": [{"id": role}], "password": "pusher-password"})).await;
    let b = Browser::start(1280, 900).await;

    // 1. Sign in: a wrong password gets a clear message; the right one lands on Users.
    sign_in(&b, &s, "admin", "not-the-password").await;
    let err = b.text(&b.find("#signin-error").await).await;
    assert_eq!(
        err,
        "Wrong username or password, or the user may not sign in."
    );
    b.screenshot("signin-error").await;
    sign_in(&b, &s, "admin", "bootstrap-password").await;
    b.until(
        "the Users tab",
        "return location.pathname === '/settings/user-access/users'",
    )
    .await;
    let cookies = b.script("return document.cookie").await;
    assert_eq!(
        cookies,
        json!(""),
        "the session cookie is HttpOnly: no script can read it"
    );

    // 2. Navigate: the four tabs and the settings navigation.
    let tabs: Vec<String> = {
        let mut t = Vec::new();
        for e in b.find_all("nav.tabs a").await {
            t.push(b.text(&e).await);
        }
        t
    };
    assert_eq!(
        tabs,
        [
            "Users",
            "Roles",
            "LMv1 API Tokens",
            "Bearer Tokens",
            "Audit Log"
        ]
    );
    assert!(
        b.text(&b.find("p.crumbs").await)
            .await
            .contains("User Access › Users and Roles")
    );
    b.screenshot("users").await;
    b.click(&b.find("nav.tabs a[href$='roles']").await).await;
    b.until(
        "Roles",
        "return document.querySelector('nav.tabs a.current').textContent === 'Roles'",
    )
    .await;
    b.screenshot("roles").await;
    // The audit log shows the failed and the successful sign-in just made.
    b.click(&b.find("nav.tabs a[href$='audit']").await).await;
    b.until("Audit Log", "return location.pathname.endsWith('/audit')")
        .await;
    let outcomes = b
        .script(
            "return [...document.querySelectorAll('#audit tbody tr')]\
             .filter(r => r.cells[3].textContent === 'signin')\
             .map(r => r.cells[1].textContent + ' ' + r.cells[5].textContent)",
        )
        .await;
    let outcomes: Vec<String> = serde_json::from_value(outcomes).unwrap_or_default();
    assert!(
        outcomes.contains(&"admin success".to_owned()),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&"admin failure".to_owned()),
        "{outcomes:?}"
    );
    b.screenshot("audit").await;
    b.click(&b.find("nav.tabs a[href$='bearer-tokens']").await)
        .await;
    b.until(
        "Bearer",
        "return location.pathname.endsWith('bearer-tokens')",
    )
    .await;

    // Sign out ends the session: the pages send us back to sign-in.
    b.click(&b.find("form.signout button").await).await;
    b.until("sign-in page", "return location.pathname === '/signin'")
        .await;
    b.goto(&format!("{}/settings/user-access/users", base(&s)))
        .await;
    b.until(
        "redirect to sign-in",
        "return location.pathname === '/signin'",
    )
    .await;

    // A user without the token privilege: no token tabs, and a clear 403 page by URL.
    sign_in(&b, &s, "pusher", "pusher-password").await;
    b.goto(&format!("{}/settings/user-access/bearer-tokens", base(&s)))
        .await;
    let page = b.source().await;
    assert!(page.contains("403 — not allowed"));
    assert!(page.contains("Allow Creation of API Tokens"));
    assert!(
        b.find_all("nav.tabs a").await.is_empty(),
        "no tabs this user may not open"
    );
    b.screenshot("forbidden").await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_add_table_filter_enable_note_delete() {
    if !available("bearer_tokens_add_table_filter_enable_note_delete") {
        return;
    }
    let Some(s) = Server::start().await else {
        return;
    };
    let ingest = s.user("ingest", &[DATAINGESTION]).await;
    s.user("viewer", &[READONLY]).await;
    let b = Browser::start(1280, 900).await;
    sign_in(&b, &s, "admin", "bootstrap-password").await;
    b.until("signed in", "return location.pathname !== '/signin'")
        .await;
    b.goto(&format!("{}/settings/user-access/bearer-tokens", base(&s)))
        .await;

    // 3. Add Bearer Token: only DataIngestion users; selecting one generates a token.
    b.click(&b.find("#add-bearer").await).await;
    b.until(
        "the add page",
        "return location.pathname.endsWith('/bearer-tokens/add')",
    )
    .await;
    let options = b
        .script("return [...document.querySelectorAll('#owner option')].map(o => o.textContent)")
        .await;
    assert_eq!(
        options,
        json!(["Select a user…", "admin", "ingest"]),
        "viewer has no DataIngestion"
    );
    b.script(&format!("const s = document.getElementById('owner'); s.value = '{ingest}'; s.dispatchEvent(new Event('change')); return true")).await;
    b.until(
        "a generated token",
        "return document.getElementById('token').value.length === 49",
    )
    .await;
    let token = b
        .prop(&b.find("#token").await, "value")
        .await
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(token.starts_with("kgt"));
    assert_eq!(
        s.get(&token, "/setting/portal").await.status,
        StatusCode::UNAUTHORIZED,
        "generated, unsaved: refused"
    );
    assert!(
        b.text(&b.find("#token-warning").await)
            .await
            .contains("will not be shown again")
    );
    b.click(&b.find("#copy-token").await).await;
    b.until(
        "copy confirmation",
        "return document.querySelector('.copy-status').textContent.startsWith('Copied')",
    )
    .await;
    b.screenshot("add-bearer-token").await;
    b.type_into(&b.find("#note").await, "CI pipeline").await;
    b.click(&b.find("#save").await).await;
    b.until(
        "back on the table",
        "return location.pathname.endsWith('/bearer-tokens')",
    )
    .await;
    assert!(
        !b.url().await.contains(&token[3..20]),
        "the token is never in a URL"
    );
    let page = b.source().await;
    assert!(!page.contains(&token[7..45]), "the table shows it masked");
    assert!(page.contains(&format!("{}{}", &token[..7], "*".repeat(38))));
    assert_eq!(
        s.get(&token, &format!("/setting/admins/{ingest}"))
            .await
            .status,
        StatusCode::OK,
        "saved: works"
    );
    let storage = b
        .script("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
        .await;
    assert_eq!(storage, json!("{}{}"), "nothing in browser storage");

    // Cancel stores nothing; the token it generated never works.
    b.goto(&format!(
        "{}/settings/user-access/bearer-tokens/add",
        base(&s)
    ))
    .await;
    b.script(&format!("const s = document.getElementById('owner'); s.value = '{ingest}'; s.dispatchEvent(new Event('change')); return true")).await;
    b.until(
        "a generated token",
        "return document.getElementById('token').value.length === 49",
    )
    .await;
    let abandoned = b
        .prop(&b.find("#token").await, "value")
        .await
        .as_str()
        .unwrap_or("")
        .to_owned();
    b.click(&b.find("#cancel").await).await;
    b.until(
        "back on the table",
        "return location.pathname.endsWith('/bearer-tokens')",
    )
    .await;
    assert_eq!(
        s.get(&abandoned, "/setting/portal").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get(
            &s.admin_token,
            &format!("/setting/admins/{ingest}/apitokens")
        )
        .await
        .body["total"],
        1
    );

    // A second token with a hostile note, for search, filter and escaping.
    s.token_for(ingest, "<script>alert(1)</script>").await;
    b.goto(&format!("{}/settings/user-access/bearer-tokens", base(&s)))
        .await;
    assert_eq!(
        b.script(ROWS).await,
        json!(3),
        "admin's own token, and two of ingest's"
    );
    let note = b
        .script(
            "return document.querySelector('#tokens tbody tr:last-child input[name=note]').value",
        )
        .await;
    assert_eq!(
        note,
        json!("<script>alert(1)</script>"),
        "shown as text, not run"
    );
    b.screenshot("bearer-tokens").await;

    // 4. The table: search narrows by user or note; Show: Enabled narrows by status.
    let q = b.find("#q").await;
    b.type_into(&q, "pipeline").await;
    b.click(&b.find("form.toolbar button").await).await;
    b.until(
        "search applied",
        "return document.querySelectorAll('#tokens tbody tr').length === 1",
    )
    .await;
    b.goto(&format!(
        "{}/settings/user-access/bearer-tokens?q=ingest",
        base(&s)
    ))
    .await;
    assert_eq!(b.script(ROWS).await, json!(2));

    // Clearing the Enable box disables at once; ticking re-enables.
    b.goto(&format!(
        "{}/settings/user-access/bearer-tokens?q=pipeline",
        base(&s)
    ))
    .await;
    let enable = b.find("#tokens tbody tr input[data-action=status]").await;
    b.click(&enable).await;
    let asked = b.dialog_text().await;
    assert!(
        asked.starts_with("Disable the token kgt") && asked.contains("of ingest"),
        "{asked}"
    );
    b.answer_dialog(true).await;
    let me = format!("/setting/admins/{ingest}");
    let refused = eventually(std::time::Duration::from_secs(5), || async {
        s.get(&token, &me).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "disabled from the UI");
    b.goto(&format!(
        "{}/settings/user-access/bearer-tokens?show=enabled",
        base(&s)
    ))
    .await;
    assert_eq!(
        b.script(ROWS).await,
        json!(2),
        "the disabled token is filtered out"
    );
    assert_eq!(
        b.prop(&b.find("#show").await, "value").await,
        json!("enabled")
    );
    b.script("const s = document.getElementById('show'); s.value = ''; s.dispatchEvent(new Event('change')); return true").await;
    b.until(
        "filter cleared",
        "return document.querySelectorAll('#tokens tbody tr').length === 3",
    )
    .await;
    b.goto(&format!(
        "{}/settings/user-access/bearer-tokens?q=pipeline",
        base(&s)
    ))
    .await;
    b.click(&b.find("#tokens tbody tr input[data-action=status]").await)
        .await;
    b.dialog_text().await;
    b.answer_dialog(true).await;
    let back = eventually(std::time::Duration::from_secs(5), || async {
        s.get(&token, &me).await.status == StatusCode::OK
    })
    .await;
    assert!(back, "re-enabled from the UI");

    // 6. Notes are edited in place; the token itself has no input anywhere.
    let note = b.find("#tokens tbody tr input[name=note]").await;
    b.clear(&note).await;
    b.type_into(&note, "deploys from CI").await;
    b.click(&b.find("#tokens tbody tr form.note-form button").await)
        .await;
    b.until("saved", "return document.querySelector('#tokens tbody tr form.note-form button').textContent === 'Saved'").await;
    let t = s
        .get(
            &s.admin_token,
            &format!("/setting/admins/{ingest}/apitokens?filter=note:deploys*"),
        )
        .await;
    assert_eq!(t.body["total"], 1);
    assert_eq!(b.script("return document.querySelectorAll('#tokens input[name=token], #tokens input[name=accessKey]').length").await, json!(0));

    // 5. Delete asks first; Cancel keeps the token, Ok deletes it.
    let del = b.find("#tokens tbody tr button[data-action=delete]").await;
    b.click(&del).await;
    let text = b.dialog_text().await;
    assert!(
        text.contains("cannot be retrieved")
            && text.contains("requests that use it will fail")
            && text.contains("of ingest"),
        "{text}"
    );
    b.answer_dialog(false).await;
    assert_eq!(
        s.get(&token, &me).await.status,
        StatusCode::OK,
        "Cancel keeps it"
    );
    b.click(&del).await;
    b.dialog_text().await;
    b.answer_dialog(true).await;
    b.until(
        "row removed",
        "return document.querySelectorAll('#tokens tbody tr').length === 0",
    )
    .await;
    assert_eq!(
        s.get(&token, &me).await.status,
        StatusCode::UNAUTHORIZED,
        "Ok deletes it"
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmv1_users_roles_and_portal() {
    if !available("lmv1_users_roles_and_portal") {
        return;
    }
    let Some(s) = Server::start().await else {
        return;
    };
    let b = Browser::start(1280, 900).await;
    sign_in(&b, &s, "admin", "bootstrap-password").await;
    b.until("signed in", "return location.pathname !== '/signin'")
        .await;

    // 7. LMv1: the access id and key are shown once, with Copy buttons, on the add page.
    b.goto(&format!("{}/settings/user-access/lmv1-tokens", base(&s)))
        .await;
    assert!(
        b.text(&b.find("p.empty").await)
            .await
            .starts_with("No LMv1 API tokens yet")
    );
    b.click(&b.find("#add-lmv1").await).await;
    b.until(
        "the add page",
        "return location.pathname.endsWith('/lmv1-tokens/add')",
    )
    .await;
    b.script("document.getElementById('owner').value = '1'; return true")
        .await;
    b.type_into(&b.find("#note").await, "nightly export").await;
    b.click(&b.find("#save").await).await;
    b.until(
        "the key",
        "return document.getElementById('access-key').value.length === 40",
    )
    .await;
    let aid = b
        .prop(&b.find("#access-id").await, "value")
        .await
        .as_str()
        .unwrap_or("")
        .to_owned();
    let key = b
        .prop(&b.find("#access-key").await, "value")
        .await
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(b.find_all("#lmv1-result button[data-copy]").await.len(), 2);
    let form_gone = b
        .script("return document.getElementById('add-lmv1-form').offsetParent === null")
        .await;
    assert_eq!(
        form_gone,
        json!(true),
        "after Save only the result is shown"
    );
    b.screenshot("add-lmv1-token").await;
    let r = s
        .lmv1(
            reqwest::Method::GET,
            &aid,
            &key,
            "/setting/portal",
            None,
            now_millis(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "the shown key works");
    b.click(&b.find("#done").await).await;
    b.until(
        "the table",
        "return location.pathname.endsWith('/lmv1-tokens')",
    )
    .await;
    let page = b.source().await;
    assert!(
        page.contains(&aid) && !page.contains(&key),
        "table: access id, never the key"
    );
    b.screenshot("lmv1-tokens").await;

    // 8. Users: add, edit, suspend, activate, delete.
    b.goto(&format!("{}/settings/user-access/users/add", base(&s)))
        .await;
    b.type_into(&b.find("#username").await, "dana").await;
    b.type_into(&b.find("#email").await, "dana@example.com")
        .await;
    b.click(&b.find("input[name=roles][value='2']").await).await;
    b.screenshot("add-user").await;
    b.click(&b.find("#save").await).await;
    b.until("users table", "return location.pathname.endsWith('/users') && document.body.textContent.includes('dana@example.com')").await;
    let dana = s
        .get(&s.admin_token, "/setting/admins?filter=username:dana")
        .await
        .body["items"][0]["id"]
        .as_i64()
        .expect("id");
    b.goto(&format!(
        "{}/settings/user-access/users/{dana}/edit",
        base(&s)
    ))
    .await;
    // A rule only the server knows (the browser already checks the email's shape).
    let name = b.find("#username").await;
    b.clear(&name).await;
    b.type_into(&name, "ADMIN").await;
    b.click(&b.find("#save").await).await;
    b.until(
        "the server's error next to the form",
        "return document.querySelector('.form-error').textContent.includes('already exists')",
    )
    .await;
    b.screenshot("edit-user-error").await;
    b.clear(&name).await;
    b.type_into(&name, "dana").await;
    let email = b.find("#email").await;
    b.clear(&email).await;
    b.type_into(&email, "dana@corp.example").await;
    b.click(&b.find("#save").await).await;
    b.until(
        "saved",
        "return document.body.textContent.includes('dana@corp.example')",
    )
    .await;
    b.click(
        &b.find(&format!(
            "tr[data-id='{dana}'] button[data-action=user-status]"
        ))
        .await,
    )
    .await;
    b.until("suspended", &format!("return document.querySelector(\"tr[data-id='{dana}'] .status\").textContent === 'suspended'")).await;
    b.click(
        &b.find(&format!(
            "tr[data-id='{dana}'] button[data-action=user-status]"
        ))
        .await,
    )
    .await;
    b.until("active", &format!("return document.querySelector(\"tr[data-id='{dana}'] .status\").textContent === 'active'")).await;
    b.click(
        &b.find(&format!(
            "tr[data-id='{dana}'] button[data-action=user-delete]"
        ))
        .await,
    )
    .await;
    assert!(b.dialog_text().await.contains("dana"));
    b.answer_dialog(true).await;
    b.until(
        "deleted",
        &format!("return !document.querySelector(\"tr[data-id='{dana}']\")"),
    )
    .await;
    assert_eq!(
        s.get(&s.admin_token, &format!("/setting/admins/{dana}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Roles: named privilege check boxes; add, edit, delete.
    b.goto(&format!("{}/settings/user-access/roles/add", base(&s)))
        .await;
    let labels = b.script("return [...document.querySelectorAll('fieldset label')].map(l => l.textContent.trim())").await;
    assert_eq!(
        labels,
        json!([
            "Allow Creation of API Tokens",
            "DataIngestion",
            "Manage users and roles",
            "View users and roles",
            "Manage portal settings",
            "Follow the token index (services that verify tokens themselves)"
        ])
    );
    b.type_into(&b.find("#name").await, "auditor").await;
    b.click(
        &b.find("input[data-object-id=useraccess][data-operation=read]")
            .await,
    )
    .await;
    b.screenshot("add-role").await;
    b.click(&b.find("#save").await).await;
    b.until("roles table", "return location.pathname.endsWith('/roles') && document.body.textContent.includes('auditor')").await;
    let role = s
        .get(&s.admin_token, "/setting/roles?filter=name:auditor")
        .await
        .body["items"][0]
        .clone();
    assert_eq!(
        role["privileges"],
        json!([{"objectType": "setting", "objectId": "useraccess", "operation": "read"}])
    );
    let rid = role["id"].as_i64().expect("id");
    b.goto(&format!(
        "{}/settings/user-access/roles/{rid}/edit",
        base(&s)
    ))
    .await;
    b.click(&b.find("input[data-object-id=apitoken]").await)
        .await;
    b.click(&b.find("#save").await).await;
    b.until("saved", "return location.pathname.endsWith('/roles')")
        .await;
    let privs = s
        .get(&s.admin_token, &format!("/setting/roles/{rid}"))
        .await
        .body["privileges"]
        .as_array()
        .map(Vec::len);
    assert_eq!(privs, Some(2));
    b.click(
        &b.find(&format!(
            "tr[data-id='{rid}'] button[data-action=role-delete]"
        ))
        .await,
    )
    .await;
    b.dialog_text().await;
    b.answer_dialog(true).await;
    b.until(
        "deleted",
        &format!("return !document.querySelector(\"tr[data-id='{rid}']\")"),
    )
    .await;

    // 9. Portal: Traces off → the Bearer tab says why and the add icon is disabled.
    b.goto(&format!("{}/settings/portal", base(&s))).await;
    b.screenshot("portal").await;
    b.click(&b.find("#tracesEnabled").await).await;
    b.click(&b.find("#save").await).await;
    b.until("saved", "return location.search.includes('saved')")
        .await;
    b.goto(&format!("{}/settings/user-access/bearer-tokens", base(&s)))
        .await;
    assert!(
        b.text(&b.find("#traces-off").await)
            .await
            .contains("Traces (APM) feature is off")
    );
    assert_eq!(
        b.prop(&b.find("#add-bearer").await, "disabled").await,
        json!(true)
    );
    b.screenshot("bearer-tokens-traces-off").await;
    b.goto(&format!("{}/settings/portal", base(&s))).await;
    b.click(&b.find("#tracesEnabled").await).await;
    b.click(&b.find("#save").await).await;
    b.until("saved", "return location.search.includes('saved')")
        .await;
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.body["tracesEnabled"],
        true
    );
    b.quit().await;

    // Narrow screens: the same page at 390 px.
    let small = Browser::start(390, 844).await;
    sign_in(&small, &s, "admin", "bootstrap-password").await;
    small
        .until("signed in", "return location.pathname !== '/signin'")
        .await;
    small
        .goto(&format!("{}/settings/user-access/lmv1-tokens", base(&s)))
        .await;
    let overflow = small
        .script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(overflow, json!(true), "no sideways scrolling at 390 px");
    small.screenshot("lmv1-tokens-390px").await;
    small.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_page_checks_a_pasted_token_and_tries_operations_with_it() {
    if !available("the_api_page_checks_a_pasted_token_and_tries_operations_with_it") {
        return;
    }
    let Some(s) = Server::start().await else {
        return;
    };
    let pusher = s.user("pusher", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(pusher, "from the API page").await;
    let b = Browser::start(1280, 900).await;
    sign_in(&b, &s, "admin", "bootstrap-password").await;
    b.click(&b.find("nav.side a[href='/settings/api']").await)
        .await;
    b.until(
        "the operations",
        "return document.getElementById('api-operations')?.dataset.loaded === 'true'",
    )
    .await;
    // Grouped by tag, every operation of the document.
    let tags = b
        .script("return [...document.querySelectorAll('.op-group h2')].map(h => h.textContent)")
        .await;
    for tag in ["Users", "API tokens", "Roles", "Audit log", "Portal"] {
        assert!(tags.as_array().unwrap().contains(&json!(tag)), "{tags}");
    }
    let spec = send(reqwest::Client::new().get(s.url("/openapi.json"))).await;
    let ops: usize = spec.body["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        b.script("return document.querySelectorAll('details.op').length")
            .await,
        json!(ops)
    );

    // Live diagnostics while pasting, before anything is sent.
    let field = b.find("#api-token").await;
    let diagnosis = "return document.getElementById('token-diagnosis').textContent";
    let cases = [
        (format!("{secret} "), "a space after the token"),
        (format!(" {secret}"), "a space before the token"),
        (secret[..48].to_owned(), "1 character short (48 of 49)"),
        (
            format!("{}-{}", &secret[..9], &secret[10..]),
            "Character 10 is '-'",
        ),
        (
            format!(
                "{}{}",
                &secret[..48],
                if secret.ends_with('A') { "B" } else { "A" }
            ),
            "checksum",
        ),
        (format!("{secret}x"), "1 character too long"),
    ];
    for (typed, says) in &cases {
        b.clear(&field).await;
        b.type_into(&field, typed).await;
        let text = b.script(diagnosis).await;
        assert!(text.as_str().unwrap().contains(says), "{typed:?}: {text}");
    }
    b.screenshot("api-token-diagnosis").await;
    // A bad token is not sent.
    b.script("document.querySelector('#op-getOwnApiToken').open = true")
        .await;
    let own = "#op-getOwnApiToken";
    b.click(&b.find(&format!("{own} button[type=submit]")).await)
        .await;
    let status = b.text(&b.find(&format!("{own} .try-status")).await).await;
    assert!(status.starts_with("Not sent"), "{status}");

    b.clear(&field).await;
    b.type_into(&field, &secret).await;
    let text = b.script(diagnosis).await;
    assert!(text.as_str().unwrap().contains("well-formed"), "{text}");
    assert!(!text.as_str().unwrap().contains(&secret), "masked: {text}");

    // Try it: the request acts as the token's owner (pusher), not the signed-in admin.
    b.click(&b.find(&format!("{own} button[type=submit]")).await)
        .await;
    b.until(
        "the answer",
        "return document.querySelector('#op-getOwnApiToken .try-status').textContent.startsWith('200')",
    )
    .await;
    let response = b.text(&b.find(&format!("{own} .try-response")).await).await;
    let answer: serde_json::Value = serde_json::from_str(&response).expect("JSON shown");
    assert_eq!(answer["adminName"], "pusher", "{response}");
    assert_eq!(answer["id"], id);
    let curl = b.text(&b.find(&format!("{own} .try-curl")).await).await;
    assert!(curl.starts_with("curl -X GET"), "{curl}");
    assert!(curl.contains(&keygate_core::token::mask(&secret)), "{curl}");
    assert!(
        !curl.contains(&secret),
        "the curl line masks the token: {curl}"
    );
    b.screenshot("api-try-it").await;

    // An operation with a path parameter and a body.
    b.script("document.querySelector('#op-patchApiTokenByAdminId').open = true")
        .await;
    let patch = "#op-patchApiTokenByAdminId";
    b.type_into(
        &b.find(&format!("{patch} input[name=adminId]")).await,
        &pusher.to_string(),
    )
    .await;
    b.type_into(
        &b.find(&format!("{patch} input[name=apitokenId]")).await,
        &id.to_string(),
    )
    .await;
    let body = b.find(&format!("{patch} textarea")).await;
    b.clear(&body).await;
    b.type_into(&body, r#"{"note": "changed from the API page"}"#)
        .await;
    b.click(&b.find(&format!("{patch} button[type=submit]")).await)
        .await;
    b.until(
        "the patch answer",
        "return document.querySelector('#op-patchApiTokenByAdminId .try-status').textContent.startsWith('200')",
    )
    .await;
    let r = s
        .get(
            &s.admin_token,
            &format!("/setting/admins/{pusher}/apitokens/{id}"),
        )
        .await;
    assert_eq!(r.body["note"], "changed from the API page");
    let log = s
        .get(
            &s.admin_token,
            "/setting/accesslogs?size=5&filter=action:apitoken.note",
        )
        .await;
    assert_eq!(log.body["items"][0]["username"], "pusher", "{}", log.text);

    // Kept in memory only: not in storage, not in the document, gone on reload.
    let stored = b
        .script("return localStorage.length + sessionStorage.length + document.cookie.length")
        .await;
    assert_eq!(stored, json!(0));
    let html = b.script("return document.documentElement.outerHTML").await;
    assert!(!html.as_str().unwrap().contains(&secret));
    b.goto(&format!("{}/settings/api", base(&s))).await;
    b.until(
        "the page again",
        "return document.getElementById('api-operations')?.dataset.loaded === 'true'",
    )
    .await;
    assert_eq!(
        b.prop(&b.find("#api-token").await, "value").await,
        json!("")
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_pages_say_what_happened_and_why() {
    if !available("the_token_pages_say_what_happened_and_why") {
        return;
    }
    let Some(s) = Server::start().await else {
        return;
    };
    let ingest = s.user("ingest", &[DATAINGESTION]).await;
    s.user("viewer", &[READONLY]).await;
    let b = Browser::start(1280, 900).await;
    sign_in(&b, &s, "admin", "bootstrap-password").await;
    let add = format!("{}/settings/user-access/bearer-tokens/add", base(&s));
    b.goto(&add).await;

    // Users left out of the list are named, with the reason.
    let hint = b.text(&b.find("#left-out").await).await;
    assert!(
        hint.contains("viewer") && hint.contains("DataIngestion"),
        "{hint}"
    );
    assert!(!hint.contains("ingest,"), "{hint}");
    let warning = b.text(&b.find("#token-warning").await).await;
    assert!(warning.contains("only once you click Save"), "{warning}");

    // Save, then the browser's Back: the page must not come back with a user
    // selected and no token (Save would refuse it).
    b.script(&format!("const s = document.getElementById('owner'); s.value = '{ingest}'; s.dispatchEvent(new Event('change')); return true")).await;
    b.until(
        "a token",
        "return document.getElementById('token').value.length === 49",
    )
    .await;
    let first = b.prop(&b.find("#token").await, "value").await;
    b.click(&b.find("#save").await).await;
    b.until(
        "the table",
        "return location.pathname.endsWith('/bearer-tokens')",
    )
    .await;
    let flash = b.text(&b.find("p.flash").await).await;
    assert!(
        flash.starts_with("Token kgt") && flash.ends_with("added for ingest."),
        "{flash}"
    );
    b.script("history.back(); return true").await;
    b.until(
        "the add page again",
        "return location.pathname.endsWith('/bearer-tokens/add') && document.readyState === 'complete'",
    )
    .await;
    // The page's pageshow handler resets a half-filled restore; wait for the page to
    // reach a whole state (a never-reset page times out here and fails).
    b.until(
        "a page not half-filled",
        "const o = document.getElementById('owner').value, t = document.getElementById('token').value; \
         return o === '' || t.length === 49",
    )
    .await;
    let state = b
        .script("return [document.getElementById('owner').value, document.getElementById('token').value]")
        .await;
    let (owner, token) = (state[0].as_str().unwrap(), state[1].as_str().unwrap());
    assert!(
        owner.is_empty() || token.len() == 49,
        "restored half-filled: {state}"
    );
    assert_ne!(json!(token), first, "the saved token is never shown again");
    b.screenshot("add-bearer-after-back").await;

    // Enable/disable: confirmed by name, shown in the row, said in words.
    b.goto(&format!(
        "{}/settings/user-access/bearer-tokens?q=ingest",
        base(&s)
    ))
    .await;
    let row = "#tokens tbody tr";
    b.click(&b.find(&format!("{row} input[data-action=status]")).await)
        .await;
    let asked = b.dialog_text().await;
    assert!(
        asked.contains("kgt") && asked.contains("of ingest"),
        "{asked}"
    );
    b.answer_dialog(false).await;
    assert_eq!(
        b.script(
            "return document.querySelector('#tokens tbody tr input[data-action=status]').checked"
        )
        .await,
        json!(true),
        "Cancel changes nothing"
    );
    b.click(&b.find(&format!("{row} input[data-action=status]")).await)
        .await;
    b.dialog_text().await;
    b.answer_dialog(true).await;
    b.until(
        "the row shows it",
        "return document.querySelector('#tokens tbody tr .token-state').textContent === 'Disabled'",
    )
    .await;
    assert_eq!(
        b.script(
            "return document.querySelector('#tokens tbody tr').classList.contains('disabled-row')"
        )
        .await,
        json!(true)
    );
    let said = b.text(&b.find("#page-status").await).await;
    assert!(
        said.starts_with("Disabled the token kgt") && said.ends_with("of ingest."),
        "{said}"
    );
    b.screenshot("bearer-token-disabled").await;
    // Reloaded, the state is still shown.
    b.goto(&format!(
        "{}/settings/user-access/bearer-tokens?q=ingest",
        base(&s)
    ))
    .await;
    assert_eq!(
        b.text(&b.find("#tokens tbody tr .token-state").await).await,
        "Disabled"
    );

    // A filter that empties the list is named, with a way to clear it.
    b.goto(&format!(
        "{}/settings/user-access/bearer-tokens?q=ingest&show=enabled",
        base(&s)
    ))
    .await;
    let empty = b.text(&b.find("#empty").await).await;
    assert!(
        empty.contains("\u{201c}ingest\u{201d}") && empty.contains("Show: Enabled"),
        "{empty}"
    );
    b.click(&b.find("#clear-filter").await).await;
    b.until(
        "all tokens",
        "return document.querySelectorAll('#tokens tbody tr').length === 2",
    )
    .await;

    // Deleting the last row leaves a message, not a bare table header.
    b.goto(&format!(
        "{}/settings/user-access/bearer-tokens?q=ingest",
        base(&s)
    ))
    .await;
    b.click(&b.find(&format!("{row} button[data-action=delete]")).await)
        .await;
    let asked = b.dialog_text().await;
    assert!(
        asked.starts_with("Delete the token kgt") && asked.contains("of ingest"),
        "{asked}"
    );
    b.answer_dialog(true).await;
    b.until(
        "the empty message",
        "return !document.getElementById('tokens') && !document.getElementById('empty').hidden",
    )
    .await;
    let empty = b.text(&b.find("#empty").await).await;
    assert!(empty.starts_with("No bearer tokens yet"), "{empty}");
    let said = b.text(&b.find("#page-status").await).await;
    assert!(said.starts_with("Deleted the token kgt"), "{said}");
    b.quit().await;
}
