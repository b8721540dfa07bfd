//! The second step of sign-in (`/login/second-factor`), step-up for a signed-in session, and the account's own
//! second factors (`/account/totp...`, `/account/recovery-codes`).

use std::collections::HashMap;

use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use vestibule::{RecoveryCodes, SecondFactorError, SecondFactorPrompt};
use vestibule_core::ExposeSecret;

use crate::client::Client;
use crate::context::AuthContext;
use crate::csrf::{binding, csrf_forms, form_binding, Checked, CsrfOnly};
use crate::extract::SignedIn;
use crate::pages::{self, EnrolmentView, PasskeyForm, RecoveryCodesPage, SecondFactorPage, TotpEnrolPage};
use crate::respond::{after_sign_in, html_headers, session_cookies, with_cookies, Done};
use crate::{cookies, safe_next, AppError, Vestibule};

/// Message keys (templates/i18n).
const WRONG_CODE: &str = "error-wrong-code";

impl From<SecondFactorError> for AppError {
    fn from(e: SecondFactorError) -> Self {
        match e {
            SecondFactorError::Expired => AppError::InvalidFlow,
            SecondFactorError::WrongCode { .. } => AppError::InvalidInput("error-wrong-code"),
            SecondFactorError::Throttled { retry_after_secs } => AppError::Throttled(retry_after_secs),
            SecondFactorError::NotFresh => AppError::NotFresh,
            SecondFactorError::AlreadyEnrolled => AppError::InvalidInput("error-totp-already-set-up"),
            SecondFactorError::NoFactor => AppError::InvalidInput("error-no-totp"),
            SecondFactorError::PasskeysOff => AppError::NotFound,
            SecondFactorError::PasskeyRefused => AppError::InvalidInput("error-passkey-not-registered"),
            SecondFactorError::Refused(refusal) => AppError::SignInRefused(refusal.message().to_owned()),
            SecondFactorError::Broker(b) => b.into(),
            other => AppError::Internal(Box::new(other)),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    pub(crate) csrf_token: Option<String>,
    code: Option<String>,
    next: Option<String>,
    /// With `credential`: a passkey's answer to the ceremony of that id, in place of a code.
    ceremony: Option<String>,
    credential: Option<String>,
}

const PASSKEY_REFUSED: &str = "error-passkey-refused-code";

/// A passkey ceremony for the code page, when the account has passkeys: for the half-signed-in state, or for
/// step-up of the signed-in session.
async fn passkey_for(
    v: &Vestibule,
    purpose: &Purpose,
    ctx: &AuthContext,
    prompt: &SecondFactorPrompt,
) -> Result<Option<PasskeyForm>, AppError> {
    if !matches!(prompt, SecondFactorPrompt::Code) {
        return Ok(None);
    }
    let challenge = match (purpose, ctx.browser_session()) {
        (Purpose::Pending(token), _) => v.broker().begin_passkey_second_factor(token).await?,
        (Purpose::StepUp, Some(session)) => v.broker().begin_passkey_step_up(session).await?,
        _ => None,
    };
    Ok(challenge.map(|c| PasskeyForm::new(&c, "/login/second-factor", "get")))
}

csrf_forms!(CodeForm);

/// What the code page is for.
enum Purpose {
    /// The half-signed-in state behind this cookie value.
    Pending(String),
    /// A signed-in session proving its second factor again (step-up).
    StepUp,
    /// Neither: go sign in.
    None,
}

fn purpose(v: &Vestibule, headers: &HeaderMap, ctx: &AuthContext) -> Purpose {
    if let Some(token) = cookies::get(headers, v.inner.cookies.second_factor) {
        return Purpose::Pending(token.to_owned());
    }
    if ctx.browser_session().is_some() {
        return Purpose::StepUp;
    }
    Purpose::None
}

/// The code page (or, when policy requires a factor the account lacks, the enrolment page) for the browser's
/// half-signed-in state; for a signed-in session whose account has a factor, the step-up page. Anyone else goes
/// to the login page.
pub(crate) async fn page(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let next = q.get("next").and_then(|n| safe_next(n)).unwrap_or_default();
    let purpose = purpose(&v, &headers, &ctx);
    match &purpose {
        Purpose::Pending(token) => match v.broker().second_factor_prompt(token).await? {
            Some(prompt) => {
                let passkey = passkey_for(&v, &purpose, &ctx, &prompt).await?;
                let view = CodeView::ask(&next, prompt, false).with_passkey(passkey);
                Ok(render(&v, &ctx, &headers, view))
            }
            None => Ok(start_over(&v)),
        },
        Purpose::StepUp => match step_up_view(&v, &purpose, &ctx, &next).await? {
            Some(view) => Ok(render(&v, &ctx, &headers, view)),
            // Nothing to step up with: the account page, where a factor can be added.
            None => Ok(Redirect::to(&format!("{}/account", v.inner.mount)).into_response()),
        },
        Purpose::None => Ok(Redirect::to(&v.login_path()).into_response()),
    }
}

/// Checks the code: for a half-signed-in state, the session is issued (with the recovery codes shown once when
/// the step was enrolment); for a signed-in session, step-up renews it under a new id.
pub(crate) async fn submit(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    Client(client): Client,
    headers: HeaderMap,
    Checked(form): Checked<CodeForm>,
) -> Result<Response, AppError> {
    let code = form.code.unwrap_or_default();
    let next = form.next.as_deref().and_then(safe_next);
    let c = &v.inner.cookies;
    // A passkey's answer, when the passkey form was used.
    let passkey = form
        .credential
        .filter(|c| !c.is_empty())
        .map(|credential| (form.ceremony.unwrap_or_default(), credential));
    let refused = if passkey.is_some() { PASSKEY_REFUSED } else { WRONG_CODE };
    let purpose = purpose(&v, &headers, &ctx);
    match &purpose {
        Purpose::Pending(token) => {
            let previous = cookies::get(&headers, c.session);
            let finished = match &passkey {
                Some((ceremony, credential)) => {
                    v.broker()
                        .finish_second_factor_passkey(token, ceremony, credential, &client, previous)
                        .await
                }
                None => v.broker().finish_second_factor(token, &code, &client, previous).await,
            };
            match finished {
                Ok(done) => {
                    let mut set = session_cookies(&v, &done.session, done.remember.as_ref());
                    set.push(c.clear(c.second_factor));
                    let to = after_sign_in(&v, &headers, done.next_path.as_deref());
                    let res = match done.recovery_codes {
                        Some(codes) => codes_page(&v, &codes, &to),
                        None => Redirect::to(&to).into_response(),
                    };
                    Ok(with_cookies(res, &set))
                }
                Err(SecondFactorError::WrongCode { discarded: false }) => {
                    let prompt = v
                        .broker()
                        .second_factor_prompt(token)
                        .await?
                        .unwrap_or(SecondFactorPrompt::Code);
                    let next = next.unwrap_or_default();
                    let passkey = passkey_for(&v, &purpose, &ctx, &prompt).await?;
                    let view = CodeView::ask(&next, prompt, false)
                        .with_passkey(passkey)
                        .refused(refused, StatusCode::UNAUTHORIZED);
                    Ok(render(&v, &ctx, &headers, view))
                }
                // Too many wrong codes, or the state expired or was used: sign in again.
                Err(SecondFactorError::WrongCode { discarded: true } | SecondFactorError::Expired) => {
                    Ok(start_over(&v))
                }
                Err(SecondFactorError::Throttled { retry_after_secs }) => {
                    let next = next.unwrap_or_default();
                    let message = crate::error::throttled_message(retry_after_secs);
                    let view = CodeView::ask(&next, SecondFactorPrompt::Code, false)
                        .refused(&message, StatusCode::TOO_MANY_REQUESTS);
                    let mut res = render(&v, &ctx, &headers, view);
                    res.headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                    Ok(res)
                }
                Err(e) => Err(e.into()),
            }
        }
        Purpose::StepUp => {
            let Some(session) = ctx.browser_session() else {
                return Ok(start_over(&v));
            };
            let stepped = match &passkey {
                Some((ceremony, credential)) => {
                    v.broker().step_up_passkey(session, ceremony, credential, &client).await
                }
                None => v.broker().step_up(session, &code, &client).await,
            };
            match stepped {
                Ok(renewed) => {
                    let set = session_cookies(&v, &renewed, None);
                    let to = crate::respond::landing(&v, next.as_deref());
                    Ok(with_cookies(Redirect::to(&to).into_response(), &set))
                }
                Err(SecondFactorError::WrongCode { .. }) => {
                    let next = next.unwrap_or_default();
                    let view = step_up_view(&v, &purpose, &ctx, &next)
                        .await?
                        .unwrap_or_else(|| CodeView::ask(&next, SecondFactorPrompt::Code, true))
                        .refused(refused, StatusCode::UNAUTHORIZED);
                    Ok(render(&v, &ctx, &headers, view))
                }
                Err(e) => Err(e.into()),
            }
        }
        Purpose::None => Ok(start_over(&v)),
    }
}

/// The step-up page of the signed-in session: a code form when the account has a factor here (with a passkey
/// ceremony when it has passkeys), and a button per identity provider whose own multi-factor sign-in is trusted
/// (`trust_upstream_mfa`) and where the account has an identity. `None` when there is neither.
async fn step_up_view<'a>(
    v: &Vestibule,
    purpose: &Purpose,
    ctx: &AuthContext,
    next: &'a str,
) -> Result<Option<CodeView<'a>>, AppError> {
    let Some(session) = ctx.browser_session() else {
        return Ok(None);
    };
    let has = v.broker().has_second_factor(&session.account_id).await?;
    let providers: Vec<pages::SourceLink> = v
        .broker()
        .provider_step_up_sources(session)
        .await?
        .into_iter()
        .filter_map(|id| {
            let source = v.broker().source(id.as_str())?;
            Some(pages::SourceLink {
                id: id.to_string(),
                name: source.display_name().to_owned(),
                selected: false,
            })
        })
        .collect();
    if !has && providers.is_empty() {
        return Ok(None);
    }
    let passkey = match has {
        true => passkey_for(v, purpose, ctx, &SecondFactorPrompt::Code).await?,
        false => None,
    };
    let mut view = CodeView::ask(next, SecondFactorPrompt::Code, true).with_passkey(passkey);
    view.code = has;
    view.providers = providers;
    Ok(Some(view))
}

