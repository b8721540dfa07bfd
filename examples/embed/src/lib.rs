//! The app of `example-embed`, built in a function so that its tests run exactly what `cargo run -p example-embed`
//! serves (see `src/main.rs` for running it, and `tests/` for the whole tour driven over HTTP).
//!
//! An axum app that embeds Vestibule: the broker's pages are nested under `/auth`, the app's own routes get the
//! signed-in account from extractors, and one layer resolves the session cookie for all of them. `/admin` is for
//! members of the group `admins` only ([`RequireGroup`]); the app's own pages carry their own logout button and a
//! form of their own, both with the CSRF token from [`CsrfToken`], and the form is taken through [`CsrfForm`].

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use serde::Deserialize;
use vestibule::Broker;
use vestibule_axum::{CsrfForm, CsrfToken, CurrentUser, HttpSettings, RequireGroup, RequireUser, Vestibule};
use vestibule_core::{AuthSource, CredentialRepository, PasswordChanger, SourceId};
use vestibule_local::{LocalConfig, LocalSource, PasswordHasher};
use vestibule_store::{NewLocalAccount, Store};

mod users;
pub use users::AppUsers;

/// Any error while building the app.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The demo account's login name.
pub const DEMO_USER: &str = "demo";
/// The demo account's password (until someone changes it on `/auth/account`).
pub const DEMO_PASSWORD: &str = "demo password";

/// Builds the app over a migrated `store`. `public_url` is where people reach the app (`http://127.0.0.1:3000`);
/// the broker's routes are mounted at `/auth` below it. Creates the demo account when it is missing.
pub async fn app(store: Store, public_url: &str) -> Result<Router, Error> {
    Ok(app_and_broker(store, public_url).await?.0)
}

/// [`app`], and its broker: for operator work the app does itself (its tests make the demo account an
/// administrator with [`Broker::change_assigned_groups`], as `vestibule user groups` would).
pub async fn app_and_broker(store: Store, public_url: &str) -> Result<(Router, Arc<Broker>), Error> {
    // 1. A local password source over the store.
    let local_config = LocalConfig {
        id: SourceId::new("local")?,
        display_name: Some("Example app account".into()),
        argon2: Default::default(),
        password: Default::default(),
    };
    let hasher = Arc::new(PasswordHasher::new(local_config.argon2)?);
    let repo: Arc<dyn CredentialRepository> = Arc::new(store.clone());
    let local = Arc::new(LocalSource::new(&local_config, repo, hasher.clone()));

    // 2. The broker. Its base URL includes the mount path, `/auth`: that is the one place the mount is said —
    //    redirect callbacks, links and the router's nest path all come from it. The local source is also the
    //    password changer: without one, the account page's "Change password" form has nothing to post to.
    let source: Arc<dyn AuthSource> = local.clone();
    let changer: Arc<dyn PasswordChanger> = local;
    // The app's own users, kept in step by the broker's hooks (see `users.rs` and the README's "Hooks").
    let users = Arc::new(AppUsers::default());
    let broker = Arc::new(
        Broker::builder(store, format!("{}/auth", public_url.trim_end_matches('/')))
            .source(source)
            .password_changer(changer)
            .hooks(users.clone())
            .build()
            .await?,
    );

    // A demo account, created once, through the broker (which audits it).
    let demo = NewLocalAccount {
        source: local_config.id.clone(),
        username: DEMO_USER.into(),
        display_name: Some("Demo User".into()),
        email: Some("demo@example.org".into()),
        email_verified: false,
        password_hash: hasher.hash(DEMO_PASSWORD.into()).await?.into(),
    };
    match broker.create_local_account(&demo, "example-embed").await {
        Ok(_) | Err(vestibule::BrokerError::Store(vestibule::StorageError::Conflict(_))) => {}
        Err(e) => return Err(e.into()),
    }

    // 3. The HTTP side. `secure_cookies: false` only because this example serves plain HTTP on loopback;
    //    behind https, leave the default (true).
    let auth = Vestibule::new(
        broker.clone(),
        HttpSettings {
            secure_cookies: false,
            landing: Some("/".into()),
            ..HttpSettings::default()
        },
    );

    let app = Router::new()
        .route("/", get(home))
        .route("/private", get(private))
        .route("/api/whoami", get(whoami))
        .route("/admin", get(admin))
        .route("/feedback", get(feedback_form).post(feedback))
        .layer(Extension(users));
    Ok((auth.nest_into(app).layer(auth.layer()), broker))
}

