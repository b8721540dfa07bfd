//! The broker's routes. Every state-changing route is a POST that checks a CSRF token first.

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any_service, get, post};
use axum::{Json, Router};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use vestibule::{LoginError, Principal};
use vestibule_core::{CallbackParams, Flow, SecretString, SourceId};

use crate::client::Client;
use crate::context::AuthContext;
use crate::csrf::{binding, check_csrf, csrf_forms, form_binding, Checked, CsrfOnly};
use crate::layer::broker_stack;
use crate::pages::{self, AccountPage, IdentityRow, LoginPage, SessionRow};
use crate::respond::{html_headers, login_error, signed_in, with_cookies, Done};
use crate::self_service::VerifyService;
use crate::{cookies, safe_next, AppError, Vestibule};

/// The broker's router, with its state, security headers and session layer applied. Nest it under the path given
/// as [`crate::HttpSettings::mount`].
pub fn router(v: Vestibule) -> Router {
    broker_routes(&v)
        .route("/verify", any_service(VerifyService::new(v.clone(), "/verify")))
        .with_state(v)
}

/// Every route of the broker's but `/verify`, behind [`broker_stack`]. `/verify` is added by the caller, after
/// the stack (it applies the stack itself when it needs it): at `/verify` in [`router`], or beside the nest, at
/// the full path, in [`Vestibule::nest_into`], where it is then not behind the nest's prefix stripping either.
fn broker_routes(v: &Vestibule) -> Router<Vestibule> {
    Router::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/login/{source}", post(login_submit))
        .route("/callback/{source}", get(callback))
        .route("/logout", post(logout))
        .route("/account", get(account))
        .route("/account/link/{source}", post(crate::linking::account_link))
        .route("/account/unlink", post(crate::linking::account_unlink))
        .route("/account/sessions/revoke", post(crate::self_service::revoke_sessions))
        .route("/account/password", post(crate::self_service::change_password))
        .route("/account/tokens", post(crate::self_service::create_token))
        .route("/account/tokens/{id}/revoke", post(crate::self_service::revoke_token))
        .route(
            "/login/second-factor",
            get(crate::second_factor::page).post(crate::second_factor::submit),
        )
        .route("/account/totp", post(crate::second_factor::begin_totp))
        .route("/account/totp/confirm", post(crate::second_factor::confirm_totp))
        .route("/account/totp/remove", post(crate::second_factor::remove_totp))
        .route("/account/recovery-codes", post(crate::second_factor::regenerate_codes))
        .route(
            "/login/second-factor/{source}",
            post(crate::second_factor::provider_step_up),
        )
        .route("/login/passkey", post(crate::passkey::passwordless_start))
        .route("/login/passkey/finish", post(crate::passkey::passwordless_finish))
        .route("/account/passkeys", post(crate::passkey::register_start))
        .route("/account/passkeys/finish", post(crate::passkey::register_finish))
        .route("/account/passkeys/{id}/remove", post(crate::passkey::remove))
        .route("/static/passkey.js", get(crate::passkey::script))
        .route("/link", get(crate::linking::link_page))
        .route("/link/confirm", post(crate::linking::link_confirm))
        .route("/link/new", post(crate::linking::link_new))
        .route("/link/cancel", post(crate::linking::link_cancel))
        .route(
            "/reset",
            get(crate::reset::request_page).post(crate::reset::request_submit),
        )
        .route(
            "/reset/{token}",
            get(crate::reset::new_password_page_get).post(crate::reset::new_password_submit),
        )
        .route(
            "/reset-password",
            get(crate::reset::reset_form).post(crate::reset::reset_form_submit),
        )
        .route(
            "/email/verify/{token}",
            get(crate::reset::verify_email).post(crate::reset::verify_email_submit),
        )
        .route("/account/email", post(crate::reset::change_email))
        .route("/me", get(crate::spa::me))
        .merge(crate::spa::routes(v))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/static/vestibule.css", get(stylesheet))
        .route("/static/logo", get(logo))
        .fallback(|| async { AppError::NotFound })
        .layer(broker_stack(v))
        // After the stack, with a stack of its own: the admin API takes bearer tokens only, and reads no cookie.
        .merge(crate::admin_api::routes(v))
}