#[derive(Deserialize)]
pub(crate) struct StepUpForm {
    pub(crate) csrf_token: Option<String>,
    next: Option<String>,
}

csrf_forms!(StepUpForm);

/// `POST /login/second-factor/{source}`: step-up at an identity provider for the signed-in session.
///
/// Threat model. Who: a browser with a live session and this page's CSRF token (a cross-site form cannot start
/// it). What it changes: nothing yet; it stores a redirect flow bound to this browser's flow cookie and to this
/// session's id, asking the provider for a new login (`prompt=login`, `max_age=0`). The callback renews only that
/// session, and only when the provider returns this account's identity at that source with a trusted multi-factor
/// sign-in (`amr`) whose `auth_time` is not before the start; anything else is refused and audited. What it
/// reveals: the provider's authorization URL, as the login page's buttons do. A source that is not a trusted
/// provider of this account is 404.
pub(crate) async fn provider_step_up(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    axum::extract::Path(source): axum::extract::Path<String>,
    Checked(form): Checked<StepUpForm>,
) -> Result<Response, AppError> {
    let source = vestibule_core::SourceId::new(source).map_err(|_| AppError::NotFound)?;
    let next = form.next.as_deref().and_then(safe_next);
    let begin = v
        .broker()
        .start_provider_step_up(&session, &source, next)
        .await
        .map_err(crate::respond::login_error)?;
    Ok(crate::respond::to_provider(&v, &begin))
}

