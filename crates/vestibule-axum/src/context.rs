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

    #[tokio::test]
    async fn auth_context_debug_hides_the_session_id() {
        let dir = vestibule_tests::server::TempDir::new("vestibule-layer");
        let store = vestibule_store::Store::connect(&format!("sqlite://{}/l.db", dir.0.display()))
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let broker = vestibule::Broker::builder(store, "https://app.example.com")
            .build()
            .await
            .expect("broker");
        let id = vestibule::SecretToken::generate();
        let ctx = AuthContext {
            vestibule: Vestibule::new(Arc::new(broker), crate::HttpSettings::default()),
            principal: None,
            token: SessionId::new(id.expose()),
            restored: true,
        };
        let shown = format!("{ctx:?}");
        assert!(!shown.contains(id.expose()), "{shown}");
        assert!(shown.contains("restored: true"), "{shown}");
        assert_eq!(ctx.session_token(), Some(id.expose()));
    }
}
