//! Linking external identities to accounts: proof of ownership before an email match joins an account, links
//! started from the account page, and unlinking. The policy itself (what a first sign-in does) is
//! [`Broker::resolve_account`](crate::Broker); the threats are in the README.

use secrecy::SecretString;
use vestibule_core::storage::{AuditEvent, AuditKind, StorageError, Unlinked};
use vestibule_core::{AccountId, ExternalIdentity, SourceId, Subject};

use crate::secret::{hash_token, hex_of};
use crate::{ActiveSession, Broker, BrokerError, ClientInfo, LoginError, LoginOutcome, RedirectBegin, SecretToken};

/// A sign-in that stopped because an account with the identity's email exists. `token` goes into a short-lived
/// cookie; the identity itself stays server-side.
#[derive(Debug)]
pub struct LinkRequired {
    /// The cookie value (only its hash is stored).
    pub token: SecretToken,
    /// The source that proved the identity.
    pub source: SourceId,
    /// The email it asserted.
    pub email: Option<String>,
    /// Whether the person may take a separate new account instead.
    pub may_create: bool,
}

/// What the page asking for proof shows about a pending link.
#[derive(Debug, Clone)]
pub struct PendingLinkView {
    /// The source that proved the identity.
    pub source: SourceId,
    /// The email it asserted.
    pub email: Option<String>,
    /// The login name it asserted.
    pub login: Option<String>,
    /// Whether a separate account may be created instead.
    pub may_create: bool,
}

/// Why an unlink was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnlinkError {
    /// The session's last proof of a credential is older than `fresh_secs`: sign in again first.
    #[error("a recent sign-in is required")]
    NotFresh,
    /// The account has no such identity.
    #[error("no such identity on this account")]
    NotFound,
    /// It is the account's last way in.
    #[error("the last way in cannot be removed")]
    LastIdentity,
    /// Something broke.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl From<StorageError> for UnlinkError {
    fn from(e: StorageError) -> Self {
        UnlinkError::Broker(e.into())
    }
}

impl Broker {
    /// The pending link behind a link cookie, if it is still valid. Reading does not use it up.
    pub async fn pending_link(&self, token: &str) -> Result<Option<PendingLinkView>, BrokerError> {
        let Some(p) = self.store.get_pending_link(&hex_of(&hash_token(token))).await? else {
            return Ok(None);
        };
        if p.expires_at <= self.now() {
            return Ok(None);
        }
        Ok(Some(PendingLinkView {
            source: p.identity.source,
            email: p.identity.email,
            login: p.identity.login,
            may_create: p.may_create,
        }))
    }

    /// Links the pending identity to the signed-in account, whose owner has just proven it by signing in to it.
    /// Adding a way in needs a fresh sign-in, as every change of the ways in does: a session restored from a
    /// remember-me cookie (or seen from another client) is refused with [`LoginError::NotFresh`] and the pending
    /// link is kept for after the new sign-in. Otherwise single use: consumed whatever the outcome.
    pub async fn confirm_link(
        &self,
        token: &str,
        session: &ActiveSession,
        client: &ClientInfo,
    ) -> Result<SourceId, LoginError> {
        if !self.is_fresh(session) {
            return Err(LoginError::NotFresh);
        }
        let account = &session.account_id;
        let pending = self.store.take_pending_link(&hex_of(&hash_token(token))).await?;
        let Some(p) = pending.filter(|p| p.expires_at > self.now()) else {
            return Err(LoginError::InvalidFlow);
        };
        self.link_to_account(&p.identity, account, client).await?;
        Ok(p.identity.source)
    }

    /// Gives the pending identity a separate new account instead of linking it (when its source provisions),
    /// and signs in to it.
    pub async fn create_from_link(
        &self,
        token: &str,
        client: &ClientInfo,
        previous_session: Option<&str>,
    ) -> Result<LoginOutcome, LoginError> {
        let pending = self.store.take_pending_link(&hex_of(&hash_token(token))).await?;
        let Some(p) = pending.filter(|p| p.expires_at > self.now()) else {
            return Err(LoginError::InvalidFlow);
        };
        if !p.may_create {
            return Err(LoginError::Rejected(vestibule_core::RejectReason::NotPermitted));
        }
        let account = self.provision(&p.identity, client).await?;
        self.sign_in_account(&p.identity, &account, client, previous_session)
            .await
    }

    /// Drops a pending link.
    pub async fn cancel_link(&self, token: &str) -> Result<(), BrokerError> {
        self.store.take_pending_link(&hex_of(&hash_token(token))).await?;
        Ok(())
    }

