//! What the broker mails, and the [`Mailer`] it hands messages to. The broker decides who gets which message; a
//! mailer renders it (templates) and delivers it (SMTP, or a development outbox) — `vestibule-mail` is one.
//! Queuing never waits: a request that mails something is never held up by a slow mail server.

use std::fmt;

/// A link carrying a single-use token. `Debug` does not print it: whoever reads a log must not be able to reset
/// a password with it.
#[derive(Clone, PartialEq, Eq)]
pub struct MailLink(String);

impl MailLink {
    /// A link (built by the broker from its configured public URL, never from request headers).
    pub fn new(url: impl Into<String>) -> Self {
        MailLink(url.into())
    }
    /// The URL, to write into the message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MailLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MailLink(..)")
    }
}

/// What a message says. Each kind has its own templates (plain text and HTML).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A password reset link.
    PasswordReset {
        /// `{public URL}/reset/{token}`.
        link: MailLink,
        /// How long it works.
        valid_minutes: i64,
    },
    /// A reset was asked for an account without a local password (its passwords are kept elsewhere): where to
    /// change them, in words that fit the kind of source.
    ResetElsewhere {
        /// The display names of the password sources other than the local one the account signs in with (an
        /// LDAP directory): "your organisation's directory".
        directories: Vec<String>,
        /// The display names of the identity providers the account signs in with (an OpenID provider, Google,
        /// GitHub): the password is that provider's.
        providers: Vec<String>,
    },
    /// Confirm this address.
    VerifyEmail {
        /// `{public URL}/email/verify/{token}`.
        link: MailLink,
        /// How long it works.
        valid_hours: i64,
    },
    /// Notice: the password was changed from the account page.
    PasswordChanged,
    /// Notice: the password was set from a reset link; every session ended.
    PasswordWasReset,
    /// Notice: a way in was added to the account.
    IdentityLinked {
        /// The source's display name.
        source: String,
    },
    /// Notice: a way in was removed from the account.
    IdentityUnlinked {
        /// The source's display name.
        source: String,
    },
    /// Notice: a stolen remember-me cookie was presented; every session ended.
    RememberTheft,
    /// Notice: an operator disabled the account.
    AccountDisabled,
    /// Notice: the account's second factors changed.
    SecondFactorChanged {
        /// What changed.
        change: FactorChange,
    },
    // Address changes from the account page (see `Broker::request_email_change`).
    /// To the new address: confirm it as the account's address.
    ConfirmEmailChange {
        /// `{public URL}/email/verify/{token}`.
        link: MailLink,
        /// How long it works.
        valid_hours: i64,
    },
    /// To the new address, instead of a link, when another account has it verified: nothing changed.
    EmailInUse,
    /// Notice to the old address: a change to another address was asked for (it takes effect once confirmed
    /// from there).
    EmailChangeRequested {
        /// The new address, masked (`n***@example.org`).
        new_address: String,
    },
    /// Notice to the old address: the account's address is now another one.
    EmailChanged {
        /// The new address, masked (`n***@example.org`).
        new_address: String,
    },
}

/// What a [`Message::SecondFactorChanged`] notice reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FactorChange {
    /// An authenticator app was set up (with new recovery codes).
    AuthenticatorAdded,
    /// The owner removed the authenticator app and the recovery codes.
    AuthenticatorRemoved,
    /// An operator removed every second factor of the account.
    RemovedByOperator,
    /// New recovery codes were made; the old ones stopped working.
    RecoveryCodesRegenerated,
    /// A recovery code was used to sign in; every other session ended.
    RecoveryCodeUsed,
    /// A passkey was registered.
    PasskeyAdded,
    /// The owner removed a passkey.
    PasskeyRemoved,
}

