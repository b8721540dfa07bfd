//! The one place errors become HTTP. A handler returns [`AppError`]; its `IntoResponse` picks the status and the
//! words the person sees, logs the cause with a reference id, and leaves a marker that the page middleware turns
//! into a rendered page (it knows the mount path for links). No cause, stack trace or internal detail reaches the
//! response.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use vestibule_core::BoxError;

/// Every failure a broker route can answer with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A malformed request (bad form encoding, missing field).
    #[error("bad request")]
    BadRequest,
    /// A missing or wrong CSRF token: nothing was changed.
    #[error("csrf check failed")]
    Csrf,
    /// A request of the JSON API for single-page apps that did not come from a page of this origin (no
    /// `X-Vestibule-Request` header, or an `Origin` that is not the public URL's): nothing was changed.
    #[error("cross-origin request refused")]
    CrossOrigin,
    /// No session: sign in first (the JSON API's answer; pages redirect to the login page instead).
    #[error("not signed in")]
    Unauthenticated,
    /// No such page or source.
    #[error("not found")]
    NotFound,
    /// A redirect callback that this browser did not start, or already used, or too late.
    #[error("invalid sign-in flow")]
    InvalidFlow,
    /// A redirect sign-in whose answer failed verification, or a refused account: one generic page.
    #[error("sign-in failed")]
    SignInFailed,
    /// The person cancelled at the identity provider.
    #[error("cancelled")]
    Cancelled,
    /// The identity is linked to another account.
    #[error("already linked elsewhere")]
    AlreadyLinked,
    /// A sensitive change needs a recent sign-in.
    #[error("not fresh")]
    NotFresh,
    /// A personal access token on a page or action that is the person's own (account page, self-service).
    #[error("token not allowed here")]
    TokenNotAllowed,
    /// The `admin` scope asked for by someone who is not an administrator.
    #[error("not an administrator")]
    NotAdministrator,
    /// Removing the last way in.
    #[error("last identity")]
    LastIdentity,
    /// A form field is out of range; the message key of the words to show.
    #[error("invalid input")]
    InvalidInput(&'static str),
    /// A new password was refused; the reason is safe to show to the account's owner.
    #[error("password not changed")]
    PasswordRejected(String),
    /// The embedding app's `after_sign_in` hook refused the sign-in: `403` showing the app's message.
    #[error("sign-in refused by the app")]
    SignInRefused(String),
    /// A sign-in source or the database is down.
    #[error("unavailable")]
    Unavailable(#[source] BoxError),
    /// The database did not answer in time ([`vestibule::is_store_timeout`]), or the request ran past its
    /// deadline: `503 Service Unavailable` with `Retry-After`. An `Internal` or `Unavailable` error whose cause
    /// is a store timeout is answered the same way.
    #[error("timed out")]
    Busy(#[source] BoxError),
    /// Too many attempts at a credential: `429` with `Retry-After` (seconds).
    #[error("too many attempts")]
    Throttled(u32),
    /// Anything else.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// What the page middleware renders for an error response.
#[derive(Debug, Clone)]
pub(crate) struct ErrorPage {
    /// The stable code of the error, for JSON answers (see [`AppError::code`]).
    pub(crate) code: &'static str,
    pub(crate) title: &'static str,
    pub(crate) message: std::borrow::Cow<'static, str>,
    pub(crate) reference: Option<String>,
}

impl ErrorPage {
    /// The error as the JSON API for single-page apps answers it: `{"error": code, "message": words}` in the
    /// request's language (the app's own words for a refusal by its hook), with `retry_after` for `429` and `503`
    /// and the `reference` of a logged failure.
    pub(crate) fn json(&self, lang: crate::i18n::Tr, retry_after: Option<&http::HeaderValue>) -> String {
        let message = if self.code == "refused" {
            self.message.to_string()
        } else {
            lang.msg(&self.message)
        };
        let mut body = serde_json::json!({ "error": self.code, "message": message });
        if let Some(map) = body.as_object_mut() {
            if let Some(secs) = retry_after.and_then(|h| h.to_str().ok()?.parse::<u32>().ok()) {
                map.insert("retry_after".into(), secs.into());
            }
            if let Some(reference) = &self.reference {
                map.insert("reference".into(), reference.as_str().into());
            }
        }
        body.to_string()
    }
}

/// What `Retry-After` tells a client to wait, in seconds, after a timeout: the waits that ran out are seconds
/// long, and a stuck lock or a busy pool usually clears within a few.
pub(crate) const RETRY_AFTER_SECS: u32 = 5;

/// The request's id when [`crate::with_request_id`] runs around it (so the reference on the page finds every log
/// line of the request), else a new random one.
fn reference_id() -> String {
    crate::request_id::current().unwrap_or_else(crate::request_id::new_id)
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let this = match self {
            AppError::Internal(cause) | AppError::Unavailable(cause) if vestibule::is_store_timeout(cause.as_ref()) => {
                AppError::Busy(cause)
            }
            other => other,
        };
        // Message keys of the language catalogues (`templates/i18n/*.ftl`): the page shows them in the request's
        // language.
        let (status, title, message) = match &this {
            AppError::BadRequest => (StatusCode::BAD_REQUEST, "error-bad-request-title", "error-bad-request"),
            AppError::Csrf => (StatusCode::FORBIDDEN, "error-csrf-title", "error-csrf"),
            AppError::CrossOrigin => (StatusCode::FORBIDDEN, "error-csrf-title", "error-cross-origin"),
            AppError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "error-unauthenticated-title",
                "error-unauthenticated",
            ),
            AppError::NotFound => (StatusCode::NOT_FOUND, "error-not-found-title", "error-not-found"),
            AppError::InvalidFlow => (
                StatusCode::BAD_REQUEST,
                "error-invalid-flow-title",
                "error-invalid-flow",
            ),
            AppError::SignInFailed => (
                StatusCode::UNAUTHORIZED,
                "error-sign-in-failed-title",
                "error-sign-in-failed",
            ),
            AppError::AlreadyLinked => (
                StatusCode::CONFLICT,
                "error-already-linked-title",
                "error-already-linked",
            ),
            AppError::NotFresh => (StatusCode::FORBIDDEN, "error-not-fresh-title", "error-not-fresh"),
            AppError::TokenNotAllowed => (
                StatusCode::FORBIDDEN,
                "error-token-not-allowed-title",
                "error-token-not-allowed",
            ),
            AppError::NotAdministrator => (
                StatusCode::FORBIDDEN,
                "error-not-administrator-title",
                "error-not-administrator",
            ),
            AppError::LastIdentity => (StatusCode::CONFLICT, "error-last-identity-title", "error-last-identity"),
            AppError::PasswordRejected(_) => (StatusCode::BAD_REQUEST, "error-password-not-changed-title", ""),
            AppError::SignInRefused(_) => (StatusCode::FORBIDDEN, "error-sign-in-refused-title", ""),
            AppError::InvalidInput(why) => (StatusCode::BAD_REQUEST, "error-invalid-input-title", *why),
            AppError::Cancelled => (StatusCode::OK, "error-cancelled-title", "error-cancelled"),
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "error-unavailable-title",
                "error-unavailable",
            ),
            AppError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "error-throttled-title", ""),
            AppError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "error-busy-title", "error-busy"),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "error-internal-title",
                "error-internal",
            ),
        };
        let reference = match &this {
            AppError::Internal(cause) | AppError::Unavailable(cause) | AppError::Busy(cause) => {
                let r = reference_id();
                tracing::error!(reference = %r, status = status.as_u16(), error = %vestibule_core::error_chain(cause.as_ref()), "request failed");
                Some(r)
            }
            other => {
                tracing::info!(status = status.as_u16(), error = %other, "request refused");
                None
            }
        };
        let retry_after = match &this {
            AppError::Busy(_) => Some(RETRY_AFTER_SECS),
            AppError::Throttled(secs) => Some(*secs),
            _ => None,
        };
        let code = this.code();
        let message = match this {
            AppError::Throttled(secs) => std::borrow::Cow::Owned(throttled_message(secs)),
            AppError::PasswordRejected(why) => std::borrow::Cow::Owned(password_rejected(&why)),
            // The app's own words (escaped when the page is rendered, like every message).
            AppError::SignInRefused(why) => std::borrow::Cow::Owned(why),
            _ => std::borrow::Cow::Borrowed(message),
        };
        let mut res = status.into_response();
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        res.extensions_mut().insert(ErrorPage {
            code,
            title,
            message,
            reference,
        });
        res
    }
}

