//! The per-request session check, as a tower layer for the embedding app's routes (and the broker's own).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};
use vestibule::{ActiveSession, Restored};
use vestibule_core::{ExposeSecret, SecretString};

use crate::{cookies, Vestibule};

/// What the layer learned about a request, stored in its extensions for the extractors.
#[derive(Clone, Debug)]
pub(crate) struct AuthContext {
    pub(crate) vestibule: Vestibule,
    pub(crate) session: Option<Arc<ActiveSession>>,
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
}

/// Whether a request may restore a session from the remember-me cookie. Only a plain page load (GET or HEAD) may:
/// a form post carries a CSRF token bound to the session it was rendered in, so a session restored under it would
/// only fail the check and leave the browser with new cookies (signing out after an idle expiry answered "Form
/// expired" and signed the person back in). And never `/verify`: a forward-auth answer goes to the proxy, which
/// does not pass its `Set-Cookie` on, so the rotated remember-me token would be lost and the browser's next use of
/// the old one taken for theft. `/verify` answers 401 instead; the proxy sends the browser to the login page, which
/// restores on the broker's own origin and sends it back to `next`.
fn may_restore(req: &Request, mount: &str) -> bool {
    let path = req.uri().path();
    let verify = path.strip_prefix(mount).is_some_and(|rest| rest == "/verify") || path == "/verify";
    matches!(*req.method(), http::Method::GET | http::Method::HEAD) && !verify
}

/// The value of `Authorization: Bearer <value>`.
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Resolves the session cookie once per request. Add it to your router with `.layer(vestibule.layer())`.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    vestibule: Vestibule,
}

impl SessionLayer {
    /// A layer over `vestibule`'s broker.
    pub fn new(vestibule: Vestibule) -> Self {
        SessionLayer { vestibule }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            vestibule: self.vestibule.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around yours.
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    vestibule: Vestibule,
}

impl<S> Service<Request> for SessionService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let vestibule = self.vestibule.clone();
        Box::pin(async move {
            // Nested under an app that already applied the layer: the session is resolved once per request.
            if req.extensions().get::<AuthContext>().is_some() {
                return inner.call(req).await;
            }
            let names = &vestibule.inner.cookies;
            let broker = vestibule.broker().clone();
            let mut token = cookies::get(req.headers(), names.session).map(str::to_owned);
            let mut session = match &token {
                Some(t) => broker.session(t).await.unwrap_or_else(|e| {
                    // Fail closed: a broken store means "not signed in", never "signed in".
                    tracing::error!(error = %e, "session check failed");
                    None
                }),
                None => None,
            };
            if let Some(s) = &session {
                // Borrowed header and address: the protection check allocates nothing on the hot path.
                let ip = crate::routes::client_ip(&vestibule.inner.trusted_proxies, req.headers(), req.extensions());
                let ua = req
                    .headers()
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok());
                match broker.check_client_parts(s, ua, ip).await {
                    Ok(true) => {}
                    Ok(false) => session = None,
                    Err(e) => {
                        tracing::error!(error = %e, "session protection check failed");
                        session = None;
                    }
                }
            }
            let mut set_cookies = Vec::new();
            let mut restored = false;
            if session.is_none() && may_restore(&req, &vestibule.inner.mount) {
                if let Some(remembered) = cookies::get(req.headers(), names.remember).map(str::to_owned) {
                    let client =
                        crate::routes::client_of(&vestibule.inner.trusted_proxies, req.headers(), req.extensions());
                    match broker.restore(&remembered, &client).await {
                        Ok(Restored::Session { session: new, cookie }) => {
                            set_cookies.push(names.set(names.session, new.token.expose(), None));
                            if let Some(c) = cookie {
                                let age = broker.settings().remember_days.saturating_mul(86_400);
                                set_cookies.push(names.set(names.remember, c.expose_secret(), Some(age)));
                            }
                            session = broker.session(new.token.expose()).await.ok().flatten();
                            token = Some(new.token.expose().to_owned());
                            restored = session.is_some();
                        }
                        Ok(Restored::Invalid | Restored::Theft) => set_cookies.push(names.clear(names.remember)),
                        Err(e) => tracing::error!(error = %e, "remember-me check failed"),
                    }
                }
            }
            if session.is_none() {
                // API clients: a personal access token (also when a stale session cookie came along). It never
                // binds CSRF tokens (ctx.token is emptied below), so a bearer request cannot use the broker's forms.
                if let Some(bearer) = bearer_token(req.headers()) {
                    session = broker.bearer(bearer).await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "token check failed");
                        None
                    });
                }
            }
            if session.as_ref().is_none_or(|s| s.scopes.is_some()) {
                token = None;
            }
            req.extensions_mut().insert(AuthContext {
                vestibule: vestibule.clone(),
                session,
                token: token.map(SecretString::from),
                restored,
            });
            let mut res = inner.call(req).await?;
            for c in set_cookies {
                if let Ok(v) = http::HeaderValue::from_str(&c) {
                    res.headers_mut().append(http::header::SET_COOKIE, v);
                }
            }
            Ok(res)
        })
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
            session: None,
            token: Some(id.expose().into()),
            restored: true,
        };
        let shown = format!("{ctx:?}");
        assert!(!shown.contains(id.expose()), "{shown}");
        assert!(shown.contains("restored: true"), "{shown}");
        assert_eq!(ctx.session_token(), Some(id.expose()));
    }

    mod bearer {
        use proptest::prelude::*;

        use super::super::bearer_token;

        fn with_authorization(value: &[u8]) -> Option<http::HeaderMap> {
            let v = http::HeaderValue::from_bytes(value).ok()?;
            let mut h = http::HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, v);
            Some(h)
        }

        const SCHEMES: &[&str] = &[
            "Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Token", "Bearerx", "Beare", "XBearer", "", "Bearer:",
            "Bearer\t",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// Only the `Bearer` scheme, in any ASCII case, yields the credential after the space, trimmed.
            #[test]
            fn only_the_bearer_scheme(
                scheme in prop::sample::select(SCHEMES),
                token in "[A-Za-z0-9_.~+/=-]{0,50}",
                pad in " {0,2}",
            ) {
                let header = format!("{scheme} {pad}{token}{pad}");
                let Some(h) = with_authorization(header.as_bytes()) else { return Ok(()) };
                let found = bearer_token(&h);
                if scheme.eq_ignore_ascii_case("bearer") {
                    prop_assert_eq!(found, Some(token.as_str()));
                } else {
                    prop_assert_eq!(found, None);
                }
            }

            /// Arbitrary header bytes: no panic; a credential found is the header's own tail after `Bearer `.
            #[test]
            fn never_panics(raw in prop::collection::vec(any::<u8>(), 0..80)) {
                let Some(h) = with_authorization(&raw) else { return Ok(()) };
                if let Some(token) = bearer_token(&h) {
                    let text = std::str::from_utf8(&raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert!(text.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")), "{:?}", text);
                    prop_assert_eq!(token, text[7..].trim());
                }
            }
        }
    }
}
