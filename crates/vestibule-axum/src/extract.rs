//! Extractors for handlers: who is signed in.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use http::header::ACCEPT;
use http::request::Parts;
use http::StatusCode;
use vestibule::{ActiveSession, Principal};

use crate::context::AuthContext;
use crate::AppError;

/// Who is signed in — a browser session or a personal access token (see [`Principal`]; it dereferences to the
/// account, so `user.account_id` works for both) — or a refusal: a browser (asking for HTML) is sent to the login
/// page with `next` set to where it was going; any other client gets `401 {"error":"unauthenticated"}`.
#[derive(Debug, Clone)]
pub struct RequireUser(pub Principal);

/// The signed-in session, if a credential was proven in it within `fresh_secs` (a session restored from
/// remember-me, or an old one, is not fresh; a token never is). Otherwise a browser is sent to sign in again and come back; any other
/// client gets `401 {"error":"reauthentication_required"}`. For sensitive actions.
#[derive(Debug, Clone)]
pub struct RequireFresh(pub Arc<ActiveSession>);

/// The signed-in session, if it was proven with a second factor (a TOTP or recovery code, or a trusted provider's
/// MFA): for routes only multi-factor sessions may use. Otherwise a browser is sent to the second-factor page
/// (step-up: a code for a session whose account has a factor; the account page to set one up when it has none),
/// then back; any other client gets `401 {"error":"second_factor_required"}`. A token is never multi-factor.
#[derive(Debug, Clone)]
pub struct RequireMultiFactor(pub Arc<ActiveSession>);

/// The signed-in session, if a second factor was proven in it within `fresh_secs`: for sensitive routes, so that a
/// session restored from remember-me, or an old one, proves its second factor again (step-up). Refused like
/// [`RequireMultiFactor`].
#[derive(Debug, Clone)]
pub struct RequireFreshMultiFactor(pub Arc<ActiveSession>);

/// Who is signed in, if anyone.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Option<Principal>);

/// A scope a route requires of personal access tokens, named by a marker type:
///
/// ```
/// use vestibule_axum::{RequireScope, Scope};
///
/// struct ReadReports;
/// impl Scope for ReadReports {
///     const NAME: &'static str = "reports:read";
/// }
///
/// async fn reports(RequireScope(user, ..): RequireScope<ReadReports>) -> String {
///     format!("reports for {}", user.account_id)
/// }
/// ```
pub trait Scope: Send + Sync + 'static {
    /// The scope's name, as given when the token was created.
    const NAME: &'static str;
}

/// Who is signed in, when a bearer token carries the scope `S::NAME` — or a browser session, which is the person
/// themselves and holds every scope. A token without it gets `403 {"error":"insufficient_scope"}`; nobody signed in
/// is refused like [`RequireUser`].
#[derive(Debug)]
pub struct RequireScope<S: Scope>(pub Principal, pub std::marker::PhantomData<S>);

impl<S: Scope> Clone for RequireScope<S> {
    fn clone(&self) -> Self {
        RequireScope(self.0.clone(), std::marker::PhantomData)
    }
}

