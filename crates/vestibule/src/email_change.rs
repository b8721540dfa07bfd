//! Changing an account's own address from the account page.
//!
//! The new address is not used for anything until it is confirmed from itself: the request stores a single-use
//! token (hashed, expiring, purpose [`EmailTokenPurpose::ChangeEmail`], carrying the new address) and mails its
//! link to the new address; the account keeps its old address — for reset, linking and notices — until the link
//! is opened (`/email/verify/{token}`, with or without a session: the token is the proof). A newer request
//! replaces an older one, whose link then opens nothing. The old (verified) address hears of the request and of
//! the change, so a hijacked session cannot move the address silently.
//!
//! Whether the new address is already another account's verified address is never told to the requester: the
//! answer, the account page and the work done are the same either way; only the mailbox learns it (it receives a
//! message saying the address is taken instead of a link), and whoever reads that mailbox may know.

use vestibule_core::storage::{AuditEvent, AuditKind, EmailTokenPurpose};
use vestibule_core::AccountId;

use crate::mail::{Mail, Message};
use crate::reset::ResetError;
use crate::{ActiveSession, Broker, BrokerError, ClientInfo, SelfServiceError};

/// What change requests are counted under by the limiter (`email-change:ACCOUNT`): each one mails a stranger's
/// address, so a session cannot be used to flood a mailbox.
const EMAIL_CHANGE_COUNTER: &str = "email-change";

/// The longest address accepted (RFC 5321's limit on a path).
const MAX_ADDRESS_LEN: usize = 254;

/// A change request taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmailChangeStarted {
    /// A link is on its way to the new address (or, when another account has it, a message saying so: the
    /// requester is not told which).
    LinkSent,
    /// The address is the account's own, not yet confirmed: its confirmation link was sent again.
    ConfirmationResent,
}

impl Broker {
    /// Whether an address change can be offered (a mailer is configured).
    pub fn email_change_available(&self) -> bool {
        self.mailer.is_some()
    }

    /// Asks to change the signed-in account's address to `new_email`. Needs a fresh sign-in; every request counts
    /// against the limiter (per account and per client address); audited; the old verified address is told.
    pub async fn request_email_change(
        &self,
        session: &ActiveSession,
        new_email: &str,
        client: &ClientInfo,
    ) -> Result<EmailChangeStarted, SelfServiceError> {
        if !self.is_fresh(session) {
            return Err(SelfServiceError::NotFresh);
        }
        let mailer = self.mailer.as_ref().ok_or(SelfServiceError::MailUnavailable)?;
        let new_email = check_address(new_email)?;
        let id = &session.account_id;
        if !self
            .admit_mail_request(mailer.as_ref(), &throttle_key(id), EMAIL_CHANGE_COUNTER, client)
            .await?
        {
            return Err(SelfServiceError::MailUnavailable);
        }
        let account = self.store.get_account(id).await?.ok_or(SelfServiceError::NotFound)?;
        if let Some(current) = &account.email {
            if current.eq_ignore_ascii_case(&new_email) {
                if account.email_verified {
                    return Err(SelfServiceError::Invalid("That is already your address."));
                }
                self.send_email_verification(id).await?;
                return Ok(EmailChangeStarted::ConfirmationResent);
            }
        }
        // Only the newest request can be confirmed: an older link lying in some mailbox opens nothing. (Two
        // requests at the same instant may both leave a link; the first one opened voids the other, since a change
        // deletes every mailed token of the account.)
        self.store
            .delete_email_tokens_of(id, EmailTokenPurpose::ChangeEmail)
            .await?;
        // The token is stored either way, so the account page shows the same pending address whether or not the
        // address is taken; a taken address's token is never mailed (and confirming is refused anyway).
        let link = self
            .mail_token(id, &new_email, EmailTokenPurpose::ChangeEmail, "email/verify")
            .await?;
        let taken = self
            .store
            .accounts_with_email(&new_email)
            .await?
            .iter()
            .any(|a| a.id != *id && a.email_verified);
        let message = if taken {
            Message::EmailInUse
        } else {
            Message::ConfirmEmailChange {
                link,
                valid_hours: self.mail_settings.verify_ttl_secs / 3600,
            }
        };
        self.audit(&AuditEvent {
            account_id: Some(id.as_str()),
            ip: client.ip.as_deref(),
            detail: Some(if taken {
                "the new address is another account's: no link mailed"
            } else {
                "link mailed to the new address"
            }),
            ..AuditEvent::of(AuditKind::EmailChangeRequested)
        })
        .await;
        self.send_mail(
            id,
            Mail {
                to: new_email.clone(),
                name: account.display_name.clone(),
                message,
            },
        );
        // The old address, if verified, hears of it now: a hijacker cannot move the address without its owner knowing.
        self.notify(
            id,
            Message::EmailChangeRequested {
                new_address: mask_address(&new_email),
            },
        )
        .await;
        Ok(EmailChangeStarted::LinkSent)
    }