impl AppError {
    /// The error's stable code: what the JSON API for single-page apps answers as `{"error": "<code>"}`. Codes
    /// are public contract: a new variant gets a new code, an existing one never changes.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest => "invalid_request",
            AppError::Csrf => "csrf",
            AppError::CrossOrigin => "cross_origin",
            AppError::Unauthenticated => "unauthenticated",
            AppError::NotFound => "not_found",
            AppError::InvalidFlow => "invalid_flow",
            AppError::SignInFailed => "invalid_credentials",
            AppError::Cancelled => "cancelled",
            AppError::AlreadyLinked => "already_linked",
            AppError::NotFresh => "not_fresh",
            AppError::TokenNotAllowed => "token_not_allowed",
            AppError::NotAdministrator => "forbidden",
            AppError::LastIdentity => "last_identity",
            AppError::InvalidInput(_) => "invalid_input",
            AppError::PasswordRejected(_) => "password_rejected",
            AppError::SignInRefused(_) => "refused",
            AppError::Unavailable(_) => "unavailable",
            AppError::Busy(_) => "busy",
            AppError::Throttled(_) => "throttled",
            AppError::Internal(_) => "internal",
        }
    }
}

/// The message key for a throttled attempt: the same whoever the account is, with the wait rounded up to minutes.
pub(crate) fn throttled_message(retry_after_secs: u32) -> String {
    let minutes = retry_after_secs.div_ceil(60).max(1).to_string();
    crate::i18n::key_with("error-throttled", &[("minutes", &minutes)])
}

