//! GitHub's OAuth2 flow against GitHub-shaped endpoints served in process: authorization URL with state and
//! PKCE S256, the code exchange (GitHub's 200-with-error style included), `/user` for the numeric id, and
//! `/user/emails` for a primary, verified address only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vestibule_core::{AuthSource, CallbackParams, ExternalIdentity, Flow, RedirectFlow, SourceError};
use vestibule_oidc::{GithubConfig, GithubSource};

const CLIENT_ID: &str = "Iv1.testclient";
const CLIENT_SECRET: &str = "github-test-secret-5a4b3c2d1e";
const CALLBACK: &str = "https://broker.example/callback/github";

/// How the fake GitHub describes the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Account {
    /// id 583231, primary verified address.
    Octocat,
    /// The primary address is not verified; a verified secondary exists.
    PrimaryUnverified,
    /// `/user/emails` is forbidden (no `user:email` scope).
    NoEmailScope,
    /// `/user` has the id as a string.
    StringId,
}

struct Grant {
    challenge: String,
    account: Account,
    used: bool,
}

#[derive(Default)]
struct Shared {
    grants: Mutex<HashMap<String, Grant>>,
    tokens: Mutex<HashMap<String, Account>>,
    counter: AtomicUsize,
    token_hits: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn access_token(State(s): State<Arc<Shared>>, Form(form): Form<HashMap<String, String>>) -> Response {
    s.token_hits.fetch_add(1, Ordering::SeqCst);
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    // GitHub answers errors with 200 and an `error` field.
    let error = |code: &str| Json(json!({"error": code})).into_response();
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return error("incorrect_client_credentials");
    }
    let account = {
        let mut grants = lock(&s.grants);
        let Some(g) = grants.get_mut(&field("code")) else {
            return error("bad_verification_code");
        };
        if g.used {
            return error("bad_verification_code");
        }
        g.used = true;
        if URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes())) != g.challenge {
            return error("bad_verification_code");
        }
        g.account
    };
    let token = format!("gho_{}", s.counter.fetch_add(1, Ordering::SeqCst));
    lock(&s.tokens).insert(token.clone(), account);
    Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"})).into_response()
}

fn account_of(s: &Shared, headers: &HeaderMap) -> Option<Account> {
    let token = headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")?;
    lock(&s.tokens).get(token).copied()
}

async fn user(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(account) = account_of(&s, &headers) else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials"}))).into_response();
    };
    let id: Value = if account == Account::StringId {
        json!("583231")
    } else {
        json!(583231)
    };
    Json(json!({"id": id, "login": "octocat", "name": "The Octocat", "email": "public@unverified.example"}))
        .into_response()
}

async fn emails(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(account) = account_of(&s, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match account {
        Account::NoEmailScope => (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "Resource not accessible"})),
        )
            .into_response(),
        Account::PrimaryUnverified => Json(json!([
            {"email": "primary@example.com", "primary": true, "verified": false, "visibility": "private"},
            {"email": "second@example.com", "primary": false, "verified": true, "visibility": null},
        ]))
        .into_response(),
        _ => Json(json!([
            {"email": "second@example.com", "primary": false, "verified": true, "visibility": null},
            {"email": "octocat@github.com", "primary": true, "verified": true, "visibility": "public"},
        ]))
        .into_response(),
    }
}

struct FakeGithub {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGithub {
    async fn start() -> FakeGithub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/login/oauth/access_token", post(access_token))
            .route("/api/user", get(user))
            .route("/api/user/emails", get(emails))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGithub { base, shared, task }
    }

    fn source(&self) -> GithubSource {
        let var = format!("VESTIBULE_GITHUB_TEST_SECRET_{}", std::process::id());
        std::env::set_var(&var, CLIENT_SECRET);
        let b = &self.base;
        let config: GithubConfig = toml::from_str(&format!(
            "id = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{var}\"\n\
             authorize_url = \"{b}/login/oauth/authorize\"\ntoken_url = \"{b}/login/oauth/access_token\"\n\
             api_base_url = \"{b}/api/\""
        ))
        .expect("config");
        GithubSource::new(config).expect("source")
    }

