//! Sign-in as a small state machine: a source proves an identity, the broker resolves it to an account, and a
//! session is issued. Further steps (a second factor) slot in between resolution and the session as new
//! [`LoginOutcome`] variants; a half-finished sign-in is never a session.

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use vestibule_core::storage::{AuditEvent, AuditKind, PendingLink, PendingRecord, StorageError};
use vestibule_core::{
    AccountId, CallbackParams, ExternalIdentity, Flow, PendingRedirect, RejectReason, SourceError, SourceId,
    StartOptions, Timestamp,
};

use crate::linking::LinkRequired;
use crate::secret::{hash_token, hex_of};
use crate::Attempt;
use crate::{ActiveSession, Broker, ClientInfo, LoginError, NewSession, Provisioning, SecretToken};

/// What a redirect flow is started for, and what its callback may then do.
pub(crate) enum Bound {
    /// Sign in (a new session), asked for with these options.
    SignIn(StartOptions),
    /// Link the identity to this account (started from its account page).
    Link(AccountId),
    /// Renew the session with this id hash with the provider's second factor (a step-up).
    StepUp(String),
}

/// When a sign-in proved who the person is: when the source says they authenticated (an OpenID provider's
/// `auth_time`, never later than now), else now. A provider's single sign-on answers from a login that may be
/// hours old, and such a session must not pass for a fresh one before a sensitive action; signing in again from a
/// signed-in browser asks the provider for a new login ([`StartOptions::reauthenticate`]). Never 0, which marks a
/// session restored from remember-me.
pub(crate) fn proof_time(identity: &ExternalIdentity, now: Timestamp) -> Timestamp {
    identity.auth_time.map_or(now, |t| Timestamp(t.0.clamp(1, now.0)))
}

/// What a successful primary sign-in leads to.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// Signed in: set the session cookie.
    SignedIn(NewSession),
    /// The identity is new, and an account with its email exists: the person must prove they own that account
    /// (sign in to it, then confirm) or choose a separate account. No session yet.
    LinkRequired(LinkRequired),
    /// The primary proof passed, and a second step is due (a code, or enrolment when policy requires a factor the
    /// account lacks). No session yet: hold it with [`Broker::hold_for_second_factor`] and send the browser to
    /// the second-factor page.
    SecondFactorRequired(crate::SecondFactorChallenge),
    /// A flow started from the account page added this identity to the signed-in account.
    Linked {
        /// The account that gained a way in.
        account: AccountId,
        /// Through which source.
        source: SourceId,
    },
}

impl LoginOutcome {
    /// The new session, when this outcome is a completed sign-in.
    pub fn session(self) -> Option<NewSession> {
        match self {
            LoginOutcome::SignedIn(s) => Some(s),
            _ => None,
        }
    }
}

/// How an identity resolved.
pub(crate) enum Resolution {
    Account(AccountId),
    Link(LinkRequired),
}

/// The start of a redirect sign-in.
#[derive(Debug)]
pub struct RedirectBegin {
    /// Where to send the browser (303).
    pub authorize_url: String,
    /// The value of the short-lived cookie that binds the flow to this browser.
    pub browser_token: SecretToken,
}

/// The end of a redirect sign-in.
#[derive(Debug)]
pub struct RedirectFinish {
    /// The outcome.
    pub outcome: LoginOutcome,
    /// The `next` path stored when the flow started.
    pub next_path: Option<String>,
}

impl Broker {
    /// Signs in through a password source.
    pub async fn login_password(
        &self,
        source_id: &SourceId,
        login: &str,
        password: &SecretString,
        client: &ClientInfo,
        previous_session: Option<&str>,
    ) -> Result<LoginOutcome, LoginError> {
        let identity = self.prove_password(source_id, login, password, client).await?;
        self.complete(identity, client, previous_session).await
    }

