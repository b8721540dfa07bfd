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
    /// Whether that email is known to be the person's (confirmed by mail, given by an operator who knows it, or
    /// asserted by a source allowed to vouch for its domain). An unverified address is only a claim: anyone can
    /// type one into an identity provider's profile. Check this before trusting `email`.
    pub email_verified: bool,
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
    /// The client that signed in (its fingerprint, and its parts when known), for session protection.
    pub(crate) client: Option<SignInClient>,
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

/// The client a session was signed in from, as session protection compares it on every request: its fingerprint
/// (stored with the session), and the parts that fingerprint was taken of when the session's row still holds them.
///
/// With the parts, a request's client is compared to them as they are — user agent normalised on the fly, the
/// same coarse address — which gives the same answer as comparing fingerprints (the fingerprint encodes the parts
/// unambiguously: a user agent without control characters, a NUL, then 3, 6 or 1 address bytes; equal parts give
/// equal fingerprints and, short of a SHA-256 collision, only they do) without a SHA-256 per request, the one the
/// session check's profile showed beyond the floor's (BENCHMARKS.md). Without them, fingerprints are compared.
pub(crate) struct SignInClient {
    fingerprint: [u8; 32],
    /// `Some` only when the parts hash to `fingerprint`: a row whose parts were changed, or lost, is compared by
    /// its fingerprint as before.
    parts: Option<ClientParts>,
}

/// A client's user agent, normalised as [`crate::ClientInfo`] keeps it, and its coarse address.
struct ClientParts {
    user_agent: Box<str>,
    net: Net,
}

/// The part of a client's address that session protection looks at: what [`fingerprint_parts`] hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    /// IPv4 /24.
    V4([u8; 3]),
    /// IPv6 /48.
    V6([u8; 6]),
    /// No address known.
    Unknown,
}

impl Net {
    fn of(ip: Option<std::net::IpAddr>) -> Net {
        match ip {
            Some(std::net::IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                Net::V4([a, b, c])
            }
            Some(std::net::IpAddr::V6(v6)) => {
                let o = v6.octets();
                Net::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
            }
            None => Net::Unknown,
        }
    }
}

/// The user agent as [`crate::ClientInfo`] keeps it and [`fingerprint_parts`] hashes it: control characters
/// dropped, 200 characters kept. Applying it twice changes nothing.
fn normalised_user_agent(user_agent: Option<&str>) -> impl Iterator<Item = char> + '_ {
    user_agent.unwrap_or("").chars().filter(|c| !c.is_control()).take(200)
}

impl SignInClient {
    /// From what a session's row holds: the stored fingerprint, and the user agent and address recorded at sign-in.
    /// The parts are kept only when they give that fingerprint (one SHA-256, on a cache miss).
    pub(crate) fn from_row(fingerprint: [u8; 32], user_agent: Option<&str>, ip: Option<&str>) -> SignInClient {
        let ip = ip.and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
        let parts = (fingerprint_parts(user_agent, ip) == fingerprint).then(|| ClientParts {
            user_agent: normalised_user_agent(user_agent).collect::<String>().into_boxed_str(),
            net: Net::of(ip),
        });
        SignInClient { fingerprint, parts }
    }

    /// Whether a request's client (raw `User-Agent` header, address) is the one that signed in: exactly when its
    /// [`fingerprint_parts`] equal the stored fingerprint.
    pub(crate) fn matches(&self, user_agent: Option<&str>, ip: Option<std::net::IpAddr>) -> bool {
        let Some(parts) = &self.parts else {
            return fingerprint_parts(user_agent, ip) == self.fingerprint;
        };
        // The stored user agent is normalised, so a header equal to it normalises to it; only a header that
        // differs is normalised here (a changed client, or control characters or more than 200 characters).
        Net::of(ip) == parts.net
            && (user_agent.unwrap_or("") == &*parts.user_agent
                || normalised_user_agent(user_agent).eq(parts.user_agent.chars()))
    }
}

