use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use rand::RngCore;
use vestibule_core::storage::{AuditEvent, AuditKind, BrokerStore, SessionRecord};
use vestibule_core::{AccountId, AuthSource, Clock, PasswordChanger, SourceId, Subject, SystemClock, Timestamp};

use crate::csrf::CsrfKey;
use crate::secret::{hash_token, hex_of, plausible};
use crate::session::{new_token, ActiveSession, AuthMethod, Holder, Liveness, NewSession, Principal};
use crate::{BrokerError, SessionSettings, SourcePolicy};

/// Who is asking: recorded in sessions and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client address, taken only from trusted places (the socket, or a configured proxy's header).
    pub ip: Option<String>,
    /// The `User-Agent` header, shortened.
    pub user_agent: Option<String>,
}

/// The broker. Cheap to share: hold it in an `Arc`.
pub struct Broker {
    pub(crate) store: Arc<dyn BrokerStore>,
    pub(crate) sources: Vec<Arc<dyn AuthSource>>,
    by_id: HashMap<SourceId, usize>,
    policies: HashMap<SourceId, SourcePolicy>,
    default_policy: SourcePolicy,
    pub(crate) settings: SessionSettings,
    pub(crate) clock: Arc<dyn Clock>,
    csrf: CsrfKey,
    /// Bounded by `max_capacity` entries (about 300 bytes each) and by `cache_ttl_secs`: a session revoked on
    /// another node is served from here for at most that long.
    pub(crate) cache: Cache<[u8; 32], Principal>,
    pub(crate) callback_base: String,
    pub(crate) password_changer: Option<Arc<dyn PasswordChanger>>,
    /// Decides, before a credential is checked, whether the attempt may be made.
    pub(crate) limiter: crate::Limiter,
    /// Who needs a second factor, and how the second step behaves.
    pub(crate) second_factor: crate::SecondFactorSettings,
    /// Who may hold and use admin tokens.
    pub(crate) admin: crate::AdminSettings,
    /// Seals TOTP secrets and hashes recovery codes.
    pub(crate) sealer: crate::totp::Sealer,
    /// Takes reset links, confirmations and notices; `None`: nothing is mailed and reset is not offered.
    pub(crate) mailer: Option<Arc<dyn crate::Mailer>>,
    pub(crate) mail_settings: crate::MailSettings,
    /// The WebAuthn relying party (`None`: passkeys are off). Built once from the base URL.
    pub(crate) webauthn: Option<Arc<webauthn_rs::prelude::Webauthn>>,
    /// The last readiness run, shared by the requests that follow it.
    pub(crate) readiness: crate::readiness::ReadinessCache,
    /// The embedding app's hooks (`None`: none registered).
    pub(crate) hooks: Option<Arc<dyn crate::BrokerHooks>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field(
                "sources",
                &self.sources.iter().map(|s| s.id().as_str()).collect::<Vec<_>>(),
            )
            .field("settings", &self.settings)
            .field("hooks", &self.hooks.is_some())
            .finish_non_exhaustive()
    }
}

/// A credential whose identity its source may be asked about again (see [`Broker::recheck_if_due`]).
#[derive(Clone, Copy)]
pub(crate) struct Grant<'a> {
    pub(crate) key: &'a [u8; 32],
    pub(crate) holder: &'a Holder,
    pub(crate) source: &'a SourceId,
    pub(crate) subject: &'a Subject,
    pub(crate) live: &'a Liveness,
}

/// Which kind of credential a use is recorded for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Touch {
    Session,
    Token,
}

/// What a new session was proven with.
#[derive(Debug, Clone)]
pub(crate) struct Proven<'a> {
    pub(crate) source: &'a SourceId,
    pub(crate) subject: Option<&'a Subject>,
    /// When a credential was proven (`Timestamp(0)`: never, for a restored session).
    pub(crate) at: Timestamp,
    /// When the source last confirmed the identity (`None`: now, at sign-in).
    pub(crate) checked_at: Option<Timestamp>,
    /// How it was proven.
    pub(crate) methods: Vec<AuthMethod>,
    /// When a second factor was proven (`None`: not in this session).
    pub(crate) second_factor_at: Option<Timestamp>,
}