    /// Plays GitHub's authorization page.
    fn authorize(&self, authorize_url: &str, account: Account) -> CallbackParams {
        let url = url::Url::parse(authorize_url).expect("url");
        assert!(url
            .as_str()
            .starts_with(&format!("{}/login/oauth/authorize?", self.base)));
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
        assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
        assert_eq!(q.get("redirect_uri").map(String::as_str), Some(CALLBACK));
        assert_eq!(q.get("scope").map(String::as_str), Some("read:user user:email"));
        assert!(q.get("state").is_some_and(|s| s.len() >= 43));
        assert!(q.get("code_challenge").is_some_and(|s| s.len() == 43));
        let code = format!("ghcode{}", self.shared.counter.fetch_add(1, Ordering::SeqCst));
        lock(&self.shared.grants).insert(
            code.clone(),
            Grant {
                challenge: q["code_challenge"].clone(),
                account,
                used: false,
            },
        );
        CallbackParams {
            state: q.get("state").cloned(),
            code: Some(code),
            ..CallbackParams::default()
        }
    }
}

async fn sign_in(gh: &FakeGithub, source: &GithubSource, account: Account) -> Result<ExternalIdentity, SourceError> {
    let started = source.start(CALLBACK).await?;
    let params = gh.authorize(&started.authorize_url, account);
    source.finish(started.pending, CALLBACK, &params).await
}

#[tokio::test]
async fn github_sign_in_keys_on_the_numeric_id_and_takes_only_primary_verified_email() {
    let gh = FakeGithub::start().await;
    let source = gh.source();
    assert_eq!(source.display_name(), "GitHub");
    assert!(matches!(source.flow(), Flow::Redirect(_)));

    let who = sign_in(&gh, &source, Account::Octocat).await.expect("octocat");
    assert_eq!(who.source.as_str(), "github");
    assert_eq!(
        who.subject.as_str(),
        "583231",
        "subject is the numeric id, never the login"
    );
    assert_eq!(who.login.as_deref(), Some("octocat"));
    assert_eq!(who.display_name.as_deref(), Some("The Octocat"));
    assert_eq!(who.email.as_deref(), Some("octocat@github.com"));
    assert!(who.email_verified);

    let who = sign_in(&gh, &source, Account::PrimaryUnverified)
        .await
        .expect("unverified primary");
    assert_eq!(
        who.email, None,
        "neither the unverified primary nor a secondary is used"
    );
    assert!(!who.email_verified);

    let who = sign_in(&gh, &source, Account::NoEmailScope)
        .await
        .expect("no email scope");
    assert_eq!(who.email, None, "the public /user email is never used");

    let r = sign_in(&gh, &source, Account::StringId).await;
    assert!(matches!(r, Err(SourceError::Protocol(_))), "{r:?}");
}

#[tokio::test]
async fn github_refuses_replays_bad_state_and_reports_cancel() {
    let gh = FakeGithub::start().await;
    let source = gh.source();
    let started = source.start(CALLBACK).await.expect("start");
    let params = gh.authorize(&started.authorize_url, Account::Octocat);
    source
        .finish(started.pending.clone(), CALLBACK, &params)
        .await
        .expect("first");
    let replay = source.finish(started.pending, CALLBACK, &params).await;
    assert!(matches!(replay, Err(SourceError::Protocol(_))), "{replay:?}");

    let hits = gh.shared.token_hits.load(Ordering::SeqCst);
    let started = source.start(CALLBACK).await.expect("start");
    let mut params = gh.authorize(&started.authorize_url, Account::Octocat);
    params.state = Some("forged".into());
    assert!(source.finish(started.pending.clone(), CALLBACK, &params).await.is_err());
    let cancel = CallbackParams {
        error: Some("access_denied".into()),
        ..CallbackParams::default()
    };
    let r = source.finish(started.pending, CALLBACK, &cancel).await;
    assert!(
        matches!(r, Err(SourceError::Cancelled(ref c)) if c == "access_denied"),
        "{r:?}"
    );
    assert_eq!(
        gh.shared.token_hits.load(Ordering::SeqCst),
        hits,
        "no exchange for refused callbacks"
    );
}
