//! Extractors for handlers: who is signed in.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use http::header::ACCEPT;
use http::request::Parts;
use http::StatusCode;
use vestibule::{ActiveSession, Principal};

use crate::context::AuthContext;
use crate::AppError;

/// Who is signed in — a browser session or a personal access token (see [`Principal`]; it dereferences to the
/// account, so `user.account_id` works for both) — or a refusal: a browser (asking for HTML) is sent to the login
/// page with `next` set to where it was going; any other client gets `401 {"error":"unauthenticated"}`.
#[derive(Debug, Clone)]
pub struct RequireUser(pub Principal);

/// The signed-in session, if a credential was proven in it within `fresh_secs` (a session restored from
/// remember-me, or an old one, is not fresh; a token never is). Otherwise a browser is sent to sign in again and come back; any other
/// client gets `401 {"error":"reauthentication_required"}`. For sensitive actions.
#[derive(Debug, Clone)]
pub struct RequireFresh(pub Arc<ActiveSession>);

/// The signed-in session, if it was proven with a second factor (a TOTP or recovery code, or a trusted provider's
/// MFA): for routes only multi-factor sessions may use. Otherwise a browser is sent to the second-factor page
/// (step-up: a code for a session whose account has a factor; the account page to set one up when it has none),
/// then back; any other client gets `401 {"error":"second_factor_required"}`. A token is never multi-factor.
#[derive(Debug, Clone)]
pub struct RequireMultiFactor(pub Arc<ActiveSession>);

/// The signed-in session, if a second factor was proven in it within `fresh_secs`: for sensitive routes, so that a
/// session restored from remember-me, or an old one, proves its second factor again (step-up). Refused like
/// [`RequireMultiFactor`].
#[derive(Debug, Clone)]
pub struct RequireFreshMultiFactor(pub Arc<ActiveSession>);

/// Who is signed in, if anyone.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Option<Principal>);

/// A scope a route requires of personal access tokens, named by a marker type:
///
/// ```
/// use vestibule_axum::{RequireScope, Scope};
///
/// struct ReadReports;
/// impl Scope for ReadReports {
///     const NAME: &'static str = "reports:read";
/// }
///
/// async fn reports(RequireScope(user, ..): RequireScope<ReadReports>) -> String {
///     format!("reports for {}", user.account_id)
/// }
/// ```
pub trait Scope: Send + Sync + 'static {
    /// The scope's name, as given when the token was created.
    const NAME: &'static str;
}

/// Who is signed in, when a bearer token carries the scope `S::NAME` — or a browser session, which is the person
/// themselves and holds every scope. A token without it gets `403 {"error":"insufficient_scope"}`; nobody signed in
/// is refused like [`RequireUser`].
#[derive(Debug)]
pub struct RequireScope<S: Scope>(pub Principal, pub std::marker::PhantomData<S>);

impl<S: Scope> Clone for RequireScope<S> {
    fn clone(&self) -> Self {
        RequireScope(self.0.clone(), std::marker::PhantomData)
    }
}

/// A group a route requires of the signed-in account, named by a marker type. An account's groups are those its
/// identities' sources say (LDAP groups, an IdP's claim) merged with those an operator assigned
/// (`vestibule user groups`, the admin API): the same list `/me` shows. Declare one with [`group!`](crate::group)
/// or by hand:
///
/// ```
/// use vestibule_axum::{Group, RequireGroup};
///
/// struct Admins;
/// impl Group for Admins {
///     const NAME: &'static str = "admins";
/// }
///
/// async fn admin_page(RequireGroup(user, ..): RequireGroup<Admins>) -> String {
///     format!("hello, administrator {}", user.account_id)
/// }
/// ```
pub trait Group: Send + Sync + 'static {
    /// The group's short name, as sources and operators give it.
    const NAME: &'static str;
}

/// Declares [`Group`] marker types: `vestibule_axum::group!(pub Admins = "admins", Auditors = "auditors");`.
///
/// ```
/// vestibule_axum::group!(pub Admins = "admins");
///
/// async fn admin_page(vestibule_axum::RequireGroup(user, ..): vestibule_axum::RequireGroup<Admins>) -> String {
///     user.account_id.to_string()
/// }
/// ```
#[macro_export]
macro_rules! group {
    ($($vis:vis $name:ident = $group:literal),+ $(,)?) => {
        $(
            #[doc = concat!("The group `", $group, "`.")]
            $vis struct $name;
            impl $crate::Group for $name {
                const NAME: &'static str = $group;
            }
        )+
    };
}

