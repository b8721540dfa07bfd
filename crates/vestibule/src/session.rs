use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

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
}

/// A live session as the per-request check sees it: what an extractor hands to a handler. Built from the database
/// on a cache miss and then served from memory.
#[derive(Debug)]
pub struct ActiveSession {
    pub(crate) key: [u8; 32],
    /// Whose session.
    pub account_id: AccountId,
    /// The account's display name at the time the session was loaded.
    pub display_name: Option<String>,
    /// The account's email at the time the session was loaded.
    pub email: Option<String>,
    /// Short group names from the account's identities, as of their last sign-ins.
    pub groups: Vec<String>,
    /// `Some` when the request authenticated with a personal access token (`Authorization: Bearer`): the scopes
    /// the owner gave it. `None` for a browser session.
    pub scopes: Option<Vec<String>>,
    /// The source that signed it in (for a token: the source of the session that created it).
    pub source: SourceId,
    /// The identity at `source` that signed it in; `None` for sessions and tokens from before this was recorded.
    pub subject: Option<Subject>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When a credential was last proven in it.
    pub authenticated_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
    /// Last request, updated in memory on every check.
    pub(crate) last_seen: AtomicI64,
    /// Last value written to the database; writes happen at most once a minute per session.
    pub(crate) persisted_seen: AtomicI64,
    /// SHA-256 of the client's user agent and coarse address at sign-in.
    pub(crate) fingerprint: Option<[u8; 32]>,
    /// Set when the session was seen from another client under `basic` protection: never fresh again.
    pub(crate) stale: AtomicBool,
    /// When the source last confirmed the identity (see [`vestibule_core::Recheck`]); claimed with a
    /// compare-and-swap so that one request per session asks, not every concurrent one.
    pub(crate) checked_at: AtomicI64,
}

/// Persist `last_seen` at most this often: the idle timeout is minutes, so minute precision is enough and the hot
/// path stays free of writes.
pub(crate) const TOUCH_EVERY_SECS: i64 = 60;

impl ActiveSession {
    /// Hex SHA-256 of the session id: the id shown on `/account` and used to revoke one session.
    pub fn id_hash(&self) -> String {
        crate::token::hex_of(&self.key)
    }

    /// The last request seen.
    pub fn last_seen(&self) -> Timestamp {
        Timestamp(self.last_seen.load(Ordering::Relaxed))
    }

    /// Whether the session was used from another client than the one that signed in (under `basic` protection).
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// Whether the session has ended at `now` under these timeouts.
    pub(crate) fn expired(&self, now: Timestamp, idle_timeout: i64) -> bool {
        now >= self.expires_at || now.0 - self.last_seen.load(Ordering::Relaxed) > idle_timeout
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
