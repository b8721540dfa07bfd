//! Account self-service routes (sessions, password) and forward auth for reverse proxies.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use vestibule::{Principal, Revoke, SelfServiceError, TokenError};
use vestibule_core::{ExposeSecret, PasswordChangeError, SecretString};

use crate::client::Client;
use crate::context::AuthContext;
use crate::csrf::{csrf_forms, Checked, CsrfOnly};
use crate::extract::SignedIn;
use crate::respond::{html_headers, with_cookies, Done};
use crate::{AppError, Vestibule};

impl From<TokenError> for AppError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::NotFresh => AppError::NotFresh,
            TokenError::NotFound => AppError::NotFound,
            TokenError::NotAdmin => AppError::NotAdministrator,
            TokenError::Invalid(why) => AppError::InvalidInput(crate::error::invalid_input_key(why)),
            TokenError::Broker(b) => b.into(),
            other => AppError::Internal(Box::new(other)),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    pub(crate) csrf_token: Option<String>,
    name: Option<String>,
    expires_in_days: Option<String>,
    scopes: Option<String>,
}

csrf_forms!(TokenForm);

pub(crate) async fn create_token(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    Checked(form): Checked<TokenForm>,
) -> Result<Response, AppError> {
    // The expiry is required: no field, or not a number, is refused like an out-of-range one.
    let days = form
        .expires_in_days
        .as_deref()
        .and_then(|d| d.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let name = form.name.unwrap_or_default();
    let scopes = form.scopes.unwrap_or_default();
    let token = v.broker().create_token(&session, &name, days, &scopes, &client).await?;
    let expires = crate::pages::utc(v.broker().now().plus_secs(days * 86_400));
    let page = crate::pages::TokenPage {
        mount: &v.inner.mount,
        name: name.trim(),
        value: token.value.expose_secret(),
        scopes: &scopes,
        expires,
        ..Default::default()
    };
    Ok((html_headers(), crate::pages::render(&v, page)).into_response())
}

pub(crate) async fn revoke_token(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    axum::extract::Path(id): axum::extract::Path<String>,
    _: Checked<CsrfOnly>,
) -> Result<Response, AppError> {
    v.broker().revoke_token(&session, &id, &client).await?;
    Ok(Done::TokenRevoked.redirect(&v))
}

impl From<SelfServiceError> for AppError {
    fn from(e: SelfServiceError) -> Self {
        match e {
            SelfServiceError::NotFresh => AppError::NotFresh,
            SelfServiceError::NotFound => AppError::NotFound,
            SelfServiceError::Password(PasswordChangeError::Unavailable(cause)) => AppError::Internal(cause),
            SelfServiceError::Password(p) => AppError::PasswordRejected(p.to_string()),
            SelfServiceError::NoPasswords => AppError::NotFound,
            SelfServiceError::Invalid(why) => AppError::InvalidInput(crate::error::invalid_input_key(why)),
            SelfServiceError::MailUnavailable => AppError::Unavailable("mail cannot be sent now".into()),
            SelfServiceError::Throttled { retry_after_secs } => AppError::Throttled(retry_after_secs),
            SelfServiceError::Broker(b) => b.into(),
            other => AppError::Internal(Box::new(other)),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    pub(crate) csrf_token: Option<String>,
    session: Option<String>,
}

csrf_forms!(RevokeForm);

pub(crate) async fn revoke_sessions(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    headers: HeaderMap,
    Checked(form): Checked<RevokeForm>,
) -> Result<Response, AppError> {
    let which = form
        .session
        .as_deref()
        .and_then(parse_revoke)
        .ok_or(AppError::BadRequest)?;
    match end_sessions(&v, &session, which, &headers, &client).await? {
        Some(clear) => Ok(with_cookies(Redirect::to(&v.login_path()).into_response(), &[clear])),
        None => Ok(Done::Revoked.redirect(&v)),
    }
}

/// Which sessions a revocation names: `others`, `all`, or one session by the id the account page and the JSON API
/// show (64 hex digits).
pub(crate) fn parse_revoke(which: &str) -> Option<Revoke> {
    match which {
        "others" => Some(Revoke::Others),
        "all" => Some(Revoke::All),
        id if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) => Some(Revoke::One(id.to_ascii_lowercase())),
        _ => None,
    }
}

/// Ends the sessions `which` names; when that includes the current one, the cookie that clears it.
pub(crate) async fn end_sessions(
    v: &Vestibule,
    session: &vestibule::ActiveSession,
    which: Revoke,
    headers: &HeaderMap,
    client: &vestibule::ClientInfo,
) -> Result<Option<String>, AppError> {
    let ends_this = matches!(&which, Revoke::All) || matches!(&which, Revoke::One(h) if *h == session.id_hash());
    let remembered = crate::cookies::get(headers, v.inner.cookies.remember);
    v.broker().revoke_sessions(session, which, remembered, client).await?;
    Ok(ends_this.then(|| v.inner.cookies.clear(v.inner.cookies.session)))
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    pub(crate) csrf_token: Option<String>,
    current_password: Option<String>,
    new_password: Option<String>,
}

csrf_forms!(PasswordForm);

pub(crate) async fn change_password(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    Checked(form): Checked<PasswordForm>,
) -> Result<Response, AppError> {
    let current = SecretString::from(form.current_password.unwrap_or_default());
    let new = SecretString::from(form.new_password.unwrap_or_default());
    let changed = v.broker().change_password(&session, &current, &new, &client).await?;
    // The session goes on under a new id; every remember-me series ended with the change.
    let c = &v.inner.cookies;
    let cookies = [
        c.set(c.session, changed.session.token.expose(), None),
        c.clear(c.remember),
    ];
    Ok(with_cookies(Done::Password.redirect(&v), &cookies))
}

/// Forward auth (nginx `auth_request`, Traefik/Caddy forward-auth): 200 with who is signed in, else 401. Answers
/// from the session cache like any protected route; the headers carry no secret. It never restores a session from
/// remember-me (see the layer): its `Set-Cookie` would never reach the browser.
///
/// `?scope=a b` (or `scope` given several times) makes a bearer token acceptable here only when it carries every
/// one of those scopes (403 otherwise); a token's scopes go to `X-Vestibule-Scopes`, space-separated. A browser
/// session is the person themselves and passes, without that header.
///
/// It reads the request in place (no extractor clones the context or the query): proxies call it on every request.
pub(crate) async fn verify(req: axum::extract::Request) -> Result<Response, AppError> {
    let ctx = req
        .extensions()
        .get::<AuthContext>()
        .ok_or_else(|| AppError::Internal("a broker route without the session layer".into()))?;
    Ok(verify_answer(ctx.principal.as_ref(), req.uri().query()))
}

/// `/verify`'s answer for who the request is (see [`verify`]), without the security headers added on the way
/// out. Synchronous, so that [`VerifyService`] can answer in place.
fn verify_answer(principal: Option<&Principal>, query: Option<&str>) -> Response {
    let Some(s) = principal else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if let Some(granted) = s.scopes() {
        let required = required_scopes(query.unwrap_or(""));
        if !required.iter().all(|r| granted.iter().any(|g| g == r)) {
            return StatusCode::FORBIDDEN.into_response();
        }
    }
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    // The six headers and the security headers added on the way out: one growth of the map.
    h.reserve(12);
    let mut put = |name: HeaderName, value: &str| {
        // Header values must be visible ASCII; anything else is left out rather than mangled.
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(X_VESTIBULE_USER, s.account_id.as_str());
    if let Some(name) = &s.display_name {
        put(X_VESTIBULE_NAME, name);
    }
    // Only an address known to be the person's: an unverified one is a claim anyone can make at an identity
    // provider, and an app behind the proxy keys on this header. (The proxy must clear the header when none is
    // sent: see the README's nginx example.)
    if let (Some(email), true) = (&s.email, s.email_verified) {
        put(X_VESTIBULE_EMAIL, email);
    }
    match s.groups.as_slice() {
        [] => put(X_VESTIBULE_GROUPS, ""),
        [one] => put(X_VESTIBULE_GROUPS, one),
        many => put(X_VESTIBULE_GROUPS, &many.join(",")),
    }
    if let Some(scopes) = s.scopes() {
        put(X_VESTIBULE_SCOPES, &scopes.join(" "));
    }
    if let Some(session) = s.session() {
        // Space-separated `amr` names (`pwd otp`): how the session was proven, for apps behind the proxy that
        // require a second factor.
        let amr: Vec<&str> = session.methods.iter().map(|m| m.as_str()).collect();
        put(X_VESTIBULE_AMR, &amr.join(" "));
    }
    res
}

/// The `/verify` route. A reverse proxy asks it on every request it passes on, so it answers without the broker
/// router's stack whenever it can: a GET or HEAD whose session the app's [`crate::SessionLayer`] already found, or
/// whose session cookie names a live cached session ([`vestibule::Broker::authenticate_cached`]), is answered in
/// place with [`verify_answer`] and the security headers of [`crate::headers`]. That is the response the stack
/// gives (its deadline has nothing to bound when nothing waits, and its session layer passes a request that is
/// already authenticated or would take the same cached session). Everything else (no session, a cache miss, a
/// restore or a write due, another method) goes through `stack`: the same handler behind the security headers,
/// the deadline and the session layer, at the same path, exactly as the other routes.
#[derive(Clone, Debug)]
pub(crate) struct VerifyService {
    v: Vestibule,
    stack: axum::Router,
}

impl VerifyService {
    /// The route for `/verify` served at `path` (with the mount prefix when it is not nested).
    pub(crate) fn new(v: Vestibule, path: &str) -> Self {
        let stack = axum::Router::new()
            .route(path, axum::routing::get(verify))
            .layer(crate::layer::broker_stack(&v))
            .with_state(());
        VerifyService { v, stack }
    }

    /// The answer without the stack, when the request's session is known without waiting.
    fn in_place(&self, req: &axum::extract::Request) -> Option<Response> {
        if !matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
            return None;
        }
        let res = match req.extensions().get::<AuthContext>() {
            Some(ctx) => verify_answer(ctx.principal.as_ref(), req.uri().query()),
            None => {
                let session = crate::layer::cached_session(&self.v, req)?;
                verify_answer(Some(&Principal::Session(session)), req.uri().query())
            }
        };
        Some(crate::headers::finish(&self.v, &crate::ui::PageRequest::default(), res))
    }
}

impl tower::Service<axum::extract::Request> for VerifyService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = VerifyFuture;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // The in-place answer needs nothing; the stack is a `Router`, always ready (and called through `oneshot`).
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        match self.in_place(&req) {
            Some(res) => VerifyFuture::Ready { res: Some(res) },
            None => VerifyFuture::Stack {
                inner: tower::ServiceExt::oneshot(self.stack.clone(), req),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`VerifyService`]: an answer already made, or the stack's.
    #[project = VerifyFutureProj]
    pub(crate) enum VerifyFuture {
        /// Answered in place.
        Ready { res: Option<Response> },
        /// Through the stack.
        Stack {
            #[pin]
            inner: tower::util::Oneshot<axum::Router, axum::extract::Request>,
        },
    }
}

impl std::fmt::Debug for VerifyFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyFuture::Ready { .. } => "VerifyFuture::Ready",
            VerifyFuture::Stack { .. } => "VerifyFuture::Stack",
        })
    }
}

impl std::future::Future for VerifyFuture {
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        match self.project() {
            // Polled once: a future is not polled again after it is ready.
            VerifyFutureProj::Ready { res } => std::task::Poll::Ready(Ok(res.take().unwrap_or_default())),
            VerifyFutureProj::Stack { inner } => inner.poll(cx),
        }
    }
}

const X_VESTIBULE_USER: HeaderName = HeaderName::from_static("x-vestibule-user");
const X_VESTIBULE_NAME: HeaderName = HeaderName::from_static("x-vestibule-name");
const X_VESTIBULE_EMAIL: HeaderName = HeaderName::from_static("x-vestibule-email");
const X_VESTIBULE_GROUPS: HeaderName = HeaderName::from_static("x-vestibule-groups");
const X_VESTIBULE_SCOPES: HeaderName = HeaderName::from_static("x-vestibule-scopes");
const X_VESTIBULE_AMR: HeaderName = HeaderName::from_static("x-vestibule-amr");

/// The scopes `/verify` was asked to require: every `scope` parameter, split on spaces and commas.
fn required_scopes(query: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}
