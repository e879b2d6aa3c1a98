//! The client commands: `login`, `logout`, `whoami`, `api` and `token check`. They
//! talk to a keygate server over HTTP (or nothing at all) and never open a database.

use std::io::{IsTerminal as _, Read as _};

use anyhow::{Context as _, Result, bail};
use keygate_client::ClientError;
use keygate_client::credentials::{self, Credentials, Profile};
use keygate_client::http::{self, Answer, Client};
use keygate_core::token::BearerToken;
use serde_json::Value;

use crate::cli::{ApiArgs, LoginArgs, ProfileArgs};

/// Most bytes read from stdin for a token or a request body.
const MAX_INPUT: u64 = 1024 * 1024;

/// Reads a secret: from a hidden prompt on a terminal, else all of stdin with one
/// line ending removed (what `echo "$TOKEN" |` and `< file` add).
pub fn read_secret(prompt: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).context("could not read from the terminal");
    }
    let mut s = String::new();
    std::io::stdin()
        .take(MAX_INPUT)
        .read_to_string(&mut s)
        .context("could not read standard input (is it text?)")?;
    if let Some(t) = s.strip_suffix('\n') {
        s.truncate(t.strip_suffix('\r').unwrap_or(t).len());
    }
    Ok(s)
}

fn load() -> Result<Credentials, ClientError> {
    Credentials::load(&Credentials::default_path()?)
}

/// What a client command acts with: from the profile, with `KEYGATE_TOKEN` and
/// `KEYGATE_SERVER` taking precedence.
fn client_for(profile: &str) -> Result<Client> {
    credentials::check_profile_name(profile)?;
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let (env_token, env_server) = (env("KEYGATE_TOKEN"), env("KEYGATE_SERVER"));
    // The file is read only when something is missing from the environment.
    let stored = if env_token.is_some() && env_server.is_some() {
        None
    } else {
        load()?.profile(profile).cloned()
    };
    let token = env_token
        .or_else(|| stored.as_ref().map(|p| p.token.clone()))
        .ok_or_else(|| ClientError::NoCredentials {
            profile: profile.to_owned(),
        })?;
    let server = env_server
        .or_else(|| stored.as_ref().map(|p| p.server.clone()))
        .ok_or_else(|| ClientError::NoServer {
            profile: profile.to_owned(),
        })?;
    let server = http::check_server(&server)?;
    let token = BearerToken::parse(&token).map_err(ClientError::Token)?;
    let ca = stored.as_ref().and_then(|p| p.ca_cert.as_deref());
    Ok(Client::new(&server, &token, ca)?)
}

/// Reports a refused or failed answer on stderr; returns its exit status.
fn report(a: &Answer) -> u8 {
    if !a.ok() {
        match a.error_message() {
            Some(m) => eprintln!("keygate: HTTP {}: {m}", a.status),
            None => eprintln!("keygate: HTTP {}", a.status),
        }
    }
    http::exit_status(a.status)
}

/// `keygate login`: checks the token offline, then with the server, then stores it.
pub async fn login(args: &LoginArgs) -> Result<u8> {
    let name = &args.profile.profile;
    credentials::check_profile_name(name)?;
    let mut creds = load()?;
    let existing = creds.profile(name).cloned();
    let server = args
        .server
        .clone()
        .or_else(|| existing.as_ref().map(|p| p.server.clone()))
        .ok_or_else(|| ClientError::NoServer {
            profile: name.clone(),
        })?;
    let server = http::check_server(&server)?;
    if http::is_cleartext_remote(&server) {
        eprintln!(
            "keygate: warning: {server} is plain http to another host: the token will cross the network in clear text; use https"
        );
    }
    let ca_cert = args
        .ca_cert
        .clone()
        .or_else(|| existing.as_ref().and_then(|p| p.ca_cert.clone()));
    let typed = read_secret(&format!("Bearer token for {server} (input hidden): "))?;
    let token =
        BearerToken::parse(&typed).map_err(|e| anyhow::anyhow!("{e}; nothing was stored"))?;
    let client = Client::new(&server, &token, ca_cert.as_deref())?;
    let answer = client.whoami().await?;
    if !answer.ok() {
        let code = report(&answer);
        eprintln!("keygate: the server refused the token; nothing was stored");
        return Ok(code);
    }
    let me = answer.json.unwrap_or(Value::Null);
    creds.set(
        name,
        Profile {
            server: server.clone(),
            token: token.expose_secret().to_owned(),
            ca_cert,
        },
    );
    creds.save()?;
    eprintln!(
        "Logged in to {server} as {} with token {} (profile \"{name}\", stored in {}).",
        me["adminName"].as_str().unwrap_or("?"),
        me["accessId"].as_str().unwrap_or("?"),
        creds.path().display()
    );
    Ok(0)
}

