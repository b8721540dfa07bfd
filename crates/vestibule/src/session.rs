use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use vestibule_core::{AccountId, SourceId, Subject, Timestamp};

use crate::SecretToken;

/// A session just created at sign-in. `token` goes into the cookie and is never stored.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value.
    pub token: SecretToken,
    /// Whose session.
    pub account_id: AccountId,
    /// The source that signed it in.
    pub source: SourceId,
    /// The identity at `source` that signed it in.
    pub subject: Option<Subject>,
    /// Absolute expiry, for the cookie's `Max-Age`.
    pub expires_at: Timestamp,
    /// How it was proven: what a remember-me series started from it restores, and no more.
    pub methods: Vec<AuthMethod>,
}

/// The account a credential belongs to, as loaded with the credential (and then served from memory): what a
/// handler usually wants to know about who is asking. [`ActiveSession`], [`ActiveToken`] and [`Principal`]
/// dereference to it, so `principal.account_id` reads the same whichever credential was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Whose credential.
    pub account_id: AccountId,
    /// The account's display name at the time the credential was loaded.
    pub display_name: Option<String>,
    /// The account's email at the time the credential was loaded.
    pub email: Option<String>,
    /// Short group names from the account's identities, as of their last sign-ins.
    pub groups: Vec<String>,
}

/// How sure the broker is of who signed a session in: one proof, or more than one (a primary proof and a second
/// factor). Step-up checks compare against this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Assurance {
    /// One proof (a password, a redirect sign-in, or a remember-me cookie).
    Single,
    /// A primary proof and a second factor.
    Multi,
}

/// One way a session was proven, named like RFC 8176's `amr` values where one fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A password checked by a password source (`pwd`).
    Password,
    /// A sign-in at an identity provider (`fed`): what it asked for is its business.
    Federated,
    /// Restored from a remember-me cookie: nothing was proven in this session.
    RememberMe,
    /// A one-time code from an authenticator app (`otp`, RFC 6238 TOTP).
    Otp,
    /// A single-use recovery code (`recovery`; RFC 8176 has no name for it).
    RecoveryCode,
    /// The identity provider reported a multi-factor sign-in (`mfa`) and the source is configured to trust it
    /// (`trust_upstream_mfa`).
    UpstreamMfa,
    /// A passkey signed the challenge (`hwk`, RFC 8176: proof of possession of a key held by an authenticator).
    Passkey,
    /// The authenticator verified the person (a PIN or a biometric, WebAuthn's UV flag) before its passkey
    /// signed (`user`): with [`AuthMethod::Passkey`], a passwordless sign-in.
    UserVerified,
}

impl AuthMethod {
    const ALL: [AuthMethod; 8] = [
        AuthMethod::Password,
        AuthMethod::Federated,
        AuthMethod::RememberMe,
        AuthMethod::Otp,
        AuthMethod::RecoveryCode,
        AuthMethod::UpstreamMfa,
        AuthMethod::Passkey,
        AuthMethod::UserVerified,
    ];

    /// The method's `amr`-style name (`pwd`, `fed`, `remember`, `otp`, `recovery`, `mfa`, `hwk`, `user`): what `/me`,
    /// `X-Vestibule-AMR` and the database show.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Federated => "fed",
            AuthMethod::RememberMe => "remember",
            AuthMethod::Otp => "otp",
            AuthMethod::RecoveryCode => "recovery",
            AuthMethod::UpstreamMfa => "mfa",
            AuthMethod::Passkey => "hwk",
            AuthMethod::UserVerified => "user",
        }
    }

    /// The method named `name` (as [`AuthMethod::as_str`] writes it), if any.
    pub fn parse(name: &str) -> Option<AuthMethod> {
        AuthMethod::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether the method is a second factor: its presence makes a session [`Assurance::Multi`].
    pub fn is_second_factor(&self) -> bool {
        matches!(
            self,
            AuthMethod::Otp | AuthMethod::RecoveryCode | AuthMethod::UpstreamMfa | AuthMethod::Passkey
        )
    }
}

impl Assurance {
    /// The assurance of a sign-in proven with `methods`.
    pub fn of(methods: &[AuthMethod]) -> Assurance {
        if methods.iter().any(AuthMethod::is_second_factor) {
            Assurance::Multi
        } else {
            Assurance::Single
        }
    }

