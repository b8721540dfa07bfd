//! The per-request deadline of the broker's routes ([`crate::HttpSettings::request_timeout`]). Every wait below
//! has its own bound (database statements, pool, sources); this one bounds their sum, so a request that waits on
//! several slow things in a row still ends, answered with a 503 and `Retry-After` rather than a hung connection.
//!
//! The timer is armed when the request first waits, not when it arrives: a request answered without waiting (a
//! session found in the cache) registers no timer at all, and the work before its first wait is computation, which
//! no timer could interrupt anyway. A hand-written layer, not `from_fn`, for the same reason as
//! [`crate::headers`]: nothing boxed per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
use tower::{Layer, Service};

use crate::AppError;

/// Why a request was abandoned: logged, never shown.
#[derive(Debug, thiserror::Error)]
#[error("request deadline of {0:?} passed")]
struct DeadlinePassed(Duration);

/// Answers 503 (through [`AppError::Busy`]) when the inner service has not answered within `limit` of its first
/// wait.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeadlineLayer {
    limit: Duration,
}

impl DeadlineLayer {
    pub(crate) fn new(limit: Duration) -> Self {
        DeadlineLayer { limit }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Deadline<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request> for Deadline<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Limited<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Limited {
            inner: self.inner.call(req),
            timer: None,
            limit: self.limit,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, or a 503 once `limit` has passed since it first waited.
    #[derive(Debug)]
    pub(crate) struct Limited<F> {
        #[pin]
        inner: F,
        #[pin]
        timer: Option<Sleep>,
        limit: Duration,
    }
}

impl<F, E> Future for Limited<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out);
        }
        // Dropping the handler's future on the deadline is safe: an open transaction rolls back when dropped, and
        // the password hash keeps its concurrency permit inside its blocking task.
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(*this.limit)));
        }
        match this.timer.as_pin_mut().map(|t| t.poll(cx)) {
            Some(Poll::Ready(())) => {
                Poll::Ready(Ok(AppError::Busy(Box::new(DeadlinePassed(*this.limit))).into_response()))
            }
            _ => Poll::Pending,
        }
    }
}
