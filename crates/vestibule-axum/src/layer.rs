//! The per-request session check, as a tower layer for the embedding app's routes (and the broker's own).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::layer::util::{Identity, Stack};
use tower::{Layer, Service, ServiceBuilder};
use vestibule::{Credentials, Principal, RememberCookie};
use vestibule_core::ExposeSecret;

use crate::context::{AuthContext, SessionId};
use crate::deadline::DeadlineLayer;
use crate::headers::SecurityHeadersLayer;
use crate::{client, cookies, respond, Vestibule};

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

/// Whether `path` is under the admin API (`{mount}/admin/api`), which this layer leaves alone (see `call`).
fn is_admin_path(path: &str, mount: &str) -> bool {
    path.strip_prefix(mount)
        .and_then(|rest| rest.strip_prefix("/admin/api"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The value of `Authorization: Bearer <value>`.
pub(crate) fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
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

pin_project_lite::pin_project! {
    /// The future of [`SessionService`]: the check, then the inner service; or only the inner service when the
    /// check needed no waiting (a live session in the broker's cache) or was already made (the broker's router
    /// nested in an app that applied the layer too).
    #[project = SessionFutureProj]
    pub enum SessionFuture<F, E> {
        /// Authenticated without waiting, or already: the inner service's own future, nothing boxed.
        Passed {
            #[pin]
            inner: F,
        },
        /// The session check and then the inner service.
        Checked {
            inner: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>,
        },
    }
}

impl<F, E> std::fmt::Debug for SessionFuture<F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionFuture::Passed { .. } => "SessionFuture::Passed",
            SessionFuture::Checked { .. } => "SessionFuture::Checked",
        })
    }
}

impl<F, E> Future for SessionFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            SessionFutureProj::Passed { inner } => inner.poll(cx),
            SessionFutureProj::Checked { inner } => inner.as_mut().poll(cx),
        }
    }
}

/// The layers of [`broker_stack`], named.
pub(crate) type BrokerStack =
    ServiceBuilder<Stack<SessionLayer, Stack<DeadlineLayer, Stack<SecurityHeadersLayer, Identity>>>>;

/// What the broker's routes run in, outermost first: security headers and error pages for every answer, the
/// deadline's 503 included; the deadline around everything that may wait on the database or a source, the session
/// check included; the session check. One `Router::layer` call for the three: axum boxes each layer's service and
/// clones the whole box below it on every request, so three calls meant three boxes and clones nested in each
/// other (see BENCHMARKS.md).
pub(crate) fn broker_stack(v: &Vestibule) -> BrokerStack {
    ServiceBuilder::new()
        .layer(SecurityHeadersLayer::new(v.clone()))
        .layer(DeadlineLayer::new(v.inner.request_timeout))
        .layer(SessionLayer::new(v.clone()))
}

/// The session of a request when [`vestibule::Broker::authenticate_cached`] decides it: a session cookie naming
/// a live cached session. Only the session cookie is read: with a good one, `authenticate` looks at nothing else.
pub(crate) fn cached_session(v: &Vestibule, req: &Request) -> Option<std::sync::Arc<vestibule::ActiveSession>> {
    Some(cached(v, req)?.0)
}

/// [`cached_session`] and the session cookie's value it was found with.
fn cached<'r>(v: &Vestibule, req: &'r Request) -> Option<(std::sync::Arc<vestibule::ActiveSession>, &'r str)> {
    let v = &v.inner;
    let headers = req.headers();
    let token = cookies::get(headers, v.cookies.session)?;
    let credentials = Credentials {
        session: Some(token),
        remember: None,
        bearer: None,
        user_agent: client::user_agent(headers),
        ip: client::client_ip(&v.trusted_proxies, headers, req.extensions()),
    };
    Some((v.broker.authenticate_cached(&credentials)?, token))
}

impl<S> SessionService<S> {
    /// The request's context when [`cached_session`] finds its session.
    fn cached(&self, req: &Request) -> Option<AuthContext> {
        let (session, token) = cached(&self.vestibule, req)?;
        Some(AuthContext {
            vestibule: self.vestibule.clone(),
            principal: Some(Principal::Session(session)),
            // Always `Some`: the broker only finds sessions for ids of this shape.
            token: Some(SessionId::new(token)?),
            restored: false,
        })
    }
}

