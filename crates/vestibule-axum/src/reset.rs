//! Password reset by a mailed link, address confirmation and change: `GET/POST /reset`, `GET/POST /reset/{token}`,
//! `GET/POST /reset-password`, `GET /email/verify/{token}`, `POST /account/email`. No route here says whether an account exists, nor
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

/// Where the new-password form lives: the mailed link's token has been moved into the reset cookie by then (see
/// [`new_password_page_get`]), so nothing in this URL is secret. A path of its own, beside `/reset/{token}`
/// rather than under it, so the cookie scoped to it is never sent to the link's URL either.
const FORM_PATH: &str = "/reset-password";

fn form_path(v: &Vestibule) -> String {
    format!("{}{FORM_PATH}", v.inner.mount)
}

/// The reset cookie: `token` for the form's page only, for the `secs` its link has left; empty and 0 deletes it.
fn reset_cookie(v: &Vestibule, token: &str, secs: i64) -> String {
    let c = &v.inner.cookies;
    c.set_for_page(c.reset, token, &form_path(v), secs)
}

fn new_password_page(v: &Vestibule, ctx: &AuthContext, headers: &HeaderMap, error: Option<&str>) -> Response {
    let (bound, set) = form_binding(v, headers, ctx);
    let html = crate::pages::render(
        v,
        crate::pages::ResetPasswordPage {
            mount: &v.inner.mount,
            csrf_token: &v.broker().csrf_token(&bound),
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

/// `GET /reset/{token}`, the mailed link: checks the token, moves it into the reset cookie (`HttpOnly`,
/// `SameSite=Strict`, for the form's path only, living as long as the link) and answers `303` to the form's
/// token-free URL. The token is out of the address bar, the history and any `Referer` before a page is shown.
pub(crate) async fn new_password_page_get(
    State(v): State<Vestibule>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let expires_at = v.broker().check_reset_link(&token).await?;
    let left = expires_at.0.saturating_sub(v.broker().now().0).max(1);
    let res = (StatusCode::SEE_OTHER, [(http::header::LOCATION, form_path(&v))]).into_response();
    Ok(private_headers(with_cookies(res, &[reset_cookie(&v, &token, left)])))
}

/// `GET /reset-password`: the new-password form of the link whose token the reset cookie holds. The cookie is not
/// required here: a browser sends no `SameSite=Strict` cookie on a navigation that began on another site (the
/// link clicked in a webmail, redirected here), and the form needs no secret to be shown. The form's `POST`, from
/// this page, carries it. A cookie that is there but no longer good is refused at once, and deleted.
pub(crate) async fn reset_form(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let Some(token) = crate::cookies::get(&headers, v.inner.cookies.reset) {
        if let Err(e) = v.broker().check_reset_link(token).await {
            return invalid_reset_cookie(&v, e);
        }
    }
    Ok(new_password_page(&v, &ctx, &headers, None))
}

/// `POST /reset-password` (`new_password`, `csrf_token`): sets the password with the token in the reset cookie.
pub(crate) async fn reset_form_submit(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Checked(form): Checked<NewPasswordForm>,
) -> Result<Response, AppError> {
    let token = crate::cookies::get(&headers, v.inner.cookies.reset)
        .unwrap_or_default()
        .to_owned();
    set_new_password(&v, &ctx, &client, &headers, &token, form).await
}

/// `POST /reset/{token}` (`new_password`, `csrf_token`): the same, with the token in the path, for a client that
/// posts to the link itself (the public contract; the built-in form posts to `/reset-password`).
pub(crate) async fn new_password_submit(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Path(token): Path<String>,
    Checked(form): Checked<NewPasswordForm>,
) -> Result<Response, AppError> {
    set_new_password(&v, &ctx, &client, &headers, &token, form).await
}

async fn set_new_password(
    v: &Vestibule,
    ctx: &AuthContext,
    client: &vestibule::ClientInfo,
    headers: &HeaderMap,
    token: &str,
    form: NewPasswordForm,
) -> Result<Response, AppError> {
    let new = SecretString::from(form.new_password.unwrap_or_default());
    match v.broker().complete_password_reset(token, &new, client).await {
        Ok(_) => {
            let html = crate::pages::message(v, "message-password-set-title", "message-password-set", None);
            // The browser's own session, if any, ended with the others: its cookie goes too, and the used token's.
            let c = &v.inner.cookies;
            let res = (html_headers(), html).into_response();
            Ok(private_headers(with_cookies(
                res,
                &[c.clear(c.session), c.clear(c.remember), reset_cookie(v, "", 0)],
            )))
        }
        // A refused password: the form again (the link still works), with the policy's words.
        Err(ResetError::Password(PasswordChangeError::Policy(why))) => Ok(new_password_page(
            v,
            ctx,
            headers,
            Some(&crate::error::password_rejected(&why)),
        )),
        Err(e) => invalid_reset_cookie(v, e),
    }
}

/// The error page for `e`; when the link is no good, the reset cookie that may hold it is deleted with it.
fn invalid_reset_cookie(v: &Vestibule, e: ResetError) -> Result<Response, AppError> {
    let clear = matches!(e, ResetError::InvalidLink);
    let res = AppError::from(e).into_response();
    Ok(if clear {
        private_headers(with_cookies(res, &[reset_cookie(v, "", 0)]))
    } else {
        res
    })
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