    /// Starts adding a redirect source to the signed-in account (fresh sign-in required): the flow is bound to
    /// the account and the browser, single use, and expires like a sign-in flow.
    pub async fn start_link_redirect(
        &self,
        source: &SourceId,
        session: &ActiveSession,
    ) -> Result<RedirectBegin, LoginError> {
        if !self.is_fresh(session) {
            return Err(LoginError::NotFresh);
        }
        // A provider whose own MFA counts here is a new multi-factor way in: like adding a factor, it needs the
        // account's second factor proven recently when the account has one (see `may_add_factor`).
        if self.policy(source).trust_upstream_mfa
            && !self.is_fresh_multi_factor(session)
            && self.has_second_factor(&session.account_id).await?
        {
            return Err(LoginError::NotFresh);
        }
        self.begin_redirect(source, None, crate::login::Bound::Link(session.account_id.clone()))
            .await
    }

    /// Adds a password source's identity to the signed-in account after checking the credentials (fresh sign-in
    /// required, checked before the credentials are).
    pub async fn link_password(
        &self,
        source_id: &SourceId,
        session: &ActiveSession,
        login: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<(), LoginError> {
        if !self.is_fresh(session) {
            return Err(LoginError::NotFresh);
        }
        let account = &session.account_id;
        let identity = self.prove_password(source_id, login, password, client).await?;
        self.link_to_account(&identity, account, client).await
    }

    /// Links an identity to an account. Linking one already on that account is a no-op; one linked elsewhere is
    /// refused and audited — never moved.
    pub(crate) async fn link_to_account(
        &self,
        identity: &ExternalIdentity,
        account: &AccountId,
        client: &ClientInfo,
    ) -> Result<(), LoginError> {
        let audit = |event: AuditKind, detail: Option<&'static str>| AuditEvent {
            event,
            account_id: Some(account.as_str()),
            source: Some(identity.source.as_str()),
            subject: Some(identity.subject.as_str()),
            ip: client.ip.as_deref(),
            detail,
        };
        match self.store.link_identity(identity, account, self.now()).await {
            Ok(()) => {
                self.audit(&audit(AuditKind::IdentityLinked, None)).await;
                self.changed(crate::hooks::Change::IdentityLinked(
                    account,
                    &identity.source,
                    &identity.subject,
                ))
                .await;
                let source = self.source_name(&identity.source);
                self.notify(account, crate::Message::IdentityLinked { source }).await;
                Ok(())
            }
            Err(StorageError::Conflict(_)) => {
                let owner = self.store.find_identity(&identity.source, &identity.subject).await?;
                if owner.is_some_and(|o| &o.account_id == account) {
                    return Ok(());
                }
                self.audit(&audit(
                    AuditKind::LinkRefused,
                    Some("identity_linked_to_another_account"),
                ))
                .await;
                Err(LoginError::AlreadyLinked)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a way in from the signed-in account: only with a recent sign-in, only an identity of this account,
    /// never the last one.
    pub async fn unlink(
        &self,
        session: &ActiveSession,
        source: &str,
        subject: &str,
        client: &ClientInfo,
    ) -> Result<(), UnlinkError> {
        if !self.is_fresh(session) {
            return Err(UnlinkError::NotFresh);
        }
        let (Ok(source), Ok(subject)) = (SourceId::new(source), Subject::new(subject)) else {
            return Err(UnlinkError::NotFound);
        };
        match self
            .store
            .unlink_identity(&session.account_id, &source, &subject)
            .await?
        {
            Unlinked::Done { ended } => {
                self.forget(&ended).await;
                self.audit(&AuditEvent {
                    account_id: Some(session.account_id.as_str()),
                    source: Some(source.as_str()),
                    subject: Some(subject.as_str()),
                    ip: client.ip.as_deref(),
                    detail: None,
                    ..AuditEvent::of(AuditKind::IdentityUnlinked)
                })
                .await;
                self.changed(crate::hooks::Change::IdentityUnlinked(
                    &session.account_id,
                    &source,
                    &subject,
                ))
                .await;
                let source = self.source_name(&source);
                self.notify(&session.account_id, crate::Message::IdentityUnlinked { source })
                    .await;
                Ok(())
            }
            Unlinked::NotFound => Err(UnlinkError::NotFound),
            Unlinked::LastIdentity => Err(UnlinkError::LastIdentity),
        }
    }
}
