//! One way in for every request: [`Broker::authenticate`] turns the credentials a request carries into a
//! [`Principal`], with no HTTP in sight. The axum layer only extracts the credentials, calls it, and sets the
//! cookies it says to set; any other front end can do the same.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use vestibule_core::storage::{AuditEvent, AuditKind};
use vestibule_core::{SecretString, Timestamp};

use crate::secret::{hash_token, plausible};
use crate::{ActiveSession, Broker, ClientInfo, Principal, Protection, Restored};

/// The credentials one request carries, borrowed from it. Build it per request; nothing is copied.
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The session cookie's value.
    pub session: Option<&'a str>,
    /// The remember-me cookie's value — only where restoring a session is allowed (a plain page load on the
    /// broker's own origin: see the axum layer's rules). `None` elsewhere, even when the browser sent one.
    pub remember: Option<&'a str>,
    /// The value of `Authorization: Bearer`.
    pub bearer: Option<&'a str>,
    /// The raw `User-Agent` header, for session protection.
    pub user_agent: Option<&'a str>,
    /// The client address, taken only from trusted places.
    pub ip: Option<IpAddr>,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bearer values: say which are present, never what they are.
        f.debug_struct("Credentials")
            .field("session", &self.session.map(|_| ".."))
            .field("remember", &self.remember.map(|_| ".."))
            .field("bearer", &self.bearer.map(|_| ".."))
            .field("user_agent", &self.user_agent)
            .field("ip", &self.ip)
            .finish()
    }
}

/// What to do with the remember-me cookie after a request.
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum RememberCookie {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Set it to this rotated value (for `remember_days`).
    Set(SecretString),
    /// Clear it: unknown, expired, or a stolen copy.
    Clear,
}

/// What [`Broker::authenticate`] decided about one request. `Debug` prints no credential.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Authentication {
    /// Who is asking, if anyone.
    pub principal: Option<Principal>,
    /// The session id the request is served with (the cookie's, or the one just restored): what CSRF tokens bind
    /// to. `None` for a bearer token, which never binds a form.
    pub session_token: Option<SecretString>,
    /// A session was restored from the remember-me cookie by this request: set this as the new session cookie.
    pub new_session_cookie: Option<SecretString>,
    /// What to do with the remember-me cookie.
    pub remember_cookie: RememberCookie,
    /// The request presented a bearer token from an address that failed too many: answer `429` with this many
    /// seconds in `Retry-After` (the token was not looked up).
    pub throttled: Option<u32>,
}

impl Authentication {
    /// Whether this request restored its session from the remember-me cookie.
    pub fn restored(&self) -> bool {
        self.new_session_cookie.is_some() && self.principal.is_some()
    }
}

