//! The broker's routes. Every state-changing route is a POST that checks a CSRF token first.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Extension, Form, FromRequestParts, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE, USER_AGENT};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use vestibule::{ClientInfo, LoginError, LoginOutcome, SecretToken};
use vestibule_core::{CallbackParams, ExposeSecret, Flow, SecretString, SourceId};

use crate::layer::AuthContext;
use crate::pages::{self, AccountPage, IdentityRow, LoginPage, SessionRow};
use crate::{cookies, deadline, headers, safe_next, AppError, SessionLayer, Vestibule};

/// The broker's router, with its state, security headers and session layer applied. Nest it under the path given
/// as [`crate::HttpSettings::mount`].
pub fn router(v: Vestibule) -> Router {
    Router::new()
        .route("/login", get(login_page))
        .route("/login/{source}", post(login_submit))
        .route("/callback/{source}", get(callback))
        .route("/logout", post(logout))
        .route("/account", get(account))
        .route("/account/link/{source}", post(crate::linking::account_link))
        .route("/account/unlink", post(crate::linking::account_unlink))
        .route("/account/sessions/revoke", post(crate::self_service::revoke_sessions))
        .route("/account/password", post(crate::self_service::change_password))
        .route("/verify", get(crate::self_service::verify))
        .route("/account/tokens", post(crate::self_service::create_token))
        .route("/account/tokens/{id}/revoke", post(crate::self_service::revoke_token))
        .route("/link", get(crate::linking::link_page))
        .route("/link/confirm", post(crate::linking::link_confirm))
        .route("/link/new", post(crate::linking::link_new))
        .route("/link/cancel", post(crate::linking::link_cancel))
        .route("/me", get(me))
        .route("/healthz", get(healthz))
        .route("/static/vestibule.css", get(stylesheet))
        .fallback(|| async { AppError::NotFound })
        // Outermost first: security headers and error pages for every answer, the deadline's 503 included; the
        // deadline around everything that may wait on the database or a source, the session check included.
        .layer(SessionLayer::new(v.clone()))
        .layer(axum::middleware::from_fn_with_state(v.clone(), deadline::limit))
        .layer(axum::middleware::from_fn_with_state(v.clone(), headers::finish))
        .with_state(v)
}

const GENERIC_FAILURE: &str = "Sign-in failed. Check your username and password and try again.";

/// Who is asking: the socket's address (when the server provides `ConnectInfo`) and a shortened user agent.
pub(crate) struct Client(pub(crate) ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let trusted = parts
            .extensions
            .get::<AuthContext>()
            .map(|c| c.vestibule.inner.trusted_proxies.clone());
        Ok(Client(client_of(
            trusted.as_deref().unwrap_or(&[]),
            &parts.headers,
            &parts.extensions,
        )))
    }
}

/// The client's address: the socket's peer (when the server provides `ConnectInfo`), or — only when that peer is
/// a trusted proxy — the right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
pub(crate) fn client_ip(
    trusted: &[ipnet::IpNet],
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Option<std::net::IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .or(Some(peer))
}

/// Who is asking: the client address (see [`client_ip`]) and a shortened user agent.
pub(crate) fn client_of(trusted: &[ipnet::IpNet], headers: &HeaderMap, extensions: &http::Extensions) -> ClientInfo {
    ClientInfo {
        ip: client_ip(trusted, headers, extensions).map(|ip| ip.to_string()),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().filter(|c| !c.is_control()).take(200).collect()),
    }
}

