//! The per-request session check, as a tower layer for the embedding app's routes (and the broker's own).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};
use vestibule::ActiveSession;

use crate::{cookies, Vestibule};

/// What the layer learned about a request, stored in its extensions for the extractors.
#[derive(Clone, Debug)]
pub(crate) struct AuthContext {
    pub(crate) vestibule: Vestibule,
    pub(crate) session: Option<Arc<ActiveSession>>,
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
            let session = match cookies::get(req.headers(), vestibule.inner.cookies.session) {
                Some(token) => match vestibule.broker().session(token).await {
                    Ok(s) => s,
                    Err(e) => {
                        // Fail closed: a broken store means "not signed in", never "signed in".
                        tracing::error!(error = %e, "session check failed");
                        None
                    }
                },
                None => None,
            };
            req.extensions_mut().insert(AuthContext { vestibule, session });
            inner.call(req).await
        })
    }
}
