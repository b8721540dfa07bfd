//! The per-request deadline of the broker's routes ([`crate::HttpSettings::request_timeout`]). Every wait below
//! has its own bound (database statements, pool, sources); this one bounds their sum, so a request that waits on
//! several slow things in a row still ends, answered with a 503 and `Retry-After` rather than a hung connection.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{AppError, Vestibule};

/// Why a request was abandoned: logged, never shown.
#[derive(Debug, thiserror::Error)]
#[error("request deadline of {0:?} passed")]
struct DeadlinePassed(std::time::Duration);

pub(crate) async fn limit(State(v): State<Vestibule>, req: Request, next: Next) -> Response {
    let limit = v.inner.request_timeout;
    // Dropping the handler's future on the deadline is safe: an open transaction rolls back when dropped, and the
    // password hash keeps its concurrency permit inside its blocking task.
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => AppError::Busy(Box::new(DeadlinePassed(limit))).into_response(),
    }
}