    /// `single` or `multi`, as `/me` shows it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Assurance::Single => "single",
            Assurance::Multi => "multi",
        }
    }
}

/// Methods as stored (`amr` names); unknown names (from a newer version) are skipped, never guessed at.
pub(crate) fn parse_methods(names: &[String]) -> Vec<AuthMethod> {
    names.iter().filter_map(|n| AuthMethod::parse(n)).collect()
}

/// Methods as stored.
pub(crate) fn method_names(methods: &[AuthMethod]) -> Vec<String> {
    methods.iter().map(|m| m.as_str().to_owned()).collect()
}

/// A live browser session as the per-request check sees it: what an extractor hands to a handler. Built from the
/// database on a cache miss and then served from memory. Dereferences to its [`Holder`].
#[derive(Debug)]
pub struct ActiveSession {
    pub(crate) key: [u8; 32],
    /// Whose session.
    pub holder: Holder,
    /// The source that signed it in.
    pub source: SourceId,
    /// The identity at `source` that signed it in; `None` for sessions from before this was recorded.
    pub subject: Option<Subject>,
    /// How sure the sign-in was.
    pub assurance: Assurance,
    /// How it was proven.
    pub methods: Vec<AuthMethod>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When a credential was last proven in it (`Timestamp(0)`: never, a session restored from remember-me).
    pub authenticated_at: Timestamp,
    /// When a second factor was last proven in it (`Timestamp(0)`: never, or restored from remember-me).
    pub second_factor_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
    /// What the broker checks on every use (activity, identity rechecks).
    pub(crate) live: Liveness,
    /// SHA-256 of the client's user agent and coarse address at sign-in.
    pub(crate) fingerprint: Option<[u8; 32]>,
    /// Set when the session was seen from another client under `basic` protection: never fresh again.
    pub(crate) stale: AtomicBool,
}

/// A personal access token in use (`Authorization: Bearer`): an API credential, never a sign-in. Dereferences to
/// its [`Holder`].
#[derive(Debug)]
pub struct ActiveToken {
    /// Whose token.
    pub holder: Holder,
    /// The token's public id (as listed on the account page).
    pub id: String,
    /// The scopes its owner gave it.
    pub scopes: Vec<String>,
    /// The source and identity of the session that created it; `None` for tokens from before this was recorded.
    /// Unlinking that identity revokes the token.
    pub created_by: Option<(SourceId, Subject)>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    pub(crate) live: Liveness,
}

/// The per-credential counters the hot path updates without locks.
#[derive(Debug)]
pub(crate) struct Liveness {
    /// Last request, updated in memory on every check.
    pub(crate) last_seen: AtomicI64,
    /// Last value written to the database; writes happen at most once a minute per credential.
    pub(crate) persisted_seen: AtomicI64,
    /// When the source last confirmed the identity (see [`vestibule_core::Recheck`]); claimed with a
    /// compare-and-swap so that one request per credential asks, not every concurrent one.
    pub(crate) checked_at: AtomicI64,
}

impl Liveness {
    pub(crate) fn new(last_seen: Timestamp, checked_at: Timestamp) -> Self {
        Liveness {
            last_seen: AtomicI64::new(last_seen.0),
            persisted_seen: AtomicI64::new(last_seen.0),
            checked_at: AtomicI64::new(checked_at.0),
        }
    }

    /// Records a request; returns `true` when the database should be told too.
    pub(crate) fn seen(&self, now: Timestamp) -> bool {
        self.last_seen.fetch_max(now.0, Ordering::Relaxed);
        let persisted = self.persisted_seen.load(Ordering::Relaxed);
        now.0 - persisted >= TOUCH_EVERY_SECS
            && self
                .persisted_seen
                .compare_exchange(persisted, now.0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// [`Liveness::seen`] for the path that cannot write: records the request in memory and returns `true`, or,
    /// when the database is due to be told, records nothing and returns `false` (the caller then takes the path
    /// that calls [`Liveness::seen`] and writes). The store is skipped when `last_seen` already holds this second,
    /// so concurrent requests of one session read the counter's cache line instead of taking it in turn.
    pub(crate) fn seen_in_memory(&self, now: Timestamp) -> bool {
        if now.0 - self.persisted_seen.load(Ordering::Relaxed) >= TOUCH_EVERY_SECS {
            return false;
        }
        if self.last_seen.load(Ordering::Relaxed) < now.0 {
            self.last_seen.fetch_max(now.0, Ordering::Relaxed);
        }
        true
    }
}

/// Who a request authenticated as, and with what kind of credential. Dereferences to the [`Holder`], so
/// `principal.account_id` works for both; match on it where the kind matters (a token is never a sign-in: it
/// is never fresh and cannot manage the account).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Principal {
    /// A browser session (cookie).
    Session(Arc<ActiveSession>),
    /// A personal access token (`Authorization: Bearer`).
    Token(Arc<ActiveToken>),
}

impl Principal {
    /// The browser session, when this is one.
    pub fn session(&self) -> Option<&Arc<ActiveSession>> {
        match self {
            Principal::Session(s) => Some(s),
            Principal::Token(_) => None,
        }
    }

