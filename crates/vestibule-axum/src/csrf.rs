//! CSRF for the broker's forms and the app's: what a token binds to, the `Checked` form extractor that verifies it
//! before a broker handler runs, and the public [`CsrfToken`] and [`CsrfForm`] for the app's own forms.

use axum::extract::{Form, FromRequest, FromRequestParts};
use axum::response::{IntoResponseParts, ResponseParts};
use http::request::Parts;
use http::HeaderMap;
use serde::Deserialize;

use crate::context::AuthContext;
use vestibule::SecretToken;

use crate::extract::{refuse, Shortfall};
use crate::{cookies, AppError, Unauthenticated, Vestibule};

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
pub(crate) struct CsrfOnly {
    pub(crate) csrf_token: Option<String>,
}

csrf_forms!(CsrfOnly);

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

/// The CSRF token of this browser, for the app's own forms: put it in a hidden field named `csrf_token`
/// (`<input type="hidden" name="csrf_token" value="{{ csrf }}">`) and take the post with [`CsrfForm`]. The same
/// token the broker's pages use, so a form of the app may post to the broker's `{mount}/logout`.
///
/// Signed in, it is bound to the session. Signed out, it is bound to the pre-session cookie; on a browser's first
/// visit that cookie is new, so return the extractor with the page (`(csrf, Html(page))`: it is
/// [`IntoResponseParts`](axum::response::IntoResponseParts) and sets the cookie), or the form will be refused.
/// `Debug` does not print the token.
#[derive(Clone)]
pub struct CsrfToken {
    token: String,
    set_cookie: Vec<String>,
}

impl CsrfToken {
    /// The token, for the `csrf_token` field.
    pub fn as_str(&self) -> &str {
        &self.token
    }
}

impl std::fmt::Display for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.token)
    }
}

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken(..)")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ctx = crate::extract::context(parts)?;
        let v = &ctx.vestibule;
        let (bound, set_cookie) = form_binding(v, &parts.headers, ctx);
        Ok(CsrfToken {
            token: v.broker().csrf_token(&bound),
            set_cookie,
        })
    }
}

impl IntoResponseParts for CsrfToken {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        for c in &self.set_cookie {
            if let Ok(v) = http::HeaderValue::from_str(c) {
                res.headers_mut().append(http::header::SET_COOKIE, v);
            }
        }
        Ok(res)
    }
}

/// A form of the app's own, taken only when its `csrf_token` field is this browser's [`CsrfToken`] (checked in
/// constant time against the session, or the pre-session cookie when signed out); `T` is the rest of the form and
/// may ignore the field (unless it denies unknown fields: then give it a `csrf_token` field). A missing or wrong
/// token is `403` (a page for a browser, `{"error":"csrf_failed",...}` otherwise) before the handler
/// runs; a body not of `T`'s shape is `400`. A personal access token binds nothing, so it can never post one.
///
/// ```
/// use serde::Deserialize;
/// use vestibule_axum::{CsrfForm, RequireUser};
///
/// #[derive(Deserialize)]
/// struct Note {
///     text: String,
/// }
///
/// async fn save_note(RequireUser(user): RequireUser, CsrfForm(note): CsrfForm<Note>) -> String {
///     format!("{} wrote {}", user.account_id, note.text)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct CsrfForm<T>(pub T);

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = Unauthenticated;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Unauthenticated> {
        let (parts, body) = req.into_parts();
        let ctx = crate::extract::context(&parts)?;
        let bytes = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .map_err(|_| Unauthenticated::BadForm)?;
        let presented = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf_token")
            .map(|(_, v)| v.into_owned());
        if check_csrf(&ctx.vestibule, &parts.headers, ctx, presented.as_deref()).is_err() {
            return Err(refuse(&parts, &ctx.vestibule, Shortfall::Csrf));
        }
        let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let Form(form) = Form::<T>::from_request(req, state)
            .await
            .map_err(|_| Unauthenticated::BadForm)?;
        Ok(CsrfForm(form))
    }
}

/// The largest app form [`CsrfForm`] reads: axum's default body limit.
const FORM_LIMIT: usize = 2 * 1024 * 1024;
