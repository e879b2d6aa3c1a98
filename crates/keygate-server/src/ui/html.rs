//! HTML building blocks: escaping, the page layout and small pieces shared by pages.
//!
//! Every value that comes from data goes through [`esc`]. Pages carry no inline script
//! or style, so the Content-Security-Policy can forbid both.

use std::fmt::Write as _;

use keygate_core::model::EpochSeconds;
use keygate_core::policy::Grants;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time: UTC in the HTML, turned into the browser's local time by the script, with
/// the full timestamp on hover. `0` means never.
pub fn time(t: EpochSeconds) -> String {
    if t <= 0 {
        return "<span class=\"muted\">Never</span>".to_owned();
    }
    format!(
        "<time data-epoch=\"{t}\">{}</time>",
        keygate_core::date::utc(t)
    )
}

/// Which tab of Users and Roles is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Users.
    Users,
    /// Roles.
    Roles,
    /// LMv1 API Tokens.
    Lmv1,
    /// Bearer Tokens.
    Bearer,
    /// The audit log.
    Audit,
    /// Portal settings (not a tab; a sibling page).
    Portal,
    /// The REST API page (not a tab; a sibling page).
    Api,
}

/// Who is looking at a page, for the header and for what to show.
pub struct Viewer<'a> {
    /// Username.
    pub username: &'a str,
    /// Privileges now.
    pub grants: Grants,
    /// CSRF token for the script and forms.
    pub csrf: &'a str,
}

impl Viewer<'_> {
    /// May see Users and Roles.
    pub fn sees_users(&self) -> bool {
        self.grants.contains(Grants::USERACCESS_READ)
            || self.grants.contains(Grants::USERACCESS_WRITE)
    }

    /// May see the token tabs.
    pub fn sees_tokens(&self) -> bool {
        self.sees_users() || self.grants.contains(Grants::APITOKEN_WRITE)
    }

    /// May change users and roles.
    pub fn manages_users(&self) -> bool {
        self.grants.contains(Grants::USERACCESS_WRITE)
    }

    /// May change portal settings.
    pub fn manages_portal(&self) -> bool {
        self.grants.contains(Grants::PORTAL_WRITE)
    }

    /// May see pushed data: all of it with useraccess read, one's own with
    /// DataIngestion.
    pub fn sees_data(&self) -> bool {
        self.grants.contains(Grants::USERACCESS_READ) || self.grants.contains(Grants::DATAINGESTION)
    }
}

/// The top-level areas in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Pushed data: resources, logs, traces.
    Data,
    /// Settings: user access, portal, REST API.
    Settings,
}