/// Builds a [`Broker`].
pub struct BrokerBuilder {
    store: Arc<dyn BrokerStore>,
    base_url: String,
    sources: Vec<Arc<dyn AuthSource>>,
    policies: HashMap<SourceId, SourcePolicy>,
    settings: SessionSettings,
    clock: Arc<dyn Clock>,
    cache_capacity: u64,
    password_changer: Option<Arc<dyn PasswordChanger>>,
    throttle: crate::ThrottleSettings,
    second_factor: crate::SecondFactorSettings,
    second_factor_key: Option<crate::SecondFactorKey>,
    admin: crate::AdminSettings,
    mailer: Option<Arc<dyn crate::Mailer>>,
    mail_settings: crate::MailSettings,
    hooks: Option<Arc<dyn crate::BrokerHooks>>,
}

impl std::fmt::Debug for BrokerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl BrokerBuilder {
    /// Adds a source with the default policy (create accounts, never link by email); the login page shows
    /// sources in the order they are added.
    pub fn source(mut self, source: Arc<dyn AuthSource>) -> Self {
        self.sources.push(source);
        self
    }
    /// Adds a source with its own linking policy.
    pub fn source_with_policy(mut self, source: Arc<dyn AuthSource>, policy: SourcePolicy) -> Self {
        self.policies.insert(source.id().clone(), policy);
        self.sources.push(source);
        self
    }
    /// Session lifetimes.
    pub fn settings(mut self, settings: SessionSettings) -> Self {
        self.settings = settings;
        self
    }
    /// Where time comes from (tests inject a [`vestibule_core::FixedClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Who needs a second factor, and how the second step behaves (default: optional).
    pub fn second_factor(mut self, settings: crate::SecondFactorSettings) -> Self {
        self.second_factor = settings;
        self
    }
    /// Who may create and use tokens with the `admin` scope (default: nobody).
    pub fn admin(mut self, settings: crate::AdminSettings) -> Self {
        self.admin = settings;
        self
    }
    /// The key TOTP secrets are sealed and recovery codes hashed with. Without one, a key is generated once and
    /// kept in the database (like the CSRF key): the secrets are then encrypted, but with a key that whoever reads
    /// the database also has — fine for development, not against a stolen database. Give one in production.
    pub fn second_factor_key(mut self, key: crate::SecondFactorKey) -> Self {
        self.second_factor_key = Some(key);
        self
    }
    /// What changes local passwords (the local source), for `POST /account/password`.
    pub fn password_changer(mut self, changer: Arc<dyn PasswordChanger>) -> Self {
        self.password_changer = Some(changer);
        self
    }
    /// The limits on credential checks (default: [`crate::ThrottleSettings::default`]; always on).
    pub fn throttle(mut self, settings: crate::ThrottleSettings) -> Self {
        self.throttle = settings;
        self
    }
    /// What mails reset links, address confirmations and security notices (default: none, and no reset).
    pub fn mailer(mut self, mailer: Arc<dyn crate::Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }
    /// How long mailed links work (default: [`crate::MailSettings::default`]).
    pub fn mail_settings(mut self, settings: crate::MailSettings) -> Self {
        self.mail_settings = settings;
        self
    }
    /// The embedding app's hooks: told about accounts created, identities linked and unlinked, accounts disabled,
    /// enabled and deleted, and asked before each sign-in is given its session (see [`crate::BrokerHooks`]).
    pub fn hooks(mut self, hooks: Arc<dyn crate::BrokerHooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }
    /// How many sessions the in-process cache holds (default 100 000).
    pub fn cache_capacity(mut self, n: u64) -> Self {
        self.cache_capacity = n;
        self
    }

