//! Password reset by a mailed link, address confirmation and change: `GET/POST /reset`, `GET/POST /reset/{token}`,
//! `GET /email/verify/{token}`, `POST /account/email`. No route here says whether an account exists, nor
//! whether an address is another account's.

use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, REFERRER_POLICY};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use vestibule::ResetError;
use vestibule_core::{PasswordChangeError, SecretString};

use crate::client::Client;
use crate::context::AuthContext;
use crate::csrf::{csrf_forms, form_binding, Checked};
use crate::extract::SignedIn;
use crate::respond::{html_headers, with_cookies, Done};
use crate::{AppError, Vestibule};

impl From<ResetError> for AppError {
    fn from(e: ResetError) -> Self {
        match e {
            ResetError::Throttled { retry_after_secs } => AppError::Throttled(retry_after_secs),
            ResetError::InvalidLink => AppError::InvalidInput(INVALID_LINK),
            ResetError::AddressInUse => AppError::InvalidInput("error-address-in-use"),
            ResetError::Unavailable => AppError::Unavailable("password reset by mail is not available".into()),
            ResetError::Password(PasswordChangeError::Policy(why)) => AppError::PasswordRejected(why),
            ResetError::Broker(b) => b.into(),
            other => AppError::Internal(Box::new(other)),
        }
    }
}

/// A message key (templates/i18n).
const INVALID_LINK: &str = "error-invalid-link";

/// Pages that carry a token in their URL: no `Referer` leaves them, and no cache keeps them.
fn private_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn reset_page(v: &Vestibule, ctx: &AuthContext, headers: &HeaderMap, sent: bool) -> Response {
    let (bound, set) = form_binding(v, headers, ctx);
    let html = crate::pages::render(
        v,
        crate::pages::ResetPage {
            mount: &v.inner.mount,
            csrf_token: &v.broker().csrf_token(&bound),
            sent,
            ..Default::default()
        },
    );
    with_cookies((html_headers(), html).into_response(), &set)
}

pub(crate) async fn request_page(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if !v.broker().reset_available() {
        return Err(AppError::NotFound);
    }
    Ok(reset_page(&v, &ctx, &headers, false))
}

#[derive(Deserialize)]
pub(crate) struct ResetForm {
    csrf_token: Option<String>,
    login: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct NewPasswordForm {
    csrf_token: Option<String>,
    new_password: Option<String>,
}

csrf_forms!(ResetForm, NewPasswordForm);

pub(crate) async fn request_submit(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Checked(form): Checked<ResetForm>,
) -> Result<Response, AppError> {
    let login = form.login.unwrap_or_default();
    // The lookup and the mail run on after the answer (the handle is dropped): the page is the same, after the
    // same work, whether or not an account matched.
    v.broker().request_password_reset(&login, &client).await?;
    Ok(reset_page(&v, &ctx, &headers, true))
}

fn new_password_page(
    v: &Vestibule,
    ctx: &AuthContext,
    headers: &HeaderMap,
    token: &str,
    error: Option<&str>,
) -> Response {
    let (bound, set) = form_binding(v, headers, ctx);
    let html = crate::pages::render(
        v,
        crate::pages::ResetPasswordPage {
            mount: &v.inner.mount,
            csrf_token: &v.broker().csrf_token(&bound),
            token,
            has_error: error.is_some(),
            error: error.unwrap_or_default(),
            ..Default::default()
        },
    );
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    private_headers(with_cookies((status, html_headers(), html).into_response(), &set))
}

pub(crate) async fn new_password_page_get(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    if let Err(e) = v.broker().check_reset_link(&token).await {
        return Err(e.into());
    }
    Ok(new_password_page(&v, &ctx, &headers, &token, None))
}

pub(crate) async fn new_password_submit(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Path(token): Path<String>,
    Checked(form): Checked<NewPasswordForm>,
) -> Result<Response, AppError> {
    let new = SecretString::from(form.new_password.unwrap_or_default());
    match v.broker().complete_password_reset(&token, &new, &client).await {
        Ok(_) => {
            let html = crate::pages::message(&v, "message-password-set-title", "message-password-set", None);
            // The browser's own session, if any, ended with the others: its cookie goes too.
            let c = &v.inner.cookies;
            let res = (html_headers(), html).into_response();
            Ok(private_headers(with_cookies(
                res,
                &[c.clear(c.session), c.clear(c.remember)],
            )))
        }
        // A refused password: the form again (the link still works), with the policy's words.
        Err(ResetError::Password(PasswordChangeError::Policy(why))) => Ok(new_password_page(
            &v,
            &ctx,
            &headers,
            &token,
            Some(&crate::error::password_rejected(&why)),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /email/verify/{token}`: a new account's address is confirmed by opening the link. A change of address is
/// not: the page asks for a press of a button (`POST` to the same path), because mail scanners and link previews
/// open links by themselves, and a change confirmed by a scanner in a mistyped mailbox would hand the account's
/// reset mail to a stranger.
pub(crate) async fn verify_email(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    if let Some(email) = v.broker().email_change_link(&token).await? {
        let (bound, set) = form_binding(&v, &headers, &ctx);
        let html = crate::pages::render(
            &v,
            crate::pages::EmailChangeConfirmPage {
                mount: &v.inner.mount,
                csrf_token: &v.broker().csrf_token(&bound),
                token: &token,
                email: &email,
                ..Default::default()
            },
        );
        return Ok(private_headers(with_cookies(
            (html_headers(), html).into_response(),
            &set,
        )));
    }
    confirmed(&v, &token, &client).await
}

/// `POST /email/verify/{token}` (`csrf_token`): confirms the change of address the link stands for.
pub(crate) async fn verify_email_submit(
    State(v): State<Vestibule>,
    Client(client): Client,
    Path(token): Path<String>,
    _: Checked<crate::csrf::CsrfOnly>,
) -> Result<Response, AppError> {
    confirmed(&v, &token, &client).await
}

async fn confirmed(v: &Vestibule, token: &str, client: &vestibule::ClientInfo) -> Result<Response, AppError> {
    let email = v.broker().confirm_email(token, client).await?;
    let html = crate::pages::message(
        v,
        "message-address-confirmed-title",
        &crate::i18n::key_with("message-address-confirmed", &[("email", &email)]),
        None,
    );
    Ok(private_headers((html_headers(), html).into_response()))
}

#[derive(Deserialize)]
pub(crate) struct EmailForm {
    pub(crate) csrf_token: Option<String>,
    email: Option<String>,
}

csrf_forms!(EmailForm);

/// `POST /account/email`: asks to change the signed-in account's address. The same answer whether or not the
/// address is another account's (see `Broker::request_email_change`).
pub(crate) async fn change_email(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    Checked(form): Checked<EmailForm>,
) -> Result<Response, AppError> {
    let email = form.email.unwrap_or_default();
    v.broker().request_email_change(&session, &email, &client).await?;
    Ok(Done::EmailChangeSent.redirect(&v))
}
