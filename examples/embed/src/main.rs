//! Run with: `cargo run -p example-embed`, then open http://127.0.0.1:3000 and sign in as `demo` / `demo password`.
//!
//! An axum app that embeds Vestibule: the broker's pages are nested under `/auth`, the app's own routes get the
//! signed-in account from extractors, and one layer resolves the session cookie for all of them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use vestibule::Broker;
use vestibule_axum::{CurrentUser, HttpSettings, RequireUser, Vestibule};
use vestibule_core::{AuthSource, CredentialRepository, SourceId};
use vestibule_local::{LocalConfig, LocalSource, PasswordHasher};
use vestibule_store::{NewLocalAccount, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();

    // 1. A store (SQLite file here; any `postgres://` URL works the same) with its migrations applied.
    let store = Store::connect("sqlite://example-embed.db").await?;
    store.migrate().await?;

    // 2. A local password source over that store.
    let local_config = LocalConfig {
        id: SourceId::new("local")?,
        display_name: Some("Example app account".into()),
        argon2: Default::default(),
        password: Default::default(),
    };
    let hasher = Arc::new(PasswordHasher::new(local_config.argon2)?);
    let repo: Arc<dyn CredentialRepository> = Arc::new(store.clone());
    let local: Arc<dyn AuthSource> = Arc::new(LocalSource::new(&local_config, repo, hasher.clone()));

    // A demo account, created once.
    let demo = NewLocalAccount {
        source: local_config.id.clone(),
        username: "demo".into(),
        display_name: Some("Demo User".into()),
        email: Some("demo@example.org".into()),
        email_verified: false,
        password_hash: hasher.hash("demo password".into()).await?,
    };
    let now = vestibule_core::Clock::now(&vestibule_core::SystemClock);
    match store.create_local_account(&demo, now).await {
        Ok(_) | Err(vestibule_store::StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }

    // 3. The broker. Its base URL includes the mount path: redirect callbacks are built from it.
    let addr = SocketAddr::from(([127, 0, 0, 1], 3000));
    let broker = Arc::new(
        Broker::builder(store, format!("http://{addr}/auth"))
            .source(local)
            .build()
            .await?,
    );

    // 4. The HTTP side. `secure_cookies: false` only because this example serves plain HTTP on loopback;
    //    behind https, leave the default (true).
    let auth = Vestibule::new(
        broker,
        HttpSettings {
            mount: "/auth".into(),
            secure_cookies: false,
            landing: Some("/".into()),
            ..HttpSettings::default()
        },
    );

    let app = Router::new()
        .route("/", get(home))
        .route("/private", get(private))
        .route("/api/whoami", get(whoami))
        .nest("/auth", vestibule_axum::router(auth.clone()))
        .layer(auth.layer());

    println!("example-embed on http://{addr} — sign in as demo / demo password");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

/// Anyone may see this page; it greets the signed-in user by name.
async fn home(CurrentUser(user): CurrentUser) -> Html<String> {
    Html(match user {
        Some(u) => format!(
            "<h1>Hello, {}</h1><p><a href=\"/private\">Private page</a> · <a href=\"/auth/account\">Account</a></p>",
            escape(u.display_name.as_deref().unwrap_or("you"))
        ),
        None => "<h1>Hello, stranger</h1><p><a href=\"/auth/login?next=/\">Sign in</a></p>".into(),
    })
}

/// Browsers that are not signed in are sent to `/auth/login?next=/private`.
async fn private(RequireUser(user): RequireUser) -> Html<String> {
    Html(format!(
        "<h1>Private</h1><p>Only {} can see this.</p>",
        escape(user.display_name.as_deref().unwrap_or("you"))
    ))
}

/// API clients that are not signed in get `401 {"error":"unauthenticated"}`.
async fn whoami(RequireUser(user): RequireUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "account": user.account_id.as_str(), "name": user.display_name }))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