/// Why [`RequireUser`] refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// Go sign in (browsers).
    Login(String),
    /// 401 (API clients).
    Json,
    /// 401 asking for a new sign-in (API clients, stale session).
    Stale,
    /// 403: a token without the scope the route requires.
    InsufficientScope,
    /// Go prove a second factor (browsers): the step-up page, returning to where the request was going.
    StepUp(String),
    /// 401 asking for a second factor (API clients).
    SecondFactor,
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
            Unauthenticated::Stale => (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({ "error": "reauthentication_required" })),
            )
                .into_response(),
            Unauthenticated::StepUp(to) => Redirect::to(&to).into_response(),
            Unauthenticated::SecondFactor => (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({ "error": "second_factor_required" })),
            )
                .into_response(),
            Unauthenticated::InsufficientScope => (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({ "error": "insufficient_scope" })),
            )
                .into_response(),
            Unauthenticated::MissingLayer => {
                tracing::error!("RequireUser used on a route without vestibule's SessionLayer");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// The login page with `next` set to where the request was going (the full path, nest prefix included).
fn login_redirect(parts: &Parts, v: &crate::Vestibule) -> String {
    format!("{}?next={}", v.login_path(), here_encoded(parts))
}

/// The step-up page with `next` set to where the request was going.
fn step_up_redirect(parts: &Parts, v: &crate::Vestibule) -> String {
    format!("{}/login/second-factor?next={}", v.mount(), here_encoded(parts))
}

/// Where the request was going, percent-encoded for a `next` parameter.
fn here_encoded(parts: &Parts) -> String {
    let here = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .and_then(|u| u.0.path_and_query().map(|p| p.as_str().to_owned()))
        .or_else(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
        .unwrap_or_else(|| "/".to_owned());
    percent_encoding::utf8_percent_encode(&here, percent_encoding::NON_ALPHANUMERIC).to_string()
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
        if let Some(p) = &ctx.principal {
            return Ok(RequireUser(p.clone()));
        }
        if wants_html(parts) {
            return Err(Unauthenticated::Login(login_redirect(parts, &ctx.vestibule)));
        }
        Err(Unauthenticated::Json)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequireFresh {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RequireUser(principal) = RequireUser::from_request_parts(parts, state).await?;
        let Some(ctx) = parts.extensions.get::<AuthContext>() else {
            return Err(Unauthenticated::MissingLayer);
        };
        if let Principal::Session(session) = principal {
            if ctx.vestibule.broker().is_fresh(&session) {
                return Ok(RequireFresh(session));
            }
        }
        if wants_html(parts) {
            return Err(Unauthenticated::Login(login_redirect(parts, &ctx.vestibule)));
        }
        Err(Unauthenticated::Stale)
    }
}

/// The session behind a request that needs a second factor, when `enough` says it has proven one; else a refusal
/// that sends a browser to step up.
async fn multi_factor<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    enough: impl Fn(&vestibule::Broker, &ActiveSession) -> bool,
) -> Result<Arc<ActiveSession>, Unauthenticated> {
    let RequireUser(principal) = RequireUser::from_request_parts(parts, state).await?;
    let Some(ctx) = parts.extensions.get::<AuthContext>() else {
        return Err(Unauthenticated::MissingLayer);
    };
    if let Principal::Session(session) = principal {
        if enough(ctx.vestibule.broker(), &session) {
            return Ok(session);
        }
        if wants_html(parts) {
            return Err(Unauthenticated::StepUp(step_up_redirect(parts, &ctx.vestibule)));
        }
    }
    Err(Unauthenticated::SecondFactor)
}

impl<S: Send + Sync> FromRequestParts<S> for RequireMultiFactor {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        multi_factor(parts, state, |_, s| s.assurance == vestibule::Assurance::Multi)
            .await
            .map(RequireMultiFactor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequireFreshMultiFactor {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        multi_factor(parts, state, |broker, s| broker.is_fresh_multi_factor(s))
            .await
            .map(RequireFreshMultiFactor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthContext>() {
            Some(ctx) => Ok(CurrentUser(ctx.principal.clone())),
            None => Err(Unauthenticated::MissingLayer),
        }
    }
}

impl<St: Send + Sync, S: Scope> FromRequestParts<St> for RequireScope<S> {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let RequireUser(principal) = RequireUser::from_request_parts(parts, state).await?;
        if principal.has_scope(S::NAME) {
            Ok(RequireScope(principal, std::marker::PhantomData))
        } else {
            Err(Unauthenticated::InsufficientScope)
        }
    }
}

/// The broker's own account routes: a browser session, or a refusal — a personal access token is not the person
/// (`403`, [`AppError::TokenNotAllowed`]), and no session means the form's session is gone (`403`,
/// [`AppError::Csrf`]: nothing was changed).
pub(crate) struct SignedIn(pub(crate) Arc<ActiveSession>);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ctx = parts
            .extensions
            .get::<AuthContext>()
            .ok_or_else(|| AppError::Internal("a broker route without the session layer".into()))?;
        match &ctx.principal {
            Some(Principal::Session(s)) => Ok(SignedIn(s.clone())),
            Some(_) => Err(AppError::TokenNotAllowed),
            None => Err(AppError::Csrf),
        }
    }
}