impl<S> Service<Request> for SessionService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = SessionFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // Nested under an app that already applied the layer: the request is authenticated once, and the service
        // polled ready is called right here, with no clone and no box. The admin API authenticates its own bearer
        // tokens and reads no cookie: looked up here as well, a bad token would be counted twice against its
        // address, and a session or a remember-me cookie would be worked on for nothing.
        if req.extensions().get::<AuthContext>().is_some()
            || is_admin_path(req.uri().path(), &self.vestibule.inner.mount)
        {
            return SessionFuture::Passed {
                inner: self.inner.call(req),
            };
        }
        // The common case, decided from memory (see `Broker::authenticate_cached`): a live session in the
        // broker's cache. No cookie is set afterwards, so there is nothing to do after the inner service: it is
        // called right here, with no clone, no box and no future of ours.
        if let Some(ctx) = self.cached(&req) {
            req.extensions_mut().insert(ctx);
            return SessionFuture::Passed {
                inner: self.inner.call(req),
            };
        }
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let vestibule = self.vestibule.clone();
        let inner = Box::pin(async move {
            let names = &vestibule.inner.cookies;
            let headers = req.headers();
            // One pass over the cookies for both, when a restore is allowed at all.
            let (session, remember) = if may_restore(&req, &vestibule.inner.mount) {
                cookies::get_both(headers, names.session, names.remember)
            } else {
                (cookies::get(headers, names.session), None)
            };
            let credentials = Credentials {
                session,
                remember,
                bearer: bearer_token(headers),
                // Borrowed header and address: nothing is allocated for them on the hot path.
                user_agent: client::user_agent(headers),
                ip: client::client_ip(&vestibule.inner.trusted_proxies, headers, req.extensions()),
            };
            let auth = vestibule.broker().authenticate(&credentials).await;
            if let Some(secs) = auth.throttled {
                // Too many wrong bearer tokens from this address: answered here, before any handler.
                let mut res = (
                    http::StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(serde_json::json!({ "error": "too_many_requests" })),
                )
                    .into_response();
                res.headers_mut()
                    .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
                return Ok(res);
            }
            let mut set_cookies = Vec::new();
            let restored = auth.restored();
            if let Some(new) = &auth.new_session_cookie {
                set_cookies.push(names.set(names.session, new.expose_secret(), None));
            }
            match &auth.remember_cookie {
                RememberCookie::Set(value) => {
                    let age = vestibule.broker().settings().remember_days.saturating_mul(86_400);
                    set_cookies.push(names.set(names.remember, value.expose_secret(), Some(age)));
                }
                RememberCookie::Clear => set_cookies.push(names.clear(names.remember)),
                _ => {}
            }
            req.extensions_mut().insert(AuthContext {
                vestibule,
                principal: auth.principal,
                token: auth.session_token.and_then(|t| SessionId::new(t.expose_secret())),
                restored,
            });
            let res = inner.call(req).await?;
            Ok(respond::with_cookies(res, &set_cookies))
        });
        SessionFuture::Checked { inner }
    }
}

impl Vestibule {
    /// The layer that authenticates requests for the app's own routes.
    pub fn layer(&self) -> SessionLayer {
        SessionLayer::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(auth).expect("header"),
        );
        h
    }

    #[test]
    fn only_the_admin_api_under_the_mount_is_left_alone() {
        for (path, mount) in [
            ("/admin/api", ""),
            ("/admin/api/x", ""),
            ("/auth/admin/api/audit", "/auth"),
        ] {
            assert!(is_admin_path(path, mount), "{path} under {mount:?}");
        }
        for (path, mount) in [
            ("/admin/apix", ""),
            ("/admin/api/x", "/auth"),
            ("/auth/admin", "/auth"),
            ("/app/admin/api/x", ""),
            ("/account", ""),
        ] {
            assert!(!is_admin_path(path, mount), "{path} under {mount:?}");
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_nothing_else_is_a_bearer() {
        assert_eq!(bearer_token(&headers("Bearer vst_abc")), Some("vst_abc"));
        assert_eq!(bearer_token(&headers("bearer vst_abc")), Some("vst_abc"));
        assert_eq!(bearer_token(&headers("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&http::HeaderMap::new()), None);
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
