//! A request id for every request: a random reference that every log line written while the request runs carries
//! (a `request` span with `request_id`), that error pages show as their reference, and that the response returns
//! in `X-Request-Id`, so a person's "reference 3f9a…" leads an operator to every line of that request.
//!
//! The id is made here, never taken from the request: a client (or a proxy that does not strip the header) could
//! otherwise choose ids that collide with someone else's request or forge lines in the log. The request path is not
//! in the span: paths such as `/reset/{token}` carry secrets.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The response header that carries the id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Middleware giving each request an id (see the module documentation). The `vestibule` server wraps everything
/// in it; an embedding app adds it with `axum::middleware::from_fn(vestibule_axum::with_request_id)` as its
/// outermost layer.
pub async fn with_request_id(req: Request, next: Next) -> Response {
    let id = new_id();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method());
    let mut res = REQUEST_ID.scope(id.clone(), next.run(req).instrument(span)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    res
}

/// The id of the request being handled, when [`with_request_id`] runs around it.
pub(crate) fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// 12 hex digits (48 random bits): unique enough among the requests an operator looks through, short enough to
/// read out over the phone.
pub(crate) fn new_id() -> String {
    let mut b = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
