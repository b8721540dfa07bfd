//! The second step of sign-in, and the second factors themselves.
//!
//! After a primary proof, an account with a second factor (or one that policy says must have one) gets no
//! session: it gets a [`SecondFactorChallenge`], which the front end holds server-side as the *half-signed-in
//! state* ([`Broker::hold_for_second_factor`]): a short-lived, single-use record bound to the browser by a cookie
//! token, which nothing but the second-factor routes reads — so it grants nothing. The session is issued (with a
//! new id) only when a code passes ([`Broker::finish_second_factor`]).
//!
//! Every code check is throttled per account (`2fa:{account}`) through the broker's limiter, and a half-signed-in
//! state is discarded after `max_failures` wrong codes.

use secrecy::SecretString;
use vestibule_core::storage::{AuditEvent, AuditKind, PendingSecondFactor, StorageError};
use vestibule_core::{AccountId, ExternalIdentity, Flow, RejectReason, SourceId, Subject, Timestamp};

use crate::passkey::{Answer, Expected, Purpose};
use crate::session::{method_names, parse_methods};
use crate::totp::{new_recovery_codes, normalize_recovery, normalize_totp, TotpSecret};
use crate::{ActiveSession, AuthMethod, Broker, BrokerError, ClientInfo, LoginError, NewSession, SecretToken};

/// How far before a provider step-up's start the provider's `auth_time` may lie (clocks of two machines differ a
/// little); anything earlier is an older login the provider answered from.
const STEP_UP_SKEW_SECS: i64 = 60;

/// A primary proof that needs a second step before it is a session. Only the broker makes one; hand it to
/// [`Broker::hold_for_second_factor`].
#[derive(Debug)]
pub struct SecondFactorChallenge {
    pub(crate) account: AccountId,
    pub(crate) source: SourceId,
    pub(crate) subject: Subject,
    pub(crate) methods: Vec<AuthMethod>,
    /// No factor yet, and policy requires one: the second step is enrolment.
    pub(crate) enrol: bool,
}

impl SecondFactorChallenge {
    /// Whether the second step is enrolling a first factor (policy requires one and the account has none).
    pub fn enrol(&self) -> bool {
        self.enrol
    }
}

/// What the second-factor page shows for a half-signed-in state.
#[derive(Debug)]
#[non_exhaustive]
pub enum SecondFactorPrompt {
    /// Ask for a code (TOTP or recovery code).
    Code,
    /// Policy requires a factor and the account has none: enrol one now, then enter its code.
    Enrol(TotpEnrolment),
}

/// A TOTP authenticator being enrolled: what the page shows so that an app can add it. `Debug` does not print the
/// secret.
pub struct TotpEnrolment {
    /// The secret in base32, for typing into an app.
    pub secret_base32: SecretString,
    /// The `otpauth://totp/...` URI (it holds the secret), for the QR code and as text.
    pub uri: SecretString,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(..)")
    }
}

/// A fresh set of recovery codes, shown once. `Debug` does not print them.
pub struct RecoveryCodes(pub Vec<SecretString>);

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes({} codes)", self.0.len())
    }
}

/// A passed second step: the session, and what the front end does next.
#[derive(Debug)]
pub struct SecondStepDone {
    /// The new session: set its cookie.
    pub session: NewSession,
    /// Where the sign-in was going (a safe relative path, checked when it was stored).
    pub next_path: Option<String>,
    /// A remember-me cookie value, when "remember me" was asked for at the primary proof.
    pub remember: Option<SecretString>,
    /// Recovery codes to show once (the second step was enrolment).
    pub recovery_codes: Option<RecoveryCodes>,
}

/// A factor added from the account page: the session goes on under a new id, with the codes to show once.
#[derive(Debug)]
pub struct FactorAdded {
    /// The person's session, renewed (it just proved the new factor): set it as the session cookie.
    pub session: NewSession,
    /// The recovery codes, shown once.
    pub recovery_codes: RecoveryCodes,
}

/// Why a second-factor action was refused. The messages are safe to show.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecondFactorError {
    /// No half-signed-in state for this browser, or it expired or was used: sign in again.
    #[error("the sign-in expired; please sign in again")]
    Expired,
    /// A wrong (or replayed) code. `discarded`: that was the last one allowed; sign in again.
    #[error("that code is not valid")]
    WrongCode {
        /// The half-signed-in state was discarded.
        discarded: bool,
    },
    /// Too many wrong codes for this account: refused before the code was checked.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    Throttled {
        /// Seconds until an attempt may be made.
        retry_after_secs: u32,
    },
    /// The action needs a fresh sign-in.
    #[error("a recent sign-in is required")]
    NotFresh,
    /// The account already has a confirmed authenticator: remove it first.
    #[error("an authenticator is already set up")]
    AlreadyEnrolled,
    /// The account has no confirmed second factor (or no enrolment under way).
    #[error("no second factor is set up")]
    NoFactor,
    /// Passkeys are off on this server (see [`crate::PasskeyMode`]).
    #[error("passkeys are not available here")]
    PasskeysOff,
    /// The authenticator's answer to a passkey registration was not accepted (malformed, wrong ceremony, or a
    /// credential registered before).
    #[error("the passkey was not accepted")]
    PasskeyRefused,
    /// The embedding app's [`crate::BrokerHooks::after_sign_in`] refused the sign-in after the second step
    /// (audited); its message is meant for the person.
    #[error("sign-in refused: {0}")]
    Refused(crate::HookRefusal),
    /// Something broke.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl From<StorageError> for SecondFactorError {
    fn from(e: StorageError) -> Self {
        SecondFactorError::Broker(e.into())
    }
}

