//! Vestibule for axum: the only crate that knows HTTP.
//!
//! * [`router`] serves the broker's pages and endpoints (`/login`, `/login/{source}`, `/callback/{source}`,
//!   `/logout`, `/account`, `/me`, `/healthz`); nest it wherever you like (`/auth`).
//! * [`SessionLayer`] resolves the session cookie once per request for your own routes.
//! * [`RequireUser`] and [`CurrentUser`] hand the signed-in account to your handlers; `RequireUser` redirects a
//!   browser to the login page and answers 401 JSON to an API client.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use vestibule_axum::{HttpSettings, RequireUser, Vestibule};
//!
//! # async fn demo(broker: std::sync::Arc<vestibule::Broker>) {
//! let auth = Vestibule::new(broker, HttpSettings { mount: "/auth".into(), ..HttpSettings::default() });
//! let app: Router = Router::new()
//!     .route("/", get(|RequireUser(user): RequireUser| async move {
//!         format!("Hello, {}", user.display_name.as_deref().unwrap_or("you"))
//!     }))
//!     .nest("/auth", vestibule_axum::router(auth.clone()))
//!     .layer(auth.layer());
//! # let _ = app; }
//! ```

mod client;
mod context;
mod cookies;
mod csrf;
mod deadline;
mod error;
mod extract;
mod headers;
mod layer;
mod linking;
mod next;
mod pages;
mod respond;
mod routes;
mod self_service;
mod state;

pub use error::AppError;
pub use extract::{CurrentUser, RequireFresh, RequireScope, RequireUser, Scope, Unauthenticated};
pub use layer::{SessionFuture, SessionLayer, SessionService};
pub use next::safe_next;
pub use routes::router;
pub use state::{HttpSettings, Vestibule};