/// Back to the login page, dropping the half-signed-in cookie.
fn start_over(v: &Vestibule) -> Response {
    let c = &v.inner.cookies;
    with_cookies(
        Redirect::to(&v.login_path()).into_response(),
        &[c.clear(c.second_factor)],
    )
}

/// What the code page says: for which `next`, asking for a code or showing an enrolment, for a sign-in or a
/// step-up, with which error and status.
struct CodeView<'a> {
    next: &'a str,
    prompt: SecondFactorPrompt,
    step_up: bool,
    error: Option<&'a str>,
    status: StatusCode,
    passkey: Option<PasskeyForm>,
    /// The code form (an account with no factor here steps up at its provider only).
    code: bool,
    /// Identity providers to step up at.
    providers: Vec<pages::SourceLink>,
}

impl<'a> CodeView<'a> {
    /// The plain code page (`200`, no error).
    fn ask(next: &'a str, prompt: SecondFactorPrompt, step_up: bool) -> Self {
        CodeView {
            next,
            prompt,
            step_up,
            error: None,
            status: StatusCode::OK,
            passkey: None,
            code: true,
            providers: Vec::new(),
        }
    }

    /// The page with a passkey ceremony beside the code form.
    fn with_passkey(mut self, passkey: Option<PasskeyForm>) -> Self {
        self.passkey = passkey;
        self
    }

    /// The same page again after a refusal.
    fn refused(mut self, error: &'a str, status: StatusCode) -> Self {
        self.error = Some(error);
        self.status = status;
        self
    }
}

