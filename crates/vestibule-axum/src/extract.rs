//! Extractors for handlers: who is signed in.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use http::header::ACCEPT;
use http::request::Parts;
use http::StatusCode;
use vestibule::ActiveSession;

use crate::layer::AuthContext;

/// The signed-in session, or a refusal: a browser (asking for HTML) is sent to the login page with `next` set to
/// where it was going; any other client gets `401 {"error":"unauthenticated"}`.
#[derive(Debug, Clone)]
pub struct RequireUser(pub Arc<ActiveSession>);

/// The signed-in session if there is one.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Option<Arc<ActiveSession>>);

/// Why [`RequireUser`] refused.
#[derive(Debug)]
pub enum Unauthenticated {
    /// Go sign in (browsers).
    Login(String),
    /// 401 (API clients).
    Json,
    /// The app forgot `.layer(vestibule.layer())`: a programming error, answered with 500 rather than letting
    /// anyone through.
    MissingLayer,
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        match self {
            Unauthenticated::Login(to) => Redirect::to(&to).into_response(),
            Unauthenticated::Json => (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({ "error": "unauthenticated" })),
            )
                .into_response(),
            Unauthenticated::MissingLayer => {
                tracing::error!("RequireUser used on a route without vestibule's SessionLayer");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

fn wants_html(parts: &Parts) -> bool {
    parts
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

impl<S: Send + Sync> FromRequestParts<S> for RequireUser {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(ctx) = parts.extensions.get::<AuthContext>() else {
            return Err(Unauthenticated::MissingLayer);
        };
        if let Some(s) = &ctx.session {
            return Ok(RequireUser(s.clone()));
        }
        if wants_html(parts) {
            let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            // The original URI of a nested router lost its prefix; axum keeps the full one for us.
            let here = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .and_then(|u| u.0.path_and_query().map(|p| p.as_str().to_owned()))
                .unwrap_or_else(|| here.to_owned());
            let next = percent_encoding::utf8_percent_encode(&here, percent_encoding::NON_ALPHANUMERIC);
            return Err(Unauthenticated::Login(format!(
                "{}?next={next}",
                ctx.vestibule.login_path()
            )));
        }
        Err(Unauthenticated::Json)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthContext>() {
            Some(ctx) => Ok(CurrentUser(ctx.session.clone())),
            None => Err(Unauthenticated::MissingLayer),
        }
    }
}
