//! Passkeys (WebAuthn, with `webauthn-rs` on RustCrypto): registering them from the account page, using one as
//! the second step after a primary proof or for step-up, and signing in with one alone (passwordless, with a
//! discoverable credential).
//!
//! The relying party id is the host of the broker's public URL and the only origin accepted is that URL's scheme,
//! host and port. WebAuthn refuses IP addresses as relying party ids, so with an IP host passkeys are off
//! ([`PasskeyMode`]).
//!
//! Every ceremony (a challenge and what checking its answer needs) is kept in the database, never in a cookie: it
//! is single use (taken before it is looked at), lives five minutes, and is bound to what started it — the
//! session, the half-signed-in state, or the browser's pre-session cookie — so an id copied to another browser is
//! worthless. Every assertion check goes through the limiter under the account's second-factor key, like codes.
//!
//! What a passkey sign-in records (`amr`): as a second step, `hwk` (proof of possession of a key held by an
//! authenticator, RFC 8176) after the primary proof's `pwd`/`fed`; alone, `hwk` and `user`: the authenticator
//! verified the person itself (a PIN or a biometric; WebAuthn's UV flag) before it signed. A passwordless sign-in
//! is multi-factor: the key is something the person has, and the authenticator unlocks it only with something they
//! know or are, checked on the device. That is why a passwordless assertion without user verification is refused.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::SecretString;
use vestibule_core::storage::{AuditEvent, AuditKind, PasskeyCeremony, PasskeyRecord};
use vestibule_core::{AccountId, SourceId, Timestamp};
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use crate::second_factor::{code_key, Proof};
use crate::settings::PasskeyMode;
use crate::{ActiveSession, AuthMethod, Broker, BrokerError, ClientInfo, NewSession, RecoveryCodes, SecondFactorError};
use crate::{SecondFactorSettings, SecretToken};

/// How long a ceremony may take: WebAuthn's own default timeout for the browser's prompt.
const CEREMONY_SECS: i64 = 300;
/// The name passwordless attempts are throttled under, in place of a source (none has proven anything yet).
const PASSKEY_SOURCE: &str = "passkey";
/// The longest name a passkey may be given.
const MAX_NAME_CHARS: usize = 64;

/// The relying party for a broker at `base_url`, or `None` when passkeys are off (configured so, or `auto` with an
/// IP address for a host). `on` with a host WebAuthn cannot use is a configuration error that says why.
pub(crate) fn relying_party(base_url: &str, settings: &SecondFactorSettings) -> Result<Option<Webauthn>, BrokerError> {
    if settings.passkeys == PasskeyMode::Off {
        return Ok(None);
    }
    let url = Url::parse(base_url).map_err(|e| BrokerError::Config(format!("public URL: {e}")))?;
    let Some(host) = url.domain() else {
        if settings.passkeys == PasskeyMode::On {
            return Err(BrokerError::Config(format!(
                "second_factor.passkeys = \"on\" needs a public_url whose host is a name, not an IP address \
                 ({base_url}): WebAuthn does not accept IP addresses as relying party ids. For development use \
                 http://localhost:PORT"
            )));
        }
        tracing::info!(
            public_url = base_url,
            "passkeys are off: the public URL's host is an IP address, which WebAuthn does not accept as a \
             relying party id (use http://localhost:PORT for development)"
        );
        return Ok(None);
    };
    // The origin is the URL's scheme, host and port; its path (a mount point) is not part of it.
    let origin =
        Url::parse(&url.origin().ascii_serialization()).map_err(|e| BrokerError::Config(format!("public URL: {e}")))?;
    let wa = WebauthnBuilder::new(host, &origin)
        .and_then(|b| b.rp_name(&settings.issuer).build())
        .map_err(|e| BrokerError::Config(format!("second_factor.passkeys: WebAuthn refused {base_url}: {e}")))?;
    Ok(Some(wa))
}