/// Who is signed in, when their account is in the group `G::NAME`. A browser session or a personal access token of
/// such an account passes (the token acts for its account; add [`RequireScope`] to the handler to also demand a
/// scope of tokens). Signed in but not in the group: `403`, a page for a browser, `{"error":"forbidden",
/// ...}` for an API client. Nobody signed in is refused like [`RequireUser`].
#[derive(Debug)]
pub struct RequireGroup<G: Group>(pub Principal, pub std::marker::PhantomData<G>);

impl<G: Group> Clone for RequireGroup<G> {
    fn clone(&self) -> Self {
        RequireGroup(self.0.clone(), std::marker::PhantomData)
    }
}

/// Why a `Require*` extractor (or [`crate::CsrfForm`]) refused. Every one of them refuses through the same rules:
/// a browser (asking for HTML) is sent where it can fix it (the login page, the step-up page, both with `next`) on a
/// GET, or shown a page saying why; any other client gets `{"error":"<code>"}` with the codes named below (the
/// shape `/me` answers too; the admin API, a separate surface, nests its errors with a message).
#[derive(Debug)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// Go sign in (browsers).
    Login(String),
    /// 401 `unauthenticated` (API clients).
    Json,
    /// 401 `reauthentication_required`: a new sign-in is needed (API clients, stale session).
    Stale,
    /// 403 `insufficient_scope`: a token without the scope the route requires.
    InsufficientScope,
    /// Go prove a second factor (browsers): the step-up page, returning to where the request was going.
    StepUp(String),
    /// 401 `second_factor_required` (API clients).
    SecondFactor,
    /// 403 `forbidden`: signed in, but not in the group the route requires. `page` is the rendered page for a
    /// browser; without one the answer is JSON.
    Forbidden {
        /// The page a browser is shown.
        page: Option<String>,
    },
    /// 403 `csrf_failed`: an app form whose `csrf_token` is missing or not this browser's. `page` as for
    /// [`Unauthenticated::Forbidden`].
    Csrf {
        /// The page a browser is shown.
        page: Option<String>,
    },
    /// 400 `invalid_request`: an app form body that is not of the handler's shape.
    BadForm,
    /// The app forgot `.layer(vestibule.layer())`: a programming error, answered with 500 rather than letting
    /// anyone through.
    MissingLayer,
}

/// The JSON of a refusal: `{"error":"<code>"}`, exactly what `/me` and the extractors have always answered, so
/// that clients matching the whole body keep working. The words for people are on the browser's page instead.
fn json_refusal(status: StatusCode, code: &str) -> Response {
    (status, Json(serde_json::json!({ "error": code }))).into_response()
}