    /// Checks the sources and loads (or creates, once for all nodes) the server keys.
    pub async fn build(self) -> Result<Broker, BrokerError> {
        let mut by_id = HashMap::new();
        for (i, s) in self.sources.iter().enumerate() {
            if by_id.insert(s.id().clone(), i).is_some() {
                return Err(BrokerError::Config(format!("duplicate source id `{}`", s.id())));
            }
        }
        let mut candidate = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut candidate);
        let stored = self
            .store
            .get_or_insert_key("csrf", &hex_of(&candidate), self.clock.now())
            .await?;
        let key = decode_key(&stored).ok_or_else(|| BrokerError::Config("stored csrf key is malformed".into()))?;
        if let Some((key, problem)) = self.second_factor.problem() {
            return Err(BrokerError::Config(format!("second_factor.{key}: {problem}")));
        }
        if let Some((key, problem)) = self.admin.problem() {
            return Err(BrokerError::Config(format!("admin.{key}: {problem}")));
        }
        let second_factor_key = match self.second_factor_key {
            Some(k) => k,
            None => {
                let candidate = crate::SecondFactorKey::generate().to_hex();
                let stored = self
                    .store
                    .get_or_insert_key("second_factor", &candidate, self.clock.now())
                    .await?;
                crate::SecondFactorKey::parse(&stored)
                    .map_err(|_| BrokerError::Config("stored second_factor key is malformed".into()))?
            }
        };
        let webauthn = crate::passkey::relying_party(&self.base_url, &self.second_factor)?.map(Arc::new);
        let cache = Cache::builder()
            .max_capacity(self.cache_capacity)
            .time_to_live(Duration::from_secs(self.settings.cache_ttl_secs))
            .build();
        let limiter = crate::Limiter::new(self.throttle).with_store(self.store.clone());
        Ok(Broker {
            store: self.store,
            sources: self.sources,
            by_id,
            policies: self.policies,
            default_policy: SourcePolicy::default(),
            settings: self.settings,
            clock: self.clock,
            csrf: CsrfKey::new(key),
            cache,
            callback_base: self.base_url.trim_end_matches('/').to_owned(),
            password_changer: self.password_changer,
            limiter,
            second_factor: self.second_factor,
            admin: self.admin,
            sealer: crate::totp::Sealer::new(&second_factor_key),
            webauthn,
            mailer: self.mailer,
            mail_settings: self.mail_settings,
            readiness: Default::default(),
            hooks: self.hooks,
        })
    }
}

/// A source's recheck interval in seconds (saturating: an interval too long to count is never due).
pub(crate) fn recheck_interval_secs(recheck: &dyn vestibule_core::Recheck) -> i64 {
    i64::try_from(recheck.recheck_interval().as_secs()).unwrap_or(i64::MAX)
}