/// What a ceremony is for; stored with it and checked when it is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Register,
    SecondFactor,
    StepUp,
    Passwordless,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SecondFactor => "second_factor",
            Purpose::StepUp => "step_up",
            Purpose::Passwordless => "passwordless",
        }
    }
}

/// What a ceremony being finished must have been started for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub(crate) purpose: Purpose,
    /// The hash of what it must be bound to.
    pub(crate) bound_to: &'a str,
}

/// A browser's answer: the ceremony id and the authenticator's `PublicKeyCredential` as JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer<'a> {
    pub(crate) ceremony: &'a str,
    pub(crate) credential: &'a str,
}

/// A ceremony for the browser: its id (for the form) and the options for `navigator.credentials` (JSON, for the
/// page's data block). `Debug` does not print the id.
pub struct PasskeyChallenge {
    /// The ceremony id the form posts back; only its hash is stored.
    pub ceremony: SecretString,
    /// `PublicKeyCredentialCreationOptions` or `...RequestOptions` as JSON, binary fields in base64url.
    pub options: String,
}

impl std::fmt::Debug for PasskeyChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasskeyChallenge(..)")
    }
}

/// A passkey as the account page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyView {
    /// Its id, for the remove form.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last signed a sign-in.
    pub last_used_at: Option<Timestamp>,
}

/// A passkey registered from the account page.
#[derive(Debug)]
pub struct PasskeyAdded {
    /// The person's session, renewed: set it as the session cookie.
    pub session: NewSession,
    /// Recovery codes to show once: the passkey is the account's first second factor.
    pub recovery_codes: Option<RecoveryCodes>,
}

/// A passwordless sign-in that passed.
#[derive(Debug)]
pub struct PasswordlessDone {
    /// The new session: set its cookie.
    pub session: NewSession,
}

