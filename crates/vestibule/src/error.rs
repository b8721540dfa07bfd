use vestibule_core::storage::StorageError;
use vestibule_core::{BoxError, RejectReason};

/// A broker operation failed for a reason that is not the person's fault: logged with a reference id, shown as a
/// generic error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The database failed.
    #[error("store error")]
    Store(#[from] StorageError),
    /// The configuration is unusable (duplicate source id...).
    #[error("configuration error: {0}")]
    Config(String),
}

/// Why a sign-in did not produce a session. The HTTP layer maps these to pages: every `Rejected` looks the same.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// No source with that id, or a source of the other flow kind.
    #[error("unknown sign-in source")]
    UnknownSource,
    /// Credentials or assertion refused, for this (logged, never shown) reason.
    #[error("sign-in rejected: {0}")]
    Rejected(RejectReason),
    /// A redirect callback that does not belong to a flow this browser started (missing, reused, expired or
    /// foreign `state`).
    #[error("sign-in flow not recognised")]
    InvalidFlow,
    /// The person cancelled at the provider.
    #[error("sign-in cancelled")]
    Cancelled,
    /// The identity is already linked to another account; it is never moved silently.
    #[error("identity already linked to another account")]
    AlreadyLinked,
    /// A change of the account's ways in needs a credential proven within `fresh_secs`: sign in again first.
    #[error("a recent sign-in is required")]
    NotFresh,
    /// Too many attempts: refused before the credential was checked (nothing was asked of the source, and a
    /// right password would be refused too). The same for existing and unknown names.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    Throttled {
        /// Seconds until an attempt may be made.
        retry_after_secs: u32,
    },
    /// The embedding app's [`crate::BrokerHooks::after_sign_in`] refused the sign-in (audited); its message is
    /// meant for the person.
    #[error("sign-in refused: {0}")]
    Refused(crate::HookRefusal),
    /// The source is down or too slow.
    #[error("sign-in provider unavailable")]
    Unavailable(#[source] BoxError),
    /// Something broke inside.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl From<crate::throttle::Held> for LoginError {
    fn from(h: crate::throttle::Held) -> Self {
        match h {
            crate::throttle::Held::Throttled(t) => LoginError::Throttled {
                retry_after_secs: t.retry_after_secs,
            },
            crate::throttle::Held::Store(e) => e.into(),
        }
    }
}

impl From<StorageError> for LoginError {
    fn from(e: StorageError) -> Self {
        LoginError::Internal(Box::new(e))
    }
}

impl From<BrokerError> for LoginError {
    fn from(e: BrokerError) -> Self {
        LoginError::Internal(Box::new(e))
    }
}

/// Whether a store timeout ([`StorageError::Timeout`]: the database did not answer in time) is somewhere in `e`'s
/// cause chain — as `BrokerError::Store`, inside a `LoginError`, or boxed by a front end. Front ends answer it as
/// "busy, retry" rather than as a failure, without knowing the store's types.
pub fn is_store_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(e) = current {
        if matches!(e.downcast_ref::<StorageError>(), Some(StorageError::Timeout(_))) {
            return true;
        }
        current = e.source();
    }
    false
}