    /// The access token, when this is one.
    pub fn token(&self) -> Option<&Arc<ActiveToken>> {
        match self {
            Principal::Token(t) => Some(t),
            Principal::Session(_) => None,
        }
    }

    /// Whether the credential grants `scope`: a token when its owner gave it that scope; a browser session always
    /// (it is the person themselves).
    pub fn has_scope(&self, scope: &str) -> bool {
        match self {
            Principal::Session(_) => true,
            Principal::Token(t) => t.scopes.iter().any(|s| s == scope),
        }
    }

    /// The token's scopes; `None` for a browser session.
    pub fn scopes(&self) -> Option<&[String]> {
        self.token().map(|t| t.scopes.as_slice())
    }
}

impl std::ops::Deref for Principal {
    type Target = Holder;
    fn deref(&self) -> &Holder {
        match self {
            Principal::Session(s) => &s.holder,
            Principal::Token(t) => &t.holder,
        }
    }
}

impl std::ops::Deref for ActiveSession {
    type Target = Holder;
    fn deref(&self) -> &Holder {
        &self.holder
    }
}

impl std::ops::Deref for ActiveToken {
    type Target = Holder;
    fn deref(&self) -> &Holder {
        &self.holder
    }
}

impl ActiveToken {
    /// The last request seen.
    pub fn last_seen(&self) -> Timestamp {
        Timestamp(self.live.last_seen.load(Ordering::Relaxed))
    }
}

/// Persist `last_seen` at most this often: the idle timeout is minutes, so minute precision is enough and the hot
/// path stays free of writes.
pub(crate) const TOUCH_EVERY_SECS: i64 = 60;

impl ActiveSession {
    /// Hex SHA-256 of the session id: the id shown on `/account` and used to revoke one session.
    pub fn id_hash(&self) -> String {
        crate::secret::hex_of(&self.key)
    }

    /// The last request seen.
    pub fn last_seen(&self) -> Timestamp {
        Timestamp(self.live.last_seen.load(Ordering::Relaxed))
    }

    /// Whether the session was used from another client than the one that signed in (under `basic` protection).
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// Whether the session has ended at `now` under these timeouts.
    pub(crate) fn expired(&self, now: Timestamp, idle_timeout: i64) -> bool {
        now >= self.expires_at || now.0 - self.live.last_seen.load(Ordering::Relaxed) > idle_timeout
    }
}

pub(crate) fn new_token() -> SecretToken {
    SecretToken::generate()
}

/// SHA-256 of a client's user agent and coarse address (IPv4 /24, IPv6 /48): stable across the small moves of one
/// device, different across devices.
pub(crate) fn fingerprint(client: &crate::ClientInfo) -> [u8; 32] {
    let ip = client.ip.as_deref().and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
    fingerprint_parts(client.user_agent.as_deref(), ip)
}

/// [`fingerprint`] from a raw `User-Agent` header, normalised on the fly the way [`crate::ClientInfo`] stores it
/// (control characters dropped, 200 characters kept). No allocation: it runs on every request when protection is
/// on.
pub(crate) fn fingerprint_parts(user_agent: Option<&str>, ip: Option<std::net::IpAddr>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = [0u8; 4];
    for c in user_agent.unwrap_or("").chars().filter(|c| !c.is_control()).take(200) {
        h.update(c.encode_utf8(&mut buf).as_bytes());
    }
    h.update([0u8]);
    match ip {
        Some(std::net::IpAddr::V4(v4)) => h.update(&v4.octets()[..3]),
        Some(std::net::IpAddr::V6(v6)) => h.update(&v6.octets()[..6]),
        None => h.update(b"?"),
    }
    h.finalize().into()
}