fn render(v: &Vestibule, ctx: &AuthContext, headers: &HeaderMap, view: CodeView<'_>) -> Response {
    let (bound, set) = form_binding(v, headers, ctx);
    let enrolment = match &view.prompt {
        SecondFactorPrompt::Enrol(e) => Some(EnrolmentView::of(e)),
        _ => None,
    };
    let passkey = view.passkey;
    let html = pages::render(
        v,
        SecondFactorPage {
            mount: &v.inner.mount,
            csrf_token: &v.broker().csrf_token(&bound),
            next: view.next,
            has_error: view.error.is_some(),
            error: view.error.unwrap_or_default(),
            has_enrolment: enrolment.is_some(),
            enrolment: enrolment.unwrap_or_default(),
            step_up: view.step_up,
            has_passkey: passkey.is_some(),
            pk: passkey.unwrap_or_default(),
            has_code: view.code,
            has_providers: !view.providers.is_empty(),
            providers: view.providers,
            ..Default::default()
        },
    );
    with_cookies((view.status, html_headers(), html).into_response(), &set)
}

pub(crate) fn codes_page(v: &Vestibule, codes: &RecoveryCodes, continue_to: &str) -> Response {
    let html = pages::render(
        v,
        RecoveryCodesPage {
            mount: &v.inner.mount,
            codes: codes.0.iter().map(|c| c.expose_secret().to_owned()).collect(),
            continue_to,
            ..Default::default()
        },
    );
    (html_headers(), html).into_response()
}

fn enrol_page(
    v: &Vestibule,
    ctx: &AuthContext,
    headers: &HeaderMap,
    enrolment: Option<EnrolmentView>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let bound = binding(v, headers, ctx).unwrap_or_default();
    let html = pages::render(
        v,
        TotpEnrolPage {
            mount: &v.inner.mount,
            csrf_token: &v.broker().csrf_token(bound),
            has_error: error.is_some(),
            error: error.unwrap_or_default(),
            has_enrolment: enrolment.is_some(),
            enrolment: enrolment.unwrap_or_default(),
            ..Default::default()
        },
    );
    (status, html_headers(), html).into_response()
}

/// `POST /account/totp`: a new authenticator to set up (fresh sign-in), shown with its QR code, key and URI.
pub(crate) async fn begin_totp(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    _: Checked<CsrfOnly>,
) -> Result<Response, AppError> {
    let enrolment = v.broker().begin_totp(&session).await?;
    Ok(enrol_page(
        &v,
        &ctx,
        &headers,
        Some(EnrolmentView::of(&enrolment)),
        None,
        StatusCode::OK,
    ))
}

/// `POST /account/totp/confirm`: the authenticator's first code turns it on; the recovery codes are shown once,
/// the other sessions end and this one goes on under a new id.
pub(crate) async fn confirm_totp(
    State(v): State<Vestibule>,
    Extension(ctx): Extension<AuthContext>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    headers: HeaderMap,
    Checked(form): Checked<CodeForm>,
) -> Result<Response, AppError> {
    let code = form.code.unwrap_or_default();
    match v.broker().confirm_totp(&session, &code, &client).await {
        Ok(added) => {
            let c = &v.inner.cookies;
            let mut set = session_cookies(&v, &added.session, None);
            // Every remember-me series ended with the change.
            set.push(c.clear(c.remember));
            let to = Done::TotpAdded.location(&v);
            Ok(with_cookies(codes_page(&v, &added.recovery_codes, &to), &set))
        }
        Err(SecondFactorError::WrongCode { .. }) => {
            let enrolment = v
                .broker()
                .totp_under_way(&session)
                .await?
                .map(|e| EnrolmentView::of(&e));
            Ok(enrol_page(
                &v,
                &ctx,
                &headers,
                enrolment,
                Some(WRONG_CODE),
                StatusCode::UNAUTHORIZED,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /account/totp/remove`: removes the authenticator and the recovery codes (fresh sign-in).
pub(crate) async fn remove_totp(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    _: Checked<CsrfOnly>,
) -> Result<Response, AppError> {
    v.broker().remove_totp(&session, &client).await?;
    let c = &v.inner.cookies;
    Ok(with_cookies(Done::TotpRemoved.redirect(&v), &[c.clear(c.remember)]))
}

/// `POST /account/recovery-codes`: a new set, shown once; the old set stops working (fresh sign-in).
pub(crate) async fn regenerate_codes(
    State(v): State<Vestibule>,
    SignedIn(session): SignedIn,
    Client(client): Client,
    _: Checked<CsrfOnly>,
) -> Result<Response, AppError> {
    let codes = v.broker().regenerate_recovery_codes(&session, &client).await?;
    let c = &v.inner.cookies;
    let to = format!("{}/account", v.inner.mount);
    Ok(with_cookies(codes_page(&v, &codes, &to), &[c.clear(c.remember)]))
}