impl Vestibule {
    /// `app` with the broker's routes nested at [`Vestibule::mount`] (merged at the root when it is empty): the
    /// mount path comes from the broker's base URL, so it cannot disagree with the links the broker builds. Apply
    /// [`Vestibule::layer`] to the result so the app's own routes see who is signed in.
    pub fn nest_into(&self, app: axum::Router) -> axum::Router {
        if self.inner.mount.is_empty() {
            return app.merge(router(self.clone()));
        }
        let verify = format!("{}/verify", self.inner.mount);
        app.route(&verify, any_service(VerifyService::new(self.clone(), &verify)))
            .nest(&self.inner.mount, broker_routes(self).with_state(self.clone()))
    }
}

/// A message key (templates/i18n).
const GENERIC_FAILURE: &str = "error-password-sign-in-failed";

/// How long the browser keeps the password source last chosen (a year): a preference, not a credential.
const SOURCE_COOKIE_SECS: i64 = 365 * 24 * 3600;

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
    let shown = Shown {
        next: &next,
        ..Shown::default()
    };
    render_login(&v, &ctx, &headers, &shown, StatusCode::OK)
}

/// What the login form shows: where to go on to, and after a failed attempt the name typed, the source tried and
/// the words to show.
#[derive(Default)]
struct Shown<'a> {
    next: &'a str,
    username: &'a str,
    source: Option<&'a str>,
    error: Option<&'a str>,
}

fn render_login(
    v: &Vestibule,
    ctx: &AuthContext,
    headers: &HeaderMap,
    shown: &Shown<'_>,
    status: StatusCode,
) -> Response {
    let (bound, set) = form_binding(v, headers, ctx);
    let (mut password_sources, redirect_sources) = pages::source_links(v);
    // The source just tried, else the one this browser chose last time; an id that is no password source here
    // (stale, or made up) is ignored.
    let chosen = shown.source.or_else(|| cookies::get(headers, v.inner.cookies.source));
    pages::choose_source(&mut password_sources, chosen);
    let html = pages::render(
        v,
        LoginPage {
            mount: &v.inner.mount,
            csrf_token: &v.broker().csrf_token(&bound),
            next: shown.next,
            username: shown.username,
            has_error: shown.error.is_some(),
            error: shown.error.unwrap_or_default(),
            has_password_sources: !password_sources.is_empty(),
            several_password_sources: password_sources.len() > 1,
            reset: v.broker().reset_available() && !password_sources.is_empty(),
            password_sources,
            has_redirect_sources: !redirect_sources.is_empty(),
            redirect_sources,
            passkeys: v.broker().passkeys_enabled(),
            ..Default::default()
        },
    );
    with_cookies((status, html_headers(), html).into_response(), &set)
}

#[derive(Deserialize)]
struct LoginForm {
    /// `POST /login`: the password source chosen on the form.
    source: Option<String>,
    username: Option<String>,
    password: Option<String>,
    csrf_token: Option<String>,
    next: Option<String>,
    remember_me: Option<String>,
}

csrf_forms!(LoginForm);

/// `POST /login/{source}`, and `POST /login` with the source in the form's `source` field: one handler, so that
/// both sign in exactly the same way. Only the path names a redirect source; the form's choice is among password
/// sources, and anything else there reads like any failed sign-in.
async fn login_submit(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    path: Option<Path<String>>,
    Checked(form): Checked<LoginForm>,
) -> Result<Response, AppError> {
    let next = form.next.as_deref().and_then(safe_next);
    let source_id = match path {
        Some(Path(source)) => SourceId::new(source).map_err(|_| AppError::NotFound)?,
        None => match form.source.as_deref().and_then(|s| v.broker().source(s)) {
            Some(s) if matches!(s.flow(), Flow::Password(_)) => s.id().clone(),
            _ => {
                let shown = Shown {
                    next: next.as_deref().unwrap_or(""),
                    username: &shown_username(form.username.as_deref()),
                    source: None,
                    error: Some(GENERIC_FAILURE),
                };
                return Ok(render_login(&v, &ctx, &headers, &shown, StatusCode::UNAUTHORIZED));
            }
        },
    };
    let Some(flow) = v.broker().source(source_id.as_str()).map(|s| s.flow()) else {
        return Err(AppError::NotFound);
    };
    let previous = cookies::get(&headers, v.inner.cookies.session);
    match flow {
        Flow::Redirect(_) => {
            let begin = v
                .broker()
                .start_redirect_with(&source_id, next, crate::respond::start_options(&ctx))
                .await
                .map_err(login_error)?;
            Ok(crate::respond::to_provider(&v, &begin))
        }
        Flow::Password(_) => {
            let username = form.username.unwrap_or_default();
            let password = SecretString::from(form.password.unwrap_or_default());
            let shown = shown_username(Some(&username));
            let failed = |error: &str, status| {
                let shown = Shown {
                    next: next.as_deref().unwrap_or(""),
                    username: &shown,
                    source: Some(source_id.as_str()),
                    error: Some(error),
                };
                render_login(&v, &ctx, &headers, &shown, status)
            };
            let res = match v
                .broker()
                .login_password(&source_id, &username, &password, &client, previous)
                .await
            {
                Ok(outcome) => {
                    // "Remember me" starts a series only with a session (now, or after the second step), never
                    // for a pending link.
                    let remember = matches!(form.remember_me.as_deref(), Some("on" | "true" | "1"));
                    signed_in(&v, &headers, outcome, next.as_deref(), remember)
                        .await
                        .unwrap_or_else(IntoResponse::into_response)
                }
                // The old session (if any) is untouched; the same generic words for every cause.
                Err(LoginError::Rejected(_)) => failed(GENERIC_FAILURE, StatusCode::UNAUTHORIZED),
                // The app's hook said no: the form again, with the app's words (the person did prove who they are).
                Err(LoginError::Refused(refusal)) => failed(refusal.message(), StatusCode::FORBIDDEN),
                Err(LoginError::Throttled { retry_after_secs }) => {
                    // The form again, with words that are the same for every account, existing or not.
                    let mut res = failed(
                        &crate::error::throttled_message(retry_after_secs),
                        StatusCode::TOO_MANY_REQUESTS,
                    );
                    res.headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                    res
                }
                Err(e) => login_error(e).into_response(),
            };
            // Whatever the outcome, the form starts on this source next time.
            let c = &v.inner.cookies;
            let remembered = c.set(c.source, source_id.as_str(), Some(SOURCE_COOKIE_SECS));
            Ok(with_cookies(res, &[remembered]))
        }
        // A kind of flow this front end does not know is not guessed at (say, routed as a redirect).
        _ => Err(AppError::NotFound),
    }
}

