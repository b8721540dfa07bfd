//! Account self-service routes (sessions, password) and forward auth for reverse proxies.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use vestibule::{Revoke, SelfServiceError};
use vestibule_core::{PasswordChangeError, SecretString};

use crate::layer::AuthContext;
use crate::routes::{check_csrf, Client};
use crate::{AppError, Vestibule};

impl From<SelfServiceError> for AppError {
    fn from(e: SelfServiceError) -> Self {
        match e {
            SelfServiceError::NotFresh => AppError::NotFresh,
            SelfServiceError::NotFound => AppError::NotFound,
            SelfServiceError::Password(PasswordChangeError::Unavailable(cause)) => AppError::Internal(cause),
            SelfServiceError::Password(p) => AppError::PasswordRejected(p.to_string()),
            SelfServiceError::NoPasswords => AppError::NotFound,
            SelfServiceError::Broker(b) => b.into(),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    csrf_token: Option<String>,
    session: Option<String>,
}

pub(crate) async fn revoke_sessions(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form.map_err(|_| AppError::BadRequest)?;
    check_csrf(&v, &headers, &ctx, form.csrf_token.as_deref())?;
    let session = ctx.session.as_ref().ok_or(AppError::Csrf)?;
    let which = match form.session.as_deref() {
        Some("others") => Revoke::Others,
        Some("all") => Revoke::All,
        Some(id) if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) => Revoke::One(id.to_ascii_lowercase()),
        _ => return Err(AppError::BadRequest),
    };
    let ends_this = matches!(&which, Revoke::All) || matches!(&which, Revoke::One(h) if *h == session.id_hash());
    let remembered = crate::cookies::get(&headers, v.inner.cookies.remember);
    v.broker().revoke_sessions(session, which, remembered, &client).await?;
    if ends_this {
        let clear = v.inner.cookies.clear(v.inner.cookies.session);
        return Ok(crate::routes::with_cookies(
            Redirect::to(&v.login_path()).into_response(),
            &[clear],
        ));
    }
    Ok(Redirect::to(&format!("{}/account?done=revoked", v.inner.mount)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    csrf_token: Option<String>,
    current_password: Option<String>,
    new_password: Option<String>,
}

pub(crate) async fn change_password(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form.map_err(|_| AppError::BadRequest)?;
    check_csrf(&v, &headers, &ctx, form.csrf_token.as_deref())?;
    let session = ctx.session.as_ref().ok_or(AppError::Csrf)?;
    let current = SecretString::from(form.current_password.unwrap_or_default());
    let new = SecretString::from(form.new_password.unwrap_or_default());
    v.broker().change_password(session, &current, &new, &client).await?;
    Ok(Redirect::to(&format!("{}/account?done=password", v.inner.mount)).into_response())
}

/// Forward auth (nginx `auth_request`, Traefik/Caddy forward-auth): 200 with who is signed in, else 401. Answers
/// from the session cache like any protected route; the headers carry no secret.
pub(crate) async fn verify(Extension(ctx): Extension<AuthContext>) -> Response {
    let Some(s) = &ctx.session else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        // Header values must be visible ASCII; anything else is left out rather than mangled.
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put("x-vestibule-user", s.account_id.as_str());
    if let Some(name) = &s.display_name {
        put("x-vestibule-name", name);
    }
    if let Some(email) = &s.email {
        put("x-vestibule-email", email);
    }
    put("x-vestibule-groups", &s.groups.join(","));
    res
}