impl FactorChange {
    /// The sentence a notice says.
    pub fn sentence(self) -> &'static str {
        match self {
            FactorChange::AuthenticatorAdded => {
                "An authenticator app was set up as a second step for signing in to your account, with new recovery codes."
            }
            FactorChange::AuthenticatorRemoved => {
                "The authenticator app and the recovery codes of your account were removed: signing in no longer asks for a code."
            }
            FactorChange::RemovedByOperator => {
                "An administrator removed every second step of your account (authenticator app, passkeys and recovery codes)."
            }
            FactorChange::RecoveryCodesRegenerated => {
                "New recovery codes were made for your account; the old ones no longer work."
            }
            FactorChange::RecoveryCodeUsed => {
                "A recovery code was used to sign in to your account, and every other session was signed out."
            }
            FactorChange::PasskeyAdded => {
                "A passkey was added to your account: it can now be used to sign in, and every other session was signed out."
            }
            FactorChange::PasskeyRemoved => {
                "A passkey was removed from your account, and every other session was signed out."
            }
        }
    }
}

impl Message {
    /// How long the link the message carries works, counted from when the message is queued (the broker stores
    /// the token just before): a mailer should not deliver it later than that — a dead link helps no one, and
    /// trying to would hold up what waits behind it. `None` for a message without a link (a notice).
    pub fn valid_for(&self) -> Option<std::time::Duration> {
        let secs =
            |n: i64, unit: u64| std::time::Duration::from_secs(u64::try_from(n).unwrap_or(0).saturating_mul(unit));
        match self {
            Message::PasswordReset { valid_minutes, .. } => Some(secs(*valid_minutes, 60)),
            Message::VerifyEmail { valid_hours, .. } | Message::ConfirmEmailChange { valid_hours, .. } => {
                Some(secs(*valid_hours, 3600))
            }
            _ => None,
        }
    }

    /// A short name for logs and counters (`password_reset`), never a secret.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::PasswordReset { .. } => "password_reset",
            Message::ResetElsewhere { .. } => "reset_elsewhere",
            Message::VerifyEmail { .. } => "verify_email",
            Message::PasswordChanged => "password_changed",
            Message::PasswordWasReset => "password_was_reset",
            Message::IdentityLinked { .. } => "identity_linked",
            Message::IdentityUnlinked { .. } => "identity_unlinked",
            Message::RememberTheft => "remember_theft",
            Message::AccountDisabled => "account_disabled",
            Message::SecondFactorChanged { .. } => "second_factor_changed",
            Message::ConfirmEmailChange { .. } => "confirm_email_change",
            Message::EmailInUse => "email_in_use",
            Message::EmailChangeRequested { .. } => "email_change_requested",
            Message::EmailChanged { .. } => "email_changed",
        }
    }
}

/// One message to one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address (an account's own, verified unless the message is what verifies it).
    pub to: String,
    /// The recipient's display name, for the greeting.
    pub name: Option<String>,
    /// What to say.
    pub message: Message,
}

/// Why a message was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The queue is full: mail is not going out fast enough (or at all).
    #[error("the mail queue is full")]
    QueueFull,
    /// The mailer has stopped.
    #[error("the mailer has stopped")]
    Closed,
    /// The message could not be built (a malformed address...).
    #[error("the message could not be built: {0}")]
    Invalid(String),
}

/// Takes messages for delivery. Held as `Arc<dyn Mailer>`; [`Mailer::queue`] returns at once.
///
/// ```
/// use std::sync::Mutex;
/// use vestibule::{Mail, MailError, Mailer};
///
/// /// Keeps every message in memory (a test double).
/// #[derive(Debug, Default)]
/// struct Memory(Mutex<Vec<Mail>>);
///
/// impl Mailer for Memory {
///     fn queue(&self, mail: Mail) -> Result<(), MailError> {
///         self.0.lock().map_err(|_| MailError::Closed)?.push(mail);
///         Ok(())
///     }
///     fn has_room(&self) -> bool {
///         true
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + fmt::Debug {
    /// Queues a message without waiting for its delivery; failures after this point are the mailer's to log.
    fn queue(&self, mail: Mail) -> Result<(), MailError>;
    /// Whether a message queued now would be taken: asked before a request promises one.
    fn has_room(&self) -> bool;
    /// Housekeeping, run by the broker's janitor (see `Broker::purge_expired`): a development outbox drops the
    /// messages past its retention, so that it does not grow without bound. Nothing by default.
    async fn tidy(&self) {}
}
