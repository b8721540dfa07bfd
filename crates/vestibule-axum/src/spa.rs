//! The JSON API for single-page apps, under `{mount}/api/`: the sources to offer, sign-in with a password source,
//! the start of a redirect source, the second step, sign-out, the current account, and the account's sessions.
//!
//! It uses the same session cookie as the pages, so a page of the app's origin calls it with `fetch` and
//! `credentials: "same-origin"`. Instead of a CSRF token, every request that changes something must come from a
//! page of the broker's own origin, which [`same_origin`] checks twice over:
//!
//! * the `X-Vestibule-Request` header must be present. A page of another origin cannot add a custom header to a
//!   request without a CORS preflight, which this API never grants; a plain HTML form cannot add one at all;
//! * the `Origin` header, when the browser sends one (every current browser does on a POST or DELETE), must be the
//!   origin of the broker's public URL (never `Host`, which the client chooses); without `Origin`,
//!   `Sec-Fetch-Site` must say `same-origin`. With neither, the request is refused: this is an API for browsers.
//!
//! So a page elsewhere can neither sign a visitor in to an account of its choosing (login CSRF) nor sign them out
//! or end their sessions. Errors are `{"error": "<code>", "message": "<words in the request's language>"}` with
//! the codes of [`AppError::code`]; see the README's "JSON API for single-page apps" for the whole contract.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use vestibule::SecondFactorError;
use vestibule_core::{ExposeSecret, Flow, SecretString, SourceId};

use crate::client::Client;
use crate::context::AuthContext;
use crate::respond::{after_sign_in, land, login_error, session_cookies, with_cookies, LandingKind};
use crate::ui::PageRequest;
use crate::{cookies, safe_next, AppError, Vestibule};

/// The header every state-changing request of the API must carry (any value; send `1`).
pub const REQUEST_HEADER: &str = "x-vestibule-request";

/// The API's routes, relative to the mount; merged into the broker's routes (behind its session layer).
pub(crate) fn routes(v: &Vestibule) -> Router<Vestibule> {
    Router::new()
        .route("/api/sources", get(sources))
        .route("/api/me", get(me))
        .route("/api/login", post(login))
        .route("/api/login/second-factor", post(second_factor))
        .route("/api/logout", post(logout))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", delete(revoke))
        // Any other path under `/api/`: the API's own `not_found`, not an HTML page.
        .route("/api/{*rest}", axum::routing::any(|| async { AppError::NotFound }))
        .layer(from_fn_with_state(v.clone(), same_origin))
}

/// Refuses a state-changing request that did not come from a page of the broker's origin (see the module docs).
/// `GET` and `HEAD` change nothing and pass: the same-origin policy keeps their answers from other origins, as no
/// CORS header is ever sent.
async fn same_origin(State(v): State<Vestibule>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) || from_this_origin(&v, req.headers()) {
        return next.run(req).await;
    }
    AppError::CrossOrigin.into_response()
}

fn from_this_origin(v: &Vestibule, headers: &HeaderMap) -> bool {
    if !headers.contains_key(REQUEST_HEADER) {
        return false;
    }
    match headers.get(http::header::ORIGIN) {
        Some(origin) => origin
            .to_str()
            .is_ok_and(|o| public_origin(v).is_some_and(|ours| o.eq_ignore_ascii_case(&ours))),
        None => headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() == b"same-origin"),
    }
}

/// The origin of the broker's public URL (`https://host[:port]`, the default port left out, as browsers send it).
fn public_origin(v: &Vestibule) -> Option<String> {
    url::Url::parse(v.broker().base_url())
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
}

/// `GET /api/sources`: what a sign-in page offers (public, as the login page is).
async fn sources(State(v): State<Vestibule>) -> Json<Value> {
    let (password, redirect) = crate::pages::source_links(&v);
    let list = |links: Vec<crate::pages::SourceLink>, kind: &str| {
        links
            .into_iter()
            .map(|s| json!({ "id": s.id, "name": s.name, "kind": kind }))
            .collect::<Vec<_>>()
    };
    let mut all = list(password, "password");
    all.extend(list(redirect, "redirect"));
    Json(json!({
        "sources": all,
        "passkeys": v.broker().passkeys_enabled(),
        "reset": v.broker().reset_available(),
    }))
}

#[derive(Deserialize)]
struct LoginBody {
    source: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    remember_me: bool,
    next: Option<String>,
}