    /// Checks a login name and password with a password source, logged and audited like every attempt.
    pub(crate) async fn prove_password(
        &self,
        source_id: &SourceId,
        login: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<ExternalIdentity, LoginError> {
        let source = self
            .source(source_id.as_str())
            .ok_or(LoginError::UnknownSource)?
            .clone();
        let Flow::Password(flow) = source.flow() else {
            return Err(LoginError::UnknownSource);
        };
        // The account key is the canonical name, existing or not, so throttling says nothing about which exist.
        let key = crate::throttle::name_key(source_id.as_str(), login);
        let attempt = Attempt {
            account: &key,
            ip: client.ip.as_deref().and_then(|ip| ip.parse().ok()),
        };
        self.throttle_check(&attempt, source_id.as_str(), client).await?;
        // Refused here for every source, whatever the source itself does: an empty password is an anonymous bind
        // on some directories.
        let result = if password.expose_secret().is_empty() || password.expose_secret().starts_with('\0') {
            Err(SourceError::Rejected(RejectReason::EmptyPassword))
        } else {
            let started = std::time::Instant::now();
            let result = flow.authenticate(login, password).await;
            crate::metrics::source_call(source_id, "authenticate", &result, started.elapsed());
            result
        };
        match &result {
            Ok(_) => self.throttle_succeeded(&attempt).await,
            Err(SourceError::Rejected(_)) => self.throttle_failed(&attempt).await,
            // A source that cannot answer proved nothing either way.
            Err(_) => {}
        }
        self.checked(source_id, result, client, Some(login)).await
    }

    /// Records a failed credential check of `attempt` (wrong, unknown or disabled alike) with the limiter. A failure
    /// that could not be counted is logged loudly; the attempt itself has failed already.
    pub(crate) async fn throttle_failed(&self, attempt: &Attempt<'_>) {
        if let Err(e) = self.limiter.failed(attempt, self.now()).await {
            tracing::error!(error = %e, "could not count a failed attempt");
        }
    }

    /// Records a successful credential check of `attempt`: its (name, address) pair starts over.
    pub(crate) async fn throttle_succeeded(&self, attempt: &Attempt<'_>) {
        if let Err(e) = self.limiter.succeeded(attempt).await {
            tracing::error!(error = %e, "could not reset a throttling counter");
        }
    }

    /// Refuses an attempt the limiter holds back, before any credential is checked, and audits the refusal. When
    /// the counters cannot be read, refuses too (fail closed), as a store error.
    pub(crate) async fn throttle_check(
        &self,
        attempt: &Attempt<'_>,
        source: &str,
        client: &ClientInfo,
    ) -> Result<(), crate::throttle::Held> {
        let Some(t) = self.limiter.check(attempt, self.now()).await? else {
            return Ok(());
        };
        tracing::info!(source = %source, layer = ?t.layer, retry_after = t.retry_after_secs, ip = ?client.ip, "attempt throttled");
        crate::metrics::throttled(t.layer);
        if !self.limiter.worth_auditing(attempt.ip, attempt.account) {
            return Err(crate::throttle::Held::Throttled(t));
        }
        // The name as a short hash, never as typed: what people type into the name field is sometimes their password.
        // Enough for an operator to tell one guessed name from many; `vestibule user show` finds the real account.
        let name = &crate::throttle::name_hash_hex(attempt.account)[..16];
        let detail = format!(
            "{}: retry after {} s; name sha256:{name}; further refusals of this name and address within a minute \
             are not audited",
            t.layer.as_str(),
            t.retry_after_secs
        );
        self.audit(&AuditEvent {
            source: Some(source),
            ip: client.ip.as_deref(),
            detail: Some(&detail),
            ..AuditEvent::of(AuditKind::Throttled)
        })
        .await;
        Err(crate::throttle::Held::Throttled(t))
    }

    /// Starts a redirect sign-in: stores the flow server-side for `redirect_timeout_secs`, bound to a fresh browser
    /// cookie, and returns where to send the browser.
    pub async fn start_redirect(
        &self,
        source_id: &SourceId,
        next: Option<String>,
    ) -> Result<RedirectBegin, LoginError> {
        self.begin_redirect(source_id, next, Bound::SignIn(StartOptions::default()))
            .await
    }

    /// As [`Broker::start_redirect`], asked for with `options`: with [`StartOptions::reauthenticate`] (what a person
    /// already signed in gets when they sign in again before a sensitive action) the provider is asked to
    /// authenticate them now, not to answer from its single sign-on session, and the new session counts as proven
    /// when the provider says the person authenticated (`auth_time`), not when its answer arrived.
    pub async fn start_redirect_with(
        &self,
        source_id: &SourceId,
        next: Option<String>,
        options: StartOptions,
    ) -> Result<RedirectBegin, LoginError> {
        self.begin_redirect(source_id, next, Bound::SignIn(options)).await
    }

    pub(crate) async fn begin_redirect(
        &self,
        source_id: &SourceId,
        next: Option<String>,
        bound: Bound,
    ) -> Result<RedirectBegin, LoginError> {
        let source = self
            .source(source_id.as_str())
            .ok_or(LoginError::UnknownSource)?
            .clone();
        let Flow::Redirect(flow) = source.flow() else {
            return Err(LoginError::UnknownSource);
        };
        let (options, link_account, step_up_session) = match bound {
            Bound::SignIn(options) => (options, None, None),
            Bound::Link(account) => (StartOptions::default(), Some(account), None),
            Bound::StepUp(session) => (StartOptions::reauthenticate(), None, Some(session)),
        };
        let callback = self.callback_url(source_id);
        let started = std::time::Instant::now();
        let start = flow.start_with(&callback, &options).await;
        crate::metrics::source_call(source_id, "start", &start, started.elapsed());
        let start = start.map_err(|e| match e {
            SourceError::Unavailable(cause) => LoginError::Unavailable(cause),
            other => LoginError::Internal(Box::new(other)),
        })?;
        let browser_token = SecretToken::generate();
        let now = self.now();
        self.store
            .insert_pending(&PendingRecord {
                state_hash: hex_of(&hash_token(start.pending.state.expose_secret())),
                source: source_id.clone(),
                browser_hash: browser_token.hash_hex(),
                data: start.pending.data,
                next_path: next,
                expires_at: now.plus_secs(self.settings.redirect_timeout_secs),
                link_account,
                started_at: now,
                step_up_session,
            })
            .await?;
        Ok(RedirectBegin {
            authorize_url: start.authorize_url,
            browser_token,
        })
    }

    /// Finishes a redirect sign-in. The flow is looked up by the hash of `state` and deleted in the same statement
    /// (single use); it must belong to this source, be unexpired, and have been started by this browser (the
    /// binding cookie, compared in constant time) — all before the source talks to the provider's token endpoint.
    pub async fn finish_redirect(
        &self,
        source_id: &SourceId,
        params: &CallbackParams,
        browser_token: Option<&str>,
        client: &ClientInfo,
        previous_session: Option<&str>,
        current: Option<&ActiveSession>,
    ) -> Result<RedirectFinish, LoginError> {
        let source = self
            .source(source_id.as_str())
            .ok_or(LoginError::UnknownSource)?
            .clone();
        let Flow::Redirect(flow) = source.flow() else {
            return Err(LoginError::UnknownSource);
        };
        let pending = match &params.state {
            Some(state) => {
                self.store
                    .take_pending(&hex_of(&hash_token(state.expose_secret())))
                    .await?
            }
            None => None,
        };
        let valid = pending.as_ref().is_some_and(|p| {
            let same_browser = browser_token
                .map(|b| bool::from(hex_of(&hash_token(b)).as_bytes().ct_eq(p.browser_hash.as_bytes())))
                .unwrap_or(false);
            p.source == *source_id && p.expires_at > self.now() && same_browser
        });
        if params.error.is_some() {
            self.audit_failure(source_id, client, None, "cancelled").await;
            return Err(LoginError::Cancelled);
        }
        let (Some(pending), true) = (pending, valid) else {
            self.audit_failure(source_id, client, None, "invalid_flow").await;
            return Err(LoginError::InvalidFlow);
        };
        let state = params.state.clone().unwrap_or_default();
        let started = std::time::Instant::now();
        let result = flow
            .finish(
                PendingRedirect {
                    state,
                    data: pending.data,
                },
                &self.callback_url(source_id),
                params,
            )
            .await;
        crate::metrics::source_call(source_id, "finish", &result, started.elapsed());
        let identity = self.checked(source_id, result, client, None).await?;
        if let Some(bound) = &pending.step_up_session {
            // A step-up: only the session that started it, still signed in in this browser, is renewed.
            let Some(session) = current.filter(|s| bool::from(s.id_hash().as_bytes().ct_eq(bound.as_bytes()))) else {
                self.audit_failure(source_id, client, None, "step_up_from_another_session")
                    .await;
                return Err(LoginError::InvalidFlow);
            };
            let renewed = self
                .finish_provider_step_up(session, &identity, pending.started_at, client)
                .await?;
            return Ok(RedirectFinish {
                outcome: LoginOutcome::SignedIn(renewed),
                next_path: pending.next_path,
            });
        }
        if let Some(target) = &pending.link_account {
            // Started from the account page: only the account that started it, still signed in, gets the link.
            if current.map(|s| &s.account_id) != Some(target) {
                self.audit_failure(source_id, client, None, "link_from_another_session")
                    .await;
                return Err(LoginError::InvalidFlow);
            }
            self.link_to_account(&identity, target, client).await?;
            let outcome = LoginOutcome::Linked {
                account: target.clone(),
                source: source_id.clone(),
            };
            return Ok(RedirectFinish {
                outcome,
                next_path: pending.next_path,
            });
        }
        let outcome = self.complete(identity, client, previous_session).await?;
        Ok(RedirectFinish {
            outcome,
            next_path: pending.next_path,
        })
    }

    /// The absolute callback URL of a redirect source.
    pub fn callback_url(&self, source: &SourceId) -> String {
        format!("{}/callback/{}", self.callback_base, source)
    }

    /// Turns a source's answer into an identity or a logged, audited refusal.
    pub(crate) async fn checked(
        &self,
        source_id: &SourceId,
        result: Result<ExternalIdentity, SourceError>,
        client: &ClientInfo,
        login: Option<&str>,
    ) -> Result<ExternalIdentity, LoginError> {
        match result {
            Ok(identity) if identity.source == *source_id => Ok(identity),
            Ok(identity) => {
                // A source asserting identities for another source would be a bug or an attack: never trust it.
                tracing::error!(source = %source_id, claimed = %identity.source, "source returned a foreign identity");
                Err(LoginError::Internal(
                    "source returned an identity of another source".into(),
                ))
            }
            Err(SourceError::Rejected(reason)) => {
                tracing::info!(source = %source_id, reason = %reason, ip = ?client.ip, "sign-in rejected");
                self.audit_failure(source_id, client, login, reason.as_str()).await;
                Err(LoginError::Rejected(reason))
            }
            Err(SourceError::Unavailable(cause)) => {
                tracing::warn!(source = %source_id, error = %cause, "sign-in source unavailable");
                self.audit_failure(source_id, client, login, "source_unavailable").await;
                Err(LoginError::Unavailable(cause))
            }
            Err(SourceError::Cancelled(what)) => {
                tracing::info!(source = %source_id, error = %what, "sign-in cancelled at the provider");
                self.audit_failure(source_id, client, login, "cancelled").await;
                Err(LoginError::Cancelled)
            }
            // Anything else a source reports (a verification failure, or a kind added later) proves nothing.
            Err(e) => {
                tracing::warn!(source = %source_id, error = %e, "sign-in refused: provider answer failed verification");
                self.audit_failure(source_id, client, login, "protocol_violation").await;
                Err(LoginError::Rejected(RejectReason::InvalidCredentials))
            }
        }
    }

    pub(crate) async fn audit_failure(&self, source: &SourceId, client: &ClientInfo, login: Option<&str>, why: &str) {
        // The attempted login name goes to the log only when short and printable: it is attacker input.
        let attempted: Option<String> = login
            .filter(|l| l.len() <= 128)
            .map(|l| l.chars().filter(|c| !c.is_control()).collect());
        let detail = match &attempted {
            Some(l) => format!("{why}; login={l:?}"),
            None => why.to_owned(),
        };
        self.audit(&AuditEvent {
            source: Some(source.as_str()),
            ip: client.ip.as_deref(),
            detail: Some(&detail),
            ..AuditEvent::of(AuditKind::LoginFailure)
        })
        .await;
    }

    /// Resolves an identity to its account and issues a session (or asks for proof of account ownership).
    async fn complete(
        &self,
        identity: ExternalIdentity,
        client: &ClientInfo,
        previous_session: Option<&str>,
    ) -> Result<LoginOutcome, LoginError> {
        let account = match self.resolve_account(&identity, client).await? {
            Resolution::Account(a) => a,
            Resolution::Link(l) => return Ok(LoginOutcome::LinkRequired(l)),
        };
        self.sign_in_account(&identity, &account, client, previous_session)
            .await
    }

    /// Issues a session for an account an identity resolved to, unless the account is disabled.
    pub(crate) async fn sign_in_account(
        &self,
        identity: &ExternalIdentity,
        account: &AccountId,
        client: &ClientInfo,
        previous_session: Option<&str>,
    ) -> Result<LoginOutcome, LoginError> {
        let account = account.clone();
        let Some(record) = self.store.get_account(&account).await? else {
            return Err(LoginError::Internal("identity points at a missing account".into()));
        };
        if record.disabled {
            self.audit_failure(&identity.source, client, identity.login.as_deref(), "account_disabled")
                .await;
            return Err(LoginError::Rejected(RejectReason::AccountDisabled));
        }
        let (methods, second_factor_at) = match self.second_step(identity, &account).await? {
            crate::second_factor::SecondStep::Challenge(challenge) => {
                return Ok(LoginOutcome::SecondFactorRequired(challenge));
            }
            // A trusted provider's MFA is a second factor proven when the provider says the person authenticated
            // (`auth_time`, never later than now), not at this callback: a provider's single sign-on may answer
            // from a login hours old, which must not pass a step-up. Without `auth_time` the session is
            // multi-factor but its second factor has no time, so step-up asks for one.
            crate::second_factor::SecondStep::None(methods) => {
                let mfa = methods.iter().any(|m| m.is_second_factor());
                let at = identity
                    .auth_time
                    .filter(|_| mfa)
                    .map(|_| proof_time(identity, self.now()));
                (methods, at)
            }
        };
        self.admit(&account, &identity.source, Some(&identity.subject), client)
            .await?
            .map_err(LoginError::Refused)?;
        let proven = crate::broker::Proven {
            source: &identity.source,
            subject: Some(&identity.subject),
            at: proof_time(identity, self.now()),
            checked_at: None,
            methods,
            second_factor_at,
        };
        let session = self
            .create_session_proven(&account, proven, client, previous_session)
            .await?;
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            source: Some(identity.source.as_str()),
            subject: Some(identity.subject.as_str()),
            ip: client.ip.as_deref(),
            ..AuditEvent::of(AuditKind::LoginSuccess)
        })
        .await;
        Ok(LoginOutcome::SignedIn(session))
    }

    /// The account an identity leads to, by the source's policy:
    ///
    /// 1. a known `(source, subject)` signs into its account;
    /// 2. with `trust_email`, an identity whose email the source asserts as verified joins the one account with that
    ///    email, if that account's own email is verified too;
    /// 3. otherwise, when accounts with that email exist, nothing is linked: the person must prove they own one
    ///    (sign in to it) or choose a separate account — an email alone never opens an account;
    /// 4. otherwise a new account is created, unless the source is `existing_only`.
    ///
    /// Two concurrent first sign-ins of the same identity meet at the unique key: the loser reads the winner's
    /// account.
    pub(crate) async fn resolve_account(
        &self,
        identity: &ExternalIdentity,
        client: &ClientInfo,
    ) -> Result<Resolution, LoginError> {
        let now = self.now();
        if let Some(found) = self.store.find_identity(&identity.source, &identity.subject).await? {
            self.store.record_identity_login(identity, now).await?;
            return Ok(Resolution::Account(found.account_id));
        }
        let policy = self.policy(&identity.source);
        let matches = match identity.email.as_deref().filter(|e| !e.is_empty()) {
            Some(email) => self.store.accounts_with_email(email).await?,
            None => Vec::new(),
        };
        // Silent linking needs all of: the operator trusts this source's emails, the source is authoritative for
        // this address (not merely asserting it verified), exactly one account has it, that account's address was
        // verified by an authority too, and the account has no identity from this source yet — if it has one, the
        // address moved to another person at the same provider (a recycled address): ask for proof instead.
        if policy.trust_email && policy.vouched_email(identity) {
            if let [only] = matches.as_slice() {
                let same_source = self
                    .store
                    .identities_of(&only.id)
                    .await?
                    .iter()
                    .any(|i| i.source == identity.source);
                if only.email_verified && !same_source {
                    self.link_to_account(identity, &only.id, client).await?;
                    return Ok(Resolution::Account(only.id.clone()));
                }
            }
        }
        let may_create = policy.provisioning == Provisioning::Create;
        if !matches.is_empty() {
            let token = SecretToken::generate();
            self.store
                .insert_pending_link(&PendingLink {
                    token_hash: token.hash_hex(),
                    identity: identity.clone(),
                    may_create,
                    expires_at: now.plus_secs(self.settings.redirect_timeout_secs),
                })
                .await?;
            self.audit(&AuditEvent {
                source: Some(identity.source.as_str()),
                subject: Some(identity.subject.as_str()),
                ip: client.ip.as_deref(),
                ..AuditEvent::of(AuditKind::LinkRequired)
            })
            .await;
            return Ok(Resolution::Link(LinkRequired {
                token,
                source: identity.source.clone(),
                email: identity.email.clone(),
                may_create,
            }));
        }
        if !may_create {
            self.audit_failure(&identity.source, client, identity.login.as_deref(), "not_provisioned")
                .await;
            return Err(LoginError::Rejected(RejectReason::NotPermitted));
        }
        self.provision(identity, client).await.map(Resolution::Account)
    }

    /// Creates an account for an identity (just-in-time provisioning).
    pub(crate) async fn provision(
        &self,
        identity: &ExternalIdentity,
        client: &ClientInfo,
    ) -> Result<AccountId, LoginError> {
        // The new account's address is verified only if this source may vouch for it; what the source asserted
        // stays on the identity row as it was.
        let vouched = self.policy(&identity.source).vouched_email(identity);
        match self
            .store
            .create_account_for_identity(identity, vouched, self.now())
            .await
        {
            Ok(account) => {
                self.audit(&AuditEvent {
                    account_id: Some(account.as_str()),
                    source: Some(identity.source.as_str()),
                    subject: Some(identity.subject.as_str()),
                    ip: client.ip.as_deref(),
                    ..AuditEvent::of(AuditKind::AccountCreated)
                })
                .await;
                self.changed(crate::hooks::Change::AccountCreated(&account)).await;
                Ok(account)
            }
            Err(StorageError::Conflict(_)) => {
                let found = self.store.find_identity(&identity.source, &identity.subject).await?;
                found
                    .map(|f| f.account_id)
                    .ok_or_else(|| LoginError::Internal("identity vanished".into()))
            }
            Err(e) => Err(e.into()),
        }
    }
}
