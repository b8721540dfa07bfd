//! Security headers on every response of the broker's routes, and the rendering of error pages (one layer, so no
//! response leaves without both).
//!
//! A hand-written tower layer rather than `axum::middleware::from_fn`: `from_fn` boxes a clone of the inner
//! service and the future on every request, which showed in the profile of `/verify` (BENCHMARKS.md).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderName, HeaderValue};
use tower::{Layer, Service};

use crate::error::ErrorPage;
use crate::ui::PageRequest;
use crate::{pages, Vestibule};

/// No inline script or style (the one script, for passkeys, is the broker's own file), no framing, no plugins, no
/// base-URI tricks. `form-action` is deliberately absent:
/// Chromium applies it to the redirect after a submit, which would block the 303 to an identity provider.
const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// How long a language chosen with a footer link is remembered: a year.
const LANG_COOKIE_SECS: i64 = 365 * 86_400;

const CROSS_ORIGIN_OPENER_POLICY: HeaderName = HeaderName::from_static("cross-origin-opener-policy");

/// Adds the security headers and renders error pages; see [`finish`].
#[derive(Clone, Debug)]
pub(crate) struct SecurityHeadersLayer {
    v: Vestibule,
}

impl SecurityHeadersLayer {
    pub(crate) fn new(v: Vestibule) -> Self {
        SecurityHeadersLayer { v }
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            v: self.v.clone(),
        }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Clone, Debug)]
pub(crate) struct SecurityHeaders<S> {
    inner: S,
    v: Vestibule,
}

impl<S> Service<Request> for SecurityHeaders<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Finishing<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The page language and language links, decided once here so that the handler's pages and the error page
        // rendered in `finish` agree.
        let page = Arc::new(PageRequest::of(&req, &self.v.inner.mount));
        Finishing {
            inner: page.clone().scope(self.inner.call(req)),
            v: self.v.clone(),
            page,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, then [`finish`].
    #[derive(Debug)]
    pub(crate) struct Finishing<F> {
        #[pin]
        inner: tokio::task::futures::TaskLocalFuture<Arc<PageRequest>, F>,
        v: Vestibule,
        page: Arc<PageRequest>,
    }
}

impl<F, E> Future for Finishing<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(finish(this.v, this.page, res)))
    }
}

/// Renders an [`ErrorPage`] the handler asked for, then sets the security headers.
pub(crate) fn finish(v: &Vestibule, req: &PageRequest, mut res: Response) -> Response {
    if let Some(page) = res.extensions_mut().remove::<ErrorPage>() {
        let (body, content_type) = if req.api {
            let retry_after = res.headers().get(http::header::RETRY_AFTER);
            (page.json(req.lang, retry_after), "application/json")
        } else {
            let html = pages::message_for(v, req, page.title, &page.message, page.reference.as_deref());
            (html, "text/html; charset=utf-8")
        };
        *res.body_mut() = Body::from(body);
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        res.headers_mut().remove(CONTENT_LENGTH);
    }
    if let Some(chosen) = req.chosen {
        // The person picked a language with a footer link: it holds over Accept-Language from now on.
        let cookie = v
            .inner
            .cookies
            .set(crate::i18n::LANG_COOKIE, chosen.code(), Some(LANG_COOKIE_SECS));
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(http::header::SET_COOKIE, value);
        }
    }
    let h = res.headers_mut();
    // One growth of the map for all of them.
    h.reserve(7);
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Every broker page is about someone's authentication: never cached, not even the login form.
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(CROSS_ORIGIN_OPENER_POLICY, HeaderValue::from_static("same-origin"));
    if v.inner.cookies.secure() {
        h.insert(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}
