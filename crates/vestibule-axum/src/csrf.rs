//! CSRF for the broker's forms: what a token binds to, and the `Checked` form extractor that verifies it before a
//! handler runs.

use axum::extract::{Form, FromRequest};
use http::HeaderMap;
use serde::Deserialize;

use crate::context::AuthContext;
use vestibule::SecretToken;

use crate::{cookies, AppError, Vestibule};

/// The value CSRF tokens are bound to: the session id when signed in, else the pre-session cookie.
pub(crate) fn binding<'a>(v: &Vestibule, headers: &'a HeaderMap, ctx: &'a AuthContext) -> Option<&'a str> {
    if ctx.principal.is_some() {
        // A bearer token has no session id: it binds nothing, so it cannot post a broker form.
        ctx.session_token()
    } else {
        cookies::get(headers, v.inner.cookies.csrf).filter(|t| t.len() == 43)
    }
}

/// The binding for the forms of a page about to be rendered, and the `Set-Cookie` that creates the pre-session
/// cookie on a browser's first visit.
pub(crate) fn form_binding(v: &Vestibule, headers: &HeaderMap, ctx: &AuthContext) -> (String, Vec<String>) {
    match binding(v, headers, ctx) {
        Some(b) => (b.to_owned(), Vec::new()),
        None => {
            let fresh = SecretToken::generate();
            let cookie = v.inner.cookies.set(v.inner.cookies.csrf, fresh.expose(), None);
            (fresh.expose().to_owned(), vec![cookie])
        }
    }
}

/// A form body whose `csrf_token` was verified against this browser's binding before the handler runs: every
/// state-changing broker route takes its form through this, so none can forget the check. A malformed body is
/// 400, a missing or wrong token 403 — and nothing has been changed.
pub(crate) struct Checked<T>(pub(crate) T);

/// Forms that carry a `csrf_token` field; implement it with [`csrf_forms!`].
pub(crate) trait CsrfField {
    fn csrf_token(&self) -> Option<&str>;
}

/// Implements [`CsrfField`] for form structs with a `csrf_token: Option<String>` field.
macro_rules! csrf_forms {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::csrf::CsrfField for $t {
            fn csrf_token(&self) -> Option<&str> {
                self.csrf_token.as_deref()
            }
        })*
    };
}
pub(crate) use csrf_forms;

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf_token: Option<String>,
}

csrf_forms!(CsrfForm);

impl<S, T> FromRequest<S> for Checked<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + CsrfField + Send,
{
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let ctx = req
            .extensions()
            .get::<AuthContext>()
            .cloned()
            .ok_or_else(|| AppError::Internal("a broker form route without the session layer".into()))?;
        let headers = req.headers().clone();
        let Form(form) = Form::<T>::from_request(req, state)
            .await
            .map_err(|_| AppError::BadRequest)?;
        check_csrf(&ctx.vestibule, &headers, &ctx, form.csrf_token())?;
        Ok(Checked(form))
    }
}

/// Verifies a presented token against this browser's binding, in constant time.
pub(crate) fn check_csrf(
    v: &Vestibule,
    headers: &HeaderMap,
    ctx: &AuthContext,
    presented: Option<&str>,
) -> Result<(), AppError> {
    match (binding(v, headers, ctx), presented) {
        (Some(b), Some(t)) if v.broker().verify_csrf(b, t) => Ok(()),
        _ => Err(AppError::Csrf),
    }
}
