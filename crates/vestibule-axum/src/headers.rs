//! Security headers on every response of the broker's routes, and the rendering of error pages (one middleware,
//! so no response leaves without both).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::HeaderValue;

use crate::error::ErrorPage;
use crate::{pages, Vestibule};

/// No inline script or style, no framing, no plugins, no base-URI tricks. `form-action` is deliberately absent:
/// Chromium applies it to the redirect after a submit, which would block the 303 to an identity provider.
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

pub(crate) async fn finish(State(v): State<Vestibule>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if let Some(page) = res.extensions_mut().remove::<ErrorPage>() {
        let html = pages::message(&v, page.title, &page.message, page.reference.as_deref());
        *res.body_mut() = Body::from(html);
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        res.headers_mut().remove(CONTENT_LENGTH);
    }
    let h = res.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Every broker page is about someone's authentication: never cached, not even the login form.
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if v.inner.cookies.secure() {
        h.insert(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}