/// The limiter's key for an account's second-factor codes: its own name space, so guessing codes and guessing
/// passwords are counted apart.
pub(crate) fn code_key(account: &AccountId) -> String {
    format!("2fa:{account}")
}

/// What a second step (or a step-up) presents.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Proof<'a> {
    /// A TOTP or recovery code.
    Code(&'a str),
    /// A passkey's answer to a ceremony.
    Passkey(Answer<'a>),
}

/// What a primary proof still needs.
pub(crate) enum SecondStep {
    /// Nothing: sign in with these methods (a trusted upstream MFA included).
    None(Vec<AuthMethod>),
    /// A code, or enrolment.
    Challenge(SecondFactorChallenge),
}

impl Broker {
    /// Decides what a primary proof of `identity` for `account` still needs: nothing, the provider's trusted MFA,
    /// a code (the account has a confirmed factor), or enrolment (policy requires a factor it lacks).
    pub(crate) async fn second_step(
        &self,
        identity: &vestibule_core::ExternalIdentity,
        account: &AccountId,
    ) -> Result<SecondStep, BrokerError> {
        let mut methods = self.primary_methods(&identity.source);
        if self.policy(&identity.source).upstream_mfa(identity) {
            methods.push(AuthMethod::UpstreamMfa);
            return Ok(SecondStep::None(methods));
        }
        let has_factor = self.has_second_factor(account).await?;
        let enrol = !has_factor && self.second_factor.required_for(&self.groups_of(account).await?);
        if !has_factor && !enrol {
            return Ok(SecondStep::None(methods));
        }
        Ok(SecondStep::Challenge(SecondFactorChallenge {
            account: account.clone(),
            source: identity.source.clone(),
            subject: identity.subject.clone(),
            methods,
            enrol,
        }))
    }

    /// Whether a sign-in proven with `methods` may stand for an account in `groups` under the policy: one with a
    /// second factor always; one without only where no factor is required. A session or remember-me series from
    /// before the policy required one is refused by this, so the person signs in again and enrols.
    pub(crate) fn policy_allows(&self, methods: &[AuthMethod], groups: &[String]) -> bool {
        methods.iter().any(AuthMethod::is_second_factor) || !self.second_factor.required_for(groups)
    }

    /// Whether the account has a confirmed second factor: a confirmed authenticator app, or a passkey.
    pub async fn has_second_factor(&self, account: &AccountId) -> Result<bool, BrokerError> {
        Ok(self.has_totp(account).await? || !self.store.passkeys_of(account).await?.is_empty())
    }

    /// Whether the account has a confirmed authenticator app.
    pub async fn has_totp(&self, account: &AccountId) -> Result<bool, BrokerError> {
        Ok(self
            .store
            .get_totp(account)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some()))
    }

    /// How many unused recovery codes the account has.
    pub async fn recovery_codes_left(&self, account: &AccountId) -> Result<u32, BrokerError> {
        Ok(self.store.recovery_codes_left(account).await?)
    }

    /// Stores the half-signed-in state for a challenge and returns the token for the browser's cookie (only its
    /// hash is stored). `next` must already be a safe relative path; `remember` is the "remember me" box of the
    /// primary proof, honoured once the second step passes.
    pub async fn hold_for_second_factor(
        &self,
        challenge: SecondFactorChallenge,
        next: Option<String>,
        remember: bool,
    ) -> Result<SecretToken, BrokerError> {
        let token = SecretToken::generate();
        self.store
            .insert_pending_second_factor(&PendingSecondFactor {
                token_hash: token.hash_hex(),
                account_id: challenge.account,
                source: challenge.source,
                subject: challenge.subject,
                methods: method_names(&challenge.methods),
                next_path: next,
                remember,
                enrol: challenge.enrol,
                failures: 0,
                expires_at: self.now().plus_secs(self.second_factor.pending_timeout_secs),
            })
            .await?;
        Ok(token)
    }

    pub(crate) async fn live_pending(&self, token: &str) -> Result<Option<PendingSecondFactor>, BrokerError> {
        if !crate::secret::plausible(token) {
            return Ok(None);
        }
        let hash = crate::secret::hex_of(&crate::secret::hash_token(token));
        Ok(self
            .store
            .get_pending_second_factor(&hash)
            .await?
            .filter(|p| p.expires_at > self.now()))
    }

    /// What the second-factor page shows for the half-signed-in state behind `token`; `None` when there is none
    /// (expired, used, or never was). For enrolment, an unconfirmed authenticator is set up (or the one already
    /// under way shown again, so a reload does not change the secret the app scanned).
    pub async fn second_factor_prompt(&self, token: &str) -> Result<Option<SecondFactorPrompt>, BrokerError> {
        let Some(pending) = self.live_pending(token).await? else {
            return Ok(None);
        };
        if !pending.enrol || self.has_second_factor(&pending.account_id).await? {
            return Ok(Some(SecondFactorPrompt::Code));
        }
        let account = &pending.account_id;
        // Shown again only when this state started it: an unconfirmed secret begun by another sign-in (perhaps
        // someone else's, who knew the password, at the same time) must not be the one this person enrols.
        if let Some(under_way) = self.under_way(account, &pending.token_hash).await? {
            return Ok(Some(SecondFactorPrompt::Enrol(under_way)));
        }
        let secret = self.store_new_totp(account, &pending.token_hash).await?;
        Ok(Some(SecondFactorPrompt::Enrol(
            self.enrolment_view(account, &secret).await?,
        )))
    }

    /// The authenticator this session began enrolling from the account page (not yet confirmed), to show again
    /// after a wrong first code; `None` when there is none, or when another session of the account began it: the
    /// secret is shown only to the sign-in that made it, never to a second one with the same password.
    pub async fn totp_under_way(&self, session: &ActiveSession) -> Result<Option<TotpEnrolment>, BrokerError> {
        self.under_way(&session.account_id, &session.id_hash()).await
    }

    async fn under_way(&self, account: &AccountId, begun_by: &str) -> Result<Option<TotpEnrolment>, BrokerError> {
        let secret = match self.store.get_totp(account).await? {
            Some(f) if f.confirmed_at.is_none() && begun_by_matches(&f, begun_by) => {
                self.sealer.open(account, &f.sealed_secret)
            }
            _ => None,
        };
        match secret {
            Some(secret) => Ok(Some(self.enrolment_view(account, &secret).await?)),
            None => Ok(None),
        }
    }

    /// A new unconfirmed secret for `account`, begun by `begun_by` (the hash of a session id or of a
    /// half-signed-in state's token): only that one may see it again or confirm it.
    async fn store_new_totp(&self, account: &AccountId, begun_by: &str) -> Result<TotpSecret, BrokerError> {
        let secret = TotpSecret::generate();
        let sealed = self
            .sealer
            .seal(account, secret.bytes())
            .ok_or_else(|| BrokerError::Config("could not seal a TOTP secret".into()))?;
        self.store.put_totp(account, &sealed, begun_by, self.now()).await?;
        Ok(secret)
    }

    async fn enrolment_view(&self, account: &AccountId, secret: &TotpSecret) -> Result<TotpEnrolment, BrokerError> {
        // The app's label: the account's name as the person knows it, else its email, else its id.
        let label = match self.store.get_account(account).await? {
            Some(a) => a.display_name.or(a.email).unwrap_or_else(|| account.to_string()),
            None => account.to_string(),
        };
        let uri = secret
            .uri(&self.second_factor.issuer, &label)
            .ok_or_else(|| BrokerError::Config("could not build the otpauth URI".into()))?;
        Ok(TotpEnrolment {
            secret_base32: secret.base32().into(),
            uri: uri.into(),
        })
    }

    /// The second step: checks `code` (a TOTP code, or a recovery code; for enrolment, the new authenticator's
    /// code) for the half-signed-in state behind `token`, and issues the session when it passes. The state is
    /// single use; a wrong code counts against it, and past `max_failures` it is discarded.
    pub async fn finish_second_factor(
        &self,
        token: &str,
        code: &str,
        client: &ClientInfo,
        previous_session: Option<&str>,
    ) -> Result<SecondStepDone, SecondFactorError> {
        self.finish_second_step(token, Proof::Code(code), client, previous_session)
            .await
    }

    /// The second step with either proof (see [`Broker::finish_second_factor`]).
    pub(crate) async fn finish_second_step(
        &self,
        token: &str,
        proof: Proof<'_>,
        client: &ClientInfo,
        previous_session: Option<&str>,
    ) -> Result<SecondStepDone, SecondFactorError> {
        let Some(pending) = self.live_pending(token).await? else {
            return Err(SecondFactorError::Expired);
        };
        let account = pending.account_id.clone();
        // Each attempt is counted before its code is looked at (one `UPDATE … RETURNING`), so that codes sent at
        // once with one state cannot outnumber its allowance; past it the state is discarded unchecked.
        let attempts = self.store.fail_pending_second_factor(&pending.token_hash).await?;
        let Some(attempts) = attempts.filter(|n| *n <= self.second_factor.max_failures) else {
            self.store.take_pending_second_factor(&pending.token_hash).await?;
            return Err(SecondFactorError::WrongCode { discarded: true });
        };
        let enrolling = pending.enrol && !self.has_second_factor(&account).await?;
        let proven = match proof {
            Proof::Code(code) if enrolling => self
                .confirm_code(&account, code, client, &pending.source, &pending.token_hash)
                .await?
                .then_some(AuthMethod::Otp),
            Proof::Code(code) => self.check_code(&account, code, client, &pending.source).await?,
            Proof::Passkey(answer) => {
                let expected = Expected {
                    purpose: Purpose::SecondFactor,
                    bound_to: &pending.token_hash,
                };
                self.check_passkey(&account, expected, answer, client, &pending.source)
                    .await?
            }
        };
        let Some(method) = proven else {
            let discarded = attempts >= self.second_factor.max_failures;
            if discarded {
                self.store.take_pending_second_factor(&pending.token_hash).await?;
            }
            return Err(SecondFactorError::WrongCode { discarded });
        };
        // Single use: of two requests racing with one state, one takes it.
        let Some(pending) = self.store.take_pending_second_factor(&pending.token_hash).await? else {
            return Err(SecondFactorError::Expired);
        };
        // Both proofs are in: the app has its say before anything of the sign-in is kept (the state is used up
        // either way, so a refused person starts over).
        self.admit(&account, &pending.source, Some(&pending.subject), client)
            .await?
            .map_err(SecondFactorError::Refused)?;
        if method == AuthMethod::RecoveryCode {
            // Someone who needs a recovery code may have lost a device to someone else: end what it held.
            self.end_all_grants_of(&account).await?;
        }
        let recovery_codes = if enrolling {
            let codes = self.new_recovery_codes(&account).await?;
            self.end_grants_of_unprotected(&account).await?;
            self.factor_changed(
                &account,
                client,
                AuditKind::SecondFactorAdded,
                Some("totp; at sign-in (required by policy)"),
                crate::FactorChange::AuthenticatorAdded,
            )
            .await;
            Some(codes)
        } else {
            None
        };
        let mut methods = parse_methods(&pending.methods);
        methods.push(method);
        let now = self.now();
        let proven = crate::broker::Proven {
            source: &pending.source,
            subject: Some(&pending.subject),
            at: now,
            checked_at: None,
            methods,
            second_factor_at: Some(now),
        };
        let session = self
            .create_session_proven(&account, proven, client, previous_session)
            .await?;
        let detail = format!("second factor: {}", method.as_str());
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            source: Some(pending.source.as_str()),
            subject: Some(pending.subject.as_str()),
            ip: client.ip.as_deref(),
            detail: Some(&detail),
            ..AuditEvent::of(AuditKind::LoginSuccess)
        })
        .await;
        let remember = if pending.remember {
            Some(self.remember(&session).await?)
        } else {
            None
        };
        Ok(SecondStepDone {
            session,
            next_path: pending.next_path,
            remember,
            recovery_codes,
        })
    }

    /// Checks a second-factor code of an account with a confirmed factor: a TOTP code of the current step or one
    /// either side, not yet used; or an unused recovery code (spent by this check). Throttled per account; every
    /// outcome is recorded with the limiter, and failures are audited. `None`: wrong.
    pub(crate) async fn check_code(
        &self,
        account: &AccountId,
        code: &str,
        client: &ClientInfo,
        source: &SourceId,
    ) -> Result<Option<AuthMethod>, SecondFactorError> {
        let key = code_key(account);
        let (attempt, _turn) = self.code_attempt(&key, client, source.as_str()).await?;
        let now = self.now();
        let proven = if let Some(totp) = normalize_totp(code) {
            match self.store.get_totp(account).await? {
                Some(f) if f.confirmed_at.is_some() => {
                    let step = self
                        .sealer
                        .open(account, &f.sealed_secret)
                        .and_then(|secret| secret.matching_step(&totp, now.0));
                    match step {
                        // The store moves the last step forward only if this one is later: a replay fails here.
                        Some(step) => self
                            .store
                            .accept_totp_step(account, step, None, now)
                            .await?
                            .then_some(AuthMethod::Otp),
                        None => None,
                    }
                }
                _ => None,
            }
        } else if let Some(recovery) = normalize_recovery(code) {
            // Looked up by its keyed hash, spent in the same statement: the database compares HMAC outputs, whose
            // timing says nothing about the code typed, so no constant-time comparison is needed here.
            let hash = self.sealer.recovery_hash(account, &recovery);
            self.store
                .use_recovery_code(account, &hash, now)
                .await?
                .then_some(AuthMethod::RecoveryCode)
        } else {
            None
        };
        self.record_code_outcome(&attempt, account, client, proven.is_some(), proven)
            .await;
        Ok(proven)
    }

    /// The attempt a code check is, refused before any code is looked at when the limiter holds it back. The guard
    /// is this node's turn for the account's codes (see `Limiter::one_at_a_time`): hold it until the outcome is
    /// recorded.
    pub(crate) async fn code_attempt<'a>(
        &self,
        key: &'a str,
        client: &ClientInfo,
        source: &str,
    ) -> Result<(crate::Attempt<'a>, tokio::sync::OwnedMutexGuard<()>), SecondFactorError> {
        let attempt = crate::Attempt {
            account: key,
            ip: client.ip.as_deref().and_then(|ip| ip.parse().ok()),
        };
        let turn = self.limiter.one_at_a_time(key).await;
        self.throttle_check(&attempt, source, client)
            .await
            .map_err(|held| match held {
                crate::throttle::Held::Throttled(t) => SecondFactorError::Throttled {
                    retry_after_secs: t.retry_after_secs,
                },
                crate::throttle::Held::Store(e) => e.into(),
            })?;
        Ok((attempt, turn))
    }

    /// Checks the first code of an authenticator being enrolled (unconfirmed); confirms it when right. Throttled
    /// like every code.
    async fn confirm_code(
        &self,
        account: &AccountId,
        code: &str,
        client: &ClientInfo,
        source: &SourceId,
        begun_by: &str,
    ) -> Result<bool, SecondFactorError> {
        let key = code_key(account);
        let (attempt, _turn) = self.code_attempt(&key, client, source.as_str()).await?;
        // Only the sign-in that began this enrolment confirms it: another session (someone else's, with the same
        // password) must not turn on a secret the owner is scanning, nor the owner one somebody else planted.
        let Some(factor) = self
            .store
            .get_totp(account)
            .await?
            .filter(|f| f.confirmed_at.is_none() && begun_by_matches(f, begun_by))
        else {
            return Err(SecondFactorError::NoFactor);
        };
        let now = self.now();
        let step = self
            .sealer
            .open(account, &factor.sealed_secret)
            .and_then(|secret| normalize_totp(code).and_then(|c| secret.matching_step(&c, now.0)));
        let ok = match step {
            Some(step) => {
                self.store
                    .accept_totp_step(account, step, Some(&factor.sealed_secret), now)
                    .await?
            }
            None => false,
        };
        self.record_code_outcome(&attempt, account, client, ok, ok.then_some(AuthMethod::Otp))
            .await;
        Ok(ok)
    }

    pub(crate) async fn record_code_outcome(
        &self,
        attempt: &crate::Attempt<'_>,
        account: &AccountId,
        client: &ClientInfo,
        ok: bool,
        method: Option<AuthMethod>,
    ) {
        if ok {
            self.throttle_succeeded(attempt).await;
            if method == Some(AuthMethod::RecoveryCode) {
                self.factor_changed(
                    account,
                    client,
                    AuditKind::RecoveryCodeUsed,
                    None,
                    crate::FactorChange::RecoveryCodeUsed,
                )
                .await;
            }
        } else {
            self.throttle_failed(attempt).await;
            self.audit(&AuditEvent {
                account_id: Some(account.as_str()),
                ip: client.ip.as_deref(),
                ..AuditEvent::of(AuditKind::SecondFactorFailed)
            })
            .await;
        }
    }

    pub(crate) async fn new_recovery_codes(&self, account: &AccountId) -> Result<RecoveryCodes, BrokerError> {
        let codes = new_recovery_codes();
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| normalize_recovery(c))
            .map(|c| self.sealer.recovery_hash(account, &c))
            .collect();
        self.store.replace_recovery_codes(account, &hashes, self.now()).await?;
        Ok(RecoveryCodes(codes.into_iter().map(SecretString::from).collect()))
    }

    /// Audits a change of an account's factors and mails its owner the notice saying which.
    pub(crate) async fn factor_changed(
        &self,
        account: &AccountId,
        client: &ClientInfo,
        kind: AuditKind,
        detail: Option<&str>,
        change: crate::FactorChange,
    ) {
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            ip: client.ip.as_deref(),
            detail,
            ..AuditEvent::of(kind)
        })
        .await;
        self.notify(account, crate::Message::SecondFactorChanged { change })
            .await;
    }

    /// Ends every session of the account but `keep` (a session id hash), and every remember-me series, on every
    /// node: what a change of factors does, since a thief's session or cookie must not outlive it.
    pub(crate) async fn end_grants_of(&self, account: &AccountId, keep: Option<&str>) -> Result<(), BrokerError> {
        self.store.delete_remember_of(account, None).await?;
        let ended = self.store.delete_sessions_of(account, keep).await?;
        self.forget(&ended).await;
        Ok(())
    }

    /// [`Broker::end_grants_of`] with every personal access token too: for the changes that say a factor may be in
    /// someone else's hands (a recovery code used, an operator's reset), after which a token minted by whoever had
    /// it must not go on working.
    async fn end_all_grants_of(&self, account: &AccountId) -> Result<(), BrokerError> {
        self.end_grants_of(account, None).await?;
        let tokens = self.store.delete_tokens_of(account).await?;
        self.forget(&tokens).await;
        Ok(())
    }

    /// What the account's first second factor ends: every session (the caller renews its own with the factor),
    /// every remember-me series and every personal access token, on every node. All of them were granted on the
    /// primary proof alone; a token minted by someone who knew the password before the owner turned the factor on
    /// must not outlive it, or the factor protects nothing against that person.
    pub(crate) async fn end_grants_of_unprotected(&self, account: &AccountId) -> Result<(), BrokerError> {
        self.end_all_grants_of(account).await
    }

    /// Starts enrolling a TOTP authenticator from the account page (fresh sign-in required): a new secret,
    /// stored sealed and unconfirmed until [`Broker::confirm_totp`]. Starting again replaces an unconfirmed one.
    pub async fn begin_totp(&self, session: &ActiveSession) -> Result<TotpEnrolment, SecondFactorError> {
        self.may_add_factor(session).await?;
        let account = &session.account_id;
        // One authenticator app per account; passkeys do not stand in its way.
        if self.has_totp(account).await? {
            return Err(SecondFactorError::AlreadyEnrolled);
        }
        let secret = self.store_new_totp(account, &session.id_hash()).await?;
        Ok(self.enrolment_view(account, &secret).await?)
    }

    /// Confirms the authenticator being enrolled with its first code (fresh sign-in required): it becomes the
    /// account's second factor, a new set of recovery codes is made, every other session, every remember-me
    /// series and every personal access token of the account end (all were granted on the password alone), and
    /// this session goes on under a new id as multi-factor (it just proved the factor).
    pub async fn confirm_totp(
        &self,
        session: &ActiveSession,
        code: &str,
        client: &ClientInfo,
    ) -> Result<FactorAdded, SecondFactorError> {
        self.may_add_factor(session).await?;
        let account = &session.account_id;
        if !self
            .confirm_code(account, code, client, &session.source, &session.id_hash())
            .await?
        {
            return Err(SecondFactorError::WrongCode { discarded: false });
        }
        let recovery_codes = self.new_recovery_codes(account).await?;
        self.end_grants_of_unprotected(account).await?;
        let renewed = self.renew_with_factor(session, AuthMethod::Otp, client).await?;
        self.factor_changed(
            account,
            client,
            AuditKind::SecondFactorAdded,
            Some("totp"),
            crate::FactorChange::AuthenticatorAdded,
        )
        .await;
        Ok(FactorAdded {
            session: renewed,
            recovery_codes,
        })
    }

    /// Removes the account's authenticator and recovery codes (fresh sign-in required); every other session and
    /// every remember-me series of the account end.
    pub async fn remove_totp(&self, session: &ActiveSession, client: &ClientInfo) -> Result<(), SecondFactorError> {
        // A factor is taken away or replaced only by someone who proved it just now (ASVS 7.5.1): a fresh
        // password alone is what a thief of the password has.
        if !self.is_fresh(session) || !self.is_fresh_multi_factor(session) {
            return Err(SecondFactorError::NotFresh);
        }
        let account = &session.account_id;
        // Passkeys stay; the recovery codes go only with the last factor.
        if !self.store.delete_totp(account).await? {
            return Err(SecondFactorError::NoFactor);
        }
        self.end_grants_of(account, Some(&session.id_hash())).await?;
        self.factor_changed(
            account,
            client,
            AuditKind::SecondFactorRemoved,
            Some("totp"),
            crate::FactorChange::AuthenticatorRemoved,
        )
        .await;
        Ok(())
    }

    /// A new set of recovery codes (fresh sign-in required; the account must have a second factor): the old set
    /// stops working, and every other session and every remember-me series of the account end.
    pub async fn regenerate_recovery_codes(
        &self,
        session: &ActiveSession,
        client: &ClientInfo,
    ) -> Result<RecoveryCodes, SecondFactorError> {
        // A factor is taken away or replaced only by someone who proved it just now (ASVS 7.5.1): a fresh
        // password alone is what a thief of the password has.
        if !self.is_fresh(session) || !self.is_fresh_multi_factor(session) {
            return Err(SecondFactorError::NotFresh);
        }
        let account = &session.account_id;
        if !self.has_second_factor(account).await? {
            return Err(SecondFactorError::NoFactor);
        }
        let codes = self.new_recovery_codes(account).await?;
        self.end_grants_of(account, Some(&session.id_hash())).await?;
        self.factor_changed(
            account,
            client,
            AuditKind::RecoveryCodesRegenerated,
            None,
            crate::FactorChange::RecoveryCodesRegenerated,
        )
        .await;
        Ok(codes)
    }

    /// Removes every second factor of an account, for an operator helping a locked-out person
    /// (`vestibule user reset-2fa`); its sessions, remember-me series, tokens and any pending address change end
    /// too. Audited with `detail`.
    /// Returns whether there was anything to remove.
    pub async fn reset_second_factors(&self, account: &AccountId, detail: &str) -> Result<bool, BrokerError> {
        let removed = self.store.delete_second_factors(account).await?;
        self.end_all_grants_of(account).await?;
        // Whoever locked the person out may have asked to move the address too.
        self.cancel_email_change(account).await?;
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            detail: Some(detail),
            ..AuditEvent::of(AuditKind::SecondFactorReset)
        })
        .await;
        if removed {
            self.notify(
                account,
                crate::Message::SecondFactorChanged {
                    change: crate::FactorChange::RemovedByOperator,
                },
            )
            .await;
        }
        Ok(removed)
    }

    /// Step-up: a signed-in session proves its account's second factor again (a TOTP or recovery code), and goes
    /// on under a new id with the factor's time recorded, so routes that require a fresh second factor let it
    /// through.
    pub async fn step_up(
        &self,
        session: &ActiveSession,
        code: &str,
        client: &ClientInfo,
    ) -> Result<NewSession, SecondFactorError> {
        self.step_up_with(session, Proof::Code(code), client).await
    }

    /// Step-up with either proof (see [`Broker::step_up`]).
    pub(crate) async fn step_up_with(
        &self,
        session: &ActiveSession,
        proof: Proof<'_>,
        client: &ClientInfo,
    ) -> Result<NewSession, SecondFactorError> {
        let account = &session.account_id;
        if !self.has_second_factor(account).await? {
            return Err(SecondFactorError::NoFactor);
        }
        let proven = match proof {
            Proof::Code(code) => self.check_code(account, code, client, &session.source).await?,
            Proof::Passkey(answer) => {
                let bound_to = session.id_hash();
                let expected = Expected {
                    purpose: Purpose::StepUp,
                    bound_to: &bound_to,
                };
                self.check_passkey(account, expected, answer, client, &session.source)
                    .await?
            }
        };
        let Some(method) = proven else {
            return Err(SecondFactorError::WrongCode { discarded: false });
        };
        if method == AuthMethod::RecoveryCode {
            // As at sign-in: someone who needs a recovery code may have lost a device to someone else.
            self.end_all_grants_of(account).await?;
        }
        let renewed = self.renew_with_factor(session, method, client).await?;
        let detail = format!("step-up: {}", method.as_str());
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            source: Some(session.source.as_str()),
            ip: client.ip.as_deref(),
            detail: Some(&detail),
            ..AuditEvent::of(AuditKind::LoginSuccess)
        })
        .await;
        // The old id ends: the session goes on only under the new one.
        self.end_session_by_key(&session.key).await?;
        Ok(renewed)
    }

    /// The redirect sources through which `session` can step up: those whose own multi-factor sign-in is trusted
    /// here (`trust_upstream_mfa`) and where its account has an identity. For an account whose only second factor
    /// is its provider's, step-up goes there; the step-up page offers them.
    pub async fn provider_step_up_sources(&self, session: &ActiveSession) -> Result<Vec<SourceId>, BrokerError> {
        let mut out: Vec<SourceId> = Vec::new();
        for identity in self.store.identities_of(&session.account_id).await? {
            let trusted = self.policy(&identity.source).trust_upstream_mfa
                && matches!(
                    self.source(identity.source.as_str()).map(|s| s.flow()),
                    Some(Flow::Redirect(_))
                );
            if trusted && !out.contains(&identity.source) {
                out.push(identity.source);
            }
        }
        Ok(out)
    }

    /// Starts a step-up at an identity provider: the provider is asked to authenticate the person now
    /// (`prompt=login`, `max_age=0`), and the callback renews `session`, and only it, when the identity that comes
    /// back is this account's at that source, the provider reports a multi-factor sign-in the source trusts
    /// (`trust_upstream_mfa`), and its `auth_time` is not before this start. `source` must be one of
    /// [`Broker::provider_step_up_sources`].
    pub async fn start_provider_step_up(
        &self,
        session: &ActiveSession,
        source: &SourceId,
        next: Option<String>,
    ) -> Result<crate::RedirectBegin, LoginError> {
        if !self.provider_step_up_sources(session).await?.contains(source) {
            return Err(LoginError::UnknownSource);
        }
        self.begin_redirect(source, next, crate::login::Bound::StepUp(session.id_hash()))
            .await
    }

    /// The callback of a provider step-up (see [`Broker::start_provider_step_up`]): checks the identity and renews
    /// the session under a new id, with its primary and second proof at the provider's `auth_time`.
    pub(crate) async fn finish_provider_step_up(
        &self,
        session: &ActiveSession,
        identity: &ExternalIdentity,
        started_at: Timestamp,
        client: &ClientInfo,
    ) -> Result<NewSession, LoginError> {
        let owner = self.store.find_identity(&identity.source, &identity.subject).await?;
        let why = if owner.is_none_or(|o| o.account_id != session.account_id) {
            // Someone else's account at the provider (or one never linked here) proves nothing about this one.
            Some("step_up_other_identity")
        } else if !self.policy(&identity.source).upstream_mfa(identity) {
            Some("step_up_without_mfa")
        } else if !identity
            .auth_time
            .is_some_and(|t| started_at.0 != 0 && t.0 >= started_at.0.saturating_sub(STEP_UP_SKEW_SECS))
        {
            // The provider answered from an earlier login (it ignored max_age=0) or did not say when: not now.
            Some("step_up_stale_authentication")
        } else {
            None
        };
        if let Some(why) = why {
            self.audit_failure(&identity.source, client, None, why).await;
            return Err(LoginError::Rejected(RejectReason::NotPermitted));
        }
        let mut methods = session.methods.clone();
        if !methods.contains(&AuthMethod::UpstreamMfa) {
            methods.push(AuthMethod::UpstreamMfa);
        }
        let at = crate::login::proof_time(identity, self.now());
        let proven = crate::broker::Proven {
            source: &session.source,
            subject: session.subject.as_ref(),
            at,
            checked_at: None,
            methods,
            second_factor_at: Some(at),
        };
        let renewed = self
            .create_session_proven(&session.account_id, proven, client, None)
            .await?;
        self.audit(&AuditEvent {
            account_id: Some(session.account_id.as_str()),
            source: Some(identity.source.as_str()),
            subject: Some(identity.subject.as_str()),
            ip: client.ip.as_deref(),
            detail: Some("step-up: mfa"),
            ..AuditEvent::of(AuditKind::LoginSuccess)
        })
        .await;
        // The old id ends: the session goes on only under the new one.
        self.end_session_by_key(&session.key).await?;
        Ok(renewed)
    }

    /// A new session (new id) carrying on `session` after it proved a second factor by `method` now. It keeps
    /// its own proof time: a code is not a password.
    pub(crate) async fn renew_with_factor(
        &self,
        session: &ActiveSession,
        method: AuthMethod,
        client: &ClientInfo,
    ) -> Result<NewSession, BrokerError> {
        let mut methods = session.methods.clone();
        if !methods.contains(&method) {
            methods.push(method);
        }
        let proven = crate::broker::Proven {
            source: &session.source,
            subject: session.subject.as_ref(),
            at: session.authenticated_at,
            checked_at: None,
            methods,
            second_factor_at: Some(self.now()),
        };
        self.create_session_proven(&session.account_id, proven, client, None)
            .await
    }

    /// Refuses to add a factor (an authenticator app, a passkey) unless the session is fresh and, when the account
    /// already has a second factor, that factor was proven within `fresh_secs` (ASVS 7.5.1). A fresh password alone
    /// is what a thief of the password has; a factor of the thief's own would then sign in as multi-factor (a
    /// passkey even without the password). The first factor of an account needs the fresh sign-in only.
    pub(crate) async fn may_add_factor(&self, session: &ActiveSession) -> Result<(), SecondFactorError> {
        if !self.is_fresh(session)
            || (!self.is_fresh_multi_factor(session) && self.has_second_factor(&session.account_id).await?)
        {
            return Err(SecondFactorError::NotFresh);
        }
        Ok(())
    }

    /// Whether the session proved a second factor within `fresh_secs` (step-up for sensitive routes).
    pub fn is_fresh_multi_factor(&self, session: &ActiveSession) -> bool {
        session.assurance == crate::Assurance::Multi
            && session.second_factor_at.0 != 0
            && !session.is_stale()
            && crate::self_service::fresh_at(session.second_factor_at, self.settings.fresh_secs, self.now())
    }

    /// Deletes expired half-signed-in states.
    pub(crate) async fn purge_second_factor(&self, now: Timestamp) -> Result<(), BrokerError> {
        self.store.purge_pending_second_factor(now).await?;
        self.purge_passkey_ceremonies(now).await
    }
}

/// Whether the unconfirmed factor `f` was begun by `begun_by` (compared in constant time; a row from before the
/// column existed belongs to nobody).
fn begun_by_matches(f: &vestibule_core::storage::TotpFactor, begun_by: &str) -> bool {
    use subtle::ConstantTimeEq;
    f.begun_by
        .as_deref()
        .is_some_and(|b| bool::from(b.as_bytes().ct_eq(begun_by.as_bytes())))
}
