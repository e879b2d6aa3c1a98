//! Runs the example service: `KEYGATE_URL`, `KEYGATE_TOKEN` (a token whose owner has
//! the verifier role), `LISTEN` (default `127.0.0.1:8090`) and
//! `MAX_STALENESS_SECONDS` (default 30).

use std::time::Duration;

use anyhow::Context as _;
use keygate_tower::{Gate, RemoteConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let url = std::env::var("KEYGATE_URL").context("set KEYGATE_URL to keygate's address")?;
    let token = std::env::var("KEYGATE_TOKEN")
        .context("set KEYGATE_TOKEN to a token whose owner has the verifier role")?;
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".to_owned());
    let mut config = RemoteConfig::new(url, token);
    if let Ok(s) = std::env::var("MAX_STALENESS_SECONDS") {
        config.max_staleness = Duration::from_secs(s.parse().context("MAX_STALENESS_SECONDS")?);
    }
    let gate = Gate::remote(config).await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("protected-service listening on {listen}");
    axum::serve(
        listener,
        protected_service::app(gate).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