/// A body that is not the JSON asked for: `invalid_request` (not axum's plain-text rejection).
fn body<T>(parsed: Result<Json<T>, JsonRejection>) -> Result<T, AppError> {
    parsed.map(|Json(t)| t).map_err(|_| AppError::BadRequest)
}

/// `POST /api/login`: a password source signs in (`signed_in`, or `second_factor` / `link` with the page to go
/// to); a redirect source answers `redirect` with the provider's URL to send the browser to.
async fn login(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    parsed: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, AppError> {
    let form = body(parsed)?;
    let next = form.next.as_deref().and_then(safe_next);
    let source = SourceId::new(form.source).map_err(|_| AppError::NotFound)?;
    let flow = v
        .broker()
        .source(source.as_str())
        .map(|s| s.flow())
        .ok_or(AppError::NotFound)?;
    match flow {
        Flow::Redirect(_) => {
            let begin = v
                .broker()
                .start_redirect_with(&source, next, crate::respond::start_options(&ctx))
                .await
                .map_err(login_error)?;
            let cookie = crate::respond::flow_cookie(&v, &begin);
            let answer = Json(json!({ "status": "redirect", "location": begin.authorize_url }));
            Ok(with_cookies(answer.into_response(), &[cookie]))
        }
        Flow::Password(_) => {
            let previous = cookies::get(&headers, v.inner.cookies.session);
            let password = SecretString::from(form.password);
            // Every cause of a failed sign-in is the same `invalid_credentials`, as the page shows the same words.
            let outcome = v
                .broker()
                .login_password(&source, &form.username, &password, &client, previous)
                .await
                .map_err(login_error)?;
            let landing = land(&v, &headers, outcome, next.as_deref(), form.remember_me).await?;
            let status = match landing.kind {
                LandingKind::SignedIn(_) => "signed_in",
                LandingKind::SecondFactor => "second_factor",
                LandingKind::Link => "link",
                LandingKind::Linked => "linked",
            };
            let mut answer = json!({ "status": status, "location": landing.to });
            if let (LandingKind::SignedIn(id), Some(map)) = (&landing.kind, answer.as_object_mut()) {
                if let Some(account) = v.broker().account_view(id).await? {
                    map.insert("account".into(), account_json(&account));
                }
            }
            Ok(with_cookies(Json(answer).into_response(), &landing.cookies))
        }
        // A kind of flow this front end does not know is not guessed at.
        _ => Err(AppError::NotFound),
    }
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

/// `POST /api/login/second-factor`: the code (TOTP or recovery code) for the half-signed-in state the sign-in
/// started. A wrong code is `invalid_code` (try again); past the allowance, or once the state expired, `expired`
/// (sign in again: the state is gone and its cookie cleared).
async fn second_factor(
    State(v): State<Vestibule>,
    Client(client): Client,
    headers: HeaderMap,
    parsed: Result<Json<CodeBody>, JsonRejection>,
) -> Result<Response, AppError> {
    let form = body(parsed)?;
    let c = &v.inner.cookies;
    let Some(token) = cookies::get(&headers, c.second_factor) else {
        return Ok(expired(&v));
    };
    let previous = cookies::get(&headers, c.session);
    match v
        .broker()
        .finish_second_factor(token, &form.code, &client, previous)
        .await
    {
        Ok(done) => {
            let mut set = session_cookies(&v, &done.session, done.remember.as_ref());
            set.push(c.clear(c.second_factor));
            let mut answer = json!({
                "status": "signed_in",
                "location": after_sign_in(&v, &headers, done.next_path.as_deref()),
            });
            if let (Some(codes), Some(map)) = (&done.recovery_codes, answer.as_object_mut()) {
                // Shown once, like the page that follows an enrolment.
                let codes: Vec<&str> = codes.0.iter().map(|c| c.expose_secret()).collect();
                map.insert("recovery_codes".into(), codes.into());
            }
            Ok(with_cookies(Json(answer).into_response(), &set))
        }
        Err(SecondFactorError::WrongCode { discarded: false }) => {
            Ok(api_error(StatusCode::UNAUTHORIZED, "invalid_code", "error-wrong-code"))
        }
        Err(SecondFactorError::WrongCode { discarded: true } | SecondFactorError::Expired) => Ok(expired(&v)),
        Err(e) => Err(e.into()),
    }
}

/// The half-signed-in state is gone (expired, used, or too many wrong codes): sign in again.
fn expired(v: &Vestibule) -> Response {
    let c = &v.inner.cookies;
    with_cookies(
        api_error(StatusCode::UNAUTHORIZED, "expired", "error-invalid-flow"),
        &[c.clear(c.second_factor)],
    )
}

/// An error of the API's own (one no [`AppError`] names), in the request's language.
fn api_error(status: StatusCode, code: &'static str, message_key: &'static str) -> Response {
    let message = PageRequest::current().lang.msg(message_key);
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

/// `POST /api/logout`: ends the session and the remember-me series of this browser; `204`.
async fn logout(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if ctx.is_token() {
        return Err(AppError::TokenNotAllowed);
    }
    let clear = crate::respond::end_sign_in(&v, &ctx, &headers, &client).await?;
    Ok(with_cookies(StatusCode::NO_CONTENT.into_response(), &clear))
}

/// The browser session of the request: `unauthenticated` without one, `token_not_allowed` for a bearer token
/// (sessions are the person's own, as on the account page).
fn browser_session(ctx: &AuthContext) -> Result<&std::sync::Arc<vestibule::ActiveSession>, AppError> {
    match (&ctx.principal, ctx.browser_session()) {
        (_, Some(s)) => Ok(s),
        (Some(_), None) => Err(AppError::TokenNotAllowed),
        (None, None) => Err(AppError::Unauthenticated),
    }
}

/// `GET /api/sessions`: the account's sessions, the current one marked.
async fn sessions(State(v): State<Vestibule>, Extension(ctx): Extension<AuthContext>) -> Result<Response, AppError> {
    let session = browser_session(&ctx)?;
    let current = session.id_hash();
    let list: Vec<Value> = v
        .broker()
        .sessions(session)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "current": s.id == current,
                "id": s.id,
                "source": s.source.as_str(),
                "ip": s.ip,
                "user_agent": s.user_agent,
                "created_at": s.created_at.0,
                "last_seen_at": s.last_seen_at.0,
                "expires_at": s.expires_at.0,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": list })).into_response())
}

/// `DELETE /api/sessions/{id}`: ends one session by its id, or `others`, or `all`; `204`. Ending the current one
/// clears its cookie.
async fn revoke(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let session = browser_session(&ctx)?;
    let which = crate::self_service::parse_revoke(&id).ok_or(AppError::NotFound)?;
    let clear = crate::self_service::end_sessions(&v, session, which, &headers, &client).await?;
    Ok(with_cookies(StatusCode::NO_CONTENT.into_response(), clear.as_slice()))
}

/// `GET /me` (and `GET /api/me`): the signed-in account as JSON, with how its session was proven; `401
/// {"error":"unauthenticated"}` otherwise.
pub(crate) async fn me(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
) -> Result<Response, AppError> {
    let Some(session) = &ctx.principal else {
        return Ok((
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "error": "unauthenticated" })),
        )
            .into_response());
    };
    let Some(account) = v.broker().account_view(&session.account_id).await? else {
        return Err(AppError::Internal("session of a deleted account".into()));
    };
    let mut body = account_json(&account);
    // How the session was proven; a token proves no sign-in, so it has neither.
    if let (Some(s), Some(map)) = (session.session(), body.as_object_mut()) {
        map.insert("assurance".into(), s.assurance.as_str().into());
        map.insert(
            "amr".into(),
            s.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().into(),
        );
        // When a second factor was last proven (Unix seconds), or null: an app can tell an old provider login
        // from a fresh one before asking for step-up.
        let at = Some(s.second_factor_at.0).filter(|t| *t != 0);
        map.insert("second_factor_at".into(), at.into());
    }
    Ok(Json(body).into_response())
}

/// An account as `/me` and the JSON API show it (the contract's fields: `id`, `display_name`, `email`,
/// `identities` with `source` and `subject`, `groups`).
pub(crate) fn account_json(account: &vestibule::AccountView) -> serde_json::Value {
    serde_json::json!({
        "id": account.id.as_str(),
        "display_name": account.display_name,
        "email": account.email,
        "email_verified": account.email_verified,
        "identities": account
            .identities
            .iter()
            .map(|i| serde_json::json!({ "source": i.source.as_str(), "subject": i.subject.as_str() }))
            .collect::<Vec<_>>(),
        "groups": account.groups(),
    })
}