impl Broker {
    /// Decides who a request is, in this order: the session cookie (then session protection against the client
    /// that signed in), the remember-me cookie when given (a new, non-fresh session), then a bearer token (also when
    /// a stale session cookie came along). Fails closed: a store that cannot answer means "nobody", logged, never
    /// "somebody". A cache hit costs one SHA-256 and a map lookup, and allocates only the returned session id.
    pub async fn authenticate(&self, credentials: &Credentials<'_>) -> Authentication {
        let mut out = Authentication::default();
        if let (Some(token), Some(session)) = (credentials.session, self.authenticate_cached(credentials)) {
            out.session_token = Some(SecretString::from(token));
            out.principal = Some(Principal::Session(session));
            return out;
        }
        if let Some(token) = credentials.session {
            match self.session(token).await {
                Ok(Some(session)) => {
                    match self
                        .check_client_parts(&session, credentials.user_agent, credentials.ip)
                        .await
                    {
                        Ok(true) => {
                            out.session_token = Some(SecretString::from(token));
                            out.principal = Some(Principal::Session(session));
                            return out;
                        }
                        Ok(false) => {}
                        Err(e) => tracing::error!(error = %e, "session protection check failed"),
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "session check failed"),
            }
        }
        if let Some(remembered) = credentials.remember {
            let client = ClientInfo::from_parts(credentials.user_agent, credentials.ip);
            match self.restore(remembered, &client).await {
                Ok(Restored::Session { session: new, cookie }) => {
                    if let Some(c) = cookie {
                        out.remember_cookie = RememberCookie::Set(c);
                    }
                    match self.session(new.token.expose()).await {
                        Ok(Some(session)) => {
                            out.session_token = Some(SecretString::from(new.token.expose()));
                            out.new_session_cookie = Some(SecretString::from(new.token.expose()));
                            out.principal = Some(Principal::Session(session));
                            return out;
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!(error = %e, "restored session check failed"),
                    }
                }
                Ok(Restored::Invalid | Restored::Theft) => out.remember_cookie = RememberCookie::Clear,
                Err(e) => tracing::error!(error = %e, "remember-me check failed"),
            }
        }
        if let Some(bearer) = credentials.bearer {
            // Guessing tokens spends the address's allowance, like guessing passwords; a throttled address is not
            // looked up at all, valid token or not (it must not learn which guess was right).
            let now = self.now();
            if let Some((ip, t)) = credentials
                .ip
                .and_then(|ip| self.limiter.address_blocked(ip, now).map(|t| (ip, t)))
            {
                out.throttled = Some(t.retry_after_secs);
                if self.limiter.worth_auditing(Some(ip), "bearer") {
                    let detail = format!(
                        "bearer {}: retry after {} s; further refusals of this address within a minute are not \
                         audited",
                        t.layer.as_str(),
                        t.retry_after_secs
                    );
                    let ip = ip.to_string();
                    self.audit(&AuditEvent {
                        ip: Some(&ip),
                        detail: Some(&detail),
                        ..AuditEvent::of(AuditKind::Throttled)
                    })
                    .await;
                }
                return out;
            }
            // API clients: a personal access token. It never binds CSRF tokens (no session_token), so a bearer
            // request cannot use the broker's forms.
            match self.bearer(bearer).await {
                Ok(Some(token)) => out.principal = Some(Principal::Token(token)),
                Ok(None) => {
                    if let Some(ip) = credentials.ip {
                        self.limiter.address_failed(ip, now);
                    }
                }
                Err(e) => tracing::error!(error = %e, "token check failed"),
            }
        }
        out
    }
}

impl Broker {
    /// [`Broker::authenticate`]'s answer when memory alone gives it, with no I/O, no `.await` and no allocation:
    /// what a front end calls first on every request. `Some(session)` when the session cookie names a session in
    /// this node's cache that is within its absolute and idle timeouts, whose source is not due to be asked about
    /// its identity again, whose client passes session protection with nothing to record, and whose use needs no
    /// database write this minute. `authenticate` would then answer exactly that session (the cookie's id binds
    /// CSRF tokens, no cookie to set), because it makes the same checks in the same order and each passes without
    /// side effects. `None`: not decided here (no session cookie, a miss, an ended session, a recheck or a write
    /// due, a changed client); call `authenticate`, which repeats the checks and does what they require.
    ///
    /// Why serving from the cache is safe: every way a session ends on this node (sign-out, revocation, account
    /// disabled, identity unlinked or refused by its source, `strong` protection) removes it from the cache before
    /// it returns, other nodes' revocations arrive as notifications that do the same, and the cache's lifetime
    /// (`cache_ttl_secs`) bounds how long a missed notification can be served, exactly as on the async path,
    /// which reads the same cache.
    pub fn authenticate_cached(&self, credentials: &Credentials<'_>) -> Option<Arc<ActiveSession>> {
        let token = credentials.session?;
        if !plausible(token) {
            return None;
        }
        let active = match self.cache.get(&hash_token(token))? {
            Principal::Session(active) => active,
            Principal::Token(_) => return None,
        };
        let now = self.clock.now();
        if active.expired(now, self.settings.idle_timeout_secs)
            || self.recheck_due(&active, now)
            || !self.client_unchanged(&active, credentials)
        {
            return None;
        }
        // Last, so that nothing is recorded for a request this path does not serve.
        active.live.seen_in_memory(now).then_some(active)
    }

    /// Whether the session's source is to be asked about its identity at `now` ([`Broker::recheck_if_due`] would
    /// ask). Read-only: the claim of the question is left to the async path.
    fn recheck_due(&self, active: &ActiveSession, now: Timestamp) -> bool {
        if active.subject.is_none() {
            return false;
        }
        let Some(recheck) = self.source_by_id(&active.source).and_then(|s| s.recheck()) else {
            return false;
        };
        let last = active.live.checked_at.load(Ordering::Relaxed);
        now.0.saturating_sub(last) >= crate::broker::recheck_interval_secs(recheck)
    }

    /// Whether [`Broker::check_client_parts`] would let the session through without ending it or recording
    /// anything: protection off, no fingerprint, the same client, or — under `basic` — a changed client on a
    /// session already marked stale (the mark and its audit row were written by the first such request).
    fn client_unchanged(&self, active: &ActiveSession, credentials: &Credentials<'_>) -> bool {
        let Some(signed_in) = &active.client else {
            return true;
        };
        match self.settings.protection {
            Protection::Off => true,
            protection => {
                signed_in.matches(credentials.user_agent, credentials.ip)
                    || (protection == Protection::Basic && active.stale.load(Ordering::Relaxed))
            }
        }
    }
}

impl ClientInfo {
    /// A [`ClientInfo`] from the raw `User-Agent` header and address: control characters dropped, 200 characters
    /// kept.
    pub fn from_parts(user_agent: Option<&str>, ip: Option<IpAddr>) -> Self {
        ClientInfo {
            ip: ip.map(|ip| ip.to_string()),
            user_agent: user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(200).collect()),
        }
    }
}
