//! Router tests with `oneshot`: the broker's routes nested in an app, the layer and extractors, redirect flows and
//! error pages, over a real SQLite store and in-process sources.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use vestibule::Broker;
use vestibule_axum::{CurrentUser, HttpSettings, RequireUser, Vestibule};
use vestibule_core::{ExposeSecret, ExternalIdentity, SourceId, Subject};
use vestibule_store::{Store, StoreOptions};
use vestibule_tests::fakes::{PasswordFake, RedirectFake};
use vestibule_tests::totp::{code_elements, now_secs};

#[path = "router/admin_api.rs"]
mod admin_api;
#[path = "router/authz.rs"]
mod authz;
#[path = "router/mail.rs"]
mod mail;
#[path = "router/spa_api.rs"]
mod spa_api;

/// Password source: "ann"/"right password" works; "down" simulates an unreachable directory (with a detail that
/// must not reach the page), "slow" one that hangs.
fn directory() -> PasswordFake {
    PasswordFake::new("dir")
        .user(
            "ann",
            "right password",
            ExternalIdentity::new(SourceId::new("dir").unwrap(), Subject::new("ann-1").unwrap())
                .with_display_name("Ann <Admin>")
                .with_groups(vec!["staff".into()]),
        )
        .unavailable_for("down", "secret-internal-detail: ldap://10.0.0.9 refused")
        .hangs_for("slow")
}

/// Redirect source: the "code" that proves the person is "the-code".
fn idp() -> RedirectFake {
    RedirectFake::new(
        "idp",
        ExternalIdentity::new(SourceId::new("idp").unwrap(), Subject::new("idp-sub").unwrap()),
    )
    .code("the-code")
}

struct App {
    router: Router,
    broker: Arc<Broker>,
    /// The broker's store, opened by the test: what the broker wrote, read directly.
    store: Store,
    _dir: vestibule_tests::server::TempDir,
}

struct ReportsRead;
impl vestibule_axum::Scope for ReportsRead {
    const NAME: &'static str = "reports:read";
}

async fn app() -> App {
    app_with(StoreOptions::default(), HttpSettings::default().request_timeout).await
}

async fn app_with(options: StoreOptions, request_timeout: std::time::Duration) -> App {
    app_of(options, request_timeout, vec![Arc::new(directory()), Arc::new(idp())]).await
}

async fn app_of(
    options: StoreOptions,
    request_timeout: std::time::Duration,
    sources: Vec<Arc<dyn vestibule_core::AuthSource>>,
) -> App {
    let settings = HttpSettings {
        mount: "/auth".into(),
        request_timeout,
        ..HttpSettings::default()
    };
    app_from(options, settings, sources).await
}

async fn app_with_settings(options: StoreOptions, settings: HttpSettings) -> App {
    app_from(options, settings, vec![Arc::new(directory()), Arc::new(idp())]).await
}

async fn app_from(
    options: StoreOptions,
    settings: HttpSettings,
    sources: Vec<Arc<dyn vestibule_core::AuthSource>>,
) -> App {
    app_hooked(options, settings, sources, None).await
}

/// [`app_from`] with the app's hooks registered on the broker.
async fn app_hooked(
    options: StoreOptions,
    settings: HttpSettings,
    sources: Vec<Arc<dyn vestibule_core::AuthSource>>,
    hooks: Option<Arc<dyn vestibule::BrokerHooks>>,
) -> App {
    let dir = vestibule_tests::server::TempDir::new("vestibule-router");
    let store = Store::connect_with(&format!("sqlite://{}/r.db", dir.0.display()), options)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut builder = Broker::builder(store.clone(), "https://app.example.com/auth");
    for source in sources {
        builder = builder.source(source);
    }
    if let Some(hooks) = hooks {
        builder = builder.hooks(hooks);
    }
    let broker = builder.build().await.unwrap();
    let broker = Arc::new(broker);
    let auth = Vestibule::new(broker.clone(), settings);
    let router = Router::new()
        .route(
            "/private",
            get(|RequireUser(u): RequireUser| async move { format!("hi {}", u.account_id) }),
        )
        .route(
            "/maybe",
            get(|CurrentUser(u): CurrentUser| async move {
                if u.is_some() {
                    "someone"
                } else {
                    "nobody"
                }
            }),
        )
        .route(
            "/reports",
            get(
                |vestibule_axum::RequireScope(u, ..): vestibule_axum::RequireScope<ReportsRead>| async move {
                    format!("reports for {}", u.account_id)
                },
            ),
        )
        .route(
            "/mfa",
            get(
                |vestibule_axum::RequireMultiFactor(s): vestibule_axum::RequireMultiFactor| async move {
                    format!("mfa {}", s.account_id)
                },
            ),
        )
        .route(
            "/mfa-fresh",
            get(
                |vestibule_axum::RequireFreshMultiFactor(s): vestibule_axum::RequireFreshMultiFactor| async move {
                    format!("fresh mfa {}", s.account_id)
                },
            ),
        )
        .merge(authz::routes())
        .nest("/auth", vestibule_axum::router(auth.clone()))
        .layer(auth.layer());
    App {
        router,
        broker,
        store,
        _dir: dir,
    }
}

