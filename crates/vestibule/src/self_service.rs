//! What a signed-in person does to their own account's sessions and password (and its address: `email_change`). Every action needs a fresh sign-in
//! (a credential proven within `fresh_secs`) and only ever touches the person's own account.

use secrecy::SecretString;
use vestibule_core::storage::{AuditEvent, AuditKind, StorageError};
use vestibule_core::{PasswordChangeError, Timestamp};

use crate::{ActiveSession, Broker, BrokerError, ClientInfo};

/// Which sessions to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    /// One session of the account, by the id shown on `/account` (the hex SHA-256 of its id).
    One(String),
    /// Every session of the account but the current one.
    Others,
    /// Every session of the account, the current one included.
    All,
}

/// Why a self-service action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelfServiceError {
    /// The last proof of a credential is older than `fresh_secs`: sign in again first.
    #[error("a recent sign-in is required")]
    NotFresh,
    /// No such session on this account.
    #[error("no such session")]
    NotFound,
    /// The password change was refused; the message is safe to show.
    #[error(transparent)]
    Password(#[from] PasswordChangeError),
    /// No local password source is configured.
    #[error("passwords cannot be changed here")]
    NoPasswords,
    /// A form value cannot be used (an address that is no address); the words are fixed and safe to show.
    #[error("{0}")]
    Invalid(&'static str),
    /// No mailer is configured, or the mail queue is full: nothing that needs a mail can be done now.
    #[error("mail cannot be sent now")]
    MailUnavailable,
    /// Too many wrong current passwords: refused before the password was checked.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    Throttled {
        /// Seconds until an attempt may be made.
        retry_after_secs: u32,
    },
    /// Something broke.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl From<crate::throttle::Held> for SelfServiceError {
    fn from(h: crate::throttle::Held) -> Self {
        match h {
            crate::throttle::Held::Throttled(t) => SelfServiceError::Throttled {
                retry_after_secs: t.retry_after_secs,
            },
            crate::throttle::Held::Store(e) => e.into(),
        }
    }
}

impl From<StorageError> for SelfServiceError {
    fn from(e: StorageError) -> Self {
        SelfServiceError::Broker(e.into())
    }
}

impl Broker {
    /// Whether the session proved a credential recently enough for a sensitive action.
    pub fn is_fresh(&self, session: &ActiveSession) -> bool {
        !session.is_stale() && fresh_at(session.authenticated_at, self.settings.fresh_secs, self.now())
    }

    /// Ends sessions of the signed-in account; returns how many ended.
    ///
    /// `Others` also ends every remember-me series but the one behind `remember_cookie` (this browser's); `All`
    /// ends every series. Both cancel a pending address change (it may be a hijacker's).
    pub async fn revoke_sessions(
        &self,
        session: &ActiveSession,
        which: Revoke,
        remember_cookie: Option<&str>,
        client: &ClientInfo,
    ) -> Result<usize, SelfServiceError> {
        if !self.is_fresh(session) {
            return Err(SelfServiceError::NotFresh);
        }
        let account = &session.account_id;
        let ended: Vec<String> = match &which {
            Revoke::One(hash) => {
                if self.store.delete_session_of(account, hash).await? {
                    vec![hash.clone()]
                } else {
                    return Err(SelfServiceError::NotFound);
                }
            }
            Revoke::Others => {
                self.forget_remember_of(account, remember_cookie).await?;
                self.store.delete_sessions_of(account, Some(&session.id_hash())).await?
            }
            Revoke::All => {
                self.forget_remember_of(account, None).await?;
                self.store.delete_sessions_of(account, None).await?
            }
        };
        // Signing the other sessions out is what the owner does about a hijacker (the address-change notice says
        // so): the change a hijacked session asked for goes with them.
        if !matches!(which, Revoke::One(_)) {
            self.cancel_email_change(account).await?;
        }
        self.forget(&ended).await;
        let detail = match which {
            Revoke::One(_) => "one",
            Revoke::Others => "others",
            Revoke::All => "all",
        };
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            ip: client.ip.as_deref(),
            detail: Some(detail),
            ..AuditEvent::of(AuditKind::SessionsRevoked)
        })
        .await;
        Ok(ended.len())
    }

    /// Changes the local password of the signed-in account. Every session and remember-me series of the account
    /// ends in the same transaction as the change (a password change is what someone does after suspecting a
    /// stolen one), and the person's own session continues under a **new id** (returned: set it as the cookie), so
    /// an id copied before the change is worthless after it.
    pub async fn change_password(
        &self,
        session: &ActiveSession,
        current: &SecretString,
        new: &SecretString,
        client: &ClientInfo,
    ) -> Result<PasswordChanged, SelfServiceError> {
        if !self.is_fresh(session) {
            return Err(SelfServiceError::NotFresh);
        }
        let changer = self.password_changer.as_ref().ok_or(SelfServiceError::NoPasswords)?;
        let account = &session.account_id;
        // The current password is a credential check like a sign-in: throttled per account and address.
        let key = crate::throttle::account_key(account);
        let attempt = crate::Attempt {
            account: &key,
            ip: client.ip.as_deref().and_then(|ip| ip.parse().ok()),
        };
        self.throttle_check(&attempt, session.source.as_str(), client).await?;
        // For this node's cache: the store ends them (and tells other nodes) inside the change's transaction.
        let before = self.session_hashes(account).await?;
        if let Err(e) = changer.change_password(account, current, new).await {
            if matches!(e, PasswordChangeError::WrongCurrent) {
                self.throttle_failed(&attempt).await;
                self.audit(&AuditEvent {
                    account_id: Some(account.as_str()),
                    ip: client.ip.as_deref(),
                    detail: Some("wrong_current_password"),
                    ..AuditEvent::of(AuditKind::PasswordChangeFailed)
                })
                .await;
            }
            return Err(e.into());
        }
        self.throttle_succeeded(&attempt).await;
        for hash in &before {
            self.evict(hash);
        }
        let proven = crate::broker::Proven {
            source: &session.source,
            subject: session.subject.as_ref(),
            // The current password was just proven; the session goes on with what it had proven before.
            at: self.now(),
            checked_at: None,
            methods: session.methods.clone(),
            second_factor_at: Some(session.second_factor_at).filter(|t| t.0 != 0),
        };
        let renewed = self.create_session_proven(account, proven, client, None).await?;
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            ip: client.ip.as_deref(),
            ..AuditEvent::of(AuditKind::PasswordChanged)
        })
        .await;
        self.notify(account, crate::Message::PasswordChanged).await;
        Ok(PasswordChanged {
            session: renewed,
            others_ended: before.len().saturating_sub(1),
        })
    }
}

/// A completed password change.
#[derive(Debug)]
pub struct PasswordChanged {
    /// The person's session under its new id: set it as the session cookie.
    pub session: crate::NewSession,
    /// How many other sessions ended.
    pub others_ended: usize,
}

pub(crate) fn fresh_at(authenticated_at: Timestamp, fresh_secs: i64, now: Timestamp) -> bool {
    authenticated_at.plus_secs(fresh_secs) >= now
}