/// The value CSRF tokens are bound to: the session id when signed in, else the pre-session cookie.
pub(crate) fn binding<'a>(v: &Vestibule, headers: &'a HeaderMap, ctx: &'a AuthContext) -> Option<&'a str> {
    if ctx.session.is_some() {
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

/// Forms that carry a `csrf_token` field.
pub(crate) trait CsrfField {
    fn csrf_token(&self) -> Option<&str>;
}

macro_rules! csrf_forms {
    ($($t:ty),* $(,)?) => {
        $(impl CsrfField for $t {
            fn csrf_token(&self) -> Option<&str> {
                self.csrf_token.as_deref()
            }
        })*
    };
}

csrf_forms!(
    LoginForm,
    CsrfForm,
    crate::linking::LinkForm,
    crate::linking::UnlinkForm,
    crate::self_service::TokenForm,
    crate::self_service::RevokeForm,
    crate::self_service::PasswordForm,
);

impl<S, T> axum::extract::FromRequest<S> for Checked<T>
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

pub(crate) fn with_cookies(mut res: Response, set: &[String]) -> Response {
    for c in set {
        if let Ok(v) = HeaderValue::from_str(c) {
            res.headers_mut().append(SET_COOKIE, v);
        }
    }
    res
}

fn landing(v: &Vestibule, next: Option<&str>) -> String {
    next.and_then(safe_next).unwrap_or_else(|| v.inner.landing.clone())
}

async fn login_page(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let next = q.get("next").and_then(|n| safe_next(n)).unwrap_or_default();
    // Sent here by a forward-auth proxy with only a remember-me cookie: this request restored the session on the
    // broker's own origin (where the rotated cookie reaches the browser), so go straight back to where it was going.
    // A session that was already there stays on the form: that is someone asked to prove a password again.
    if ctx.restored && !next.is_empty() {
        return Redirect::to(&next).into_response();
    }
    render_login(&v, &ctx, &headers, &next, "", None, StatusCode::OK)
}

fn render_login(
    v: &Vestibule,
    ctx: &AuthContext,
    headers: &HeaderMap,
    next: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (bound, set) = form_binding(v, headers, ctx);
    let (password_sources, redirect_sources) = pages::source_links(v);
    let html = pages::render(&LoginPage {
        mount: &v.inner.mount,
        csrf_token: &v.broker().csrf_token(&bound),
        next,
        username,
        error,
        password_sources,
        redirect_sources,
    });
    with_cookies((status, html_headers(), html).into_response(), &set)
}

pub(crate) fn html_headers() -> [(http::HeaderName, HeaderValue); 1] {
    [(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))]
}

#[derive(Deserialize)]
struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    csrf_token: Option<String>,
    next: Option<String>,
    remember_me: Option<String>,
}

async fn login_submit(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Path(source): Path<String>,
    Checked(form): Checked<LoginForm>,
) -> Result<Response, AppError> {
    let source_id = SourceId::new(source).map_err(|_| AppError::NotFound)?;
    let flow_kind = v
        .broker()
        .source(source_id.as_str())
        .map(|s| matches!(s.flow(), Flow::Password(_)));
    let next = form.next.as_deref().and_then(safe_next);
    let previous = cookies::get(&headers, v.inner.cookies.session);
    match flow_kind {
        None => Err(AppError::NotFound),
        Some(false) => {
            let begin = v.broker().start_redirect(&source_id, next).await.map_err(login_error)?;
            let cookie = v.inner.cookies.set(
                v.inner.cookies.flow,
                begin.browser_token.expose(),
                Some(v.broker().settings().redirect_timeout_secs),
            );
            Ok(with_cookies(
                Redirect::to(&begin.authorize_url).into_response(),
                &[cookie],
            ))
        }
        Some(true) => {
            let username = form.username.unwrap_or_default();
            let password = SecretString::from(form.password.unwrap_or_default());
            match v
                .broker()
                .login_password(&source_id, &username, &password, &client, previous)
                .await
            {
                Ok(outcome) => {
                    // "Remember me" starts a series only for a completed sign-in, never for a pending link.
                    let remember = match (&outcome, form.remember_me.as_deref()) {
                        (LoginOutcome::SignedIn(session), Some("on" | "true" | "1")) => {
                            Some(v.broker().remember(session).await?)
                        }
                        _ => None,
                    };
                    let res = signed_in(&v, &headers, outcome, next.as_deref());
                    Ok(match remember {
                        Some(value) => {
                            let c = &v.inner.cookies;
                            let age = v.broker().settings().remember_days.saturating_mul(86_400);
                            with_cookies(res, &[c.set(c.remember, value.expose_secret(), Some(age))])
                        }
                        None => res,
                    })
                }
                Err(LoginError::Rejected(_)) => {
                    // The old session (if any) is untouched; the same generic words for every cause.
                    let shown: String = username.chars().take(256).collect();
                    Ok(render_login(
                        &v,
                        &ctx,
                        &headers,
                        next.as_deref().unwrap_or(""),
                        &shown,
                        Some(GENERIC_FAILURE),
                        StatusCode::UNAUTHORIZED,
                    ))
                }
                Err(e) => Err(login_error(e)),
            }
        }
    }
}