/// The same app with its broker built from the `vestibule` server's TOML file instead ([`vestibule_config`]):
/// `[database]`, `[[sources]]`, `[session]`, `[email]`, `[ui]` and the rest as `vestibule check-config` reads them.
/// `server.public_url` is where the broker is mounted (`http://127.0.0.1:3000/auth`). The builder is taken rather
/// than [`vestibule_config::FileConfig::broker`] so that the app's hooks are added; the app serves plain HTTP on
/// loopback here, so `Secure` cookies follow the file's public URL (`http_settings`).
pub async fn app_from_config(text: &str) -> Result<(Router, Arc<Broker>), Error> {
    let config = vestibule_config::parse("vestibule.toml", text)?;
    let users = Arc::new(AppUsers::default());
    let broker = Arc::new(
        config
            .broker_builder(config.open_store().await?, config.start_mailer()?, &config.public_url())?
            .hooks(users.clone())
            .build()
            .await?,
    );
    let auth = Vestibule::new(
        broker.clone(),
        HttpSettings {
            landing: Some("/".into()),
            ..config.http_settings()
        },
    );
    let app = Router::new()
        .route("/", get(home))
        .route("/private", get(private))
        .route("/api/whoami", get(whoami))
        .layer(Extension(users));
    Ok((auth.nest_into(app).layer(auth.layer()), broker))
}

// The group `/admin` requires; a local account is put in it with `vestibule user groups demo --add admins`.
vestibule_axum::group!(pub Admins = "admins");

/// Anyone may see this page; it greets the signed-in user by name and offers the app's own logout button: a form
/// posting the CSRF token to the broker's `/auth/logout`.
async fn home(CurrentUser(user): CurrentUser, csrf: CsrfToken) -> (CsrfToken, Html<String>) {
    let page = match user {
        Some(u) => format!(
            "<h1>Hello, {}</h1><p><a href=\"/private\">Private page</a> · <a href=\"/admin\">Admin</a> · \
             <a href=\"/feedback\">Feedback</a> · <a href=\"/auth/account\">Account</a></p>\
             <form method=\"post\" action=\"/auth/logout\">{}<button>Sign out</button></form>",
            escape(u.display_name.as_deref().unwrap_or("you")),
            csrf_field(&csrf)
        ),
        None => "<h1>Hello, stranger</h1><p><a href=\"/auth/login?next=/\">Sign in</a></p>".into(),
    };
    // Returned with the page: signed out, it sets the pre-session cookie the token is bound to.
    (csrf, Html(page))
}

/// The hidden field that carries the token in every form of the app.
fn csrf_field(csrf: &CsrfToken) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        escape(csrf.as_str())
    )
}

/// Members of `admins` only: anyone else signed in gets a 403 page (an API client, 403 JSON).
async fn admin(RequireGroup(user, ..): RequireGroup<Admins>) -> Html<String> {
    Html(format!(
        "<h1>Administration</h1><p>Welcome, administrator {}.</p>",
        escape(user.display_name.as_deref().unwrap_or("you"))
    ))
}

/// A form of the app's own.
async fn feedback_form(RequireUser(_): RequireUser, csrf: CsrfToken) -> (CsrfToken, Html<String>) {
    let page = format!(
        "<h1>Feedback</h1><form method=\"post\" action=\"/feedback\">{}\
         <textarea name=\"message\"></textarea><button>Send</button></form>",
        csrf_field(&csrf)
    );
    (csrf, Html(page))
}

/// What the feedback form posts.
#[derive(Deserialize)]
struct Feedback {
    message: String,
}

/// Taken only with this browser's CSRF token: a forged cross-site post is refused (403) before this runs.
async fn feedback(RequireUser(user): RequireUser, CsrfForm(form): CsrfForm<Feedback>) -> Html<String> {
    tracing::info!(account = %user.account_id, chars = form.message.len(), "feedback received");
    Html(format!(
        "<p>Thank you: {} characters received.</p>",
        form.message.chars().count()
    ))
}

/// Browsers that are not signed in are sent to `/auth/login?next=/private`.
async fn private(RequireUser(user): RequireUser) -> Html<String> {
    Html(format!(
        "<h1>Private</h1><p>Only {} can see this.</p>",
        escape(user.display_name.as_deref().unwrap_or("you"))
    ))
}

/// API clients that are not signed in get `401 {"error":"unauthenticated",...}`. `app_user` is the app's own user
/// id for the account.
async fn whoami(RequireUser(user): RequireUser, Extension(users): Extension<Arc<AppUsers>>) -> Json<serde_json::Value> {
    let app_user = users.user_id(&user.account_id);
    Json(serde_json::json!({ "account": user.account_id.as_str(), "name": user.display_name, "app_user": app_user }))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