/// The message key for the broker's words about a form field it refused. The broker's words are English; each one
/// it has is known here (a test names them all), and one added later shows a general message until it is.
pub(crate) fn invalid_input_key(why: &'static str) -> &'static str {
    match why {
        "the name must be 1 to 64 characters" => "error-token-name",
        "the expiry must be between 1 and 365 days" => "error-token-expiry",
        "give one to 16 scopes of lowercase letters, digits, ':', '_', '-', '.'" => "error-token-scopes",
        "That is already your address." => "error-email-unchanged",
        "Enter an email address such as name@example.org." => "error-email-invalid",
        _ => {
            tracing::warn!(why, "a refusal with no message key; shown as a general one");
            "error-invalid-input"
        }
    }
}

/// The message key for a new password a source refused. The local source's reasons are known and translated; a
/// reason from any other source is shown as the source wrote it.
pub(crate) fn password_rejected(why: &str) -> String {
    let number = |prefix: &str, suffix: &str| {
        why.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned)
    };
    if let Some(n) = number("the password must be at least ", " characters long") {
        crate::i18n::key_with("error-password-too-short", &[("n", &n)])
    } else if let Some(n) = number("the password must be at most ", " characters long") {
        crate::i18n::key_with("error-password-too-long", &[("n", &n)])
    } else if why == "the password must not contain control characters" {
        "error-password-control-characters".to_owned()
    } else if why == "the current password is not right" {
        "error-wrong-current-password".to_owned()
    } else if why == "this account has no password here" {
        "error-no-password".to_owned()
    } else {
        crate::i18n::key_with("error-password-rejected", &[("reason", why)])
    }
}

impl From<vestibule::BrokerError> for AppError {
    fn from(e: vestibule::BrokerError) -> Self {
        AppError::Internal(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store timeout, as the broker sees it (through its storage trait; vestibule-store maps its own timeouts
    /// to this variant, which its tests check).
    fn timeout() -> vestibule::StorageError {
        vestibule::StorageError::Timeout(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)))
    }

    fn retry_after(res: &Response) -> Option<&str> {
        res.headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
    }

    /// A store timeout, however it reaches the HTTP layer, is a 503 with `Retry-After`, not a 500; the page says
    /// nothing about the database.
    #[test]
    fn store_timeouts_are_503_with_retry_after() {
        let via_broker: AppError = vestibule::BrokerError::Store(timeout()).into();
        let via_login = AppError::Internal(Box::new(vestibule::LoginError::Internal(Box::new(timeout()))));
        let as_unavailable = AppError::Unavailable(Box::new(vestibule::BrokerError::Store(timeout())));
        for e in [via_broker, via_login, as_unavailable] {
            let shown = format!("{e:?}");
            let res = e.into_response();
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{shown}");
            assert_eq!(retry_after(&res), Some("5"), "{shown}");
            let page = res.extensions().get::<ErrorPage>().expect("an error page");
            assert_eq!(page.title, "error-busy-title");
            assert!(!page.message.contains("database"), "{}", page.message);
            assert!(page.reference.is_some(), "logged with a reference");
        }
    }

    #[test]
    fn other_failures_keep_their_status_and_no_retry_after() {
        let db = vestibule::BrokerError::Store(vestibule::StorageError::Other("pool closed".into()));
        let res = AppError::from(db).into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after(&res), None);
        let res = AppError::Unavailable("ldap down".into()).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), None);
        let res = AppError::Csrf.into_response();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(retry_after(&res), None);
    }
}
