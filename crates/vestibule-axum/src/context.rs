//! What the session layer learned about a request, kept in its extensions for extractors and handlers.

use std::sync::Arc;

use vestibule::{ActiveSession, Principal};
use zeroize::Zeroize;

use crate::Vestibule;

/// The length of every session id the broker issues and accepts: 256 bits in base64url without padding.
const SESSION_ID_LEN: usize = 43;

/// A session id held in place rather than in a `String`: the layer keeps one per authenticated request (what CSRF
/// tokens bind to), and a heap copy per request showed in the profile of the protected route (BENCHMARKS.md).
/// Like the `SecretString` it replaces, it is wiped on drop and `Debug` does not print it.
pub(crate) struct SessionId([u8; SESSION_ID_LEN]);

impl SessionId {
    /// `None` unless `value` has the length of the session ids the broker accepts: only an id the broker has
    /// accepted is kept (its characters were checked there), and one of another length never names a session.
    pub(crate) fn new(value: &str) -> Option<Self> {
        value.as_bytes().try_into().ok().map(SessionId)
    }

    /// The id as text (always `Some`: the bytes are those of a `&str`).
    pub(crate) fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl Clone for SessionId {
    fn clone(&self) -> Self {
        SessionId(self.0)
    }
}

impl Drop for SessionId {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(..)")
    }
}

/// Who a request is, as the layer decided it (see [`vestibule::Broker::authenticate`]).
#[derive(Clone, Debug)]
pub(crate) struct AuthContext {
    pub(crate) vestibule: Vestibule,
    pub(crate) principal: Option<Principal>,
    /// The session id the request is served with (the cookie's, or the one just restored from remember-me):
    /// what CSRF tokens bind to. A bearer credential, so `Debug` does not print it.
    pub(crate) token: Option<SessionId>,
    /// The session was restored from the remember-me cookie by this very request.
    pub(crate) restored: bool,
}

impl AuthContext {
    /// The session id the request is served with, if any.
    pub(crate) fn session_token(&self) -> Option<&str> {
        self.token.as_ref().and_then(SessionId::as_str)
    }

    /// The browser session, if the request has one (a bearer token is not one).
    pub(crate) fn browser_session(&self) -> Option<&Arc<ActiveSession>> {
        self.principal.as_ref().and_then(Principal::session)
    }

    /// Whether the request authenticated with a personal access token.
    pub(crate) fn is_token(&self) -> bool {
        self.principal.as_ref().is_some_and(|p| p.token().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The context's `Debug` is derived, so what keeps the session id out of it is `SessionId`'s own `Debug`.
    #[test]
    fn the_session_id_is_kept_but_never_printed() {
        let id = vestibule::SecretToken::generate();
        let kept = SessionId::new(id.expose()).expect("an id of the broker's length");
        assert_eq!(kept.as_str(), Some(id.expose()));
        let shown = format!("{:?} {:?}", kept, Some(kept.clone()));
        assert!(!shown.contains(id.expose()), "{shown}");
        assert_eq!(shown, "SessionId(..) Some(SessionId(..))");
    }

    /// Only an id of the length the broker issues is kept: anything else never names a session.
    #[test]
    fn ids_of_another_length_are_not_kept() {
        assert!(SessionId::new("").is_none());
        assert!(SessionId::new(&"a".repeat(SESSION_ID_LEN - 1)).is_none());
        assert!(SessionId::new(&"a".repeat(SESSION_ID_LEN + 1)).is_none());
        assert!(SessionId::new(&"a".repeat(SESSION_ID_LEN)).is_some());
    }
}
