//! What the session layer learned about a request, kept in its extensions for extractors and handlers.

use std::sync::Arc;

use vestibule::{ActiveSession, Principal};
use vestibule_core::{ExposeSecret, SecretString};

use crate::Vestibule;

/// Who a request is, as the layer decided it (see [`vestibule::Broker::authenticate`]).
#[derive(Clone, Debug)]
pub(crate) struct AuthContext {
    pub(crate) vestibule: Vestibule,
    pub(crate) principal: Option<Principal>,
    /// The session id the request is served with (the cookie's, or the one just restored from remember-me):
    /// what CSRF tokens bind to. A bearer credential, so `Debug` does not print it.
    pub(crate) token: Option<SecretString>,
    /// The session was restored from the remember-me cookie by this very request.
    pub(crate) restored: bool,
}

impl AuthContext {
    /// The session id the request is served with, if any.
    pub(crate) fn session_token(&self) -> Option<&str> {
        self.token.as_ref().map(ExposeSecret::expose_secret)
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
            token: Some(id.expose().into()),
            restored: true,
        };
        let shown = format!("{ctx:?}");
        assert!(!shown.contains(id.expose()), "{shown}");
        assert!(shown.contains("restored: true"), "{shown}");
        assert_eq!(ctx.session_token(), Some(id.expose()));
    }
}