fn decode_key(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

impl Broker {
    /// Starts building a broker over `store`. `base_url` is the public URL of the broker's routes (with the mount
    /// path, e.g. `https://app.example.com/auth`): redirect callbacks are built from it, never from request headers.
    pub fn builder(store: impl BrokerStore + 'static, base_url: impl Into<String>) -> BrokerBuilder {
        BrokerBuilder {
            store: Arc::new(store),
            base_url: base_url.into(),
            sources: Vec::new(),
            policies: HashMap::new(),
            settings: SessionSettings::default(),
            clock: Arc::new(SystemClock),
            cache_capacity: 100_000,
            password_changer: None,
            throttle: crate::ThrottleSettings::default(),
            second_factor: crate::SecondFactorSettings::default(),
            second_factor_key: None,
            admin: crate::AdminSettings::default(),
            mailer: None,
            mail_settings: crate::MailSettings::default(),
            hooks: None,
        }
    }

    /// The public URL of the broker's routes, as given to [`Broker::builder`] (without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.callback_base
    }

    /// The path part of [`Broker::base_url`]: where the broker's routes are mounted (`""` at the root, `/auth`
    /// when nested). The one place the mount path is given: front ends take it from here.
    pub fn mount_path(&self) -> &str {
        let after_scheme = self.callback_base.split_once("://").map_or("", |(_, rest)| rest);
        after_scheme.find('/').map_or("", |i| &after_scheme[i..])
    }

    /// The configured sources, in order.
    pub fn sources(&self) -> &[Arc<dyn AuthSource>] {
        &self.sources
    }

    /// A source by id.
    pub fn source(&self, id: &str) -> Option<&Arc<dyn AuthSource>> {
        let id = SourceId::new(id).ok()?;
        self.source_by_id(&id)
    }

    /// [`Broker::source`] for an id already validated: no copy of it (the per-request recheck looks up the
    /// session's source on every use).
    pub(crate) fn source_by_id(&self, id: &SourceId) -> Option<&Arc<dyn AuthSource>> {
        self.by_id.get(id).and_then(|i| self.sources.get(*i))
    }

    /// The linking policy of a source.
    pub fn policy(&self, source: &SourceId) -> &SourcePolicy {
        self.policies.get(source).unwrap_or(&self.default_policy)
    }

    /// Session settings.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Second-factor settings.
    pub fn second_factor_settings(&self) -> &crate::SecondFactorSettings {
        &self.second_factor
    }

    /// Who may create and use admin tokens.
    pub fn admin_settings(&self) -> &crate::AdminSettings {
        &self.admin
    }

    /// Now, from the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The CSRF token for forms shown to the browser identified by `binding`.
    pub fn csrf_token(&self, binding: &str) -> String {
        self.csrf.token(binding)
    }

    /// Checks a presented CSRF token in constant time.
    pub fn verify_csrf(&self, binding: &str, presented: &str) -> bool {
        self.csrf.verify(binding, presented)
    }

    /// The per-request check: the session for a cookie value, or `None` when it is unknown, revoked or expired.
    /// A cache hit costs one SHA-256 and a map lookup; the database is read on a miss and written at most once a
    /// minute per session (in the background) to keep `last_seen` for the idle timeout.
    pub async fn session(&self, token: &str) -> Result<Option<Arc<ActiveSession>>, BrokerError> {
        if !plausible(token) {
            return Ok(None);
        }
        let key = hash_token(token);
        let now = self.clock.now();
        let active = match self.cache.get(&key) {
            Some(Principal::Session(a)) => a,
            // An access token presented as a cookie is not a session.
            Some(_) => return Ok(None),
            None => match self.load_session(key).await? {
                Some(a) => {
                    self.cache.insert(key, Principal::Session(a.clone()));
                    a
                }
                None => return Ok(None),
            },
        };
        if active.expired(now, self.settings.idle_timeout_secs) {
            self.end_session_by_key(&key).await?;
            return Ok(None);
        }
        let identity = active.subject.as_ref().map(|subject| (&active.source, subject));
        if !self
            .still_admitted(&key, &active.holder, identity, &active.live, Touch::Session, now)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(active))
    }

    /// The checks every use of a live credential ends with: the source is asked again about the identity when its
    /// interval has passed (see [`Broker::recheck_if_due`]), and the use is recorded — in memory always, in the
    /// database at most once a minute per credential, in the background. Returns whether it may be used.
    pub(crate) async fn still_admitted(
        &self,
        key: &[u8; 32],
        holder: &Holder,
        identity: Option<(&SourceId, &Subject)>,
        live: &Liveness,
        touch: Touch,
        now: Timestamp,
    ) -> Result<bool, BrokerError> {
        if let Some((source, subject)) = identity {
            let grant = Grant {
                key,
                holder,
                source,
                subject,
                live,
            };
            if !self.recheck_if_due(grant, now).await? {
                return Ok(false);
            }
        }
        if live.seen(now) {
            let store = self.store.clone();
            let hash = hex_of(key);
            tokio::spawn(async move {
                let written = match touch {
                    Touch::Session => store.touch_session(&hash, now).await,
                    Touch::Token => store.touch_token(&hash, now).await,
                };
                if let Err(e) = written {
                    tracing::warn!(error = %e, credential = ?touch, "could not record activity");
                }
            });
        }
        Ok(true)
    }

    /// The account's short group names, merged from its identities and what an operator assigned.
    pub(crate) async fn groups_of(&self, account: &AccountId) -> Result<Vec<String>, BrokerError> {
        let identities = self.store.identities_of(account).await?;
        let assigned = self.store.assigned_groups_of(account).await?;
        Ok(crate::views::merge_groups(
            identities.into_iter().flat_map(|i| i.groups),
            &assigned,
        ))
    }

    async fn load_session(&self, key: [u8; 32]) -> Result<Option<Arc<ActiveSession>>, BrokerError> {
        let Some(rec) = self.store.get_session(&hex_of(&key)).await? else {
            return Ok(None);
        };
        let Some(account) = self.store.get_account(&rec.account_id).await? else {
            return Ok(None);
        };
        if account.disabled {
            return Ok(None);
        }
        let groups = self.groups_of(&rec.account_id).await?;
        let methods = if !rec.methods.is_empty() {
            crate::session::parse_methods(&rec.methods)
        } else if rec.authenticated_at.0 == 0 {
            // Recorded before methods were: derived as then.
            vec![AuthMethod::RememberMe]
        } else {
            self.primary_methods(&rec.source)
        };
        if !self.policy_allows(&methods, &groups) {
            // Single-factor, from before a second factor was required of this account: it ends here.
            self.store.delete_session(&rec.id_hash).await?;
            return Ok(None);
        }
        Ok(Some(Arc::new(ActiveSession {
            key,
            holder: Holder {
                account_id: rec.account_id,
                display_name: account.display_name,
                email: account.email,
                email_verified: account.email_verified,
                groups,
            },
            source: rec.source,
            subject: rec.subject,
            assurance: crate::Assurance::of(&methods),
            methods,
            live: Liveness::new(rec.last_seen_at, rec.checked_at.unwrap_or(rec.created_at)),
            created_at: rec.created_at,
            authenticated_at: rec.authenticated_at,
            second_factor_at: rec.second_factor_at.unwrap_or(Timestamp(0)),
            expires_at: rec.expires_at,
            client: rec.fingerprint.as_deref().and_then(decode_key).map(|fingerprint| {
                crate::session::SignInClient::from_row(fingerprint, rec.user_agent.as_deref(), rec.ip.as_deref())
            }),
            stale: AtomicBool::new(false),
        })))
    }

    /// Creates a session for an account that just proved a credential through `source`. `previous` is the
    /// browser's old session cookie, if any: it is deleted, so an id planted before sign-in is worthless after.
    /// The session is not tied to one identity of the source (unlinking any identity of `source` ends it); sign-ins
    /// through the broker record the identity.
    pub async fn create_session(
        &self,
        account: &AccountId,
        source: &SourceId,
        client: &ClientInfo,
        previous: Option<&str>,
    ) -> Result<NewSession, BrokerError> {
        let proven = Proven {
            source,
            subject: None,
            at: self.clock.now(),
            checked_at: None,
            methods: self.primary_methods(source),
            second_factor_at: None,
        };
        self.create_session_proven(account, proven, client, previous).await
    }

    /// What a primary proof through `source` is called: a password for a password source, a federated sign-in
    /// for any other kind.
    pub(crate) fn primary_methods(&self, source: &SourceId) -> Vec<AuthMethod> {
        match self.source(source.as_str()).map(|s| s.flow()) {
            Some(vestibule_core::Flow::Password(_)) => vec![AuthMethod::Password],
            Some(_) => vec![AuthMethod::Federated],
            None => Vec::new(),
        }
    }

    /// Creates a session for a credential proven through `proven.source` / `proven.subject` at `proven.at`
    /// (a session restored from remember-me is not fresh: it passes no proof time).
    pub(crate) async fn create_session_proven(
        &self,
        account: &AccountId,
        proven: Proven<'_>,
        client: &ClientInfo,
        previous: Option<&str>,
    ) -> Result<NewSession, BrokerError> {
        if let Some(old) = previous.filter(|t| plausible(t)) {
            self.end_session_by_key(&hash_token(old)).await?;
        }
        let token = new_token();
        let now = self.clock.now();
        let expires_at = now.plus_secs(self.settings.absolute_timeout_secs);
        self.store
            .insert_session(&SessionRecord {
                id_hash: token.hash_hex(),
                account_id: account.clone(),
                source: proven.source.clone(),
                subject: proven.subject.cloned(),
                checked_at: proven.checked_at,
                created_at: now,
                last_seen_at: now,
                authenticated_at: proven.at,
                expires_at,
                user_agent: client.user_agent.clone(),
                ip: client.ip.clone(),
                fingerprint: Some(hex_of(&crate::session::fingerprint(client))),
                methods: crate::session::method_names(&proven.methods),
                second_factor_at: proven.second_factor_at,
            })
            .await?;
        Ok(NewSession {
            token,
            account_id: account.clone(),
            source: proven.source.clone(),
            subject: proven.subject.cloned(),
            expires_at,
            methods: proven.methods,
        })
    }

    /// Asks the session's source again about its identity when the source can be asked and the last answer is
    /// older than its interval (see [`vestibule_core::Recheck`]). Returns whether the session may still be used.
    /// Gone or no longer admitted: everything the identity opened ends (sessions, series, tokens, on every node).
    /// The source cannot answer: the session goes on and the question is asked again in a minute, so an outage
    /// does not sign everyone out.
    pub(crate) async fn recheck_if_due(&self, grant: Grant<'_>, now: Timestamp) -> Result<bool, BrokerError> {
        let Some(recheck) = self.source_by_id(grant.source).and_then(|s| s.recheck()) else {
            return Ok(true);
        };
        let interval = recheck_interval_secs(recheck);
        let checked_at = &grant.live.checked_at;
        let last = checked_at.load(Ordering::Relaxed);
        if now.0.saturating_sub(last) < interval {
            return Ok(true);
        }
        // One request per credential asks; the others carry on with the last answer meanwhile.
        if checked_at
            .compare_exchange(last, now.0, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return Ok(true);
        }
        match recheck.recheck(grant.subject).await {
            Ok(Some(identity)) if identity.source == *grant.source && identity.subject == *grant.subject => {
                self.store.record_identity_login(&identity, now).await?;
                self.store.record_recheck(&hex_of(grant.key), now).await?;
                let mut groups = identity.groups.clone();
                groups.sort();
                let mut had = grant.holder.groups.clone();
                had.sort();
                if groups != had {
                    // Reloaded with today's groups at the next request (this one keeps the answer it started with).
                    self.cache.invalidate(grant.key);
                }
                Ok(true)
            }
            Ok(_) => {
                let account = &grant.holder.account_id;
                let ended = self
                    .store
                    .end_identity_grants(account, grant.source, grant.subject)
                    .await?;
                self.cache.invalidate(grant.key);
                self.forget(&ended).await;
                tracing::info!(account = %account, source = %grant.source, "identity no longer admitted by its source: sessions ended");
                self.audit(&AuditEvent {
                    account_id: Some(account.as_str()),
                    source: Some(grant.source.as_str()),
                    subject: Some(grant.subject.as_str()),
                    detail: Some("gone_or_not_admitted: sessions, series and tokens ended"),
                    ..AuditEvent::of(AuditKind::IdentityRechecked)
                })
                .await;
                Ok(false)
            }
            Err(e) => {
                tracing::warn!(source = %grant.source, error = %e, "could not recheck an identity; asking again in a minute");
                checked_at.store(now.0.saturating_sub(interval).saturating_add(60), Ordering::Relaxed);
                Ok(true)
            }
        }
    }

    /// Session protection, per request: compares the client with the one that signed in. Under `basic` a change
    /// makes the session non-fresh (once, persisted); under `strong` it ends the session. Returns whether the
    /// session may still be used. Under `off` nothing is checked.
    pub async fn check_client(&self, session: &ActiveSession, client: &ClientInfo) -> Result<bool, BrokerError> {
        let ip = client.ip.as_deref().and_then(|ip| ip.parse().ok());
        self.check_client_parts(session, client.user_agent.as_deref(), ip).await
    }

    /// [`Broker::check_client`] from the raw `User-Agent` header and address, without building a [`ClientInfo`]:
    /// what the per-request layer calls.
    pub async fn check_client_parts(
        &self,
        session: &ActiveSession,
        user_agent: Option<&str>,
        ip: Option<std::net::IpAddr>,
    ) -> Result<bool, BrokerError> {
        let Some(signed_in) = &session.client else {
            return Ok(true);
        };
        if self.settings.protection == crate::Protection::Off {
            return Ok(true);
        }
        if signed_in.matches(user_agent, ip) {
            return Ok(true);
        }
        let shown_ip = ip.map(|i| i.to_string());
        let hash = session.id_hash();
        match self.settings.protection {
            crate::Protection::Strong => {
                tracing::info!(account = %session.account_id, ip = ?shown_ip, "session used from another client: ended");
                self.end_session_by_key(&session.key).await?;
                self.audit(&AuditEvent {
                    account_id: Some(session.account_id.as_str()),
                    ip: shown_ip.as_deref(),
                    detail: Some("strong: session ended"),
                    ..AuditEvent::of(AuditKind::SessionClientChanged)
                })
                .await;
                Ok(false)
            }
            _ => {
                if !session.stale.swap(true, Ordering::Relaxed) {
                    self.store.mark_session_stale(&hash).await?;
                    self.audit(&AuditEvent {
                        account_id: Some(session.account_id.as_str()),
                        ip: shown_ip.as_deref(),
                        detail: Some("basic: session no longer fresh"),
                        ..AuditEvent::of(AuditKind::SessionClientChanged)
                    })
                    .await;
                }
                Ok(true)
            }
        }
    }

    /// Ends the session behind a cookie value (sign-out). Returns the account it belonged to.
    pub async fn logout(&self, token: &str, client: &ClientInfo) -> Result<Option<AccountId>, BrokerError> {
        if !plausible(token) {
            return Ok(None);
        }
        let key = hash_token(token);
        let hash = hex_of(&key);
        let record = self.store.get_session(&hash).await?;
        self.end_session_by_key(&key).await?;
        if let Some(rec) = &record {
            self.audit(&AuditEvent {
                account_id: Some(rec.account_id.as_str()),
                source: Some(rec.source.as_str()),
                ip: client.ip.as_deref(),
                ..AuditEvent::of(AuditKind::Logout)
            })
            .await;
        }
        Ok(record.map(|r| r.account_id))
    }

    pub(crate) async fn end_session_by_key(&self, key: &[u8; 32]) -> Result<(), BrokerError> {
        let hash = hex_of(key);
        self.cache.invalidate(key);
        if self.store.delete_session(&hash).await? {
            self.announce(&[hash]).await;
        }
        Ok(())
    }

    /// Drops revoked sessions from this node's cache and tells the other nodes (PostgreSQL NOTIFY), so that a
    /// revocation is refused everywhere at once rather than after a cache lifetime.
    pub(crate) async fn forget(&self, hashes: &[String]) {
        for h in hashes {
            self.evict(h);
        }
        self.announce(hashes).await;
    }

    /// The hashes of the account's sessions, as its cache entries are keyed.
    pub(crate) async fn session_hashes(&self, account: &AccountId) -> Result<Vec<String>, BrokerError> {
        Ok(self
            .store
            .sessions_of(account)
            .await?
            .into_iter()
            .map(|s| s.id_hash)
            .collect())
    }

    /// Drops the account's sessions (and with `tokens` its access tokens) from every node's cache without ending
    /// them: at their next use they are read again, with what changed about the account (its address, its
    /// groups).
    pub(crate) async fn reload_cached(&self, account: &AccountId, tokens: bool) -> Result<(), BrokerError> {
        let mut cached = self.session_hashes(account).await?;
        if tokens {
            cached.extend(self.store.tokens_of(account).await?.into_iter().map(|t| t.token_hash));
        }
        self.forget(&cached).await;
        Ok(())
    }

    async fn announce(&self, hashes: &[String]) {
        if let Err(e) = self.store.publish_revoked(hashes).await {
            // The cache lifetime (`cache_ttl_secs`) still bounds how long another node may serve them.
            tracing::warn!(error = %e, "could not announce revoked sessions to other nodes");
        }
    }

    /// Drops one session (by the hex hash of its id) from this node's cache.
    pub fn evict(&self, id_hash: &str) {
        if let Some(key) = decode_key(id_hash) {
            self.cache.invalidate(&key);
        }
    }

    /// Listens for revocations announced by other nodes and evicts them here, for as long as the broker lives;
    /// reconnects after a broken connection. Does nothing on SQLite (one node).
    pub fn spawn_revocation_listener(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(broker) = weak.upgrade() else { break };
                let listener = broker.store.revocation_listener().await;
                drop(broker);
                let mut listener = match listener {
                    Ok(Some(l)) => l,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for revocations; retrying in 2 s");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        continue;
                    }
                };
                loop {
                    match listener.recv().await {
                        Ok(hash) => match weak.upgrade() {
                            Some(b) => b.evict(&hash),
                            None => return,
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "revocation listener lost its connection; reconnecting");
                            break;
                        }
                    }
                }
            }
        })
    }

    /// Disables (or re-enables) an account. Disabling ends every session of it at once, on this node's cache too.
    pub async fn set_account_disabled(&self, account: &AccountId, disabled: bool) -> Result<bool, BrokerError> {
        let mut hashes = self.session_hashes(account).await?;
        // The store deletes the tokens with the sessions; the cache must drop both, or a token would go on
        // working from this node's cache (and other nodes') until its entry aged out.
        if disabled {
            hashes.extend(self.store.tokens_of(account).await?.into_iter().map(|t| t.token_hash));
        }
        let found = self.store.set_account_disabled(account, disabled).await?;
        self.forget(&hashes).await;
        if found {
            self.changed(if disabled {
                crate::hooks::Change::AccountDisabled(account)
            } else {
                crate::hooks::Change::AccountEnabled(account)
            })
            .await;
        }
        Ok(found)
    }

    /// Appends to the audit log. A failure to audit is logged loudly but does not fail the request that caused it.
    pub async fn audit(&self, event: &AuditEvent<'_>) {
        // Also to the log, under its own target (`vestibule::audit`), so a log pipeline sees security events as
        // they happen, with the request id of the request that caused them. The fields are those of the audit
        // row: never a secret.
        tracing::info!(
            target: "vestibule::audit",
            event = event.event.as_str(),
            account_id = event.account_id,
            source = event.source,
            subject = event.subject,
            ip = event.ip,
            detail = event.detail,
            "audit"
        );
        crate::metrics::audited(event.event, event.source);
        if let Err(e) = self.store.audit(self.clock.now(), event).await {
            tracing::error!(error = %e, event = event.event.as_str(), "could not write the audit log");
        }
    }

    /// Deletes expired sessions, abandoned redirect flows and everything else that expired, and lets the mailer
    /// tidy up (the development outbox's retention); run it periodically (see [`Broker::spawn_janitor`]).
    pub async fn purge_expired(&self) -> Result<(), BrokerError> {
        let now = self.clock.now();
        self.store
            .purge_sessions(now, now.plus_secs(-self.settings.idle_timeout_secs))
            .await?;
        self.store.purge_pending(now).await?;
        self.store.purge_pending_links(now).await?;
        self.store.purge_remember(now).await?;
        self.store.purge_tokens(now).await?;
        self.store.purge_email_tokens(now).await?;
        if let Some(counters) = self.store.throttle_counters() {
            counters.purge_counters(now).await?;
        }
        self.purge_second_factor(now).await?;
        if let Some(mailer) = &self.mailer {
            mailer.tidy().await;
        }
        Ok(())
    }

    /// Runs [`Broker::purge_expired`] every five minutes for as long as the broker lives.
    pub fn spawn_janitor(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(300));
            loop {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { break };
                if let Err(e) = broker.purge_expired().await {
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
            }
        })
    }
}
