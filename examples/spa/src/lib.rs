//! The app of `example-spa`, built in a function so that its tests run exactly what `cargo run -p example-spa`
//! serves (see `src/main.rs` for running it, and `tests/spa.rs` for the page driven in Chromium).
//!
//! A single-page app over Vestibule's JSON API. The axum app serves one static page, its script and its
//! stylesheet (`static/`, compiled in), and one route of its own data, `GET /api/hello`, behind [`RequireUser`].
//! The broker is nested at `/auth`; the page signs in with `fetch` against `/auth/api/...` (the README's "JSON API
//! for single-page apps") and draws everything itself: there is no server-rendered page of the app's own.

use std::sync::Arc;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use vestibule::Broker;
use vestibule_axum::{HttpSettings, RequireUser, Vestibule};
use vestibule_core::{AuthSource, CredentialRepository, SourceId};
use vestibule_local::{LocalConfig, LocalSource, PasswordHasher};
use vestibule_store::{NewLocalAccount, Store};

/// Any error while building the app.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The demo account's login name.
pub const DEMO_USER: &str = "demo";
/// The demo account's password.
pub const DEMO_PASSWORD: &str = "demo password";
/// The demo account's display name, which the page shows once signed in.
pub const DEMO_NAME: &str = "Demo User";

/// The page's own policy: its script and stylesheet from this origin only, `fetch` to this origin only (the broker
/// is nested here, so its API is same-origin), nothing inline, no framing. `form-action 'none'`: the page's forms
/// are sent by its script with `fetch`; were the script ever missing, the browser must not submit a password form
/// by itself (it would put the password in the address).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                       form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

const INDEX_HTML: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const APP_CSS: &str = include_str!("../static/app.css");

/// Builds the app over a migrated `store`. `public_url` is where people reach it (`http://127.0.0.1:3001`): the
/// page's origin, which the JSON API checks every state-changing request against. The broker's routes are at
/// `/auth` below it. Creates the demo account when it is missing.
pub async fn app(store: Store, public_url: &str) -> Result<Router, Error> {
    Ok(app_and_broker(store, public_url).await?.0)
}

/// [`app`], and its broker: for what an operator would look at from the command line (the tests count the demo
/// account's sessions with [`Broker::account_details`], as `vestibule user show demo` would).
pub async fn app_and_broker(store: Store, public_url: &str) -> Result<(Router, Arc<Broker>), Error> {
    app_and_broker_with(store, public_url, Vec::new()).await
}

/// [`app_and_broker`] with more sources after the local one: a redirect source (OpenID Connect, GitHub) gets a
/// "Sign in with …" button on the page, which hands the browser to the provider and back to the page (the tests
/// add one over a real OpenID provider).
pub async fn app_and_broker_with(
    store: Store,
    public_url: &str,
    more: Vec<Arc<dyn AuthSource>>,
) -> Result<(Router, Arc<Broker>), Error> {
    // A local password source over the store: the page shows a sign-in form for it.
    let local_config = LocalConfig {
        id: SourceId::new("local")?,
        display_name: Some("Example app account".into()),
        argon2: Default::default(),
        password: Default::default(),
    };
    let hasher = Arc::new(PasswordHasher::new(local_config.argon2)?);
    let repo: Arc<dyn CredentialRepository> = Arc::new(store.clone());
    let source: Arc<dyn AuthSource> = Arc::new(LocalSource::new(&local_config, repo, hasher.clone()));

    // The broker at `{public_url}/auth`: the one place the mount is said.
    let mut builder = Broker::builder(store, format!("{}/auth", public_url.trim_end_matches('/'))).source(source);
    for more in more {
        builder = builder.source(more);
    }
    let broker = Arc::new(builder.build().await?);
    let demo = NewLocalAccount {
        source: local_config.id,
        username: DEMO_USER.into(),
        display_name: Some(DEMO_NAME.into()),
        email: Some("demo@example.org".into()),
        email_verified: false,
        password_hash: hasher.hash(DEMO_PASSWORD.into()).await?.into(),
    };
    match broker.create_local_account(&demo, "example-spa").await {
        Ok(_) | Err(vestibule::BrokerError::Store(vestibule::StorageError::Conflict(_))) => {}
        Err(e) => return Err(e.into()),
    }

    // `secure_cookies: false` only because this example serves plain HTTP on loopback; behind https, leave the
    // default (true). A redirect source's sign-in ends on the page (`/`), which then finds the session.
    let auth = Vestibule::new(
        broker.clone(),
        HttpSettings {
            secure_cookies: false,
            landing: Some("/".into()),
            ..HttpSettings::default()
        },
    );

    // The page and its files, under the page's own headers (the broker's routes keep theirs).
    let page = Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route("/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .layer(map_response(page_headers));
    let app = Router::new().route("/api/hello", get(hello)).merge(page);
    Ok((auth.nest_into(app).layer(auth.layer()), broker))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = Response::new(body.into());
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

async fn page_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // A new build's page and script are taken at once (they are small); nothing about a person is in them.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The app's own data for the page to show. Signed out, the page's `fetch` gets `401 {"error":"unauthenticated"}`
/// ([`RequireUser`] answers JSON to anything that does not ask for HTML).
async fn hello(RequireUser(user): RequireUser) -> Json<Value> {
    let name = user.display_name.as_deref().unwrap_or("you");
    Json(json!({
        "message": format!("Hello, {name}! This line comes from the app's own /api/hello."),
        "account": user.account_id.as_str(),
    }))
}
