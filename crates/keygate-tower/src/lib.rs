//! Verify keygate tokens in any tower service (axum, tonic, hyper): a [`KeygateLayer`]
//! in front of the service and an [`Authenticated`] extractor in its handlers.
//!
//! ```no_run
//! # async fn run() -> Result<(), keygate_tower::GateError> {
//! use axum::{Router, routing::get};
//! use keygate_tower::{Authenticated, Gate, KeygateLayer, RemoteConfig};
//!
//! let gate = Gate::remote(RemoteConfig::new("http://127.0.0.1:8080", "kgt…")).await?;
//! let app: Router = Router::new()
//!     .route("/", get(|Authenticated(p): Authenticated| async move { format!("hello {}", p.username) }))
//!     .layer(KeygateLayer::new(gate));
//! # Ok(()) }
//! ```
//!
//! `Router::layer` puts the layer around each route (axum boxes every wrapped route
//! again); when every route needs a token, putting it around the whole router, as one
//! service (`tower_layer::Layer::layer(&layer, router)`), costs about 700 fewer
//! instructions a request (`docs/benchmarks.md`). Unmatched paths then need a token
//! too.
//!
//! The index is keygate's own: token digests, owners and their privileges, kept in
//! memory and current within milliseconds of a change on keygate. It comes either from
//! a `Store` in the same process ([`Gate::local`], what keygate's server uses) or from
//! a keygate server followed over HTTP ([`Gate::remote`]); see [`remote`].
//!
//! # Layout
//!
//! - [`gate`] — the [`Gate`]: credential → [`Principal`], the one implementation
//!   keygate's API and forward-auth endpoints use too; header and client-address rules.
//! - [`remote`] — following a keygate server: snapshot, long-polled changes, fail
//!   closed past the max staleness, LMv1 checked by keygate.
//! - [`layer`] — [`KeygateLayer`] and the service it wraps; refusals as responses.
//! - [`extract`] — the [`Authenticated`] and [`MaybeAuthenticated`] extractors.
//! - [`error`] — [`GateError`], every refusal worded once.
#![forbid(unsafe_code)]

pub mod error;
pub mod extract;
pub mod gate;
pub mod layer;
pub mod remote;

pub use error::GateError;
pub use extract::{Authenticated, MaybeAuthenticated};
pub use gate::Gate;
pub use keygate_auth::Principal;
pub use layer::KeygateLayer;
pub use remote::RemoteConfig;