struct Res {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Res {
    fn header(&self, n: &str) -> &str {
        self.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
    fn cookie_pair(&self, name: &str) -> String {
        self.cookie(name).unwrap().split(';').next().unwrap().to_owned()
    }
    fn csrf(&self) -> String {
        self.body
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    }
}

async fn send(app: &App, req: Request<Body>) -> Res {
    let (status, headers, body) = answer(&app.router, req).await;
    Res { status, headers, body }
}

/// `router`'s answer to `req`: its status, headers and body as text.
async fn answer(router: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, headers, body)
}

fn get_req(path: &str, cookie: &str, accept: &str) -> Request<Body> {
    Request::get(path)
        .header("cookie", cookie)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap()
}

fn post_req(path: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

/// Signs in as ann; returns the session cookie pair.
async fn sign_in(app: &App) -> String {
    let page = send(app, get_req("/auth/login", "", "text/html")).await;
    let pre = page.cookie_pair("__Host-vestibule-csrf");
    let res = send(
        app,
        post_req(
            "/auth/login/dir",
            &pre,
            &format!("csrf_token={}&username=ann&password=right+password", page.csrf()),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    res.cookie_pair("__Host-vestibule-session")
}

#[tokio::test]
async fn require_user_redirects_browsers_and_refuses_api_clients() {
    let app = app().await;
    let html = send(&app, get_req("/private?tab=2", "", "text/html")).await;
    assert_eq!(html.status, StatusCode::SEE_OTHER);
    assert_eq!(html.header("location"), "/auth/login?next=%2Fprivate%3Ftab%3D2");
    let api = send(&app, get_req("/private", "", "application/json")).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.body, r#"{"error":"unauthenticated"}"#);
    assert_eq!(send(&app, get_req("/maybe", "", "text/html")).await.body, "nobody");

    let session = sign_in(&app).await;
    let ok = send(&app, get_req("/private", &session, "text/html")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body.starts_with("hi "));
    assert_eq!(
        send(&app, get_req("/maybe", &session, "text/html")).await.body,
        "someone"
    );
}

#[tokio::test]
async fn a_route_without_the_layer_fails_closed() {
    let router: Router = Router::new().route("/x", get(|RequireUser(_): RequireUser| async { "let in" }));
    let res = router
        .oneshot(Request::get("/x").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn pages_know_their_mount_and_escape_what_they_show() {
    let app = app().await;
    let page = send(&app, get_req("/auth/login?next=/private", "", "text/html")).await;
    assert!(page.body.contains("action=\"/auth/login/dir\""));
    assert!(page.body.contains("action=\"/auth/login/idp\""));
    assert!(page.body.contains("href=\"/auth/static/vestibule.css\""));
    assert!(page.body.contains("name=\"next\" value=\"/private\""));
    let pre = page.cookie("__Host-vestibule-csrf").unwrap();
    assert!(
        pre.contains("Secure") && pre.contains("HttpOnly") && pre.contains("Path=/"),
        "{pre}"
    );

    let session = sign_in(&app).await;
    let account = send(&app, get_req("/auth/account", &session, "text/html")).await;
    assert!(
        account.body.contains("Ann &#60;Admin&#62;") || account.body.contains("Ann &lt;Admin&gt;"),
        "{}",
        account.body
    );
    assert!(!account.body.contains("Ann <Admin>"));
    let me = send(&app, get_req("/auth/me", &session, "application/json")).await;
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["groups"], serde_json::json!(["staff"]));
    assert_eq!(
        me["identities"][0],
        serde_json::json!({"source": "dir", "subject": "ann-1"})
    );
    // The default landing is the account page under the mount.
    let page = send(&app, get_req("/auth/login", "", "text/html")).await;
    let pre = page.cookie_pair("__Host-vestibule-csrf");
    let res = send(
        &app,
        post_req(
            "/auth/login/dir",
            &pre,
            &format!(
                "csrf_token={}&username=ann&password=right+password&next=//x",
                page.csrf()
            ),
        ),
    )
    .await;
    assert_eq!(res.header("location"), "/auth/account");
}

#[tokio::test]
async fn a_redirect_sign_in_round_trip() {
    let app = app().await;
    let page = send(&app, get_req("/auth/login", "", "text/html")).await;
    let pre = page.cookie_pair("__Host-vestibule-csrf");
    let start = send(
        &app,
        post_req(
            "/auth/login/idp",
            &pre,
            &format!("csrf_token={}&next=/private", page.csrf()),
        ),
    )
    .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let to = start.header("location").to_owned();
    assert!(to.starts_with("https://idp.test/authorize?"));
    assert!(
        to.contains("redirect_uri=https://app.example.com/auth/callback/idp"),
        "built from the public URL: {to}"
    );
    let flow = start.cookie("__Host-vestibule-flow").unwrap();
    assert!(
        flow.contains("Max-Age=600") && flow.contains("SameSite=Lax") && flow.contains("Secure"),
        "{flow}"
    );
    let flow = start.cookie_pair("__Host-vestibule-flow");
    let state = to.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();

    // Another browser presenting the same callback gets nothing (and burns the flow).
    let foreign = at_callback(&app, &state, "").await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert!(foreign.body.contains("no longer valid"));
    assert!(foreign.cookie("__Host-vestibule-session").is_none());

    // A fresh flow, completed by the browser that started it.
    let page = send(&app, get_req("/auth/login", &pre, "text/html")).await;
    let start = send(
        &app,
        post_req(
            "/auth/login/idp",
            &pre,
            &format!("csrf_token={}&next=/private", page.csrf()),
        ),
    )
    .await;
    let flow2 = start.cookie_pair("__Host-vestibule-flow");
    assert_ne!(flow, flow2);
    let state = start
        .header("location")
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let done = at_callback(&app, &state, &flow2).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header("location"), "/private");
    assert!(
        done.cookie("__Host-vestibule-flow").unwrap().contains("Max-Age=0"),
        "the flow cookie is deleted"
    );
    let session = done.cookie_pair("__Host-vestibule-session");
    assert_eq!(
        send(&app, get_req("/private", &session, "text/html")).await.status,
        StatusCode::OK
    );
}

/// The browser holding `cookie` comes back from `idp` with `state` and the code that proves the person.
async fn at_callback(app: &App, state: &str, cookie: &str) -> Res {
    let path = format!("/auth/callback/idp?state={state}&code=the-code");
    send(app, get_req(&path, cookie, "text/html")).await
}

/// A new browser starts a sign-in at `idp` from the login page: the page, its pre-session cookie, the flow cookie
/// and the flow's `state`.
async fn start_at_idp(app: &App) -> (Res, String, String, String) {
    let page = send(app, get_req("/auth/login", "", "text/html")).await;
    let pre = page.cookie_pair("__Host-vestibule-csrf");
    let start = send(
        app,
        post_req("/auth/login/idp", &pre, &format!("csrf_token={}", page.csrf())),
    )
    .await;
    let flow = start.cookie_pair("__Host-vestibule-flow");
    let state = start
        .header("location")
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    (page, pre, flow, state)
}

#[tokio::test]
async fn cancel_and_outage_pages_say_little() {
    let app = app().await;
    let (page, pre, flow, state) = start_at_idp(&app).await;
    let cancel = send(
        &app,
        get_req(
            &format!("/auth/callback/idp?state={state}&error=access_denied"),
            &flow,
            "text/html",
        ),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::OK);
    assert!(cancel.body.contains("Sign-in cancelled"));
    assert!(cancel.cookie("__Host-vestibule-session").is_none());

    let down = send(
        &app,
        post_req(
            "/auth/login/dir",
            &pre,
            &format!("csrf_token={}&username=down&password=whatever", page.csrf()),
        ),
    )
    .await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.body.contains("Sign-in provider unavailable") && down.body.contains("Reference:"));
    assert!(
        !down.body.contains("secret-internal-detail") && !down.body.contains("10.0.0.9"),
        "{}",
        down.body
    );
    assert_eq!(down.header("content-type"), "text/html; charset=utf-8");
}

#[tokio::test]
async fn malformed_and_misrouted_requests() {
    let app = app().await;
    let bad = send(
        &app,
        Request::post("/auth/login/dir")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let wrong_method = send(&app, get_req("/auth/logout", "", "text/html")).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.header("x-frame-options"), "DENY");
    let bad_source = send(&app, get_req("/auth/callback/NOT..VALID", "", "text/html")).await;
    assert_eq!(bad_source.status, StatusCode::NOT_FOUND);
}

/// Signs in as ann with "remember me"; returns the session and remember-me cookie pairs.
async fn sign_in_remembered(app: &App) -> (String, String) {
    let page = send(app, get_req("/auth/login", "", "text/html")).await;
    let pre = page.cookie_pair("__Host-vestibule-csrf");
    let res = send(
        app,
        post_req(
            "/auth/login/dir",
            &pre,
            &format!(
                "csrf_token={}&username=ann&password=right+password&remember_me=on",
                page.csrf()
            ),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    (
        res.cookie_pair("__Host-vestibule-session"),
        res.cookie_pair("__Host-vestibule-remember"),
    )
}

async fn audit_events(app: &App) -> Vec<String> {
    app.store
        .recent_audit(100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect()
}

#[tokio::test]
async fn verify_never_restores_and_the_login_page_restores_and_goes_back() {
    let app = app().await;
    let (_, remember) = sign_in_remembered(&app).await;
    // A forward-auth proxy asks with the browser's cookies and throws away Set-Cookie: nothing may rotate.
    for _ in 0..10 {
        let res = send(&app, get_req("/auth/verify", &remember, "text/html")).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert!(res.headers.get("set-cookie").is_none(), "{:?}", res.headers);
    }
    assert!(!audit_events(&app).await.contains(&"session_restored".to_string()));
    // The proxy sends the browser to the login page: restored there, and straight back to `next`.
    let res = send(&app, get_req("/auth/login?next=/private", &remember, "text/html")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), "/private");
    let session = res.cookie_pair("__Host-vestibule-session");
    let rotated = res.cookie_pair("__Host-vestibule-remember");
    assert_ne!(rotated, remember);
    let ok = send(&app, get_req("/auth/verify", &session, "text/html")).await;
    assert_eq!(ok.status, StatusCode::OK);
    // The browser holds the rotated token, and uses it later: no theft is seen.
    let later = send(&app, get_req("/private", &rotated, "text/html")).await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.body);
    assert!(!audit_events(&app).await.contains(&"remember_theft".to_string()));
}

#[tokio::test]
async fn signing_out_after_the_session_expired_signs_out_and_never_signs_in() {
    let app = app().await;
    let (session, remember) = sign_in_remembered(&app).await;
    let page = send(&app, get_req("/auth/account", &session, "text/html")).await;
    let csrf = page.csrf();
    // The session ends (idle expiry, or revoked elsewhere); the browser still holds both cookies and the page.
    let value = session.split_once('=').unwrap().1.to_owned();
    app.broker
        .logout(&value, &vestibule::ClientInfo::default())
        .await
        .unwrap();
    let both = format!("{session}; {remember}");
    let res = send(&app, post_req("/auth/logout", &both, &format!("csrf_token={csrf}"))).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), "/auth/login");
    for c in res.headers.get_all("set-cookie") {
        assert!(
            c.to_str().unwrap().contains("Max-Age=0"),
            "only clearing cookies: {c:?}"
        );
    }
    // The series ended with it: the remember-me cookie restores nothing now.
    let after = send(&app, get_req("/private", &remember, "application/json")).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_stale_sign_out_form_gets_a_one_click_page_and_no_new_session() {
    let app = app().await;
    let (session, remember) = sign_in_remembered(&app).await;
    let value = session.split_once('=').unwrap().1.to_owned();
    app.broker
        .logout(&value, &vestibule::ClientInfo::default())
        .await
        .unwrap();
    let both = format!("{session}; {remember}");
    let res = send(&app, post_req("/auth/logout", &both, "csrf_token=stale")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.cookie("__Host-vestibule-session").is_none(), "no new session");
    assert!(res.cookie("__Host-vestibule-remember").is_none(), "no rotated series");
    assert!(res.body.contains("/auth/logout"), "{}", res.body);
    // One click: the page's form (bound to the pre-session cookie it set) signs out.
    let pre = res.cookie_pair("__Host-vestibule-csrf");
    let click = send(
        &app,
        post_req(
            "/auth/logout",
            &format!("{both}; {pre}"),
            &format!("csrf_token={}", res.csrf()),
        ),
    )
    .await;
    assert_eq!(click.status, StatusCode::SEE_OTHER, "{}", click.body);
    let after = send(&app, get_req("/private", &remember, "application/json")).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

/// A token with the scope `read`, created by the session behind the cookie pair `session`.
async fn read_token(app: &App, session: &str) -> vestibule::NewToken {
    let value = session.split_once('=').unwrap().1.to_owned();
    let active = app.broker.session(&value).await.unwrap().unwrap();
    app.broker
        .create_token(&active, "ci", 30, "read", &vestibule::ClientInfo::default())
        .await
        .unwrap()
}

/// A GET of `path` with `token` in `Authorization: Bearer`.
fn bearer_get(token: &vestibule::NewToken, path: &str, accept: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", format!("Bearer {}", token.value.expose_secret()))
        .header("accept", accept)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn tokens_are_for_apis_with_their_scopes() {
    let app = app().await;
    let session = sign_in(&app).await;
    let token = read_token(&app, &session).await;
    let bearer = |path: &str| bearer_get(&token, path, "text/html");
    // Not the account pages: the session list with addresses, the token list.
    let account = send(&app, bearer("/auth/account")).await;
    assert_eq!(account.status, StatusCode::FORBIDDEN, "{}", account.body);
    assert!(!account.body.contains("ci"), "{}", account.body);
    // /verify forwards the scopes and can require one.
    let v = send(&app, bearer("/auth/verify")).await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.header("x-vestibule-scopes"), "read");
    assert_eq!(
        send(&app, bearer("/auth/verify?scope=read")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, bearer("/auth/verify?scope=write")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, bearer("/auth/verify?scope=read+write")).await.status,
        StatusCode::FORBIDDEN
    );
    // A browser session is the person: it passes a scope check, without a scopes header.
    let b = send(&app, get_req("/auth/verify?scope=write", &session, "text/html")).await;
    assert_eq!(b.status, StatusCode::OK);
    assert!(b.headers.get("x-vestibule-scopes").is_none());
    // The app's extractor: a token without the scope is refused, the browser session passes.
    let r = send(&app, bearer("/reports")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body, r#"{"error":"insufficient_scope"}"#);
    assert_eq!(
        send(&app, get_req("/reports", &session, "text/html")).await.status,
        StatusCode::OK
    );
    // A token cannot revoke tokens either.
    let revoke = Request::post(format!("/auth/account/tokens/{}/revoke", token.id))
        .header("authorization", format!("Bearer {}", token.value.expose_secret()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("csrf_token=x"))
        .unwrap();
    assert_eq!(send(&app, revoke).await.status, StatusCode::FORBIDDEN);
    assert!(app.broker.bearer(token.value.expose_secret()).await.unwrap().is_some());
}

/// `/verify` answers the same whichever way it goes: through the app's layer (the session already found), in place
/// from the session cache (no layer in front, as the binary serves it), or through the broker's stack (a cache
/// miss, no session, another method); nested by `nest_into` or by hand.
#[tokio::test]
async fn verify_answers_the_same_every_way() {
    let app = app().await;
    let auth = Vestibule::new(app.broker.clone(), HttpSettings::default());
    let shapes = [
        ("nest by hand + layer", app.router.clone()),
        ("nest_into + layer", auth.nest_into(Router::new()).layer(auth.layer())),
        ("nest_into", auth.nest_into(Router::new())),
        (
            "nest by hand",
            Router::new().nest("/auth", vestibule_axum::router(auth.clone())),
        ),
    ];
    let answer = |router: Router, req: Request<Body>| async move {
        let res = router.oneshot(req).await.unwrap();
        let mut headers: Vec<(String, String)> = res
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (res.status(), headers)
    };
    let req = |method: &str, cookie: &str| {
        Request::builder()
            .method(method)
            .uri("/auth/verify?scope=read")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };
    let mut seen = Vec::new();
    for (shape, router) in shapes {
        // A session of its own per shape, so that the first request is a cache miss (the stack) and the next ones
        // hits (in place, or through the layer).
        let session = sign_in(&app).await;
        for (what, method, cookie) in [
            ("miss", "GET", session.as_str()),
            ("hit", "GET", session.as_str()),
            ("head", "HEAD", session.as_str()),
            ("nobody", "GET", ""),
            ("post", "POST", session.as_str()),
        ] {
            let got = answer(router.clone(), req(method, cookie)).await;
            seen.push((shape, what, got));
        }
    }
    let (ok, headers) = &seen[0].2;
    assert_eq!(*ok, StatusCode::OK);
    for name in [
        "x-vestibule-user",
        "x-vestibule-name",
        "x-vestibule-groups",
        "content-security-policy",
    ] {
        assert!(headers.iter().any(|(k, _)| k == name), "{name}: {headers:?}");
    }
    let statuses: Vec<_> = seen[..5].iter().map(|(_, _, (s, _))| s.as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 401, 405]);
    for (i, (shape, what, got)) in seen.iter().enumerate() {
        assert_eq!(*got, seen[i % 5].2, "{shape}, {what}");
    }
}

/// The mount path is said once, in the broker's base URL: a different `HttpSettings.mount` is refused at start-up
/// (it would send every link and callback where the router is not), and `nest_into` nests the routes there.
#[tokio::test]
async fn the_mount_path_comes_from_the_base_url() {
    let dir = vestibule_tests::server::TempDir::new("vestibule-mount");
    let store = Store::connect(&format!("sqlite://{}/m.db", dir.0.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let broker = Arc::new(
        Broker::builder(store, "https://app.example.com/sso/")
            .source(Arc::new(directory()))
            .build()
            .await
            .unwrap(),
    );
    assert_eq!(
        broker.mount_path(),
        "/sso",
        "the trailing slash of the base URL is not part of it"
    );
    let wrong = HttpSettings {
        mount: "/auth".into(),
        ..HttpSettings::default()
    };
    let err = Vestibule::try_new(broker.clone(), wrong.clone()).expect_err("a mount that disagrees with the base URL");
    assert!(err.contains("/auth") && err.contains("/sso"), "{err}");
    // `new` keeps a mount given explicitly (as before), logging the disagreement rather than failing to start.
    assert_eq!(Vestibule::new(broker.clone(), wrong).mount(), "/auth");
    let auth = Vestibule::new(broker, HttpSettings::default());
    assert_eq!(auth.mount(), "/sso");
    let app = auth.nest_into(Router::new()).layer(auth.layer());
    let res = tower::ServiceExt::oneshot(
        app,
        http::Request::get("/sso/login")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let html = String::from_utf8_lossy(&body);
    assert!(html.contains("action=\"/sso/login/dir\""), "{html}");
}

/// POSTs the password form for `username` with a fresh CSRF token.
async fn submit_password(app: &App, username: &str, password: &str) -> Res {
    post_login(
        app,
        "",
        "/auth/login/dir",
        &format!("username={username}&password={password}"),
    )
    .await
}

/// Loads the login page with `cookie` (none: a new browser, which the page gives a pre-session cookie) and posts
/// `fields` with the page's CSRF token to `path`, as that browser.
async fn post_login(app: &App, cookie: &str, path: &str, fields: &str) -> Res {
    let page = send(app, get_req("/auth/login", cookie, "text/html")).await;
    let cookie = if cookie.is_empty() {
        page.cookie_pair("__Host-vestibule-csrf")
    } else {
        cookie.to_owned()
    };
    let form = format!("csrf_token={}&{fields}", page.csrf());
    send(app, post_req(path, &cookie, &form)).await
}

fn assert_busy_page(res: &Res) {
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert_eq!(res.header("retry-after"), "5");
    assert!(res.body.contains("Temporarily unavailable"), "{}", res.body);
    assert!(res.body.contains("Reference:"), "{}", res.body);
    assert!(!res.body.to_lowercase().contains("database"), "{}", res.body);
    // Rendered by the page middleware, with the security headers of every answer.
    assert_eq!(res.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(res.header("x-frame-options"), "DENY");
    assert!(res.cookie("__Host-vestibule-session").is_none());
}

/// A request that runs past `request_timeout` (here a directory that never answers) is dropped and answered 503
/// with `Retry-After`, instead of holding the connection for as long as the directory hangs.
#[tokio::test]
async fn a_request_past_its_deadline_is_503_with_retry_after() {
    let app = app_with(StoreOptions::default(), std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let res = submit_password(&app, "slow", "whatever").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_busy_page(&res);
    // Within the deadline, everything else is as before.
    let ok = submit_password(&app, "ann", "right+password").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
}

/// A write blocked by another connection's SQLite write lock past the busy timeout ends in `StoreError::Timeout`,
/// answered 503 with `Retry-After` rather than 500; once the lock is gone the same sign-in works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_blocked_past_the_busy_timeout_is_503_with_retry_after() {
    use sqlx::Connection as _;
    let options = StoreOptions {
        sqlite_busy_timeout: std::time::Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let app = app_with(options, HttpSettings::default().request_timeout).await;
    let url = format!("sqlite://{}/r.db", app._dir.0.display());
    let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();

    let res = submit_password(&app, "ann", "right+password").await;
    assert_busy_page(&res);

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let _ = other.close().await;
    let ok = submit_password(&app, "ann", "right+password").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
}

/// Guessing over HTTP: after the free failures the login form answers 429 with `Retry-After` and the same words for
/// an existing and an unknown name, and the right password then signs nobody in.
#[tokio::test]
async fn repeated_failures_get_429_with_retry_after_and_the_same_words_for_everyone() {
    let app = app().await;
    let mut pages = Vec::new();
    for name in ["ann", "nobody"] {
        for i in 0..11 {
            let res = submit_password(&app, name, "wrong").await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{name} {i}: {}", res.body);
        }
        let password = if name == "ann" { "right+password" } else { "wrong" };
        let res = submit_password(&app, name, password).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{name}: {}", res.body);
        let wait: u32 = res.header("retry-after").parse().expect("Retry-After in seconds");
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(
            res.body.contains("Too many attempts. Please try again in 1 minute."),
            "{}",
            res.body
        );
        assert!(res.cookie("__Host-vestibule-session").is_none(), "nobody signed in");
        pages.push(res.body.replace(name, "NAME"));
    }
    assert_eq!(
        pages[0].len(),
        pages[1].len(),
        "the same page for an existing and an unknown name"
    );
}

/// Enrols an authenticator app from the account page of `session` (forms carry the CSRF token; the page draws the
/// QR code itself, no script): the TOTP key and the renewed session cookie.
async fn enrol_totp(app: &App, session: &str) -> (String, String) {
    let account = send(app, get_req("/auth/account", session, "text/html")).await;
    let page = send(
        app,
        post_req("/auth/account/totp", session, &format!("csrf_token={}", account.csrf())),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("<svg") && !page.body.contains("<script"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<?xml"));
    assert!(page.header("content-security-policy").contains("default-src 'none'"));
    let key = code_elements(&page.body)[0].clone();
    let code = vestibule_tests::totp::code(&key, now_secs());
    let done = send(
        app,
        post_req(
            "/auth/account/totp/confirm",
            session,
            &format!("csrf_token={}&code={code}", page.csrf()),
        ),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(code_elements(&done.body).len(), 10);
    (key, done.cookie_pair("__Host-vestibule-session"))
}

#[tokio::test]
async fn multi_factor_extractors_step_up_and_the_half_state_is_signed_out() {
    let app = app().await;
    let session = sign_in(&app).await;
    // A password session is not multi-factor: browsers go to the step-up page and come back, APIs get 401.
    let res = send(&app, get_req("/mfa", &session, "text/html")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), "/auth/login/second-factor?next=%2Fmfa");
    let res = send(&app, get_req("/mfa-fresh", &session, "application/json")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.body.contains("second_factor_required"), "{}", res.body);
    // With no factor to step up with, the step-up page sends the person to set one up.
    let res = send(
        &app,
        get_req("/auth/login/second-factor?next=%2Fmfa", &session, "text/html"),
    )
    .await;
    assert_eq!(res.header("location"), "/auth/account");

    let forged = send(&app, post_req("/auth/account/totp", &session, "csrf_token=nope")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let (key, multi) = enrol_totp(&app, &session).await;
    assert_ne!(multi, session, "the session goes on under a new id");
    assert_eq!(
        send(&app, get_req("/auth/me", &session, "application/json"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let res = send(&app, get_req("/mfa", &multi, "text/html")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        send(&app, get_req("/mfa-fresh", &multi, "text/html")).await.status,
        StatusCode::OK
    );
    let me = send(&app, get_req("/auth/me", &multi, "application/json")).await;
    assert!(me.body.contains(r#""amr":["pwd","otp"]"#), "{}", me.body);
    let account = send(&app, get_req("/auth/account", &multi, "text/html")).await;
    assert!(account.body.contains("10 recovery codes left"), "{}", account.body);

    // The password alone now leads to the half-signed-in state: a cookie that nothing but the code page reads.
    let login = send(&app, get_req("/auth/login", "", "text/html")).await;
    let pre = login.cookie_pair("__Host-vestibule-csrf");
    let res = send(
        &app,
        post_req(
            "/auth/login/dir",
            &pre,
            &format!(
                "csrf_token={}&username=ann&password=right+password&next=%2Fmfa",
                login.csrf()
            ),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), "/auth/login/second-factor");
    assert!(res.cookie("__Host-vestibule-session").is_none());
    let half = format!("{pre}; {}", res.cookie_pair("__Host-vestibule-2fa"));
    // Presented as a session cookie too: still nobody.
    let as_session = half.replace("__Host-vestibule-2fa", "__Host-vestibule-session");
    for cookie in [&half, &as_session] {
        assert_eq!(
            send(&app, get_req("/auth/me", cookie, "application/json")).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            send(&app, get_req("/auth/verify", cookie, "text/html")).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(send(&app, get_req("/maybe", cookie, "text/html")).await.body, "nobody");
    }
    let page = send(&app, get_req("/auth/login/second-factor", &half, "text/html")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"code\""), "{}", page.body);
    // No CSRF token: refused before the code is looked at.
    let forged = send(&app, post_req("/auth/login/second-factor", &half, "code=123456")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let next_step = vestibule_tests::totp::code(&key, now_secs() + 30);
    let code_form = format!("csrf_token={}&code={next_step}", page.csrf());
    let post_code = || send(&app, post_req("/auth/login/second-factor", &half, &code_form));
    let done = post_code().await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header("location"), "/mfa", "next survives the second step");
    assert!(done
        .cookie("__Host-vestibule-2fa")
        .is_some_and(|c| c.contains("Max-Age=0")));
    let signed = done.cookie_pair("__Host-vestibule-session");
    assert_eq!(
        send(&app, get_req("/mfa", &signed, "text/html")).await.status,
        StatusCode::OK
    );
    // The state was single use.
    let again = post_code().await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.header("location"), "/auth/login");

    // The fresh, multi-factor session manages its factors: new recovery codes (shown once, a new set), then the
    // authenticator removed; both through CSRF-checked forms.
    let account = send(&app, get_req("/auth/account", &signed, "text/html")).await;
    let form = format!("csrf_token={}", account.csrf());
    let codes = send(&app, post_req("/auth/account/recovery-codes", &signed, &form)).await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.body);
    assert_eq!(code_elements(&codes.body).len(), 10);
    let removed = send(&app, post_req("/auth/account/totp/remove", &signed, &form)).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    assert_eq!(removed.header("location"), "/auth/account?done=totp_removed");
    let account = send(&app, get_req("/auth/account", &signed, "text/html")).await;
    assert!(account.body.contains("Set up an authenticator app"), "{}", account.body);
    assert!(!account.body.contains("recovery codes left"), "{}", account.body);
    // Nothing left to regenerate or remove.
    let form = format!("csrf_token={}", account.csrf());
    let none = send(&app, post_req("/auth/account/recovery-codes", &signed, &form)).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST, "{}", none.body);
}

/// The value of the hidden input `name` in a page.
fn hidden(body: &str, name: &str) -> String {
    body.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// The JSON of the page's passkey options block.
fn options_block(body: &str) -> String {
    body.split("<script type=\"application/json\" id=\"passkey-options\">")
        .nth(1)
        .unwrap()
        .split("</script>")
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn passkey_pages_serve_their_script_under_the_csp_and_check_csrf() {
    let app = app().await;
    // The one script, from the broker itself, allowed by a CSP that allows nothing inline.
    let js = send(&app, get_req("/auth/static/passkey.js", "", "*/*")).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.header("content-type").starts_with("text/javascript"),
        "{:?}",
        js.headers
    );
    assert!(js.body.contains("navigator.credentials.get"));
    let login = send(&app, get_req("/auth/login", "", "text/html")).await;
    let csp = login.header("content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(login.body.contains("Sign in with a passkey"));
    let pre = login.cookie_pair("__Host-vestibule-csrf");

    // Starting a passwordless sign-in is a form post like any other: no token, nothing stored.
    let forged = send(&app, post_req("/auth/login/passkey", &pre, "csrf_token=forged")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let started = send(
        &app,
        post_req(
            "/auth/login/passkey",
            &pre,
            &format!("csrf_token={}&next=/after", login.csrf()),
        ),
    )
    .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    assert!(started.body.contains("data-autostart=\"true\""));
    // Every script element is the data block or the broker's file: nothing inline runs.
    for tag in started.body.split("<script").skip(1) {
        assert!(
            tag.starts_with(" type=\"application/json\"") || tag.starts_with(" src=\"/auth/static/passkey.js\""),
            "{tag}"
        );
    }
    let options: serde_json::Value = serde_json::from_str(&options_block(&started.body)).unwrap();
    assert_eq!(options["publicKey"]["rpId"], "app.example.com", "{options}");
    assert_eq!(options["publicKey"]["userVerification"], "required", "{options}");
    assert!(options["mediation"].is_null(), "{options}");
    // A made-up answer: refused with the same page (a new ceremony), nobody signed in.
    let ceremony = hidden(&started.body, "ceremony");
    let refused = send(
        &app,
        post_req(
            "/auth/login/passkey/finish",
            &pre,
            &format!(
                "csrf_token={}&ceremony={ceremony}&credential=%7B%7D&next=/after",
                started.csrf()
            ),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("not accepted"), "{}", refused.body);
    assert_ne!(hidden(&refused.body, "ceremony"), ceremony);
    assert!(refused.cookie("__Host-vestibule-session").is_none());

    // Registering needs a session; the options carry the account's names, escaped inside the data block.
    let anonymous = send(
        &app,
        post_req("/auth/account/passkeys", &pre, &format!("csrf_token={}", login.csrf())),
    )
    .await;
    assert_ne!(anonymous.status, StatusCode::OK);
    let session = sign_in(&app).await;
    let account = send(&app, get_req("/auth/account", &session, "text/html")).await;
    assert!(account.body.contains("Add a passkey"));
    let register = send(
        &app,
        post_req(
            "/auth/account/passkeys",
            &session,
            &format!("csrf_token={}", account.csrf()),
        ),
    )
    .await;
    assert_eq!(register.status, StatusCode::OK, "{}", register.body);
    let block = options_block(&register.body);
    assert!(
        !block.contains('<') && block.contains("Ann \\u003cAdmin\\u003e"),
        "{block}"
    );
    let options: serde_json::Value = serde_json::from_str(&block).unwrap();
    assert_eq!(options["publicKey"]["user"]["displayName"], "Ann <Admin>");
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["residentKey"],
        "required"
    );
}

fn get_lang(path: &str, cookie: &str, accept_language: &str) -> Request<Body> {
    Request::get(path)
        .header("cookie", cookie)
        .header("accept", "text/html")
        .header("accept-language", accept_language)
        .body(Body::empty())
        .unwrap()
}

/// A German browser gets German pages (the handler's and the error pages rendered after it), `<html lang="de">`
/// and a footer link to English; following it sets the `vestibule-lang` cookie, which then holds over
/// `Accept-Language`. An unknown `?lang=` changes nothing.
#[tokio::test]
async fn pages_follow_accept_language_and_the_persons_choice_overrides_it() {
    let app = app().await;
    let german = "de-DE,de;q=0.9,en;q=0.5";
    let login = send(&app, get_lang("/auth/login?next=%2Fprivate", "", german)).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("<html lang=\"de\">"), "{}", login.body);
    assert!(login.body.contains("aria-label=\"Sprache\""), "{}", login.body);
    assert!(login.body.contains("<h1>Anmelden</h1>"), "{}", login.body);
    assert!(
        login.body.contains("Auf diesem Gerät angemeldet bleiben"),
        "{}",
        login.body
    );
    // The link keeps a safe `next`.
    assert!(
        login.body.contains("href=\"?next=%2Fprivate&#38;lang=en\""),
        "{}",
        login.body
    );
    assert!(login.cookie("vestibule-lang").is_none(), "no choice made: no cookie");
    // Only a safe `next` is carried into the links: nothing else from the URL is echoed.
    let unsafe_next = send(
        &app,
        get_lang("/auth/login?next=%2F%2Fevil.example&utm=%3Cx%3E", "", german),
    )
    .await;
    assert!(!unsafe_next.body.contains("evil.example"), "{}", unsafe_next.body);
    assert!(!unsafe_next.body.contains("utm"), "{}", unsafe_next.body);
    assert!(unsafe_next.body.contains("href=\"?lang=en\""), "{}", unsafe_next.body);

    let missing = send(&app, get_lang("/auth/nothing-here", "", german)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("<h1>Nicht gefunden</h1>"), "{}", missing.body);
    let english = send(&app, get_lang("/auth/nothing-here", "", "en-US")).await;
    assert!(english.body.contains("<h1>Not found</h1>"), "{}", english.body);
    let neither = send(&app, get_lang("/auth/nothing-here", "", "ja")).await;
    assert!(
        neither.body.contains("<html lang=\"en\">"),
        "English when nothing matches"
    );

    // The person chooses English on a German browser.
    let chosen = send(&app, get_lang("/auth/nothing-here?lang=en", "", german)).await;
    assert!(chosen.body.contains("<h1>Not found</h1>"), "{}", chosen.body);
    let cookie = chosen.cookie("vestibule-lang").expect("the choice is remembered");
    assert!(cookie.starts_with("vestibule-lang=en;"), "{cookie}");
    assert!(
        cookie.contains("SameSite=Lax") && cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    let pair = chosen.cookie_pair("vestibule-lang");
    let later = send(&app, get_lang("/auth/nothing-here", &pair, german)).await;
    assert!(
        later.body.contains("<h1>Not found</h1>"),
        "the cookie holds over Accept-Language"
    );
    assert!(later.body.contains("<html lang=\"en\">"));

    let unknown = send(&app, get_lang("/auth/nothing-here?lang=xx", "", german)).await;
    assert!(unknown.body.contains("<h1>Nicht gefunden</h1>"));
    assert!(unknown.cookie("vestibule-lang").is_none());
    let bad_cookie = send(&app, get_lang("/auth/nothing-here", "vestibule-lang=<x>", german)).await;
    assert!(
        bad_cookie.body.contains("<h1>Nicht gefunden</h1>"),
        "an unknown cookie value is ignored"
    );
}

/// `[ui]`: the product name is in every page's title and header, the logo is served from `/static/logo` with
/// its type and shown with alt text, and an override of base.html frames every page (the handler's and the error
/// pages) while the built-in page templates still fill it.
#[tokio::test]
async fn branding_and_a_base_override_apply_to_every_page() {
    let dir = vestibule_tests::server::TempDir::new("vestibule-ui");
    std::fs::write(
        dir.0.join("logo.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><!-- fake --></svg>",
    )
    .unwrap();
    let templates = dir.0.join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("base.html"),
        "<!doctype html><html lang=\"{{ ui.lang }}\"><title>{% block title %}{% endblock %} | {{ ui.product_name }}</title>\
         <div id=\"acme-frame\">{% block content %}{% endblock %}</div></html>\n",
    )
    .unwrap();
    let ui = vestibule_axum::UiSettings {
        product_name: "Acme <Login>".into(),
        logo: Some(vestibule_axum::Logo::load(&dir.0.join("logo.svg")).unwrap()),
        templates: None,
    };
    let plain = app_with_settings(
        StoreOptions::default(),
        HttpSettings {
            mount: "/auth".into(),
            ui: ui.clone(),
            ..HttpSettings::default()
        },
    )
    .await;
    let login = send(&plain, get_req("/auth/login", "", "text/html")).await;
    assert!(login.body.contains("· Acme &#60;Login&#62;</title>"), "{}", login.body);
    assert!(
        login
            .body
            .contains("<img src=\"/auth/static/logo\" alt=\"Acme &#60;Login&#62; logo\">"),
        "{}",
        login.body
    );
    let logo = send(&plain, get_req("/auth/static/logo", "", "*/*")).await;
    assert_eq!(logo.status, StatusCode::OK);
    assert_eq!(logo.header("content-type"), "image/svg+xml");
    assert!(logo.body.contains("<!-- fake -->"));
    let none = send(&app().await, get_req("/auth/static/logo", "", "*/*")).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "no logo configured");

    let overridden = app_with_settings(
        StoreOptions::default(),
        HttpSettings {
            mount: "/auth".into(),
            ui: vestibule_axum::UiSettings {
                templates: Some(vestibule_axum::TemplateOverrides::load(&templates).unwrap()),
                ..ui
            },
            ..HttpSettings::default()
        },
    )
    .await;
    for (path, status) in [
        ("/auth/login", StatusCode::OK),
        ("/auth/nothing", StatusCode::NOT_FOUND),
    ] {
        let page = send(&overridden, get_req(path, "", "text/html")).await;
        assert_eq!(page.status, status);
        assert!(page.body.contains("<div id=\"acme-frame\">"), "{path}: {}", page.body);
        assert!(
            page.body.contains(" | Acme &lt;Login&gt;</title>"),
            "{path}: {}",
            page.body
        );
        assert!(
            !page.body.contains("class=\"brand\""),
            "the built-in frame is gone: {}",
            page.body
        );
    }
    let login = send(&overridden, get_req("/auth/login", "", "text/html")).await;
    assert!(
        login.body.contains("name=\"csrf_token\""),
        "the built-in login.html fills the frame"
    );
}

/// Two password sources ("dir" as above, and "staff", where bob signs in) and the redirect source.
async fn two_directories() -> App {
    let staff = PasswordFake::new("staff").user(
        "bob",
        "bob password",
        ExternalIdentity::new(SourceId::new("staff").unwrap(), Subject::new("bob-1").unwrap()),
    );
    app_of(
        StoreOptions::default(),
        HttpSettings::default().request_timeout,
        vec![Arc::new(directory()), Arc::new(staff), Arc::new(idp())],
    )
    .await
}

/// The `value` of the checked radio button named `source` on a login page, if any.
fn checked_source(body: &str) -> Option<String> {
    body.split("<input")
        .filter(|i| i.contains("name=\"source\""))
        .find(|i| i.split('>').next().unwrap_or("").contains(" checked"))
        .map(|i| {
            i.split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned()
        })
}

const SOURCE_COOKIE: &str = "__Host-vestibule-source";
const GENERIC_FAILURE: &str = "Sign-in failed. Check your username and password and try again.";

#[tokio::test]
async fn one_login_form_with_a_choice_of_password_source_remembered_by_a_cookie() {
    let app = two_directories().await;
    let page = send(&app, get_req("/auth/login?next=/private", "", "text/html")).await;
    assert_eq!(page.status, StatusCode::OK);
    // A choice of password source drawn as tabs over one form per source, each posting to its own route (the
    // stylesheet shows the chosen one); the redirect source a button.
    assert_eq!(page.body.matches("name=\"password\"").count(), 2, "{}", page.body);
    assert!(!page.body.contains("action=\"/auth/login\""), "{}", page.body);
    assert!(page.body.contains("action=\"/auth/login/dir\""), "{}", page.body);
    assert!(page.body.contains("action=\"/auth/login/staff\""), "{}", page.body);
    assert!(page.body.contains("action=\"/auth/login/idp\""), "{}", page.body);
    assert!(page
        .body
        .contains("type=\"radio\" class=\"tab\" name=\"source\" value=\"staff\""));
    assert!(
        !page.body.contains("value=\"idp\""),
        "a redirect source is no choice of the form"
    );
    assert_eq!(
        checked_source(&page.body).as_deref(),
        Some("dir"),
        "the first by default"
    );
    let pre = page.cookie_pair("__Host-vestibule-csrf");

    // POST /login with source=staff signs bob in through "staff", and remembers the choice.
    let fields = "source=staff&username=bob&password=bob+password&next=/private";
    let res = post_login(&app, &pre, "/auth/login", fields).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), "/private");
    let session = res.cookie_pair("__Host-vestibule-session");
    let me = send(&app, get_req("/auth/me", &session, "application/json")).await;
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(
        me["identities"],
        serde_json::json!([{"source": "staff", "subject": "bob-1"}])
    );
    let remembered = res.cookie(SOURCE_COOKIE).unwrap();
    assert!(
        remembered.starts_with(&format!("{SOURCE_COOKIE}=staff;"))
            && remembered.contains("HttpOnly")
            && remembered.contains("SameSite=Lax")
            && remembered.contains("Secure")
            && remembered.contains("Max-Age=31536000"),
        "{remembered}"
    );

    // The cookie preselects the source next time.
    let cookie = format!("{pre}; {}", res.cookie_pair(SOURCE_COOKIE));
    let page = send(&app, get_req("/auth/login", &cookie, "text/html")).await;
    assert_eq!(checked_source(&page.body).as_deref(), Some("staff"), "{}", page.body);

    // An id that is no password source here is ignored (unknown, a redirect source, or markup): the first again,
    // and nothing of the cookie on the page.
    for bogus in ["nope", "idp", "\"><b>x</b>"] {
        let cookie = format!("{pre}; {SOURCE_COOKIE}={bogus}");
        let page = send(&app, get_req("/auth/login", &cookie, "text/html")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(checked_source(&page.body).as_deref(), Some("dir"), "{bogus}");
        assert!(!page.body.contains("<b>x</b>"), "{}", page.body);
    }

    // A failed attempt through the chosen source: the form again, the name kept, that source still chosen, and
    // the choice remembered all the same. Through its own route it is the same handler and the same cookie.
    let fields = "source=staff&username=bob&password=wrong";
    let failed = post_login(&app, &pre, "/auth/login", fields).await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    assert!(failed.body.contains(GENERIC_FAILURE), "{}", failed.body);
    assert!(failed
        .body
        .contains("name=\"username\" autocomplete=\"username\" required value=\"bob\""));
    assert_eq!(checked_source(&failed.body).as_deref(), Some("staff"));
    assert!(failed.cookie("__Host-vestibule-session").is_none());
    assert!(failed
        .cookie(SOURCE_COOKIE)
        .unwrap()
        .starts_with(&format!("{SOURCE_COOKIE}=staff;")));
    let fields = "username=ann&password=right+password";
    let own_route = post_login(&app, &pre, "/auth/login/dir", fields).await;
    assert_eq!(own_route.status, StatusCode::SEE_OTHER, "{}", own_route.body);
    assert!(own_route
        .cookie(SOURCE_COOKIE)
        .unwrap()
        .starts_with(&format!("{SOURCE_COOKIE}=dir;")));
}

#[tokio::test]
async fn a_bogus_source_on_the_login_form_is_the_generic_failure() {
    let app = two_directories().await;
    // The right password for ann, with a source that is unknown, a redirect source (which only its own route
    // starts), missing, or not an id at all: the same words as any failed sign-in, no session, no flow, nothing
    // remembered, and the name typed kept.
    for source in ["&source=nope", "&source=idp", "", "&source=", "&source=%2E%2E%2Fdir"] {
        let fields = format!("username=ann&password=right+password{source}");
        let res = post_login(&app, "", "/auth/login", &fields).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{source}: {}", res.body);
        assert!(res.body.contains(GENERIC_FAILURE), "{source}: {}", res.body);
        assert!(res.body.contains("required value=\"ann\""), "{source}: {}", res.body);
        assert!(res.cookie("__Host-vestibule-session").is_none(), "{source}");
        assert!(res.cookie("__Host-vestibule-flow").is_none(), "{source}");
        assert!(res.cookie(SOURCE_COOKIE).is_none(), "{source}");
    }
    // The form's CSRF check comes first, as on every POST.
    let page = send(&app, get_req("/auth/login", "", "text/html")).await;
    let pre = page.cookie_pair("__Host-vestibule-csrf");
    let forged = send(
        &app,
        post_req(
            "/auth/login",
            &pre,
            "csrf_token=nope&source=dir&username=ann&password=right+password",
        ),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.cookie("__Host-vestibule-session").is_none());
}

#[tokio::test]
async fn one_password_source_shows_no_choice() {
    let app = app().await;
    let page = send(&app, get_req("/auth/login", "", "text/html")).await;
    assert!(page.body.contains("action=\"/auth/login/dir\""), "{}", page.body);
    assert!(!page.body.contains("name=\"source\""), "{}", page.body);
    assert_eq!(page.body.matches("name=\"password\"").count(), 1);
}

/// The sources an account page offers to add, in order (from its `/account/link/{source}` forms).
fn offered(body: &str) -> Vec<&str> {
    body.split("action=\"/auth/account/link/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

#[tokio::test]
async fn the_account_page_offers_only_the_ways_in_it_can_still_add() {
    let app = two_directories().await;
    let session = sign_in(&app).await;
    let account = send(&app, get_req("/auth/account", &session, "text/html")).await;
    assert_eq!(account.status, StatusCode::OK);
    // Signed in through "dir": that source is not offered again; "staff" and "idp" are.
    assert_eq!(offered(&account.body), ["staff", "idp"], "{}", account.body);
    // The last way in cannot be removed, so it has no Remove button.
    assert_eq!(account.body.matches("action=\"/auth/account/unlink\"").count(), 0);

    // Add bob's "staff" identity: now neither password source is offered, and both can be removed.
    let linked = send(
        &app,
        post_req(
            "/auth/account/link/staff",
            &session,
            &format!("csrf_token={}&username=bob&password=bob+password", account.csrf()),
        ),
    )
    .await;
    assert_eq!(linked.status, StatusCode::SEE_OTHER, "{}", linked.body);
    let account = send(&app, get_req("/auth/account", &session, "text/html")).await;
    assert_eq!(offered(&account.body), ["idp"], "{}", account.body);
    assert_eq!(account.body.matches("action=\"/auth/account/unlink\"").count(), 2);

    // Sections a person can scan, headings in order.
    let h2: Vec<&str> = account
        .body
        .split("<h2")
        .skip(1)
        .map(|h| h.split('>').nth(1).unwrap().split('<').next().unwrap())
        .collect();
    assert_eq!(h2, ["Ways to sign in", "Security", "Sessions"]);
}

/// Refuses every sign-in with words that must be shown, escaped.
struct Suspended;

#[async_trait::async_trait]
impl vestibule::BrokerHooks for Suspended {
    async fn after_sign_in(
        &self,
        _account: &vestibule::AccountView,
        _source: &SourceId,
    ) -> Result<(), vestibule::HookRefusal> {
        Err(vestibule::HookRefusal::new("Suspended <b>until Monday</b>."))
    }
}

#[tokio::test]
async fn a_sign_in_the_apps_hook_refuses_shows_its_words_and_sets_no_session() {
    // Weakened first: the same app without the hook signs ann in.
    let open = app().await;
    sign_in(&open).await;
    let settings = HttpSettings {
        mount: "/auth".into(),
        ..HttpSettings::default()
    };
    let sources: Vec<Arc<dyn vestibule_core::AuthSource>> = vec![Arc::new(directory()), Arc::new(idp())];
    let app = app_hooked(StoreOptions::default(), settings, sources, Some(Arc::new(Suspended))).await;

    // The password form again, with the app's words, escaped.
    let res = submit_password(&app, "ann", "right+password").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(
        res.body.contains("Suspended &#60;b&#62;until Monday&#60;/b&#62;."),
        "{}",
        res.body
    );
    assert!(!res.body.contains("<b>until"), "the app's words are text, not markup");
    assert!(res.cookie("__Host-vestibule-session").is_none());

    // After a provider's callback: the error page says so.
    let (_, _, flow, state) = start_at_idp(&app).await;
    let res = at_callback(&app, &state, &flow).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.body.contains("Sign-in refused"), "{}", res.body);
    assert!(
        res.body.contains("Suspended &#60;b&#62;until Monday&#60;/b&#62;."),
        "{}",
        res.body
    );
    assert!(res.cookie("__Host-vestibule-session").is_none());
    assert!(app
        .store
        .recent_audit(10)
        .await
        .unwrap()
        .iter()
        .all(|r| r.event != "login_success"));
}
