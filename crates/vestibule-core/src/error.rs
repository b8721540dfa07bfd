use std::fmt;

/// Any error, boxed, for the causes the broker logs but never shows.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A value did not fit an id type.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not a valid {kind}")]
pub struct IdError {
    pub(crate) kind: &'static str,
}

/// Why a source refused someone. Logged and audited; the person sees one generic message whatever it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// Unknown login name or wrong password: deliberately not told apart.
    InvalidCredentials,
    /// An empty password, or one a directory would read as empty; refused before any bind.
    EmptyPassword,
    /// The account exists but is disabled, locked or expired at the source.
    AccountDisabled,
    /// The source's policy (a required group, an allowed domain) does not admit this person.
    NotPermitted,
    /// The login name matched more than one entry.
    Ambiguous,
}

impl RejectReason {
    /// A stable snake_case name for logs and the audit table.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidCredentials => "invalid_credentials",
            RejectReason::EmptyPassword => "empty_password",
            RejectReason::AccountDisabled => "account_disabled",
            RejectReason::NotPermitted => "not_permitted",
            RejectReason::Ambiguous => "ambiguous",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can go wrong when a source checks someone. The variants decide what the person is shown: a generic
/// "sign-in failed" for [`SourceError::Rejected`], "provider unavailable" (503) for
/// [`SourceError::Unavailable`], a friendly page for [`SourceError::Cancelled`], and a generic error with a
/// reference id for the rest. Causes are kept for the log only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The credentials or assertion did not prove an identity.
    #[error("sign-in rejected: {0}")]
    Rejected(RejectReason),
    /// The source could not be reached or did not answer in time.
    #[error("source unavailable")]
    Unavailable(#[source] BoxError),
    /// The person cancelled at the identity provider (an `error=` callback).
    #[error("sign-in cancelled at the provider: {0}")]
    Cancelled(String),
    /// The provider answered something that fails verification (bad token, wrong issuer, replayed state...).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// An id derived from the provider's answer was not valid.
    #[error(transparent)]
    Id(#[from] IdError),
}

/// An error and its sources as one line (`outer: inner: root`), for logs. Never for responses.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
