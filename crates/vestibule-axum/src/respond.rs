//! Shared ways to answer: cookies on a response, HTML headers, where a finished sign-in goes, how a sign-in error
//! reads, and the fixed notices of the account page.

use axum::response::{IntoResponse, Redirect, Response};
use http::header::{CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use vestibule::{LoginError, LoginOutcome, NewSession, RedirectBegin};
use vestibule_core::{ExposeSecret, SecretString};

use crate::{cookies, safe_next, AppError, Vestibule};

/// Appends `Set-Cookie` headers.
pub(crate) fn with_cookies(mut res: Response, set: &[String]) -> Response {
    for c in set {
        if let Ok(v) = HeaderValue::from_str(c) {
            res.headers_mut().append(SET_COOKIE, v);
        }
    }
    res
}

pub(crate) fn html_headers() -> [(http::HeaderName, HeaderValue); 1] {
    [(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))]
}

/// Where a sign-in lands: `next` when it is a safe same-origin path, else the configured landing page.
pub(crate) fn landing(v: &Vestibule, next: Option<&str>) -> String {
    next.and_then(safe_next).unwrap_or_else(|| v.inner.landing.clone())
}

/// What the account page tells after an action (`/account?done=...`): fixed words chosen by a key, so nothing from
/// the URL is echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    Linked,
    Unlinked,
    Revoked,
    Password,
    TokenRevoked,
    TotpAdded,
    TotpRemoved,
    PasskeyAdded,
    PasskeyRemoved,
    EmailChangeSent,
}

impl Done {
    const ALL: [Done; 10] = [
        Done::Linked,
        Done::Unlinked,
        Done::Revoked,
        Done::Password,
        Done::TokenRevoked,
        Done::TotpAdded,
        Done::TotpRemoved,
        Done::PasskeyAdded,
        Done::PasskeyRemoved,
        Done::EmailChangeSent,
    ];

    fn key(self) -> &'static str {
        match self {
            Done::Linked => "linked",
            Done::Unlinked => "unlinked",
            Done::Revoked => "revoked",
            Done::Password => "password",
            Done::TokenRevoked => "token_revoked",
            Done::TotpAdded => "totp_added",
            Done::TotpRemoved => "totp_removed",
            Done::PasskeyAdded => "passkey_added",
            Done::PasskeyRemoved => "passkey_removed",
            Done::EmailChangeSent => "email_change_sent",
        }
    }

    /// The notice for a `done` query value; `None` for anything else.
    pub(crate) fn parse(key: &str) -> Option<Done> {
        Done::ALL.into_iter().find(|d| d.key() == key)
    }

    /// The notice's message key (templates/i18n).
    pub(crate) fn notice(self) -> &'static str {
        match self {
            Done::Linked => "notice-linked",
            Done::Unlinked => "notice-unlinked",
            Done::Revoked => "notice-revoked",
            Done::Password => "notice-password",
            Done::TokenRevoked => "notice-token-revoked",
            Done::TotpAdded => "notice-totp-added",
            Done::TotpRemoved => "notice-totp-removed",
            Done::PasskeyAdded => "notice-passkey-added",
            Done::PasskeyRemoved => "notice-passkey-removed",
            Done::EmailChangeSent => "notice-email-change-sent",
        }
    }

    /// The account page's path with this notice.
    pub(crate) fn location(self, v: &Vestibule) -> String {
        format!("{}/account?done={}", v.inner.mount, self.key())
    }

    /// A redirect to the account page with this notice.
    pub(crate) fn redirect(self, v: &Vestibule) -> Response {
        Redirect::to(&self.location(v)).into_response()
    }
}

/// Where a completed sign-in goes: to confirm a waiting link (the sign-in proved ownership of an account), else
/// `next` when it is safe, else the landing page.
pub(crate) fn after_sign_in(v: &Vestibule, headers: &HeaderMap, next: Option<&str>) -> String {
    if cookies::get(headers, v.inner.cookies.link).is_some() {
        format!("{}/link", v.inner.mount)
    } else {
        landing(v, next)
    }
}

/// The `Set-Cookie` values for a new session, and for a remember-me series when one was started.
pub(crate) fn session_cookies(v: &Vestibule, session: &NewSession, remember: Option<&SecretString>) -> Vec<String> {
    let c = &v.inner.cookies;
    let mut set = vec![c.set(c.session, session.token.expose(), None)];
    if let Some(value) = remember {
        let age = v.broker().settings().remember_days.saturating_mul(86_400);
        set.push(c.set(c.remember, value.expose_secret(), Some(age)));
    }
    set
}

/// Where a finished sign-in step leads: one decision for the pages (a redirect) and the JSON API (a status and a
/// location), with the cookies it sets.
pub(crate) struct Landing {
    pub(crate) kind: LandingKind,
    /// Where the browser goes next (a path on this origin).
    pub(crate) to: String,
    /// `Set-Cookie` values: the session (and remember-me series), or the half-signed-in state, or the waiting link.
    pub(crate) cookies: Vec<String>,
}

#[derive(Debug)]
pub(crate) enum LandingKind {
    /// A session was issued for this account.
    SignedIn(vestibule_core::AccountId),
    /// The half-signed-in state was stored: the second step is due.
    SecondFactor,
    /// The identity is new and may belong to an account: the person confirms on the link page.
    Link,
    /// A signed-in person added an identity to their account.
    Linked,
}

