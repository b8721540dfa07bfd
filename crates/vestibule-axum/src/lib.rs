//! Vestibule for axum: the only crate that knows HTTP.
//!
//! * [`router`] serves the broker's pages and endpoints (`/login`, `/login/{source}`, `/callback/{source}`,
//!   `/logout`, `/account`, `/me`, `/healthz`, `/verify`, the second factor's `/login/second-factor` and
//!   `/account/totp...`); [`Vestibule::nest_into`] nests it at the path of the
//!   broker's base URL, the one place the mount path is given.
//! * [`SessionLayer`] authenticates each request once for your own routes, through
//!   [`vestibule::Broker::authenticate`].
//! * [`RequireUser`], [`CurrentUser`], [`RequireFresh`], [`RequireScope`] and [`RequireGroup`] (declare groups with
//!   [`group!`]) hand who is signed in (a
//!   [`vestibule::Principal`]: a browser session or an access token) to your handlers; `RequireUser` redirects a
//!   browser to the login page and answers 401 JSON to an API client. [`RequireMultiFactor`] and
//!   [`RequireFreshMultiFactor`] want a session proven with a second factor (fresh, for the second); a browser
//!   that falls short is sent to step up at `/login/second-factor` and comes back. Signed in but lacking a group
//!   or scope is 403: a page for a browser, `{"error":"forbidden",...}` for an API client.
//! * The JSON API for single-page apps is part of [`router`], under `{mount}/api/` (sign-in, the second step,
//!   sign-out, `me`, sessions): it takes no CSRF token but refuses any state-changing request without the
//!   [`SPA_REQUEST_HEADER`] header or from another origin than the broker's public URL; its errors carry the
//!   stable codes of [`AppError::code`].
//! * [`CsrfToken`] gives the app's own templates the CSRF token and [`CsrfForm`] checks it on the app's own form
//!   posts (a logout button posting to `{mount}/logout`, any form of the app).
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use vestibule_axum::{HttpSettings, RequireUser, Vestibule};
//!
//! # async fn demo(broker: std::sync::Arc<vestibule::Broker>) {
//! // The broker was built with the base URL `https://app.example.com/auth`: its routes go under `/auth`.
//! let auth = Vestibule::new(broker, HttpSettings::default());
//! let app = Router::new().route("/", get(|RequireUser(user): RequireUser| async move {
//!     format!("Hello, {}", user.display_name.as_deref().unwrap_or("you"))
//! }));
//! let app: Router = auth.nest_into(app).layer(auth.layer());
//! # let _ = app; }
//! ```

mod admin_api;
mod client;
mod context;
mod cookies;
mod csrf;
mod deadline;
mod error;
mod extract;
mod headers;
mod i18n;
mod layer;
mod linking;
mod next;
mod pages;
mod passkey;
mod request_id;
mod reset;
mod respond;
mod routes;
mod second_factor;
mod self_service;
mod spa;
mod state;
#[cfg(test)]
mod template_parity;
mod ui;

pub use admin_api::openapi as admin_openapi;
pub use csrf::{CsrfForm, CsrfToken};
pub use error::AppError;
pub use extract::{
    require_group, CurrentUser, Group, GroupChecked, RequireFresh, RequireFreshMultiFactor, RequireGroup,
    RequireGroupLayer, RequireGroupService, RequireMultiFactor, RequireScope, RequireUser, Scope, Unauthenticated,
};
pub use layer::{SessionFuture, SessionLayer, SessionService};
pub use next::safe_next;
pub use pages::utc;
pub use request_id::{with_request_id, REQUEST_ID_HEADER};
pub use routes::router;
pub use spa::REQUEST_HEADER as SPA_REQUEST_HEADER;
pub use state::{HttpSettings, Vestibule};
pub use ui::{Logo, TemplateOverrides, UiError, UiSettings, MAX_LOGO_BYTES};