/// The WebAuthn user handle of an account: derived from the account id under the second-factor key, so it is
/// stable (every passkey of the account carries the same one, and an authenticator shows them as one account)
/// without being stored, and says nothing about the account id to whoever reads an authenticator.
fn user_handle_of(broker: &Broker, account: &AccountId) -> Uuid {
    let digest = broker.sealer.user_handle(account);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The signature counter recorded in a stored credential. webauthn-rs keeps it private; its serialized form (the
/// only form we store) names it `cred.counter`.
fn stored_counter(credential_json: &str) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_str(credential_json).ok()?;
    value
        .get("cred")?
        .get("counter")?
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
}

/// A passkey's name as given, trimmed and bounded; empty becomes "Passkey".
fn clean_name(name: &str) -> String {
    let name: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    if name.is_empty() {
        "Passkey".to_owned()
    } else {
        name
    }
}

impl Broker {
    fn webauthn(&self) -> Result<&Arc<Webauthn>, SecondFactorError> {
        self.webauthn.as_ref().ok_or(SecondFactorError::PasskeysOff)
    }

    /// Whether passkeys are on (see [`PasskeyMode`]).
    pub fn passkeys_enabled(&self) -> bool {
        self.webauthn.is_some()
    }

    /// The account's passkeys, oldest first.
    pub async fn passkeys(&self, account: &AccountId) -> Result<Vec<PasskeyView>, BrokerError> {
        Ok(self
            .store
            .passkeys_of(account)
            .await?
            .into_iter()
            .map(|p| PasskeyView {
                id: p.id,
                name: p.name,
                created_at: p.created_at,
                last_used_at: p.last_used_at,
            })
            .collect())
    }

    /// Stores a ceremony's state and returns what the browser needs.
    async fn hold_ceremony(
        &self,
        purpose: Purpose,
        bound_to: String,
        account: Option<&AccountId>,
        state: &impl serde::Serialize,
        options: &impl serde::Serialize,
    ) -> Result<PasskeyChallenge, BrokerError> {
        let encode = |what: &str, e: serde_json::Error| BrokerError::Config(format!("passkey {what}: {e}"));
        let state = serde_json::to_string(state).map_err(|e| encode("state", e))?;
        let options = serde_json::to_string(options).map_err(|e| encode("options", e))?;
        let id = SecretToken::generate();
        self.store
            .insert_passkey_ceremony(&PasskeyCeremony {
                id_hash: id.hash_hex(),
                purpose: purpose.as_str().to_owned(),
                bound_to,
                account_id: account.cloned(),
                state,
                expires_at: self.now().plus_secs(CEREMONY_SECS),
            })
            .await?;
        Ok(PasskeyChallenge {
            ceremony: id.expose().to_owned().into(),
            options,
        })
    }

    /// Takes the ceremony behind `id` (it is gone after this, whatever follows) and returns its state if it is
    /// for `purpose`, bound to `bound_to`, for `account` (`None`: for no account yet), and not expired.
    async fn take_ceremony(
        &self,
        id: &str,
        purpose: Purpose,
        bound_to: &str,
        account: Option<&AccountId>,
    ) -> Result<Option<String>, BrokerError> {
        if !crate::secret::plausible(id) {
            return Ok(None);
        }
        let hash = crate::secret::hex_of(&crate::secret::hash_token(id));
        let Some(c) = self.store.take_passkey_ceremony(&hash).await? else {
            return Ok(None);
        };
        let ours = c.purpose == purpose.as_str()
            && c.bound_to == bound_to
            && c.account_id.as_ref() == account
            && c.expires_at > self.now();
        Ok(ours.then_some(c.state))
    }

    /// Starts registering a passkey from the account page (fresh sign-in required). The authenticator is asked
    /// for a discoverable credential (so it can also sign in without a password) and to verify the person.
    pub async fn begin_passkey_registration(
        &self,
        session: &ActiveSession,
    ) -> Result<PasskeyChallenge, SecondFactorError> {
        let wa = self.webauthn()?;
        self.may_add_factor(session).await?;
        let account = &session.account_id;
        // What the authenticator shows: the address (or name) as the account name, the display name beside it.
        let (name, display) = match self.store.get_account(account).await? {
            Some(a) => {
                let name = a
                    .email
                    .or(a.display_name.clone())
                    .unwrap_or_else(|| account.to_string());
                (name.clone(), a.display_name.unwrap_or(name))
            }
            None => (account.to_string(), account.to_string()),
        };
        let existing: Vec<_> = self
            .store
            .passkeys_of(account)
            .await?
            .iter()
            .filter_map(|p| serde_json::from_str::<Passkey>(&p.credential).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let (mut options, state) = wa
            .start_passkey_registration(user_handle_of(self, account), &name, &display, Some(existing))
            .map_err(|e| BrokerError::Config(format!("passkey registration: {e}")))?;
        // webauthn-rs asks for a non-discoverable credential ("discouraged"); a passkey that is to sign in without
        // a name first must be discoverable. The answer is checked the same way either way.
        if let Some(sel) = options.public_key.authenticator_selection.as_mut() {
            sel.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
            sel.require_resident_key = true;
        }
        Ok(self
            .hold_ceremony(Purpose::Register, session.id_hash(), Some(account), &state, &options)
            .await?)
    }

    /// Finishes registering a passkey (fresh sign-in required): the authenticator's answer is checked against the
    /// ceremony this session started, the passkey is stored under `name`, every session and remember-me series of
    /// the account end (this one goes on under a new id), the change is audited and mailed. The account's first
    /// factor comes with recovery codes, shown once.
    pub async fn finish_passkey_registration(
        &self,
        session: &ActiveSession,
        ceremony: &str,
        name: &str,
        credential: &str,
        client: &ClientInfo,
    ) -> Result<PasskeyAdded, SecondFactorError> {
        let wa = self.webauthn()?;
        self.may_add_factor(session).await?;
        let account = &session.account_id;
        let Some(state) = self
            .take_ceremony(ceremony, Purpose::Register, &session.id_hash(), Some(account))
            .await?
        else {
            return Err(SecondFactorError::Expired);
        };
        let state: PasskeyRegistration =
            serde_json::from_str(&state).map_err(|e| BrokerError::Config(format!("passkey state: {e}")))?;
        let answer: RegisterPublicKeyCredential =
            serde_json::from_str(credential).map_err(|_| SecondFactorError::PasskeyRefused)?;
        let passkey = wa.finish_passkey_registration(&answer, &state).map_err(|e| {
            tracing::info!(error = %e, "a passkey registration was refused");
            SecondFactorError::PasskeyRefused
        })?;
        let first = !self.has_second_factor(account).await?;
        let json = serde_json::to_string(&passkey).map_err(|e| BrokerError::Config(format!("passkey: {e}")))?;
        let name = clean_name(name);
        let record = PasskeyRecord {
            id: SecretToken::generate().expose().chars().take(16).collect(),
            account_id: account.clone(),
            cred_id: b64(passkey.cred_id().as_ref()),
            user_handle: user_handle_of(self, account).to_string(),
            name: name.clone(),
            credential: json,
            created_at: self.now(),
            last_used_at: None,
        };
        match self.store.insert_passkey(&record).await {
            Ok(()) => {}
            // WebAuthn: a credential id registered before (to anyone) is refused.
            Err(vestibule_core::storage::StorageError::Conflict(_)) => return Err(SecondFactorError::PasskeyRefused),
            Err(e) => return Err(e.into()),
        }
        let recovery_codes = if first {
            Some(self.new_recovery_codes(account).await?)
        } else {
            None
        };
        if first {
            // As for the first authenticator app: the personal access tokens, minted on the password alone, end too.
            self.end_grants_of_unprotected(account).await?;
        } else {
            self.end_grants_of(account, None).await?;
        }
        let renewed = self.renew_with_factor(session, AuthMethod::Passkey, client).await?;
        let detail = format!("passkey: {name}");
        self.factor_changed(
            account,
            client,
            AuditKind::SecondFactorAdded,
            Some(&detail),
            crate::FactorChange::PasskeyAdded,
        )
        .await;
        Ok(PasskeyAdded {
            session: renewed,
            recovery_codes,
        })
    }

    /// Removes one of the account's passkeys (a fresh sign-in and a second factor proven in it recently, as for
    /// the authenticator app); the recovery codes go with the last factor. Every other session and every
    /// remember-me series of the account end.
    pub async fn remove_passkey(
        &self,
        session: &ActiveSession,
        id: &str,
        client: &ClientInfo,
    ) -> Result<(), SecondFactorError> {
        if !self.is_fresh(session) || !self.is_fresh_multi_factor(session) {
            return Err(SecondFactorError::NotFresh);
        }
        let account = &session.account_id;
        let name = self
            .store
            .passkeys_of(account)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.name);
        let Some(name) = name else {
            return Err(SecondFactorError::NoFactor);
        };
        if !self.store.delete_passkey(account, id).await? {
            return Err(SecondFactorError::NoFactor);
        }
        self.end_grants_of(account, Some(&session.id_hash())).await?;
        let detail = format!("passkey: {name}");
        self.factor_changed(
            account,
            client,
            AuditKind::SecondFactorRemoved,
            Some(&detail),
            crate::FactorChange::PasskeyRemoved,
        )
        .await;
        Ok(())
    }

    /// A ceremony asking for one of `account`'s passkeys, bound to `bound_to`; `None` when passkeys are off or
    /// the account has none.
    async fn begin_assertion(
        &self,
        purpose: Purpose,
        bound_to: String,
        account: &AccountId,
    ) -> Result<Option<PasskeyChallenge>, BrokerError> {
        let Some(wa) = self.webauthn.as_ref() else {
            return Ok(None);
        };
        let passkeys: Vec<Passkey> = self
            .store
            .passkeys_of(account)
            .await?
            .iter()
            .filter_map(|p| serde_json::from_str(&p.credential).ok())
            .collect();
        if passkeys.is_empty() {
            return Ok(None);
        }
        let (options, state) = wa
            .start_passkey_authentication(&passkeys)
            .map_err(|e| BrokerError::Config(format!("passkey authentication: {e}")))?;
        Ok(Some(
            self.hold_ceremony(purpose, bound_to, Some(account), &state, &options)
                .await?,
        ))
    }

    /// A passkey ceremony for the second step of the half-signed-in state behind `token`; `None` when there is
    /// no such state, passkeys are off, or the account has none.
    pub async fn begin_passkey_second_factor(&self, token: &str) -> Result<Option<PasskeyChallenge>, BrokerError> {
        let Some(pending) = self.live_pending(token).await? else {
            return Ok(None);
        };
        self.begin_assertion(Purpose::SecondFactor, pending.token_hash, &pending.account_id)
            .await
    }

    /// A passkey ceremony for step-up of a signed-in session; `None` when passkeys are off or the account has none.
    pub async fn begin_passkey_step_up(
        &self,
        session: &ActiveSession,
    ) -> Result<Option<PasskeyChallenge>, BrokerError> {
        self.begin_assertion(Purpose::StepUp, session.id_hash(), &session.account_id)
            .await
    }

    /// The second step with a passkey: as [`Broker::finish_second_factor`], with the authenticator's answer to the
    /// ceremony `ceremony` instead of a code.
    pub async fn finish_second_factor_passkey(
        &self,
        token: &str,
        ceremony: &str,
        credential: &str,
        client: &ClientInfo,
        previous_session: Option<&str>,
    ) -> Result<crate::SecondStepDone, SecondFactorError> {
        self.finish_second_step(
            token,
            Proof::Passkey(Answer { ceremony, credential }),
            client,
            previous_session,
        )
        .await
    }

    /// Step-up with a passkey: as [`Broker::step_up`], with the authenticator's answer to the ceremony.
    pub async fn step_up_passkey(
        &self,
        session: &ActiveSession,
        ceremony: &str,
        credential: &str,
        client: &ClientInfo,
    ) -> Result<NewSession, SecondFactorError> {
        self.step_up_with(session, Proof::Passkey(Answer { ceremony, credential }), client)
            .await
    }

    /// Checks a passkey assertion for a known account (second step, step-up): throttled and recorded like a code.
    /// `None`: refused.
    pub(crate) async fn check_passkey(
        &self,
        account: &AccountId,
        expected: Expected<'_>,
        answer: Answer<'_>,
        client: &ClientInfo,
        source: &SourceId,
    ) -> Result<Option<AuthMethod>, SecondFactorError> {
        let key = code_key(account);
        let (attempt, _turn) = self.code_attempt(&key, client, source.as_str()).await?;
        let ok = self.verify_assertion(account, expected, answer, client).await?;
        let method = ok.then_some(AuthMethod::Passkey);
        self.record_code_outcome(&attempt, account, client, ok, method).await;
        Ok(method)
    }

    async fn verify_assertion(
        &self,
        account: &AccountId,
        expected: Expected<'_>,
        answer: Answer<'_>,
        client: &ClientInfo,
    ) -> Result<bool, SecondFactorError> {
        let Some(wa) = self.webauthn.as_ref() else {
            return Ok(false);
        };
        let Some(state) = self
            .take_ceremony(answer.ceremony, expected.purpose, expected.bound_to, Some(account))
            .await?
        else {
            return Ok(false);
        };
        let state: PasskeyAuthentication =
            serde_json::from_str(&state).map_err(|e| BrokerError::Config(format!("passkey state: {e}")))?;
        let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(answer.credential) else {
            return Ok(false);
        };
        let result = match wa.finish_passkey_authentication(&answer, &state) {
            Ok(r) => r,
            Err(e) => {
                self.assertion_refused(Some(account), &e, client).await;
                return Ok(false);
            }
        };
        let Some(record) = self
            .store
            .passkey_by_cred_id(&b64(result.cred_id().as_ref()))
            .await?
            .filter(|p| &p.account_id == account)
        else {
            return Ok(false);
        };
        Ok(self.accept_assertion(&record, &result, client).await?)
    }

    /// Audits a refused assertion when it says the authenticator may be cloned.
    async fn assertion_refused(&self, account: Option<&AccountId>, e: &WebauthnError, client: &ClientInfo) {
        tracing::info!(error = %e, "a passkey assertion was refused");
        if matches!(e, WebauthnError::CredentialPossibleCompromise) {
            self.audit_counter(account, client).await;
        }
    }

    async fn audit_counter(&self, account: Option<&AccountId>, client: &ClientInfo) {
        self.audit(&AuditEvent {
            account_id: account.map(AccountId::as_str),
            ip: client.ip.as_deref(),
            ..AuditEvent::of(AuditKind::PasskeyCounterRegressed)
        })
        .await;
    }

    /// The last checks of a verified assertion, against the passkey as stored now (not as it was when the
    /// ceremony started): the person was verified, and the signature counter moved forward (a counter that did
    /// not is a cloned authenticator or a replay: refused and audited). The new counter is recorded with a
    /// compare-and-set, so of two assertions racing with one counter value only one passes.
    async fn accept_assertion(
        &self,
        record: &PasskeyRecord,
        result: &AuthenticationResult,
        client: &ClientInfo,
    ) -> Result<bool, BrokerError> {
        if !result.user_verified() {
            return Ok(false);
        }
        // A record whose counter cannot be read is not guessed at (as 0, say, which would accept any counter).
        let Some(stored) = stored_counter(&record.credential) else {
            tracing::warn!(passkey = %record.id, "a stored passkey has no readable counter; refused");
            return Ok(false);
        };
        // Authenticators that keep no counter always send 0: nothing to compare then.
        if (stored != 0 || result.counter() != 0) && result.counter() <= stored {
            self.audit_counter(Some(&record.account_id), client).await;
            return Ok(false);
        }
        let Ok(mut passkey) = serde_json::from_str::<Passkey>(&record.credential) else {
            return Ok(false);
        };
        passkey.update_credential(result);
        let updated = serde_json::to_string(&passkey).map_err(|e| BrokerError::Config(format!("passkey: {e}")))?;
        Ok(self
            .store
            .record_passkey_use(&record.account_id, &record.id, &record.credential, &updated, self.now())
            .await?)
    }

    /// Starts a passwordless sign-in for the browser whose CSRF binding is `binding`: any discoverable passkey
    /// registered here may answer.
    pub async fn begin_passwordless(&self, binding: &str) -> Result<PasskeyChallenge, SecondFactorError> {
        let wa = self.webauthn()?;
        let (mut options, state) = wa
            .start_discoverable_authentication()
            .map_err(|e| BrokerError::Config(format!("passkey authentication: {e}")))?;
        // The library asks for the browser's autofill ("conditional") prompt; this is a button, so a modal prompt.
        options.mediation = None;
        let bound_to = crate::secret::hex_of(&crate::secret::hash_token(binding));
        Ok(self
            .hold_ceremony(Purpose::Passwordless, bound_to, None, &state, &options)
            .await?)
    }

    /// Finishes a passwordless sign-in: the passkey that answered finds its account (its credential id, and the
    /// user handle it was made for); it must have verified the person. Throttled under the account's second-factor
    /// key (unknown credentials under one key of their own, and per address). The session's methods are `hwk` and
    /// `user`: multi-factor.
    pub async fn finish_passwordless(
        &self,
        binding: &str,
        ceremony: &str,
        credential: &str,
        client: &ClientInfo,
        previous_session: Option<&str>,
    ) -> Result<PasswordlessDone, SecondFactorError> {
        let wa = self.webauthn()?;
        let answer = serde_json::from_str::<PublicKeyCredential>(credential).ok();
        // Who the answer claims to be, before anything is checked: it chooses the throttling key.
        let claimed = match answer.as_ref().map(|a| wa.identify_discoverable_authentication(a)) {
            Some(Ok((handle, cred_id))) => self
                .store
                .passkey_by_cred_id(&b64(cred_id))
                .await?
                .filter(|p| p.user_handle == handle.to_string()),
            _ => None,
        };
        let key = match &claimed {
            Some(p) => code_key(&p.account_id),
            None => "2fa:unknown-passkey".to_owned(),
        };
        let (attempt, _turn) = self.code_attempt(&key, client, PASSKEY_SOURCE).await?;
        let bound_to = crate::secret::hex_of(&crate::secret::hash_token(binding));
        let state = self
            .take_ceremony(ceremony, Purpose::Passwordless, &bound_to, None)
            .await?;
        let verified = match (answer, claimed, state) {
            (Some(answer), Some(record), Some(state)) => {
                let state: DiscoverableAuthentication =
                    serde_json::from_str(&state).map_err(|e| BrokerError::Config(format!("passkey state: {e}")))?;
                match serde_json::from_str::<Passkey>(&record.credential) {
                    Ok(passkey) => match wa.finish_discoverable_authentication_v2(&answer, state, &passkey) {
                        Ok(result) if self.accept_assertion(&record, &result, client).await? => Some(record),
                        Ok(_) => None,
                        Err(e) => {
                            self.assertion_refused(Some(&record.account_id), &e, client).await;
                            None
                        }
                    },
                    Err(_) => None,
                }
            }
            _ => None,
        };
        let Some(record) = verified else {
            self.throttle_failed(&attempt).await;
            self.audit(&AuditEvent {
                ip: client.ip.as_deref(),
                detail: Some("passkey (passwordless)"),
                ..AuditEvent::of(AuditKind::LoginFailure)
            })
            .await;
            return Err(SecondFactorError::WrongCode { discarded: false });
        };
        let account = record.account_id;
        let session = self.passwordless_session(&account, client, previous_session).await;
        let session = match session {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.throttle_failed(&attempt).await;
                return Err(SecondFactorError::WrongCode { discarded: false });
            }
            Err(e) => return Err(e),
        };
        self.throttle_succeeded(&attempt).await;
        Ok(PasswordlessDone { session })
    }

    /// The session of a passwordless sign-in, under the account's oldest identity whose source is still
    /// configured (a source that rechecks its identities goes on doing so); `None` for a disabled account or one
    /// with no such identity.
    async fn passwordless_session(
        &self,
        account: &AccountId,
        client: &ClientInfo,
        previous: Option<&str>,
    ) -> Result<Option<NewSession>, SecondFactorError> {
        match self.store.get_account(account).await? {
            Some(a) if !a.disabled => {}
            _ => return Ok(None),
        }
        let identities = self.store.identities_of(account).await?;
        let Some(identity) = identities.iter().find(|i| self.source_by_id(&i.source).is_some()) else {
            return Ok(None);
        };
        self.admit(account, &identity.source, Some(&identity.subject), client)
            .await?
            .map_err(SecondFactorError::Refused)?;
        let now = self.now();
        let proven = crate::broker::Proven {
            source: &identity.source,
            subject: Some(&identity.subject),
            at: now,
            checked_at: None,
            methods: vec![AuthMethod::Passkey, AuthMethod::UserVerified],
            second_factor_at: Some(now),
        };
        let session = self.create_session_proven(account, proven, client, previous).await?;
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            source: Some(identity.source.as_str()),
            subject: Some(identity.subject.as_str()),
            ip: client.ip.as_deref(),
            detail: Some("passkey (passwordless)"),
            ..AuditEvent::of(AuditKind::LoginSuccess)
        })
        .await;
        Ok(Some(session))
    }

    /// Deletes expired ceremonies.
    pub(crate) async fn purge_passkey_ceremonies(&self, now: Timestamp) -> Result<(), BrokerError> {
        self.store.purge_passkey_ceremonies(now).await?;
        Ok(())
    }
}
