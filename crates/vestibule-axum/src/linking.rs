//! Routes for linking: the page that asks for proof of account ownership, its confirm / separate-account /
//! cancel actions, and adding or removing a way in from the account page. All POSTs check the CSRF token first.

use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::HeaderMap;
use serde::Deserialize;
use vestibule::UnlinkError;
use vestibule_core::{Flow, SecretString, SourceId};

use crate::client::Client;
use crate::context::AuthContext;
use crate::csrf::{csrf_forms, form_binding, Checked, CsrfOnly};
use crate::extract::SignedIn;
use crate::pages::{self, LinkPage};
use crate::respond::{html_headers, login_error, signed_in, with_cookies, Done};
use crate::{cookies, AppError, Vestibule};

fn link_token<'a>(v: &Vestibule, headers: &'a HeaderMap) -> Option<&'a str> {
    cookies::get(headers, v.inner.cookies.link).filter(|t| t.len() == 43)
}

pub(crate) async fn link_page(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let token = link_token(&v, &headers).ok_or(AppError::InvalidFlow)?;
    let pending = v.broker().pending_link(token).await?.ok_or(AppError::InvalidFlow)?;
    let source_name = v
        .broker()
        .source(pending.source.as_str())
        .map(|s| s.display_name().to_owned());
    let source_name = source_name.unwrap_or_else(|| pending.source.to_string());
    let (bound, set) = form_binding(&v, &headers, &ctx);
    let account_name = match ctx.browser_session() {
        Some(s) => s
            .display_name
            .clone()
            .unwrap_or_else(|| crate::ui::PageRequest::current().lang.msg("link-your-account")),
        None => String::new(),
    };
    let (password_sources, redirect_sources) = pages::source_links(&v);
    let page = LinkPage {
        mount: &v.inner.mount,
        csrf_token: &v.broker().csrf_token(&bound),
        signed_in: ctx.browser_session().is_some(),
        account_name: &account_name,
        source: &source_name,
        has_email: pending.email.is_some(),
        email: pending.email.as_deref().unwrap_or_default(),
        may_create: pending.may_create,
        password_sources,
        redirect_sources,
        ..Default::default()
    };
    Ok(with_cookies(
        (html_headers(), pages::render(&v, page)).into_response(),
        &set,
    ))
}

pub(crate) async fn link_confirm(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    _: Checked<CsrfOnly>,
) -> Result<Response, AppError> {
    // Proof of ownership is being signed in to the account: without a session there is nothing to confirm.
    let session = ctx.browser_session().ok_or(AppError::InvalidFlow)?;
    let token = link_token(&v, &headers).ok_or(AppError::InvalidFlow)?;
    let clear = v.inner.cookies.clear(v.inner.cookies.link);
    match v.broker().confirm_link(token, session, &client).await {
        Ok(_) => Ok(with_cookies(Done::Linked.redirect(&v), &[clear])),
        // Not fresh: the pending link stays (and its cookie) for after the new sign-in.
        Err(vestibule::LoginError::NotFresh) => Err(AppError::NotFresh),
        Err(e) => Ok(with_cookies(login_error(e).into_response(), &[clear])),
    }
}

pub(crate) async fn link_new(
    State(v): State<Vestibule>,
    Client(client): Client,
    headers: HeaderMap,
    _: Checked<CsrfOnly>,
) -> Result<Response, AppError> {
    let token = link_token(&v, &headers).ok_or(AppError::InvalidFlow)?;
    let previous = cookies::get(&headers, v.inner.cookies.session);
    let clear = v.inner.cookies.clear(v.inner.cookies.link);
    let res = match v.broker().create_from_link(token, &client, previous).await {
        // The link cookie is being cleared: land where a plain sign-in would.
        Ok(outcome) => signed_in(&v, &HeaderMap::new(), outcome, None, false).await?,
        Err(e) => login_error(e).into_response(),
    };
    Ok(with_cookies(res, &[clear]))
}

pub(crate) async fn link_cancel(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
    _: Checked<CsrfOnly>,
) -> Result<Response, AppError> {
    if let Some(token) = link_token(&v, &headers) {
        v.broker().cancel_link(token).await?;
    }
    let to = if ctx.browser_session().is_some() {
        format!("{}/account", v.inner.mount)
    } else {
        v.login_path()
    };
    Ok(with_cookies(
        Redirect::to(&to).into_response(),
        &[v.inner.cookies.clear(v.inner.cookies.link)],
    ))
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    pub(crate) csrf_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

pub(crate) async fn account_link(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    Path(source): Path<String>,
    Checked(form): Checked<LinkForm>,
) -> Result<Response, AppError> {
    let session = &session;
    let source_id = SourceId::new(source).map_err(|_| AppError::NotFound)?;
    let is_password = match v.broker().source(source_id.as_str()).map(|s| s.flow()) {
        Some(Flow::Password(_)) => true,
        Some(Flow::Redirect(_)) => false,
        // Unknown source, or a kind of flow this front end does not know.
        _ => return Err(AppError::NotFound),
    };
    if is_password {
        let password = SecretString::from(form.password.unwrap_or_default());
        let login = form.username.unwrap_or_default();
        return match v
            .broker()
            .link_password(&source_id, session, &login, &password, &client)
            .await
        {
            Ok(()) => Ok(Done::Linked.redirect(&v)),
            Err(e) => Err(login_error(e)),
        };
    }
    let begin = v
        .broker()
        .start_link_redirect(&source_id, session)
        .await
        .map_err(login_error)?;
    Ok(crate::respond::to_provider(&v, &begin))
}

#[derive(Deserialize)]
pub(crate) struct UnlinkForm {
    pub(crate) csrf_token: Option<String>,
    source: Option<String>,
    subject: Option<String>,
}

csrf_forms!(LinkForm, UnlinkForm);

pub(crate) async fn account_unlink(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    Checked(form): Checked<UnlinkForm>,
) -> Result<Response, AppError> {
    let (source, subject) = (form.source.unwrap_or_default(), form.subject.unwrap_or_default());
    match v.broker().unlink(&session, &source, &subject, &client).await {
        Ok(()) => Ok(Done::Unlinked.redirect(&v)),
        Err(UnlinkError::NotFresh) => Err(AppError::NotFresh),
        Err(UnlinkError::NotFound) => Err(AppError::NotFound),
        Err(UnlinkError::LastIdentity) => Err(AppError::LastIdentity),
        Err(UnlinkError::Broker(e)) => Err(e.into()),
        Err(other) => Err(AppError::Internal(Box::new(other))),
    }
}
