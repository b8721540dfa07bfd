//! GitHub-shaped endpoints served in process (`/login/oauth/access_token`, `/api/user`, `/api/user/emails`) that
//! check the client credentials and PKCE as GitHub does. Used by vestibule-oidc's GitHub tests, the `vestibule`
//! binary's end-to-end tests and the conformance run (feature `github`). The authorization page itself is played
//! by the test: it reads the authorization URL and calls [`FakeGithub::grant`] for a code.

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
use vestibule_core::CallbackParams;

/// The client id the fake accepts.
pub const CLIENT_ID: &str = "Iv1.testclient";
/// The client secret the fake accepts.
pub const CLIENT_SECRET: &str = "github-test-secret-5a4b3c2d1e";

/// How the fake GitHub describes the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Account {
    /// id 583231, primary verified address.
    Octocat,
    /// The primary address is not verified; a verified secondary exists.
    PrimaryUnverified,
    /// `/user/emails` is forbidden (no `user:email` scope).
    NoEmailScope,
    /// `/user` has the id as a string.
    StringId,
}

/// A code handed out by [`FakeGithub::grant`].
#[derive(Debug)]
pub struct Grant {
    pub challenge: String,
    pub account: Account,
    pub used: bool,
}

/// The fake's state, for tests that look inside.
#[derive(Debug, Default)]
pub struct Shared {
    pub grants: Mutex<HashMap<String, Grant>>,
    pub tokens: Mutex<HashMap<String, Account>>,
    pub counter: AtomicUsize,
    /// Requests to the token endpoint.
    pub token_hits: AtomicUsize,
}

/// Locks, surviving a panicked holder (a failed test must not fail the next one).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

/// The fake GitHub; its server task stops on drop.
#[derive(Debug)]
pub struct FakeGithub {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGithub {
    /// Serves the endpoints on a free loopback port, on the current tokio runtime.
    pub async fn start() -> FakeGithub {
        // Bound here and handed to the server: the address is known and held before anything connects.
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

    /// Plays GitHub's consent: records a single-use code for this PKCE challenge and person.
    pub fn grant(&self, code_challenge: &str, account: Account) -> String {
        let code = format!("ghcode{}", self.shared.counter.fetch_add(1, Ordering::SeqCst));
        lock(&self.shared.grants).insert(
            code.clone(),
            Grant {
                challenge: code_challenge.to_owned(),
                account,
                used: false,
            },
        );
        code
    }
}

impl FakeGithub {
    /// The `authorize_url`, `token_url` and `api_base_url` lines of a `kind = "github"` source's TOML that point
    /// it at this fake.
    pub fn endpoints_toml(&self) -> String {
        let b = &self.base;
        format!(
            "authorize_url = \"{b}/login/oauth/authorize\"\ntoken_url = \"{b}/login/oauth/access_token\"\n\
             api_base_url = \"{b}/api/\"\n"
        )
    }

    /// Plays GitHub's authorization page for `account`: checks the request as GitHub would see it (this fake's
    /// authorize URL, our client id, `callback` as redirect_uri, both scopes, a long state, a PKCE S256
    /// challenge), grants a code for the challenge, and returns what GitHub sends to the callback.
    pub fn authorize(&self, authorize_url: &str, callback: &str, account: Account) -> CallbackParams {
        let url = url::Url::parse(authorize_url).expect("authorize url");
        assert!(
            url.as_str()
                .starts_with(&format!("{}/login/oauth/authorize?", self.base)),
            "{url}"
        );
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
        assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
        assert_eq!(q.get("redirect_uri").map(String::as_str), Some(callback));
        assert_eq!(q.get("scope").map(String::as_str), Some("read:user user:email"));
        assert!(q.get("state").is_some_and(|s| s.len() >= 43));
        assert!(q.get("code_challenge").is_some_and(|s| s.len() == 43));
        let code = self.grant(&q["code_challenge"], account);
        CallbackParams {
            state: q.get("state").cloned().map(Into::into),
            code: Some(code.into()),
            ..CallbackParams::default()
        }
    }
}
