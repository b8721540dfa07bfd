//! Password reset by a mailed link, address confirmation, and the security notices mailed to an account's own
//! verified address.
//!
//! Asking for a reset answers the same, after the same work, whatever the input: the request only checks the
//! throttle, counts itself and hands the lookup to a background task; whether an account matched shows only in a
//! mailbox. The link is built from the broker's configured public URL, carries a 256-bit token of which only the
//! SHA-256 is stored, works once, expires, and is void once the password changes by any route.

use std::sync::Arc;

use secrecy::SecretString;
use vestibule_core::storage::{AuditEvent, AuditKind, EmailToken, EmailTokenPurpose, StorageError};
use vestibule_core::{AccountId, PasswordChangeError, SourceId};

use crate::mail::{Mail, MailLink, Message};
use crate::secret::{hash_token, hex_of, plausible};
use crate::{Broker, BrokerError, ClientInfo};

/// How long mailed links work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailSettings {
    /// A password reset link, in seconds (default 1800: 30 minutes).
    pub reset_ttl_secs: i64,
    /// An address confirmation link, in seconds (default 86 400: a day).
    pub verify_ttl_secs: i64,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            reset_ttl_secs: 1800,
            verify_ttl_secs: 86_400,
        }
    }
}

/// At most this many accounts get a link for one request (several accounts may share a verified address).
const MAX_ACCOUNTS_PER_REQUEST: usize = 5;

/// Why a reset or a confirmation did not happen. The HTTP layer shows the same words for every `InvalidLink`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResetError {
    /// Too many requests from this address or for this name.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    Throttled {
        /// Seconds until a request may be made.
        retry_after_secs: u32,
    },
    /// No mailer or no local password source is configured, or the mail queue is full: nothing can be sent now.
    #[error("password reset by mail is not available")]
    Unavailable,
    /// The link is unknown, used, expired, or its account is gone or disabled.
    #[error("this link is not valid")]
    InvalidLink,
    /// An address change link, for an address another account has verified since it was mailed: nothing
    /// changed (said only to the holder of the link, who reads that mailbox).
    #[error("the address is another account's")]
    AddressInUse,
    /// The new password was refused (policy): the link still works; the message is safe to show.
    #[error(transparent)]
    Password(PasswordChangeError),
    /// Something broke.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl From<crate::throttle::Held> for ResetError {
    fn from(h: crate::throttle::Held) -> Self {
        match h {
            crate::throttle::Held::Throttled(t) => ResetError::Throttled {
                retry_after_secs: t.retry_after_secs,
            },
            crate::throttle::Held::Store(e) => ResetError::Broker(e.into()),
        }
    }
}

impl From<StorageError> for ResetError {
    fn from(e: StorageError) -> Self {
        ResetError::Broker(e.into())
    }
}

/// A reset request taken: the lookup and the mail happen in the background, so that the answer does not depend on
/// them. Drop it to let them run; tests await [`ResetRequested::delivered`].
#[derive(Debug)]
pub struct ResetRequested {
    delivery: tokio::task::JoinHandle<()>,
}

impl ResetRequested {
    /// Waits until the lookup is done and any message is queued.
    pub async fn delivered(self) {
        let _ = self.delivery.await;
    }
}

/// A completed reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetDone {
    /// Whose password was set.
    pub account_id: AccountId,
    /// How many sessions ended.
    pub sessions_ended: usize,
}

/// What reset requests are counted under by the limiter (`reset:NAME`), apart from sign-ins at any source.
pub(crate) const RESET_COUNTER: &str = "reset";

/// What reset requests are also counted under per account they resolve to (`reset-account:ID`): an account has
/// several names (its login name, its address), each with a counter of its own, but one mailbox.
const RESET_ACCOUNT_COUNTER: &str = "reset-account";

/// The name an account's reset requests are counted under, whatever they called it (`vestibule throttle lift`
/// lifts it with the account's).
pub(crate) fn account_throttle_key(id: &AccountId) -> String {
    crate::throttle::name_key(RESET_ACCOUNT_COUNTER, id.as_str())
}

impl Broker {
    /// Whether password reset by mail can be offered at all (a mailer and a local password source).
    pub fn reset_available(&self) -> bool {
        self.mailer.is_some() && self.password_changer.is_some()
    }