/// The login name typed, as the form shows it again (at most 256 characters).
fn shown_username(username: Option<&str>) -> String {
    username.unwrap_or_default().chars().take(256).collect()
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
    let current = ctx.browser_session().map(|s| &**s);
    match v
        .broker()
        .finish_redirect(&source_id, &params, browser, &client, previous, current)
        .await
    {
        Ok(done) => Ok(with_cookies(
            signed_in(&v, &headers, done.outcome, done.next_path.as_deref(), false).await?,
            &[clear_flow],
        )),
        Err(e) => Ok(with_cookies(login_error(e).into_response(), &[clear_flow])),
    }
}

async fn logout(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    // Not `Checked`: a browser whose session already ended must still be able to sign out (and end its series).
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form.map_err(|_| AppError::BadRequest)?;
    if ctx.is_token() {
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
            ..Default::default()
        };
        return Ok(with_cookies(
            (StatusCode::FORBIDDEN, html_headers(), pages::render(&v, page)).into_response(),
            &set,
        ));
    }
    let clear = crate::respond::end_sign_in(&v, &ctx, &headers, &client).await?;
    Ok(with_cookies(Redirect::to(&v.login_path()).into_response(), &clear))
}

async fn account(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let session = match &ctx.principal {
        Some(Principal::Session(s)) => s,
        // Tokens are for APIs: the account page (sessions with their addresses, tokens) is the person's own.
        Some(_) => return Err(AppError::TokenNotAllowed),
        None => {
            let next = format!("{}/account", v.inner.mount);
            return Ok(Redirect::to(&format!("{}?next={}", v.login_path(), next)).into_response());
        }
    };
    let Some(account) = v.broker().account_view(&session.account_id).await? else {
        return Err(AppError::Internal("session of a deleted account".into()));
    };
    let current = session.id_hash();
    let sessions = v.broker().sessions(session).await?;
    let tokens = v.broker().tokens(session).await?;
    let has_totp = v.broker().has_totp(&session.account_id).await?;
    let passkeys = v.broker().passkeys(&session.account_id).await?;
    let has_factor = has_totp || !passkeys.is_empty();
    let pending_email = v.broker().pending_email_change(&session.account_id).await?;
    let recovery_codes_left = if has_factor {
        v.broker().recovery_codes_left(&session.account_id).await?
    } else {
        0
    };
    let bound = binding(&v, &headers, &ctx).unwrap_or_default();
    // Only what can still be added: never a source the account already has an identity of (so never the local
    // source of an account that has a password; a second identity of one source is not offered from this page).
    let (mut password_sources, mut redirect_sources) = pages::source_links(&v);
    let has_identity_of = |s: &pages::SourceLink| account.identities.iter().any(|i| i.source.as_str() == s.id);
    password_sources.retain(|s| !has_identity_of(s));
    redirect_sources.retain(|s| !has_identity_of(s));
    // Words that stand in for missing data, in the page's language.
    let t = crate::ui::PageRequest::current().lang;
    let (your_account, never) = (t.msg("account-default-name"), t.msg("never"));
    // Fixed words chosen by a key: nothing from the URL is echoed.
    let notice = q.get("done").and_then(|d| Done::parse(d)).map(Done::notice);
    let email = account.email.as_deref();
    let page = AccountPage {
        mount: &v.inner.mount,
        csrf_token: &v.broker().csrf_token(bound),
        display_name: account.display_name.as_deref().unwrap_or(&your_account),
        has_email: email.is_some(),
        email: email.unwrap_or_default(),
        email_unconfirmed: email.is_some() && !account.email_verified,
        has_pending_email: pending_email.is_some(),
        pending_email: pending_email.as_deref().unwrap_or_default(),
        email_change: v.broker().email_change_available(),
        has_notice: notice.is_some(),
        notice: notice.unwrap_or_default(),
        can_add: !password_sources.is_empty() || !redirect_sources.is_empty(),
        password_sources,
        redirect_sources,
        has_password: account.has_password(),
        has_totp,
        has_factor,
        recovery_codes_left,
        has_passkeys: !passkeys.is_empty(),
        passkeys: passkeys
            .iter()
            .map(|p| pages::PasskeyRow {
                id: p.id.clone(),
                name: p.name.clone(),
                created: pages::utc(p.created_at),
                last_used: p.last_used_at.map(pages::utc).unwrap_or_else(|| never.clone()),
            })
            .collect(),
        passkeys_enabled: v.broker().passkeys_enabled(),
        can_unlink: account.identities.len() > 1,
        identities: account
            .identities
            .iter()
            .map(|i| IdentityRow {
                source: i.source.to_string(),
                source_name: v
                    .broker()
                    .source(i.source.as_str())
                    .map_or_else(|| i.source.to_string(), |s| s.display_name().to_owned()),
                subject: i.subject.to_string(),
                has_login: i.login.is_some(),
                login: i.login.clone().unwrap_or_default(),
                since: pages::utc(i.created_at),
            })
            .collect(),
        has_tokens: !tokens.is_empty(),
        tokens: tokens
            .iter()
            .map(|t| pages::TokenRow {
                id: t.id.clone(),
                name: t.name.clone(),
                scopes: t.scopes.join(" "),
                expires: pages::utc(t.expires_at),
                last_used: t.last_used_at.map(pages::utc).unwrap_or_else(|| never.clone()),
            })
            .collect(),
        sessions: sessions
            .iter()
            .map(|s| SessionRow {
                id: s.id.clone(),
                current: s.id == current,
                ip: s.ip.clone().unwrap_or_else(|| t.msg("session-unknown-address")),
                user_agent: s.user_agent.clone().unwrap_or_else(|| t.msg("session-unknown-browser")),
                created: pages::utc(s.created_at),
                last_seen: pages::utc(s.last_seen_at),
            })
            .collect(),
        ..Default::default()
    };
    Ok((html_headers(), pages::render(&v, page)).into_response())
}