/// The response to a finished sign-in step: a session cookie and the landing page, or the page asking to prove
/// account ownership, or back to the account page after a link.
pub(crate) fn signed_in(v: &Vestibule, headers: &HeaderMap, outcome: LoginOutcome, next: Option<&str>) -> Response {
    let c = &v.inner.cookies;
    match outcome {
        LoginOutcome::SignedIn(session) => {
            let cookie = c.set(c.session, session.token.expose(), None);
            // Signing in to prove ownership of an account: go confirm the waiting link rather than `next`.
            let to = if cookies::get(headers, c.link).is_some() {
                format!("{}/link", v.inner.mount)
            } else {
                landing(v, next)
            };
            with_cookies(Redirect::to(&to).into_response(), &[cookie])
        }
        LoginOutcome::LinkRequired(link) => {
            let cookie = c.set(
                c.link,
                link.token.expose(),
                Some(v.broker().settings().redirect_timeout_secs),
            );
            with_cookies(
                Redirect::to(&format!("{}/link", v.inner.mount)).into_response(),
                &[cookie],
            )
        }
        LoginOutcome::Linked { .. } => Redirect::to(&format!("{}/account?done=linked", v.inner.mount)).into_response(),
    }
}

pub(crate) fn login_error(e: LoginError) -> AppError {
    match e {
        LoginError::UnknownSource => AppError::NotFound,
        LoginError::Rejected(_) => AppError::SignInFailed,
        LoginError::InvalidFlow => AppError::InvalidFlow,
        LoginError::Cancelled => AppError::Cancelled,
        LoginError::AlreadyLinked => AppError::AlreadyLinked,
        LoginError::NotFresh => AppError::NotFresh,
        LoginError::Unavailable(cause) => AppError::Unavailable(cause),
        LoginError::Internal(cause) => AppError::Internal(cause),
    }
}