/// Decides where a finished sign-in step leads: a session cookie and the landing page; or the second step (the
/// half-signed-in state is stored, its cookie set); or the page asking to prove account ownership; or back to the
/// account page after a link. `remember` is the "remember me" box: a series starts only with a session, here or
/// after the second step.
pub(crate) async fn land(
    v: &Vestibule,
    headers: &HeaderMap,
    outcome: LoginOutcome,
    next: Option<&str>,
    remember: bool,
) -> Result<Landing, AppError> {
    let c = &v.inner.cookies;
    Ok(match outcome {
        LoginOutcome::SignedIn(session) => {
            let series = if remember {
                Some(v.broker().remember(&session).await?)
            } else {
                None
            };
            Landing {
                cookies: session_cookies(v, &session, series.as_ref()),
                to: after_sign_in(v, headers, next),
                kind: LandingKind::SignedIn(session.account_id),
            }
        }
        LoginOutcome::SecondFactorRequired(challenge) => {
            let next = next.and_then(safe_next);
            let token = v.broker().hold_for_second_factor(challenge, next, remember).await?;
            let age = v.broker().second_factor_settings().pending_timeout_secs;
            Landing {
                kind: LandingKind::SecondFactor,
                to: format!("{}/login/second-factor", v.inner.mount),
                cookies: vec![c.set(c.second_factor, token.expose(), Some(age))],
            }
        }
        LoginOutcome::LinkRequired(link) => Landing {
            kind: LandingKind::Link,
            to: format!("{}/link", v.inner.mount),
            cookies: vec![c.set(
                c.link,
                link.token.expose(),
                Some(v.broker().settings().redirect_timeout_secs),
            )],
        },
        LoginOutcome::Linked { .. } => Landing {
            kind: LandingKind::Linked,
            to: Done::Linked.location(v),
            cookies: Vec::new(),
        },
        // An outcome this version does not know: nothing was granted that it could hand over.
        _ => {
            return Err(AppError::Internal(
                "a sign-in outcome this front end does not handle".into(),
            ))
        }
    })
}

/// The page response to a finished sign-in step (see [`land`]): a redirect with its cookies.
pub(crate) async fn signed_in(
    v: &Vestibule,
    headers: &HeaderMap,
    outcome: LoginOutcome,
    next: Option<&str>,
    remember: bool,
) -> Result<Response, AppError> {
    let landing = land(v, headers, outcome, next, remember).await?;
    Ok(with_cookies(
        Redirect::to(&landing.to).into_response(),
        &landing.cookies,
    ))
}

/// Signs the browser out: ends its session (the live one, else the session cookie it presented) and its
/// remember-me series, so the next visit must sign in. Returns the cookies that clear both. The caller has
/// checked that the request comes from this site (a CSRF token, or the JSON API's origin check).
pub(crate) async fn end_sign_in(
    v: &Vestibule,
    ctx: &crate::context::AuthContext,
    headers: &HeaderMap,
    client: &vestibule::ClientInfo,
) -> Result<[String; 2], AppError> {
    let c = &v.inner.cookies;
    if let Some(token) = ctx.session_token().or(cookies::get(headers, c.session)) {
        v.broker().logout(token, client).await?;
    }
    if let Some(remembered) = cookies::get(headers, c.remember) {
        v.broker().forget_remember(remembered).await?;
    }
    Ok([c.clear(c.session), c.clear(c.remember)])
}

/// How a sign-in failure is answered.
/// The cookie that binds a redirect flow to this browser until its callback.
pub(crate) fn flow_cookie(v: &Vestibule, begin: &RedirectBegin) -> String {
    let c = &v.inner.cookies;
    c.set(
        c.flow,
        begin.browser_token.expose(),
        Some(v.broker().settings().redirect_timeout_secs),
    )
}

/// Off to the provider: 303 to its authorization URL with the flow's cookie.
pub(crate) fn to_provider(v: &Vestibule, begin: &RedirectBegin) -> Response {
    with_cookies(
        Redirect::to(&begin.authorize_url).into_response(),
        &[flow_cookie(v, begin)],
    )
}

/// How a redirect sign-in is asked for: a browser that is signed in already and signs in again (sent by
/// `RequireFresh` before a sensitive action, say) must prove itself at the provider now, not by its single sign-on.
pub(crate) fn start_options(ctx: &crate::context::AuthContext) -> vestibule_core::StartOptions {
    if ctx.browser_session().is_some() {
        vestibule_core::StartOptions::reauthenticate()
    } else {
        vestibule_core::StartOptions::default()
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
        LoginError::Throttled { retry_after_secs } => AppError::Throttled(retry_after_secs),
        LoginError::Refused(refusal) => AppError::SignInRefused(refusal.message().to_owned()),
        LoginError::Unavailable(cause) => AppError::Unavailable(cause),
        LoginError::Internal(cause) => AppError::Internal(cause),
        _ => AppError::Internal("a sign-in error this front end does not handle".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_keys_round_trip_and_nothing_else_is_a_notice() {
        for d in Done::ALL {
            assert_eq!(Done::parse(d.key()), Some(d));
        }
        assert_eq!(Done::parse("<script>"), None);
        assert_eq!(Done::parse(""), None);
    }
}