    /// Asks for a reset link for `login` (a local login name or an account's verified address). Throttled per
    /// client address and per name; every request counts as a failure, so that it cannot be used to flood a
    /// mailbox. The answer is the same whether an account matched or not; the lookup and the mail happen in the
    /// background.
    pub async fn request_password_reset(
        self: &Arc<Self>,
        login: &str,
        client: &ClientInfo,
    ) -> Result<ResetRequested, ResetError> {
        let mailer = match (&self.mailer, &self.password_changer) {
            (Some(m), Some(_)) => m,
            _ => return Err(ResetError::Unavailable),
        };
        let login: String = login.trim().chars().take(vestibule_core::MAX_LOGIN_CHARS).collect();
        let key = crate::throttle::name_key(RESET_COUNTER, &login);
        // Whether the queue has room says nothing about the account: honest, and the same for every input.
        if !self
            .admit_mail_request(mailer.as_ref(), &key, RESET_COUNTER, client)
            .await?
        {
            return Err(ResetError::Unavailable);
        }
        let broker = Arc::clone(self);
        let ip = client.ip.clone();
        let delivery = tokio::spawn(async move {
            if let Err(e) = broker.deliver_reset(&login, ip.as_deref()).await {
                tracing::warn!(error = %vestibule_core::error_chain(&e), "could not prepare a password reset mail");
            }
        });
        Ok(ResetRequested { delivery })
    }

    /// Admits a request that mails an address of the requester's choosing (a reset, an address change): the
    /// limiter may hold it back (per `key`, counted under `counter`, and per client address), and every request
    /// counts as a failure, so that none can be used to flood a mailbox. `false` when the mail queue is full
    /// (logged): nothing could be sent now.
    pub(crate) async fn admit_mail_request(
        &self,
        mailer: &dyn crate::Mailer,
        key: &str,
        counter: &str,
        client: &ClientInfo,
    ) -> Result<bool, crate::throttle::Held> {
        let attempt = crate::Attempt {
            account: key,
            ip: client.ip.as_deref().and_then(|ip| ip.parse().ok()),
        };
        self.throttle_check(&attempt, counter, client).await?;
        self.throttle_failed(&attempt).await;
        if !mailer.has_room() {
            tracing::warn!(request = counter, "mail queue full: a request that mails was refused");
            return Ok(false);
        }
        Ok(true)
    }

    /// The accounts a reset request names: the local login, and the accounts whose own address it is (verified).
    async fn reset_targets(&self, login: &str) -> Result<Vec<AccountId>, BrokerError> {
        let mut found = Vec::new();
        if let Ok(canonical) = vestibule_core::canonical_login(login) {
            if let Some(id) = self.store.account_with_login(&canonical).await? {
                found.push(id);
            }
        }
        if login.contains('@') {
            for a in self.store.accounts_with_email(login).await? {
                if a.email_verified && !found.contains(&a.id) {
                    found.push(a.id);
                }
            }
        }
        found.truncate(MAX_ACCOUNTS_PER_REQUEST);
        Ok(found)
    }

    async fn deliver_reset(&self, login: &str, ip: Option<&str>) -> Result<(), ResetError> {
        let (Some(mailer), Some(changer)) = (&self.mailer, &self.password_changer) else {
            return Err(ResetError::Unavailable);
        };
        let client = ClientInfo {
            ip: ip.map(str::to_owned),
            user_agent: None,
        };
        for id in self.reset_targets(login).await? {
            // The per-account limit, on the account the name resolved to: asking under its login name and under
            // its address in turn must not double what one mailbox receives. Silent, unlike the limit per name
            // (which every name has, account or not): the answer went out already, and must not tell that two
            // names are one account. Held back, the request mails nothing (the refusal is audited).
            let key = account_throttle_key(&id);
            let attempt = crate::Attempt {
                account: &key,
                ip: None,
            };
            if let Err(held) = self.throttle_check(&attempt, RESET_COUNTER, &client).await {
                tracing::info!(account = %id, reason = ?held, "password reset request for this account held back");
                continue;
            }
            self.throttle_failed(&attempt).await;
            let Some(account) = self.store.get_account(&id).await? else {
                continue;
            };
            // An unverified address is not the person's as far as anyone knows: nothing goes there.
            let (Some(email), true, false) = (account.email.clone(), account.email_verified, account.disabled) else {
                continue;
            };
            let has_password = changer.has_password(&id).await.map_err(ResetError::Password)?;
            let message = if has_password {
                // Only the newest link works: an older mail lying around opens nothing.
                self.store
                    .delete_email_tokens_of(&id, EmailTokenPurpose::PasswordReset)
                    .await?;
                let link = self
                    .mail_token(&id, &email, EmailTokenPurpose::PasswordReset, "reset")
                    .await?;
                Message::PasswordReset {
                    link,
                    valid_minutes: self.mail_settings.reset_ttl_secs / 60,
                }
            } else {
                let (directories, providers) = self.password_keepers_of(&id).await?;
                Message::ResetElsewhere { directories, providers }
            };
            self.audit(&AuditEvent {
                account_id: Some(id.as_str()),
                ip,
                detail: Some(if has_password {
                    "link mailed"
                } else {
                    "no local password: where it is kept named"
                }),
                ..AuditEvent::of(AuditKind::PasswordResetRequested)
            })
            .await;
            let mail = Mail {
                to: email,
                name: account.display_name,
                message,
            };
            if let Err(e) = mailer.queue(mail) {
                tracing::warn!(account = %id, error = %e, "could not queue a password reset mail");
            }
        }
        Ok(())
    }