async fn callback(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Path(source): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let source_id = SourceId::new(source).map_err(|_| AppError::NotFound)?;
    let params = CallbackParams {
        state: q.remove("state").map(SecretString::from),
        code: q.remove("code").map(SecretString::from),
        error: q.remove("error"),
        iss: q.remove("iss"),
        extra: q.into_iter().collect(),
    };
    let browser = cookies::get(&headers, v.inner.cookies.flow);
    let previous = cookies::get(&headers, v.inner.cookies.session);
    let clear_flow = v.inner.cookies.clear(v.inner.cookies.flow);
    let current = ctx.session.as_ref().map(|s| &s.account_id);
    match v
        .broker()
        .finish_redirect(&source_id, &params, browser, &client, previous, current)
        .await
    {
        Ok(done) => Ok(with_cookies(
            signed_in(&v, &headers, done.outcome, done.next_path.as_deref()),
            &[clear_flow],
        )),
        Err(e) => Ok(with_cookies(login_error(e).into_response(), &[clear_flow])),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf_token: Option<String>,
}

async fn logout(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    // Not `Checked`: a browser whose session already ended must still be able to sign out (and end its series).
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form.map_err(|_| AppError::BadRequest)?;
    if ctx.session.as_ref().is_some_and(|s| s.scopes.is_some()) {
        // A bearer token is revoked, not signed out of.
        return Err(AppError::TokenNotAllowed);
    }
    let c = &v.inner.cookies;
    let presented_session = cookies::get(&headers, c.session);
    let remembered = cookies::get(&headers, c.remember);
    if presented_session.is_none() && remembered.is_none() {
        // Nothing to sign out of.
        return Ok(Redirect::to(&v.login_path()).into_response());
    }
    // The token must match the cookies presented: the live session's (or, once it expired, the session cookie the
    // form was rendered under, which still binds its token), or the pre-session cookie (the one-click page below).
    let presented = form.csrf_token.as_deref();
    let ok = check_csrf(&v, &headers, &ctx, presented).is_ok()
        || matches!((presented_session, presented), (Some(b), Some(t)) if v.broker().verify_csrf(b, t));
    if !ok {
        // A stale form: never a new session, never a silent sign-out on a forged post; one click does it.
        let (bound, set) = form_binding(&v, &headers, &ctx);
        let page = pages::LogoutPage {
            mount: &v.inner.mount,
            csrf_token: &v.broker().csrf_token(&bound),
        };
        return Ok(with_cookies(
            (StatusCode::FORBIDDEN, html_headers(), pages::render(&page)).into_response(),
            &set,
        ));
    }
    if let Some(token) = ctx.session_token().or(presented_session) {
        v.broker().logout(token, &client).await?;
    }
    // Signing out also ends this browser's remember-me series: the next visit must sign in.
    if let Some(remembered) = remembered {
        v.broker().forget_remember(remembered).await?;
    }
    let clear = [c.clear(c.session), c.clear(c.remember)];
    Ok(with_cookies(Redirect::to(&v.login_path()).into_response(), &clear))
}

async fn account(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let Some(session) = &ctx.session else {
        let next = format!("{}/account", v.inner.mount);
        return Ok(Redirect::to(&format!("{}?next={}", v.login_path(), next)).into_response());
    };
    if session.scopes.is_some() {
        // Tokens are for APIs: the account page (sessions with their addresses, tokens) is the person's own.
        return Err(AppError::TokenNotAllowed);
    }
    let Some((account, identities)) = v.broker().account_view(&session.account_id).await? else {
        return Err(AppError::Internal("session of a deleted account".into()));
    };
    let current = session.id_hash();
    let sessions = v.broker().store().sessions_of(&session.account_id).await?;
    let tokens = v.broker().tokens(session).await?;
    let bound = binding(&v, &headers, &ctx).unwrap_or_default();
    let (password_sources, redirect_sources) = pages::source_links(&v);
    let page = AccountPage {
        mount: &v.inner.mount,
        csrf_token: &v.broker().csrf_token(bound),
        display_name: account.display_name.as_deref().unwrap_or("Your account"),
        email: account.email.as_deref(),
        // Fixed words chosen by a key: nothing from the URL is echoed.
        notice: match q.get("done").map(String::as_str) {
            Some("linked") => Some("The new way to sign in was added."),
            Some("unlinked") => Some("That way to sign in was removed."),
            Some("revoked") => Some("The sessions were signed out."),
            Some("password") => Some("Your password was changed, and your other sessions were signed out."),
            Some("token_revoked") => Some("The token was revoked."),
            _ => None,
        },
        password_sources,
        redirect_sources,
        // The local identity's subject is the account id itself.
        has_password: identities.iter().any(|i| i.subject.as_str() == account.id.as_str()),
        identities: identities
            .iter()
            .map(|i| IdentityRow {
                source: i.source.to_string(),
                subject: i.subject.to_string(),
                login: i.login.clone(),
                since: pages::utc(i.created_at),
            })
            .collect(),
        tokens: tokens
            .iter()
            .map(|t| pages::TokenRow {
                id: t.id.clone(),
                name: t.name.clone(),
                scopes: t.scopes.clone(),
                expires: pages::utc(t.expires_at),
                last_used: t.last_used_at.map(pages::utc).unwrap_or_else(|| "never".into()),
            })
            .collect(),
        sessions: sessions
            .iter()
            .map(|s| SessionRow {
                id: s.id_hash.clone(),
                current: s.id_hash == current,
                ip: s.ip.clone().unwrap_or_else(|| "an unknown address".into()),
                user_agent: s.user_agent.clone().unwrap_or_else(|| "unknown browser".into()),
                created: pages::utc(s.created_at),
                last_seen: pages::utc(s.last_seen_at),
            })
            .collect(),
    };
    Ok((html_headers(), pages::render(&page)).into_response())
}

async fn me(State(v): State<Vestibule>, Extension(ctx): Extension<AuthContext>) -> Result<Response, AppError> {
    let Some(session) = &ctx.session else {
        return Ok((
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "error": "unauthenticated" })),
        )
            .into_response());
    };
    let Some((account, identities)) = v.broker().account_view(&session.account_id).await? else {
        return Err(AppError::Internal("session of a deleted account".into()));
    };
    let groups: BTreeSet<&str> = identities
        .iter()
        .flat_map(|i| i.groups.iter().map(String::as_str))
        .collect();
    Ok(Json(serde_json::json!({
        "id": account.id.as_str(),
        "display_name": account.display_name,
        "email": account.email,
        "identities": identities
            .iter()
            .map(|i| serde_json::json!({ "source": i.source.as_str(), "subject": i.subject.as_str() }))
            .collect::<Vec<_>>(),
        "groups": groups,
    }))
    .into_response())
}

async fn healthz(State(v): State<Vestibule>) -> Response {
    match v.broker().store().ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: store not answering");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        include_str!("../../../templates/static/vestibule.css"),
    )
        .into_response()
}
