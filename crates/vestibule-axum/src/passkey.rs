//! Passkeys over HTTP: the page script, registering and removing passkeys from the account page, and the
//! passwordless sign-in (`/login/passkey`). Using a passkey as the second step or for step-up goes through
//! `/login/second-factor` (see `second_factor.rs`).

use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use vestibule::SecondFactorError;

use crate::client::Client;
use crate::context::AuthContext;
use crate::csrf::{binding, csrf_forms, Checked, CsrfOnly};
use crate::extract::SignedIn;
use crate::pages::{self, PasskeyForm, PasskeyPage};
use crate::respond::{after_sign_in, html_headers, session_cookies, with_cookies, Done};
use crate::{cookies, safe_next, AppError, Vestibule};

/// A message key (templates/i18n).
const NOT_ACCEPTED: &str = "error-passkey-refused-password";

/// `GET /static/passkey.js`: the one script of the broker's pages (CSP `script-src 'self'`).
pub(crate) async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        include_str!("../templates/static/passkey.js"),
    )
        .into_response()
}

/// A form carrying a passkey's answer.
#[derive(Deserialize)]
pub(crate) struct AnswerForm {
    pub(crate) csrf_token: Option<String>,
    ceremony: Option<String>,
    credential: Option<String>,
    next: Option<String>,
    name: Option<String>,
}

/// A form with its CSRF token and where to go afterwards.
#[derive(Deserialize)]
pub(crate) struct NextForm {
    pub(crate) csrf_token: Option<String>,
    next: Option<String>,
}

csrf_forms!(AnswerForm, NextForm);

struct Ceremony<'a> {
    title: &'a str,
    intro: &'a str,
    form: PasskeyForm,
    back: &'a str,
    next: &'a str,
    error: Option<&'a str>,
    status: StatusCode,
}

fn ceremony_page(v: &Vestibule, headers: &HeaderMap, ctx: &AuthContext, c: Ceremony<'_>) -> Response {
    let bound = binding(v, headers, ctx).unwrap_or_default();
    let html = pages::render(
        v,
        PasskeyPage {
            mount: &v.inner.mount,
            csrf_token: &v.broker().csrf_token(bound),
            next: c.next,
            title: c.title,
            intro: c.intro,
            has_error: c.error.is_some(),
            error: c.error.unwrap_or_default(),
            pk: c.form,
            back: c.back,
            ..Default::default()
        },
    );
    (c.status, html_headers(), html).into_response()
}

/// The passwordless page with a new ceremony bound to what the browser holds now (its pre-session cookie, or the
/// session a sign-in just replaced); `error` after a refusal, when the person clicks again rather than being
/// prompted at once.
async fn passwordless_page(
    v: &Vestibule,
    headers: &HeaderMap,
    ctx: &AuthContext,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let bound = binding(v, headers, ctx).ok_or(AppError::BadRequest)?;
    let challenge = v.broker().begin_passwordless(bound).await?;
    let mut form = PasskeyForm::new(&challenge, "/login/passkey/finish", "get");
    // The person clicked "Sign in with a passkey" to get here.
    form.autostart = error.is_none();
    Ok(ceremony_page(
        v,
        headers,
        ctx,
        Ceremony {
            title: "passkey-sign-in-title",
            intro: "passkey-sign-in-intro",
            form,
            back: "/login",
            next,
            error,
            status,
        },
    ))
}

/// `POST /login/passkey`: starts a passwordless sign-in for this browser (bound to its CSRF cookie).
pub(crate) async fn passwordless_start(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
    Checked(form): Checked<NextForm>,
) -> Result<Response, AppError> {
    let next = form.next.as_deref().and_then(safe_next).unwrap_or_default();
    passwordless_page(&v, &headers, &ctx, &next, None, StatusCode::OK).await
}

/// `POST /login/passkey/finish`: the passkey's answer; a session when it passes, the page again (with a new
/// ceremony) when it does not.
pub(crate) async fn passwordless_finish(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Checked(form): Checked<AnswerForm>,
) -> Result<Response, AppError> {
    let bound = binding(&v, &headers, &ctx).ok_or(AppError::BadRequest)?;
    let next = form.next.as_deref().and_then(safe_next);
    let previous = cookies::get(&headers, v.inner.cookies.session);
    let ceremony = form.ceremony.unwrap_or_default();
    let credential = form.credential.unwrap_or_default();
    match v
        .broker()
        .finish_passwordless(bound, &ceremony, &credential, &client, previous)
        .await
    {
        Ok(done) => {
            let set = session_cookies(&v, &done.session, None);
            let to = after_sign_in(&v, &headers, next.as_deref());
            Ok(with_cookies(Redirect::to(&to).into_response(), &set))
        }
        Err(SecondFactorError::WrongCode { .. }) => {
            let next = next.unwrap_or_default();
            passwordless_page(&v, &headers, &ctx, &next, Some(NOT_ACCEPTED), StatusCode::UNAUTHORIZED).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /account/passkeys`: starts registering a passkey (fresh sign-in); the page asks for its name.
pub(crate) async fn register_start(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    _: Checked<CsrfOnly>,
) -> Result<Response, AppError> {
    let challenge = v.broker().begin_passkey_registration(&session).await?;
    let mut form = PasskeyForm::new(&challenge, "/account/passkeys/finish", "create");
    form.ask_name = true;
    form.button = "passkey-create";
    Ok(ceremony_page(
        &v,
        &headers,
        &ctx,
        Ceremony {
            title: "passkey-add-title",
            intro: "passkey-add-intro",
            form,
            back: "/account",
            next: "",
            error: None,
            status: StatusCode::OK,
        },
    ))
}

/// `POST /account/passkeys/finish`: stores the new passkey (fresh sign-in); the other sessions end and this one
/// goes on under a new id; an account's first factor comes with recovery codes, shown once.
pub(crate) async fn register_finish(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    Checked(form): Checked<AnswerForm>,
) -> Result<Response, AppError> {
    let added = v
        .broker()
        .finish_passkey_registration(
            &session,
            form.ceremony.as_deref().unwrap_or_default(),
            form.name.as_deref().unwrap_or_default(),
            form.credential.as_deref().unwrap_or_default(),
            &client,
        )
        .await?;
    let c = &v.inner.cookies;
    let mut set = session_cookies(&v, &added.session, None);
    // Every remember-me series ended with the change.
    set.push(c.clear(c.remember));
    let res = match &added.recovery_codes {
        Some(codes) => {
            let to = Done::PasskeyAdded.location(&v);
            crate::second_factor::codes_page(&v, codes, &to)
        }
        None => Done::PasskeyAdded.redirect(&v),
    };
    Ok(with_cookies(res, &set))
}

/// `POST /account/passkeys/{id}/remove`: removes one passkey (fresh sign-in and second factor).
pub(crate) async fn remove(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    Path(id): Path<String>,
    _: Checked<CsrfOnly>,
) -> Result<Response, AppError> {
    v.broker().remove_passkey(&session, &id, &client).await?;
    let c = &v.inner.cookies;
    Ok(with_cookies(Done::PasskeyRemoved.redirect(&v), &[c.clear(c.remember)]))
}