    /// The address a change is waiting to be confirmed for (the newest unexpired request), if any.
    pub async fn pending_email_change(&self, id: &AccountId) -> Result<Option<String>, BrokerError> {
        let now = self.now();
        Ok(self
            .store
            .email_tokens_of(id, EmailTokenPurpose::ChangeEmail)
            .await?
            .into_iter()
            .find(|t| t.expires_at > now)
            .map(|t| t.email))
    }

    /// Voids the account's pending address change, if any. A change link needs no session and makes its mailbox
    /// the account's verified address (where reset mail goes), so a hijacked session's request must not outlive
    /// what ends the hijacker's hold: signing out the other sessions or all of them, an operator ending the
    /// sessions or resetting the second factors, a stolen remember-me cookie. (A password change and disabling the
    /// account void it in their own transactions, in the store.) The owner asks again if it was theirs.
    pub(crate) async fn cancel_email_change(&self, id: &AccountId) -> Result<(), BrokerError> {
        let voided = self
            .store
            .delete_email_tokens_of(id, EmailTokenPurpose::ChangeEmail)
            .await?;
        if voided > 0 {
            tracing::info!(account = %id, "a pending address change was cancelled");
        }
        Ok(())
    }

    /// Uses a change link (already taken from the store: single use): the address becomes the new one, verified;
    /// every other mailed link of the account is void; the old verified address gets a notice. Sessions stay.
    pub(crate) async fn finish_email_change(
        &self,
        record: vestibule_core::storage::EmailToken,
        client: &ClientInfo,
    ) -> Result<String, ResetError> {
        let id = &record.account_id;
        let account = match self.store.get_account(id).await? {
            Some(a) if !a.disabled => a,
            _ => return Err(ResetError::InvalidLink),
        };
        if !self.store.change_email(id, &record.email).await? {
            return Err(ResetError::AddressInUse);
        }
        // Sessions stay, but every node's cache holds the old address with them: dropped (and announced), they
        // are read again, so `/me` and `X-Vestibule-Email` name the new address at once. (A personal access
        // token's cached copy lives at most `cache_ttl_secs`.)
        self.reload_cached(id, false).await?;
        self.audit(&AuditEvent {
            account_id: Some(id.as_str()),
            ip: client.ip.as_deref(),
            detail: Some(if account.email_verified {
                "the old address was told"
            } else {
                "there was no verified address to tell"
            }),
            ..AuditEvent::of(AuditKind::EmailChanged)
        })
        .await;
        if let (Some(old), true) = (account.email, account.email_verified) {
            self.send_mail(
                id,
                Mail {
                    to: old,
                    name: account.display_name,
                    message: Message::EmailChanged {
                        new_address: mask_address(&record.email),
                    },
                },
            );
        }
        Ok(record.email)
    }
}

/// What an account's change requests are counted under (`vestibule throttle lift` lifts it with the account's).
pub(crate) fn throttle_key(id: &AccountId) -> String {
    crate::throttle::name_key(EMAIL_CHANGE_COUNTER, id.as_str())
}

/// The address as typed, trimmed, if it can be an address: one `@`, a local part and a domain, no spaces,
/// control characters or the characters that would make it a list or a display name.
fn check_address(raw: &str) -> Result<String, SelfServiceError> {
    let bad = || SelfServiceError::Invalid("Enter an email address such as name@example.org.");
    let email = raw.trim();
    if email.is_empty() || email.len() > MAX_ADDRESS_LEN {
        return Err(bad());
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c))
    {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') || domain.split('.').any(str::is_empty) {
        return Err(bad());
    }
    Ok(email.to_owned())
}

/// An address as a notice names it: the first character of the local part and the whole domain
/// (`n***@example.org`), enough for the owner to recognise a change, not a full address to harvest.
pub fn mask_address(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_masked() {
        assert_eq!(
            check_address("  nora@example.org ").ok().as_deref(),
            Some("nora@example.org")
        );
        for bad in [
            "",
            "nora",
            "@example.org",
            "nora@",
            "nora@@example.org",
            "a@b@example.org",
            "nora@example..org",
            "nora @example.org",
            "Nora <nora@example.org>",
            "nora@example.org,eve@example.org",
            "nora@example.org\r\nBcc: eve@example.org",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
        assert_eq!(mask_address("nora@example.org"), "n***@example.org");
        assert_eq!(mask_address("éa@example.org"), "é***@example.org");
        assert_eq!(mask_address("nothing"), "***");
    }
}