/// A refusal page, or the JSON when there is no page.
fn page_or_json(page: Option<String>, status: StatusCode, code: &str) -> Response {
    match page {
        Some(html) => (status, crate::respond::html_headers(), html).into_response(),
        None => json_refusal(status, code),
    }
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        match self {
            Unauthenticated::Login(to) | Unauthenticated::StepUp(to) => Redirect::to(&to).into_response(),
            Unauthenticated::Json => json_refusal(StatusCode::UNAUTHORIZED, "unauthenticated"),
            Unauthenticated::Stale => json_refusal(StatusCode::UNAUTHORIZED, "reauthentication_required"),
            Unauthenticated::SecondFactor => json_refusal(StatusCode::UNAUTHORIZED, "second_factor_required"),
            Unauthenticated::InsufficientScope => json_refusal(StatusCode::FORBIDDEN, "insufficient_scope"),
            Unauthenticated::Forbidden { page } => page_or_json(page, StatusCode::FORBIDDEN, "forbidden"),
            Unauthenticated::Csrf { page } => page_or_json(page, StatusCode::FORBIDDEN, "csrf_failed"),
            Unauthenticated::BadForm => json_refusal(StatusCode::BAD_REQUEST, "invalid_request"),
            Unauthenticated::MissingLayer => {
                tracing::error!("a vestibule extractor used on a route without vestibule's SessionLayer");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// What a request lacks for a route: the input of [`refuse`], the one place that turns it into an answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shortfall {
    /// Nobody is signed in.
    SignedOut,
    /// The session is not fresh (or the credential is a token, which never is).
    NotFresh,
    /// No second factor was proven; `session` tells whether there is a session that could step up.
    NoSecondFactor { session: bool },
    /// A token without the route's scope.
    Scope,
    /// Not in the route's group.
    Group,
    /// An app form without this browser's CSRF token.
    Csrf,
}

/// The refusal for `why`: a browser's GET goes where it can fix it (the login or step-up page, back to `next`
/// after), a browser that cannot fix it here sees a page, and any other client gets the JSON.
pub(crate) fn refuse(parts: &Parts, v: &crate::Vestibule, why: Shortfall) -> Unauthenticated {
    let html = wants_html(parts);
    // A browser is sent where it can fix the shortfall whatever the method, as these extractors always did: a form
    // posted after the session ended lands on the login page rather than on a bare JSON answer.
    let can_go = html;
    let page = |title: &str, message: &str| {
        html.then(|| {
            let req = crate::ui::PageRequest::of_head(&parts.method, &parts.uri, &parts.headers, v.mount());
            crate::pages::message_for(v, &req, title, message, None)
        })
    };
    match why {
        Shortfall::SignedOut if can_go => Unauthenticated::Login(login_redirect(parts, v)),
        Shortfall::SignedOut => Unauthenticated::Json,
        Shortfall::NotFresh if can_go => Unauthenticated::Login(login_redirect(parts, v)),
        Shortfall::NotFresh => Unauthenticated::Stale,
        Shortfall::NoSecondFactor { session: true } if can_go => Unauthenticated::StepUp(step_up_redirect(parts, v)),
        Shortfall::NoSecondFactor { .. } => Unauthenticated::SecondFactor,
        Shortfall::Scope => Unauthenticated::InsufficientScope,
        Shortfall::Group => Unauthenticated::Forbidden {
            page: page("error-forbidden-title", "error-forbidden"),
        },
        Shortfall::Csrf => Unauthenticated::Csrf {
            page: page("error-csrf-title", "error-csrf"),
        },
    }
}

/// The login page with `next` set to where the request was going (the full path, nest prefix included).
fn login_redirect(parts: &Parts, v: &crate::Vestibule) -> String {
    format!("{}?next={}", v.login_path(), here_encoded(parts))
}

/// The step-up page with `next` set to where the request was going.
fn step_up_redirect(parts: &Parts, v: &crate::Vestibule) -> String {
    format!("{}/login/second-factor?next={}", v.mount(), here_encoded(parts))
}

/// Where the request was going, percent-encoded for a `next` parameter.
fn here_encoded(parts: &Parts) -> String {
    let here = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .and_then(|u| u.0.path_and_query().map(|p| p.as_str().to_owned()))
        .or_else(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
        .unwrap_or_else(|| "/".to_owned());
    percent_encoding::utf8_percent_encode(&here, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn wants_html(parts: &Parts) -> bool {
    parts
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The session layer's view of the request, or the refusal for a route without the layer.
pub(crate) fn context(parts: &Parts) -> Result<&AuthContext, Unauthenticated> {
    parts
        .extensions
        .get::<AuthContext>()
        .ok_or(Unauthenticated::MissingLayer)
}

/// Who is signed in, and the broker's HTTP side to judge them with; refused like [`RequireUser`] when nobody is.
fn signed_in(parts: &Parts) -> Result<(Principal, crate::Vestibule), Unauthenticated> {
    let ctx = context(parts)?;
    match &ctx.principal {
        Some(p) => Ok((p.clone(), ctx.vestibule.clone())),
        None => Err(refuse(parts, &ctx.vestibule, Shortfall::SignedOut)),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequireUser {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        signed_in(parts).map(|(p, _)| RequireUser(p))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequireFresh {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let (principal, v) = signed_in(parts)?;
        match principal {
            Principal::Session(session) if v.broker().is_fresh(&session) => Ok(RequireFresh(session)),
            _ => Err(refuse(parts, &v, Shortfall::NotFresh)),
        }
    }
}

/// The session behind a request that needs a second factor, when `enough` says it has proven one; else a refusal
/// that sends a browser to step up.
fn multi_factor(
    parts: &Parts,
    enough: impl Fn(&vestibule::Broker, &ActiveSession) -> bool,
) -> Result<Arc<ActiveSession>, Unauthenticated> {
    let (principal, v) = signed_in(parts)?;
    match principal {
        Principal::Session(session) if enough(v.broker(), &session) => Ok(session),
        other => Err(refuse(
            parts,
            &v,
            Shortfall::NoSecondFactor {
                session: other.session().is_some(),
            },
        )),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequireMultiFactor {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        multi_factor(parts, |_, s| s.assurance == vestibule::Assurance::Multi).map(RequireMultiFactor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequireFreshMultiFactor {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        multi_factor(parts, |broker, s| broker.is_fresh_multi_factor(s)).map(RequireFreshMultiFactor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        context(parts).map(|ctx| CurrentUser(ctx.principal.clone()))
    }
}

impl<St: Send + Sync, S: Scope> FromRequestParts<St> for RequireScope<S> {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let (principal, v) = signed_in(parts)?;
        if principal.has_scope(S::NAME) {
            Ok(RequireScope(principal, std::marker::PhantomData))
        } else {
            Err(refuse(parts, &v, Shortfall::Scope))
        }
    }
}

impl<St: Send + Sync, G: Group> FromRequestParts<St> for RequireGroup<G> {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        in_group(parts, G::NAME).map(|p| RequireGroup(p, std::marker::PhantomData))
    }
}

/// Who is signed in, when their account is in `group`; else the refusal of [`RequireGroup`].
fn in_group(parts: &Parts, group: &str) -> Result<Principal, Unauthenticated> {
    let (principal, v) = signed_in(parts)?;
    if principal.groups.iter().any(|g| g == group) {
        Ok(principal)
    } else {
        Err(refuse(parts, &v, Shortfall::Group))
    }
}

/// A route layer admitting only accounts in `group`, refusing everyone else exactly as [`RequireGroup`] does: for
/// a whole set of routes at once, where the handlers need not name the group (or the principal) themselves.
///
/// ```
/// use axum::{routing::get, Router};
///
/// let admin: Router = Router::new()
///     .route("/admin/reports", get(|| async { "reports" }))
///     .route("/admin/users", get(|| async { "users" }))
///     .route_layer(vestibule_axum::require_group("admins"));
/// ```
///
/// Use `route_layer` (not `layer`), so that a path that matches no route stays a 404 rather than a refusal, and
/// put the app's `auth.layer()` outside it (it must run first: without it every request is refused with 500).
pub fn require_group(group: impl Into<Arc<str>>) -> RequireGroupLayer {
    RequireGroupLayer { group: group.into() }
}

/// The layer of [`require_group`].
#[derive(Debug, Clone)]
pub struct RequireGroupLayer {
    group: Arc<str>,
}

impl<S> tower::Layer<S> for RequireGroupLayer {
    type Service = RequireGroupService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireGroupService {
            inner,
            group: self.group.clone(),
        }
    }
}

/// The service of [`require_group`]: the inner service for members of the group, the refusal for anyone else.
#[derive(Debug, Clone)]
pub struct RequireGroupService<S> {
    inner: S,
    group: Arc<str>,
}

impl<S> tower::Service<axum::extract::Request> for RequireGroupService<S>
where
    S: tower::Service<axum::extract::Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GroupChecked<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let (parts, body) = req.into_parts();
        match in_group(&parts, &self.group) {
            Ok(_) => GroupChecked::Admitted {
                inner: self.inner.call(axum::extract::Request::from_parts(parts, body)),
            },
            Err(refusal) => GroupChecked::Refused {
                answer: Some(refusal.into_response()),
                _error: std::marker::PhantomData,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`RequireGroupService`]: the inner service's, or the refusal (nothing boxed).
    #[project = GroupCheckedProj]
    #[derive(Debug)]
    pub enum GroupChecked<F, E> {
        /// A member: the inner service answers.
        Admitted { #[pin] inner: F },
        /// Not a member (or nobody signed in): the refusal.
        Refused { answer: Option<Response>, _error: std::marker::PhantomData<E> },
    }
}

impl<F, E> std::future::Future for GroupChecked<F, E>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        match self.project() {
            GroupCheckedProj::Admitted { inner } => inner.poll(cx),
            GroupCheckedProj::Refused { answer, .. } => std::task::Poll::Ready(Ok(answer
                .take()
                .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()))),
        }
    }
}

/// The broker's own account routes: a browser session, or a refusal — a personal access token is not the person
/// (`403`, [`AppError::TokenNotAllowed`]), and no session means the form's session is gone (`403`,
/// [`AppError::Csrf`]: nothing was changed).
pub(crate) struct SignedIn(pub(crate) Arc<ActiveSession>);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ctx = parts
            .extensions
            .get::<AuthContext>()
            .ok_or_else(|| AppError::Internal("a broker route without the session layer".into()))?;
        match &ctx.principal {
            Some(Principal::Session(s)) => Ok(SignedIn(s.clone())),
            Some(_) => Err(AppError::TokenNotAllowed),
            None => Err(AppError::Csrf),
        }
    }
}