/// The frame every page shares: the header with the areas and sign-out, a side
/// navigation, and `main`.
fn shell(title: &str, v: &Viewer<'_>, area: Area, side: &str, main: &str) -> String {
    let link = |a: Area, href: &str, label: &str| {
        let current = if a == area {
            " aria-current=\"page\" class=\"current\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    let data = if v.sees_data() {
        link(Area::Data, "/data/resources", "Data")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"csrf-token\" content=\"{csrf}\">\
         <title>{title} · keygate</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"><script src=\"/assets/app.js\" defer></script></head>\
         <body><header class=\"top\"><a class=\"brand\" href=\"/\">keygate</a>\
         <nav class=\"areas\" aria-label=\"Areas\">{data}{settings}</nav>\
         <form method=\"post\" action=\"/signout\" class=\"signout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <span class=\"who\">Signed in as <strong>{user}</strong></span> <button type=\"submit\">Sign out</button></form></header>\
         <div class=\"layout\">{side}<main>{main}</main></div></body></html>",
        csrf = esc(v.csrf),
        title = esc(title),
        user = esc(v.username),
        settings = link(Area::Settings, "/settings/user-access/users", "Settings"),
    )
}

/// A whole page: header with sign-out, the settings navigation, the tabs, `body`.
pub fn page(title: &str, v: &Viewer<'_>, tab: Tab, body: &str) -> String {
    let mut tabs = String::new();
    let sibling = matches!(tab, Tab::Portal | Tab::Api);
    if !sibling {
        tabs.push_str("<nav class=\"tabs\" aria-label=\"Users and Roles\">");
        let items = [
            (
                Tab::Users,
                "Users",
                "/settings/user-access/users",
                v.sees_users(),
            ),
            (
                Tab::Roles,
                "Roles",
                "/settings/user-access/roles",
                v.sees_users(),
            ),
            (
                Tab::Lmv1,
                "LMv1 API Tokens",
                "/settings/user-access/lmv1-tokens",
                v.sees_tokens(),
            ),
            (
                Tab::Bearer,
                "Bearer Tokens",
                "/settings/user-access/bearer-tokens",
                v.sees_tokens(),
            ),
            (
                Tab::Audit,
                "Audit Log",
                "/settings/user-access/audit",
                v.sees_users(),
            ),
        ];
        for (t, label, href, visible) in items {
            if visible {
                let current = if t == tab {
                    " aria-current=\"page\" class=\"current\""
                } else {
                    ""
                };
                let _ = write!(tabs, "<a href=\"{href}\"{current}>{label}</a>");
            }
        }
        tabs.push_str("</nav>");
    }
    let portal_link = if v.manages_portal() {
        let current = if tab == Tab::Portal {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<li><a href=\"/settings/portal\"{current}>Portal</a></li>")
    } else {
        String::new()
    };
    let api_current = if tab == Tab::Api {
        " aria-current=\"page\""
    } else {
        ""
    };
    let (heading, crumb) = match tab {
        Tab::Portal => ("Portal settings", "Portal"),
        Tab::Api => ("REST API", "REST API"),
        _ => ("Users and Roles", "User Access › Users and Roles"),
    };
    let side = format!(
        "<nav class=\"side\" aria-label=\"Settings\"><p class=\"side-title\">Settings</p><ul>\
         <li><span class=\"muted\">User Access</span><ul><li><a href=\"/settings/user-access/users\"{ua}>Users and Roles</a></li></ul></li>\
         {portal_link}<li><a href=\"/settings/api\"{api_current}>REST API</a></li></ul></nav>",
        ua = if sibling {
            ""
        } else {
            " aria-current=\"page\""
        },
    );
    let main = format!("<p class=\"crumbs\">Settings › {crumb}</p><h1>{heading}</h1>{tabs}{body}");
    shell(title, v, Area::Settings, &side, &main)
}

/// The Data area's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSection {
    /// Resources and their datapoints' charts.
    Resources,
    /// The log viewer.
    Logs,
    /// Traces and their waterfalls.
    Traces,
}

/// A page of the Data area: its side navigation, a crumb trail, `heading`, `body`.
pub fn data_page(
    title: &str,
    v: &Viewer<'_>,
    section: DataSection,
    heading: &str,
    body: &str,
) -> String {
    let mut side = String::from(
        "<nav class=\"side\" aria-label=\"Data\"><p class=\"side-title\">Data</p><ul>",
    );
    let mut crumb = "";
    for (s, label, href) in [
        (DataSection::Resources, "Resources", "/data/resources"),
        (DataSection::Logs, "Logs", "/data/logs"),
        (DataSection::Traces, "Traces", "/data/traces"),
    ] {
        let current = if s == section {
            crumb = label;
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(side, "<li><a href=\"{href}\"{current}>{label}</a></li>");
    }
    side.push_str("</ul></nav>");
    let main = format!(
        "<p class=\"crumbs\">Data › {crumb}</p><h1>{}</h1>{body}",
        esc(heading)
    );
    shell(title, v, Area::Data, &side, &main)
}

/// A page shown when the viewer lacks the privilege for it.
pub fn forbidden(v: &Viewer<'_>, tab: Tab, what: &str) -> String {
    page(
        "Not allowed",
        v,
        tab,
        &format!(
            "<section class=\"panel error-page\" role=\"alert\"><h2>403 — not allowed</h2><p>{}</p></section>",
            esc(what)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_times() {
        assert_eq!(
            esc("<script>alert('1')</script>&\""),
            "&lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert!(time(1_700_000_000).contains("2023-11-14 22:13:20 UTC"));
        assert!(time(0).contains("Never"));
    }
}
