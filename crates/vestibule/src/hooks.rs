//! Hooks the embedding app registers on the broker ([`crate::BrokerBuilder::hooks`]) to keep its own data in step
//! with the broker's accounts, and to have the last word on a sign-in.
//!
//! Two kinds, with different error semantics:
//!
//! - **Notifications** (`account_created`, `identity_linked`, `identity_unlinked`, `account_disabled`,
//!   `account_enabled`, `account_deleted`) are called after the change is stored, from every path that
//!   makes it (sign-in, the account pages, the admin API, the CLI). An error is logged (target `vestibule::hooks`)
//!   and counted (`vestibule_hook_failures_total{hook}`), and never undoes the change: the broker's store is the
//!   record of who may sign in, and a half-undone change (an account with no sessions but a deleted app row, say)
//!   would be worse than an app row that lags. An app that must not miss one reconciles from the audit log or from
//!   [`crate::Broker::list_accounts`].
//! - **The gate** (`after_sign_in`) is called after the primary proof and, when one is due, after the second step,
//!   just before the session is issued. A [`HookRefusal`] stops the sign-in: no session, a `login_failure` audit
//!   row whose detail starts with `refused_by_app_hook`, and the person sees the refusal's message.
//!
//! Hooks run inside the request that caused the change, one at a time, in the order the changes happen; a slow
//! hook slows that request (and a hook that never returns holds it until the front end's deadline).

use async_trait::async_trait;
use vestibule_core::storage::{AuditEvent, AuditKind};
use vestibule_core::{AccountId, BoxError, SourceId, Subject};

use crate::{AccountView, Broker, BrokerError, ClientInfo};

/// What a notification hook may fail with: logged and counted, never shown, never undoes the change.
pub type HookError = BoxError;

/// An app's hooks into the broker's operations. Every method has a default that does nothing: implement only the
/// ones the app needs. See the module docs (and the README's "Hooks" section) for when each is called.
#[async_trait]
pub trait BrokerHooks: Send + Sync {
    /// An account was created: at a first sign-in (just-in-time provisioning, or a separate account chosen on the
    /// link page) or by an operator (`vestibule user add`, the admin API). `account` carries its first identity;
    /// [`BrokerHooks::identity_linked`] is not called for that one.
    async fn account_created(&self, account: &AccountView) -> Result<(), HookError> {
        let _ = account;
        Ok(())
    }

    /// An identity was added to an existing account (confirmed on the link page, added from the account page, or
    /// joined silently by a source whose emails are trusted).
    async fn identity_linked(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<(), HookError> {
        let _ = (account, source, subject);
        Ok(())
    }

    /// An identity was removed from an account (by its owner, the admin API or the CLI).
    async fn identity_unlinked(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<(), HookError> {
        let _ = (account, source, subject);
        Ok(())
    }

    /// An account was disabled (its sessions and tokens have ended).
    async fn account_disabled(&self, account: &AccountId) -> Result<(), HookError> {
        let _ = account;
        Ok(())
    }

    /// A disabled account was enabled again.
    async fn account_enabled(&self, account: &AccountId) -> Result<(), HookError> {
        let _ = account;
        Ok(())
    }

    /// An account was deleted, with everything the broker held of it (its audit rows stay).
    async fn account_deleted(&self, account: &AccountId) -> Result<(), HookError> {
        let _ = account;
        Ok(())
    }

    /// A person proved who they are (and their second factor, when one was due) through `source`; no session
    /// exists yet. `Err` refuses the sign-in. Not called when a session is restored from a remember-me cookie,
    /// renewed by a step-up or by a password change: those carry on a sign-in this hook already admitted (an app
    /// that must end an account's access disables it instead, which also ends those sessions).
    async fn after_sign_in(&self, account: &AccountView, source: &SourceId) -> Result<(), HookRefusal> {
        let _ = (account, source);
        Ok(())
    }
}

/// The app's refusal of a sign-in. Its message is shown to the person on the sign-in error page and written to
/// the audit log: say why in words meant for them, and put nothing secret in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HookRefusal {
    message: String,
}

impl HookRefusal {
    /// A refusal showing `message` to the person.
    pub fn new(message: impl Into<String>) -> Self {
        HookRefusal {
            message: message.into(),
        }
    }

    /// What the person is shown.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A stored change a notification hook is told about.
pub(crate) enum Change<'a> {
    AccountCreated(&'a AccountId),
    IdentityLinked(&'a AccountId, &'a SourceId, &'a Subject),
    IdentityUnlinked(&'a AccountId, &'a SourceId, &'a Subject),
    AccountDisabled(&'a AccountId),
    AccountEnabled(&'a AccountId),
    AccountDeleted(&'a AccountId),
}

impl Change<'_> {
    fn name(&self) -> &'static str {
        match self {
            Change::AccountCreated(_) => "account_created",
            Change::IdentityLinked(..) => "identity_linked",
            Change::IdentityUnlinked(..) => "identity_unlinked",
            Change::AccountDisabled(_) => "account_disabled",
            Change::AccountEnabled(_) => "account_enabled",
            Change::AccountDeleted(_) => "account_deleted",
        }
    }
}

impl Broker {
    /// Tells the app's hooks about a change already stored. A failing hook (or a failure to read what it is
    /// given) is logged and counted; the change stands.
    pub(crate) async fn changed(&self, change: Change<'_>) {
        let Some(hooks) = &self.hooks else { return };
        let result = match change {
            Change::AccountCreated(id) => match self.account_view(id).await {
                Ok(Some(view)) => hooks.account_created(&view).await,
                // Deleted again before the hook ran: nothing left to tell.
                Ok(None) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Change::IdentityLinked(a, s, sub) => hooks.identity_linked(a, s, sub).await,
            Change::IdentityUnlinked(a, s, sub) => hooks.identity_unlinked(a, s, sub).await,
            Change::AccountDisabled(a) => hooks.account_disabled(a).await,
            Change::AccountEnabled(a) => hooks.account_enabled(a).await,
            Change::AccountDeleted(a) => hooks.account_deleted(a).await,
        };
        if let Err(e) = result {
            tracing::error!(target: "vestibule::hooks", hook = change.name(), error = %e, "an app hook failed; the change stands");
            crate::metrics::hook_failed(change.name());
        }
    }

    /// Asks the app's `after_sign_in` hook whether `account`, just proven through `source`, may have a session.
    /// A refusal is audited as `login_failure` here; the caller issues nothing.
    pub(crate) async fn admit(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: Option<&Subject>,
        client: &ClientInfo,
    ) -> Result<Result<(), HookRefusal>, BrokerError> {
        let Some(hooks) = &self.hooks else { return Ok(Ok(())) };
        let Some(view) = self.account_view(account).await? else {
            // Deleted between the proof and now: an internal error, as when a sign-in meets a missing account.
            return Err(vestibule_core::storage::StorageError::Other("the signed-in account vanished".into()).into());
        };
        let Err(refusal) = hooks.after_sign_in(&view, source).await else {
            return Ok(Ok(()));
        };
        // The app's words, bounded and without control characters, as they go into the log and the audit row.
        let words: String = refusal
            .message()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        let detail = format!("refused_by_app_hook: {words}");
        tracing::info!(account = %account, source = %source, ip = ?client.ip, "sign-in refused by the app's hook");
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            source: Some(source.as_str()),
            subject: subject.map(Subject::as_str),
            ip: client.ip.as_deref(),
            detail: Some(&detail),
            ..AuditEvent::of(AuditKind::LoginFailure)
        })
        .await;
        Ok(Err(refusal))
    }
}