/// `keygate logout`: forgets the profile's token. The token itself stays valid on the
/// server until it is disabled or deleted, which the message says.
pub fn logout(args: &ProfileArgs) -> Result<u8> {
    let name = &args.profile;
    credentials::check_profile_name(name)?;
    let mut creds = load()?;
    let Some(p) = creds.profile(name).cloned() else {
        eprintln!("keygate: no stored token for profile \"{name}\"; nothing to do");
        return Ok(0);
    };
    creds.remove(name);
    creds.save()?;
    eprintln!(
        "Forgot the token {} for {} (profile \"{name}\"). It still works until it is disabled or deleted on the server.",
        keygate_core::token::mask(&p.token),
        p.server
    );
    Ok(0)
}

/// `keygate whoami`.
pub async fn whoami(args: &ProfileArgs) -> Result<u8> {
    let client = client_for(&args.profile)?;
    let a = client.whoami().await?;
    if !a.ok() {
        return Ok(report(&a));
    }
    let me = a.json.unwrap_or(Value::Null);
    let s = |k: &str| me[k].as_str().unwrap_or("").to_owned();
    let n = |k: &str| me[k].as_i64().unwrap_or(0);
    let when = |t: i64| {
        if t > 0 {
            keygate_core::date::utc(t)
        } else {
            "never".to_owned()
        }
    };
    let privileges: Vec<&str> = me["privileges"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!("server:     {}", client.server());
    println!("user:       {} (id {})", s("adminName"), n("adminId"));
    println!(
        "token:      {} (id {}, {}, {})",
        s("accessId"),
        n("id"),
        s("type"),
        if n("status") == 2 {
            "enabled"
        } else {
            "disabled"
        }
    );
    if !s("note").is_empty() {
        println!("note:       {}", s("note").escape_debug());
    }
    println!(
        "privileges: {}",
        if privileges.is_empty() {
            "none".to_owned()
        } else {
            privileges.join(", ")
        }
    );
    println!("created:    {} by {}", when(n("createdOn")), s("createdBy"));
    println!("last used:  {}", when(n("lastUsedOn")));
    Ok(0)
}

/// `keygate api METHOD PATH [--data ...]`.
pub async fn api(args: &ApiArgs) -> Result<u8> {
    // Path and body are checked before credentials are read or anything is sent.
    http::api_path(&args.path)?;
    let body = match args.data.as_deref() {
        None => None,
        Some("-") => {
            let mut b = Vec::new();
            std::io::stdin()
                .take(MAX_INPUT)
                .read_to_end(&mut b)
                .context("could not read the body from standard input")?;
            Some(b)
        }
        Some(d) => match d.strip_prefix('@') {
            Some(path) => {
                Some(std::fs::read(path).with_context(|| format!("could not read {path}"))?)
            }
            None => Some(d.as_bytes().to_vec()),
        },
    };
    if let Some(b) = &body {
        http::check_json(b)?;
    }
    let client = client_for(&args.profile.profile)?;
    let a = client.call(&args.method, &args.path, body).await?;
    let out = a.pretty();
    if !out.is_empty() {
        println!("{out}");
    }
    Ok(report(&a))
}

/// `keygate token check`: says offline what is wrong with a token, never echoing it.
pub fn check() -> Result<u8> {
    let typed = read_secret("Bearer token to check (input hidden): ")?;
    match BearerToken::parse(&typed) {
        Ok(t) => {
            println!(
                "ok: {} is a well-formed keygate bearer token (prefix, length, characters and checksum); `keygate login` asks a server whether it is valid",
                t.masked()
            );
            Ok(0)
        }
        Err(e) => bail!("{e}"),
    }
}