impl std::fmt::Debug for SignInClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the user agent or the address: a session's `Debug` goes to logs, and the fingerprint says enough.
        f.debug_struct("SignInClient")
            .field("fingerprint", &crate::secret::hex_of(&self.fingerprint))
            .field("parts_kept", &self.parts.is_some())
            .finish()
    }
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
    for c in normalised_user_agent(user_agent) {
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::*;

    /// User agents with what normalisation drops or cuts: control characters (C0, DEL, C1), non-ASCII, and more
    /// than 200 characters.
    fn user_agent() -> impl Strategy<Value = Option<String>> {
        let piece = prop_oneof![
            Just("Mozilla/5.0 (X11; Linux x86_64)".to_owned()),
            Just("\t".to_owned()),
            Just("\u{7f}".to_owned()),
            Just("\u{85}".to_owned()),
            Just("é".to_owned()),
            "[ -~]{0,3}",
            "[a-c]{150,210}",
        ];
        proptest::option::of(prop::collection::vec(piece, 0..4).prop_map(|p| p.concat()))
    }

    fn ip() -> impl Strategy<Value = Option<IpAddr>> {
        // Few distinct values per byte, so that equal and nearly equal addresses (same /24 or /48) come up often.
        let v4 = prop::array::uniform4(0u8..3).prop_map(IpAddr::from);
        let v6 = prop::array::uniform16(0u8..2).prop_map(IpAddr::from);
        proptest::option::of(prop_oneof![v4, v6])
    }

    /// The client a session's row records: the user agent as `ClientInfo::from_parts` keeps it, the address as text.
    fn row(user_agent: &Option<String>, ip: Option<IpAddr>) -> crate::ClientInfo {
        crate::ClientInfo::from_parts(user_agent.as_deref(), ip)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Comparing the parts answers exactly as comparing fingerprints does, for any client at sign-in and any
        /// client on a later request.
        #[test]
        fn parts_match_exactly_when_fingerprints_do(
            (ua_in, ip_in) in (user_agent(), ip()),
            (ua_now, ip_now) in (user_agent(), ip()),
            same_ua in any::<bool>(),
            same_ip in any::<bool>(),
        ) {
            // Half the time the later request reuses a part as is, so that matches are common too.
            let ua_now = if same_ua { ua_in.clone() } else { ua_now };
            let ip_now = if same_ip { ip_in } else { ip_now };
            let signed_in = row(&ua_in, ip_in);
            let stored = fingerprint(&signed_in);
            let client = SignInClient::from_row(stored, signed_in.user_agent.as_deref(), signed_in.ip.as_deref());
            prop_assert!(client.parts.is_some(), "the row's parts give its fingerprint");
            let by_hash = fingerprint_parts(ua_now.as_deref(), ip_now) == stored;
            prop_assert_eq!(client.matches(ua_now.as_deref(), ip_now), by_hash);
        }
    }

    /// A row whose parts do not give its fingerprint keeps none, and is compared by fingerprint.
    #[test]
    fn a_row_whose_parts_do_not_give_its_fingerprint_is_compared_by_fingerprint() {
        let ip: Option<IpAddr> = "192.0.2.7".parse().ok();
        let stored = fingerprint_parts(Some("Signed in with this"), ip);
        let client = SignInClient::from_row(stored, Some("Recorded as that"), Some("192.0.2.7"));
        assert!(client.parts.is_none());
        assert!(client.matches(Some("Signed in with this"), ip));
        assert!(
            client.matches(Some("Signed in with this"), "192.0.2.200".parse().ok()),
            "same /24"
        );
        assert!(!client.matches(Some("Recorded as that"), ip));
        assert!(!client.matches(Some("Signed in with this"), "192.0.3.7".parse().ok()));
    }

    #[test]
    fn debug_shows_neither_the_user_agent_nor_the_address() {
        let ip: Option<IpAddr> = "192.0.2.7".parse().ok();
        let signed_in = crate::ClientInfo::from_parts(Some("Secret-Browser/1.0"), ip);
        let client = SignInClient::from_row(
            fingerprint(&signed_in),
            signed_in.user_agent.as_deref(),
            signed_in.ip.as_deref(),
        );
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("Secret-Browser") && !shown.contains("192.0.2"),
            "{shown}"
        );
        assert!(shown.contains("parts_kept: true"), "{shown}");
    }
}