    /// Where the passwords of an account without a local one are kept, by the display names of the sources it has
    /// identities at: the password sources (directories), and the redirect sources (identity providers).
    async fn password_keepers_of(&self, id: &AccountId) -> Result<(Vec<String>, Vec<String>), BrokerError> {
        let (mut directories, mut providers) = (Vec::new(), Vec::new());
        for identity in self.store.identities_of(id).await? {
            if let Some(source) = self.source(identity.source.as_str()) {
                let names = match source.flow() {
                    vestibule_core::Flow::Password(_) => &mut directories,
                    // A redirect source, and whatever other kind may come: a sign-in somewhere else.
                    _ => &mut providers,
                };
                let name = source.display_name().to_owned();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Ok((directories, providers))
    }

    /// Stores a new token for `purpose` and returns its link, under the broker's public URL.
    pub(crate) async fn mail_token(
        &self,
        id: &AccountId,
        email: &str,
        purpose: EmailTokenPurpose,
        path: &str,
    ) -> Result<MailLink, BrokerError> {
        let token = crate::session::new_token();
        let now = self.now();
        let ttl = match purpose {
            EmailTokenPurpose::PasswordReset => self.mail_settings.reset_ttl_secs,
            EmailTokenPurpose::VerifyEmail | EmailTokenPurpose::ChangeEmail => self.mail_settings.verify_ttl_secs,
        };
        self.store
            .insert_email_token(&EmailToken {
                token_hash: token.hash_hex(),
                purpose,
                account_id: id.clone(),
                email: email.to_owned(),
                created_at: now,
                expires_at: now.plus_secs(ttl),
            })
            .await?;
        Ok(MailLink::new(format!("{}/{path}/{}", self.base_url(), token.expose())))
    }

    /// The new address a change-of-address link stands for, without using the link (to show its confirm
    /// button); `None` when the token is no live change link (a new account's confirmation link, or nothing).
    pub async fn email_change_link(&self, token: &str) -> Result<Option<String>, ResetError> {
        let Ok(hash) = token_hash(token) else {
            return Ok(None);
        };
        Ok(self
            .store
            .get_email_token(&hash, EmailTokenPurpose::ChangeEmail)
            .await?
            .filter(|t| t.expires_at > self.now())
            .map(|t| t.email))
    }

    /// Checks a reset link without using it (to show its form); returns when it expires.
    pub async fn check_reset_link(&self, token: &str) -> Result<vestibule_core::Timestamp, ResetError> {
        let hash = token_hash(token)?;
        match self
            .store
            .get_email_token(&hash, EmailTokenPurpose::PasswordReset)
            .await?
        {
            Some(t) if t.expires_at > self.now() => Ok(t.expires_at),
            _ => Err(ResetError::InvalidLink),
        }
    }

    /// Sets a new password from a reset link. The link is used up, unless the new password breaks the policy
    /// (the person may try another). Afterwards every session, remember-me series and access token of the account
    /// has ended, a notice is mailed, and nobody is signed in: the person signs in afresh, second factor included.
    pub async fn complete_password_reset(
        &self,
        token: &str,
        new_password: &SecretString,
        client: &ClientInfo,
    ) -> Result<ResetDone, ResetError> {
        let changer = self.password_changer.as_ref().ok_or(ResetError::Unavailable)?;
        let hash = token_hash(token)?;
        let record = self
            .store
            .take_email_token(&hash, EmailTokenPurpose::PasswordReset)
            .await?
            .ok_or(ResetError::InvalidLink)?;
        if record.expires_at <= self.now() {
            return Err(ResetError::InvalidLink);
        }
        let id = record.account_id.clone();
        match self.store.get_account(&id).await? {
            Some(a) if !a.disabled => {}
            _ => return Err(ResetError::InvalidLink),
        }
        // For this node's cache: the store ends them (and tells other nodes) inside the change's transaction.
        let before = self.session_hashes(&id).await?;
        match changer.reset_password(&id, new_password).await {
            Ok(()) => {}
            Err(PasswordChangeError::Policy(why)) => {
                // The person chose a password the policy refuses: the link stays good for another try.
                self.store.insert_email_token(&record).await?;
                return Err(ResetError::Password(PasswordChangeError::Policy(why)));
            }
            Err(PasswordChangeError::NoPassword) => return Err(ResetError::InvalidLink),
            Err(e) => return Err(ResetError::Password(e)),
        }
        let mut ended = before;
        ended.extend(self.store.delete_tokens_of(&id).await?);
        self.forget(&ended).await;
        self.audit(&AuditEvent {
            account_id: Some(id.as_str()),
            ip: client.ip.as_deref(),
            detail: Some("sessions, remember-me series and access tokens ended"),
            ..AuditEvent::of(AuditKind::PasswordResetCompleted)
        })
        .await;
        self.notify(&id, Message::PasswordWasReset).await;
        Ok(ResetDone {
            account_id: id,
            sessions_ended: ended.len(),
        })
    }

    /// Mails a confirmation link to the account's own address, if it has one that is not verified yet. Returns
    /// whether a message was queued.
    pub async fn send_email_verification(&self, id: &AccountId) -> Result<bool, BrokerError> {
        let Some(mailer) = &self.mailer else { return Ok(false) };
        let Some(account) = self.store.get_account(id).await? else {
            return Ok(false);
        };
        let (Some(email), false) = (account.email.clone(), account.email_verified) else {
            return Ok(false);
        };
        self.store
            .delete_email_tokens_of(id, EmailTokenPurpose::VerifyEmail)
            .await?;
        let link = self
            .mail_token(id, &email, EmailTokenPurpose::VerifyEmail, "email/verify")
            .await?;
        let mail = Mail {
            to: email,
            name: account.display_name,
            message: Message::VerifyEmail {
                link,
                valid_hours: self.mail_settings.verify_ttl_secs / 3600,
            },
        };
        match mailer.queue(mail) {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::warn!(account = %id, error = %e, "could not queue an address confirmation");
                Ok(false)
            }
        }
    }

    /// Confirms an address from its mailed link (single use); returns the address. The link is either the
    /// confirmation of the account's own address, or of a change to a new one (see
    /// [`Broker::request_email_change`]): then the account's address becomes that one.
    pub async fn confirm_email(&self, token: &str, client: &ClientInfo) -> Result<String, ResetError> {
        let hash = token_hash(token)?;
        let (record, change) = match self
            .store
            .take_email_token(&hash, EmailTokenPurpose::VerifyEmail)
            .await?
        {
            Some(r) => (r, false),
            None => (
                self.store
                    .take_email_token(&hash, EmailTokenPurpose::ChangeEmail)
                    .await?
                    .ok_or(ResetError::InvalidLink)?,
                true,
            ),
        };
        if record.expires_at <= self.now() {
            return Err(ResetError::InvalidLink);
        }
        if change {
            return self.finish_email_change(record, client).await;
        }
        // Only the address the link was mailed to, and only while the account still has it.
        if !self.store.confirm_email(&record.account_id, &record.email).await? {
            return Err(ResetError::InvalidLink);
        }
        // Cached sessions and tokens hold the address as unverified (`/verify` leaves it out): read them again.
        self.reload_cached(&record.account_id, true).await?;
        self.audit(&AuditEvent {
            account_id: Some(record.account_id.as_str()),
            ip: client.ip.as_deref(),
            ..AuditEvent::of(AuditKind::EmailVerified)
        })
        .await;
        Ok(record.email)
    }

    /// Mails a security notice to the account's own address when it is verified; never fails the action that
    /// caused it (a notice that cannot go out is logged).
    pub(crate) async fn notify(&self, id: &AccountId, message: Message) {
        if self.mailer.is_none() {
            return;
        }
        let account = match self.store.get_account(id).await {
            Ok(Some(a)) => a,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(account = %id, error = %e, kind = message.kind(), "could not read the account for a notice");
                return;
            }
        };
        let (Some(email), true) = (account.email, account.email_verified) else {
            return;
        };
        self.send_mail(
            id,
            Mail {
                to: email,
                name: account.display_name,
                message,
            },
        );
    }

    /// Queues a message about account `id`; one that cannot be queued is logged, never failing the action.
    pub(crate) fn send_mail(&self, id: &AccountId, mail: Mail) {
        let Some(mailer) = &self.mailer else { return };
        let kind = mail.message.kind();
        if let Err(e) = mailer.queue(mail) {
            tracing::warn!(account = %id, error = %e, kind, "could not queue a message");
        }
    }
}

impl Broker {
    /// A source's display name for a notice (its id when it is no longer configured).
    pub(crate) fn source_name(&self, id: &SourceId) -> String {
        self.source(id.as_str())
            .map(|s| s.display_name().to_owned())
            .unwrap_or_else(|| id.to_string())
    }
}

/// The stored hash of a presented token; a value of the wrong shape is refused before any lookup.
fn token_hash(token: &str) -> Result<String, ResetError> {
    if !plausible(token) {
        return Err(ResetError::InvalidLink);
    }
    Ok(hex_of(&hash_token(token)))
}