async fn healthz(State(v): State<Vestibule>) -> Response {
    match v.broker().ping().await {
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

/// `GET /readyz`: 200 when the store and every source answer (shared probe runs, see
/// [`vestibule::Broker::readiness`]), else 503; the body names each check (`up`, `down`, `not_checked`), never
/// why one is down (the log says, as it may name internal hosts).
async fn readyz(State(v): State<Vestibule>) -> Response {
    let r = v.broker().readiness().await;
    let sources: serde_json::Map<String, serde_json::Value> = r
        .sources
        .iter()
        .map(|s| (s.id.clone(), serde_json::json!(s.state)))
        .collect();
    let body = serde_json::json!({
        "status": if r.ready { "ready" } else { "unavailable" },
        "store": r.store,
        "sources": sources,
    });
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /static/logo`: the `[ui] logo` file, read at start; 404 when none is configured.
async fn logo(State(v): State<Vestibule>) -> Response {
    match &v.inner.ui.logo {
        Some(logo) => (
            [
                (CONTENT_TYPE, HeaderValue::from_static(logo.content_type)),
                (CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
            ],
            axum::body::Bytes::from_owner(logo.bytes.clone()),
        )
            .into_response(),
        None => AppError::NotFound.into_response(),
    }
}

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        include_str!("../templates/static/vestibule.css"),
    )
        .into_response()
}
