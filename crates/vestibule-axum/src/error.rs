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
    /// A form field is out of range; the words are fixed and safe to show.
    #[error("invalid input")]
    InvalidInput(&'static str),
    /// A new password was refused; the reason is safe to show to the account's owner.
    #[error("password not changed")]
    PasswordRejected(String),
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
    pub(crate) title: &'static str,
    pub(crate) message: std::borrow::Cow<'static, str>,
    pub(crate) reference: Option<String>,
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
        let (status, title, message) = match &this {
            AppError::BadRequest => (
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The request could not be understood.",
            ),
            AppError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form is no longer valid (it may have expired or come from another site). Nothing was changed; \
                 please go back, reload the page and try again.",
            ),
            AppError::NotFound => (StatusCode::NOT_FOUND, "Not found", "There is nothing here."),
            AppError::InvalidFlow => (
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in attempt is no longer valid. Please start again from the sign-in page.",
            ),
            AppError::SignInFailed => (
                StatusCode::UNAUTHORIZED,
                "Sign-in failed",
                "We could not sign you in. Please try again.",
            ),
            AppError::AlreadyLinked => (
                StatusCode::CONFLICT,
                "Already linked elsewhere",
                "That sign-in is already linked to another account here, so it was not added. Sign in to that \
                 account and remove it there first.",
            ),
            AppError::NotFresh => (
                StatusCode::FORBIDDEN,
                "Please sign in again",
                "For your security, changing how you sign in needs a recent sign-in. Sign in again, then retry. \
                 Nothing was changed.",
            ),
            AppError::TokenNotAllowed => (
                StatusCode::FORBIDDEN,
                "Not available to access tokens",
                "Access tokens are for APIs. Sign in with a browser to manage your account.",
            ),
            AppError::NotAdministrator => (
                StatusCode::FORBIDDEN,
                "Not an administrator",
                "Only members of an administrators' group can create tokens with the admin scope. No token was \
                 created; create one without the admin scope, or ask an administrator.",
            ),
            AppError::LastIdentity => (
                StatusCode::CONFLICT,
                "Cannot remove the last way in",
                "This is the only way to sign in to your account, so it was not removed. Add another way first.",
            ),
            AppError::PasswordRejected(_) => (StatusCode::BAD_REQUEST, "Password not changed", ""),
            AppError::InvalidInput(why) => (StatusCode::BAD_REQUEST, "Please check the form", *why),
            AppError::Cancelled => (
                StatusCode::OK,
                "Sign-in cancelled",
                "The sign-in was cancelled at the provider. You are not signed in.",
            ),
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in provider unavailable",
                "The sign-in provider is not answering right now. Please try again in a moment, or use another way \
                 to sign in.",
            ),
            AppError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "Too many attempts", ""),
            AppError::Busy(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "We could not answer in time. Please try again in a moment.",
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side. If it keeps happening, give the reference below to your \
                 administrator.",
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
        let message = match this {
            AppError::Throttled(secs) => std::borrow::Cow::Owned(throttled_message(secs)),
            AppError::PasswordRejected(why) => {
                std::borrow::Cow::Owned(format!("Your password was not changed: {why}."))
            }
            _ => std::borrow::Cow::Borrowed(message),
        };
        let mut res = status.into_response();
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        res.extensions_mut().insert(ErrorPage {
            title,
            message,
            reference,
        });
        res
    }
}

/// The words for a throttled attempt: the same whoever the account is, with the wait rounded up to minutes.
pub(crate) fn throttled_message(retry_after_secs: u32) -> String {
    let minutes = retry_after_secs.div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("Too many attempts. Please try again in {minutes} {unit}.")
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
            assert_eq!(page.title, "Temporarily unavailable");
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
