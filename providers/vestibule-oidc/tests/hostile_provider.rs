//! A hostile OpenID provider, in process on 127.0.0.1: it serves discovery, a JWKS, a token endpoint and
//! userinfo, and signs crafted ID tokens. Every forgery must be refused by `finish`; the honest token must pass.
//! The provider also counts its requests, to show that discovery and the JWKS are cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use openidconnect::core::{CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vestibule_core::{
    CallbackParams, ExposeSecret, ExternalIdentity, RedirectFlow, RejectReason, SourceError, StartOptions,
};
use vestibule_oidc::{GoogleConfig, OidcConfig, OidcSource};

const CLIENT_ID: &str = "vestibule-rp";
const CLIENT_SECRET: &str = "hostile-test-client-secret-9f8e7d";
const CALLBACK: &str = "https://broker.example/callback/hostile";
const SUB: &str = "248289761001";

/// What the provider does wrong in one sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tamper {
    Honest,
    WrongIss,
    WrongAud,
    ExtraAudNoAzp,
    AzpOther,
    Expired,
    IatFuture,
    NoIat,
    WrongNonce,
    MissingNonce,
    MissingSub,
    BadSignature,
    UnknownKid,
    AttackerKeyWithRealKid,
    AlgNone,
    Hs256WithPublicKey,
    JkuInjection,
    X5uInjection,
    JwkInjection,
    AccessTokenType,
    UserinfoSubMismatch,
    EmailVerifiedString,
    /// Google: the ID token names this Workspace domain in `hd`.
    Hd(&'static str),
    /// Google: `iss` spelled without the scheme.
    BareIssuer,
    /// `iat` this many seconds ago (`exp` still in the future).
    IssuedAgo(i64),
    /// An honest token that says the person authenticated this many seconds ago (`auth_time`).
    AuthenticatedAgo(i64),
    /// The claims name this member twice: a bogus value first, the honest one last (what a last-wins parser
    /// keeps, so the token passes every other check; a first-wins parser elsewhere would read the bogus one).
    DuplicateClaim(&'static str),
    /// `sub` twice, the first spelled with a JSON escape (`"s\u0075b"`): the same name once decoded.
    DuplicateEscapedSub,
    /// A duplicate inside a nested object (`address.country`).
    DuplicateNestedClaim,
    /// The header names this parameter twice, bogus value first.
    DuplicateHeader(&'static str),
}

/// Each forgery, and the reason it must be refused for (so a test cannot pass for the wrong reason).
const FORGERIES: &[(Tamper, &str)] = &[
    (Tamper::WrongIss, "issuer mismatch"),
    (Tamper::WrongAud, "audience mismatch"),
    (Tamper::ExtraAudNoAzp, "untrusted audience"),
    (Tamper::AzpOther, "authorized party"),
    (Tamper::Expired, "expired"),
    (Tamper::IatFuture, "in the future"),
    (Tamper::NoIat, "no issue time"),
    (Tamper::WrongNonce, "nonce mismatch"),
    (Tamper::MissingNonce, "no nonce"),
    (Tamper::MissingSub, "no subject"),
    (Tamper::BadSignature, "bad token signature"),
    (Tamper::UnknownKid, "unknown key"),
    (Tamper::AttackerKeyWithRealKid, "bad token signature"),
    (Tamper::AlgNone, "algorithm not allowed"),
    (Tamper::Hs256WithPublicKey, "algorithm not allowed"),
    (Tamper::JkuInjection, "unknown key"),
    (Tamper::X5uInjection, "unknown key"),
    (Tamper::JwkInjection, "unknown key"),
    (Tamper::AccessTokenType, "not an ID token"),
    (Tamper::UserinfoSubMismatch, "userinfo sub"),
    (Tamper::IssuedAgo(3600), "issued too long ago"),
    (Tamper::DuplicateClaim("sub"), "duplicate"),
    (Tamper::DuplicateClaim("nonce"), "duplicate"),
    (Tamper::DuplicateClaim("aud"), "duplicate"),
    (Tamper::DuplicateClaim("iss"), "duplicate"),
    (Tamper::DuplicateEscapedSub, "duplicate"),
    (Tamper::DuplicateNestedClaim, "duplicate"),
    (Tamper::DuplicateHeader("alg"), "duplicate"),
    (Tamper::DuplicateHeader("kid"), "duplicate"),
];

/// The tampers that put a member name twice into the header or the claims.
const DUPLICATES: &[Tamper] = &[
    Tamper::DuplicateClaim("sub"),
    Tamper::DuplicateClaim("nonce"),
    Tamper::DuplicateClaim("aud"),
    Tamper::DuplicateClaim("iss"),
    Tamper::DuplicateEscapedSub,
    Tamper::DuplicateNestedClaim,
    Tamper::DuplicateHeader("alg"),
    Tamper::DuplicateHeader("kid"),
];

/// The bogus first value of a duplicated member, as raw JSON.
fn bogus(name: &str) -> &'static str {
    match name {
        "sub" => r#""attacker-sub""#,
        "nonce" => r#""attacker-nonce""#,
        "aud" => r#""attacker-client""#,
        "iss" => r#""https://evil.example""#,
        "alg" => r#""none""#,
        "kid" => r#""evil""#,
        _ => r#""bogus""#,
    }
}

/// Inserts the raw member `member` (`"name":value`) at the front of the serialized JSON object `object`.
fn with_leading_member(object: &str, member: &str) -> String {
    format!("{{{member},{}", &object[1..])
}

struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
    tamper: Tamper,
    used: bool,
}

#[derive(Default)]
struct Hits {
    discovery: AtomicUsize,
    jwks: AtomicUsize,
    token: AtomicUsize,
    userinfo: AtomicUsize,
    /// Requests to the attacker's key URLs (`jku`/`x5u` targets): must stay 0.
    evil: AtomicUsize,
}

struct Shared {
    issuer: String,
    provider_key: CoreRsaPrivateSigningKey,
    rotated_key: CoreRsaPrivateSigningKey,
    attacker_key: CoreRsaPrivateSigningKey,
    rotated: AtomicBool,
    announce_iss_param: AtomicBool,
    discovery_issuer: Mutex<Option<String>>,
    token_delay: Mutex<Duration>,
    grants: Mutex<HashMap<String, Grant>>,
    access_tokens: Mutex<HashMap<String, Tamper>>,
    counter: AtomicUsize,
    hits: Hits,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key(pem: &str, kid: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.into()))).expect("test key")
}

fn public_jwk(k: &CoreRsaPrivateSigningKey) -> Value {
    serde_json::to_value(k.as_verification_key()).expect("jwk")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

impl Shared {
    fn signing_key(&self) -> (&CoreRsaPrivateSigningKey, &'static str) {
        if self.rotated.load(Ordering::SeqCst) {
            (&self.rotated_key, "k2")
        } else {
            (&self.provider_key, "k1")
        }
    }

    fn id_token(&self, g: &Grant) -> String {
        let t = now();
        let mut claims = json!({
            "iss": self.issuer, "aud": CLIENT_ID, "exp": t + 300, "iat": t, "nonce": g.nonce, "sub": SUB,
            "email": "eve@example.com", "email_verified": true, "name": "Eve Honest",
            "preferred_username": "eve",
        });
        let (key, kid) = self.signing_key();
        let mut header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
        let mut signer = key;
        match g.tamper {
            Tamper::Honest | Tamper::UserinfoSubMismatch => {}
            Tamper::AuthenticatedAgo(secs) => claims["auth_time"] = json!(t - secs),
            Tamper::WrongIss => claims["iss"] = json!("https://evil.example"),
            Tamper::WrongAud => claims["aud"] = json!("someone-else"),
            Tamper::ExtraAudNoAzp => claims["aud"] = json!([CLIENT_ID, "untrusted-client"]),
            Tamper::AzpOther => claims["azp"] = json!("untrusted-client"),
            Tamper::Expired => {
                claims["exp"] = json!(t - 600);
                claims["iat"] = json!(t - 1200);
            }
            Tamper::IatFuture => {
                claims["iat"] = json!(t + 3600);
                claims["exp"] = json!(t + 7200);
            }
            Tamper::NoIat => {
                claims.as_object_mut().map(|c| c.remove("iat"));
            }
            Tamper::WrongNonce => claims["nonce"] = json!("not-the-nonce-we-were-sent"),
            Tamper::MissingNonce => {
                claims.as_object_mut().map(|c| c.remove("nonce"));
            }
            Tamper::MissingSub => {
                claims.as_object_mut().map(|c| c.remove("sub"));
            }
            Tamper::BadSignature => {}
            Tamper::UnknownKid => {
                header["kid"] = json!(format!("unknown-{}", self.counter.fetch_add(1, Ordering::SeqCst)));
                signer = &self.attacker_key;
            }
            Tamper::AttackerKeyWithRealKid => signer = &self.attacker_key,
            Tamper::AlgNone => {
                let header = json!({"alg": "none", "typ": "JWT"});
                return format!("{}.{}.", b64json(&header), b64json(&claims));
            }
            Tamper::Hs256WithPublicKey => {
                // The classic key confusion: HMAC keyed with the public key the provider publishes.
                let header = json!({"alg": "HS256", "kid": kid, "typ": "JWT"});
                let input = format!("{}.{}", b64json(&header), b64json(&claims));
                let secret = serde_json::to_vec(&public_jwk(key)).expect("jwk");
                let mac = CoreHmacKey::new(secret)
                    .sign(&CoreJwsSigningAlgorithm::HmacSha256, input.as_bytes())
                    .expect("hmac");
                return format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac));
            }
            Tamper::JkuInjection => {
                header["jku"] = json!(format!("{}/evil/jwks", self.issuer));
                header["kid"] = json!("evil");
                signer = &self.attacker_key;
            }
            Tamper::X5uInjection => {
                header["x5u"] = json!(format!("{}/evil/cert.pem", self.issuer));
                header["kid"] = json!("evil");
                signer = &self.attacker_key;
            }
            Tamper::JwkInjection => {
                header["jwk"] = public_jwk(&self.attacker_key);
                header["kid"] = json!("evil");
                signer = &self.attacker_key;
            }
            Tamper::AccessTokenType => header["typ"] = json!("at+jwt"),
            Tamper::EmailVerifiedString => claims["email_verified"] = json!("true"),
            Tamper::Hd(domain) => claims["hd"] = json!(domain),
            Tamper::BareIssuer => {
                claims["iss"] = json!(self.issuer.trim_start_matches("http://"));
            }
            Tamper::IssuedAgo(secs) => claims["iat"] = json!(t - secs),
            // Raw JSON edits below: a `serde_json::Value` cannot hold a name twice.
            Tamper::DuplicateClaim(_)
            | Tamper::DuplicateEscapedSub
            | Tamper::DuplicateNestedClaim
            | Tamper::DuplicateHeader(_) => {}
        }
        let mut header_json = serde_json::to_string(&header).expect("json");
        let mut claims_json = serde_json::to_string(&claims).expect("json");
        match g.tamper {
            Tamper::DuplicateClaim(name) => {
                claims_json = with_leading_member(&claims_json, &format!("\"{name}\":{}", bogus(name)));
            }
            Tamper::DuplicateEscapedSub => {
                claims_json = with_leading_member(&claims_json, r#""s\u0075b":"attacker-sub""#);
            }
            Tamper::DuplicateNestedClaim => {
                claims_json = with_leading_member(
                    &claims_json,
                    r#""address":{"country":"XX","locality":"a","country":"NL"}"#,
                );
            }
            Tamper::DuplicateHeader(name) => {
                header_json = with_leading_member(&header_json, &format!("\"{name}\":{}", bogus(name)));
            }
            _ => {}
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let mut sig = signer
            .sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, input.as_bytes())
            .expect("sign");
        if g.tamper == Tamper::BadSignature {
            sig[10] ^= 0x01;
        }
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    s.hits.discovery.fetch_add(1, Ordering::SeqCst);
    let issuer = lock(&s.discovery_issuer).clone().unwrap_or_else(|| s.issuer.clone());
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{}/authorize", s.issuer),
        "token_endpoint": format!("{}/token", s.issuer),
        "jwks_uri": format!("{}/jwks", s.issuer),
        "userinfo_endpoint": format!("{}/userinfo", s.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        // A hostile provider announces `none` and HS256 too; the client must still refuse them.
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": s.announce_iss_param.load(Ordering::SeqCst),
    }))
}

async fn jwks(State(s): State<Arc<Shared>>) -> Json<Value> {
    s.hits.jwks.fetch_add(1, Ordering::SeqCst);
    let (key, _) = s.signing_key();
    // An unparseable post-quantum key next to the real one must be skipped, not fatal.
    Json(json!({"keys": [{"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq", "pub": "AAAA"}, public_jwk(key)]}))
}

async fn evil(State(s): State<Arc<Shared>>) -> Json<Value> {
    s.hits.evil.fetch_add(1, Ordering::SeqCst);
    Json(json!({"keys": [public_jwk(&s.attacker_key)]}))
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": code}))).into_response()
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.hits.token.fetch_add(1, Ordering::SeqCst);
    let expected = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let delay = *lock(&s.token_delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (tamper, id_token) = {
        let mut grants = lock(&s.grants);
        let Some(g) = grants.get_mut(&field("code")) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        };
        if g.used {
            // A replayed code, as a real provider answers it.
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        }
        g.used = true;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
        if challenge != g.challenge || field("redirect_uri") != g.redirect_uri {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        }
        (g.tamper, s.id_token(g))
    };
    let access_token = format!("at-{}", s.counter.fetch_add(1, Ordering::SeqCst));
    lock(&s.access_tokens).insert(access_token.clone(), tamper);
    Json(json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    s.hits.userinfo.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(tamper) = lock(&s.access_tokens).get(token).copied() else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
    };
    let mut claims = json!({"sub": SUB, "email": "eve@example.com", "email_verified": true, "name": "Eve Honest"});
    match tamper {
        Tamper::UserinfoSubMismatch => claims["sub"] = json!("someone-else"),
        Tamper::EmailVerifiedString => claims["email_verified"] = json!("true"),
        _ => {}
    }
    Json(claims).into_response()
}

/// The hostile provider; its server task stops when this is dropped.
struct Hostile {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    async fn start() -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/");
        let read = |name: &str| std::fs::read_to_string(format!("{keys}{name}.pem")).expect("key file");
        let shared = Arc::new(Shared {
            issuer,
            provider_key: key(&read("provider"), "k1"),
            rotated_key: key(&read("rotated"), "k2"),
            attacker_key: key(&read("attacker"), "evil"),
            rotated: AtomicBool::new(false),
            announce_iss_param: AtomicBool::new(false),
            discovery_issuer: Mutex::new(None),
            token_delay: Mutex::new(Duration::ZERO),
            grants: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
            counter: AtomicUsize::new(0),
            hits: Hits::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/evil/jwks", get(evil))
            .route("/evil/cert.pem", get(evil))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hostile { shared, task }
    }

    fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    fn hits(&self) -> [usize; 5] {
        let h = &self.shared.hits;
        [&h.discovery, &h.jwks, &h.token, &h.userinfo, &h.evil].map(|a| a.load(Ordering::SeqCst))
    }

    /// Plays the authorization endpoint: reads what `start` put in the URL and issues a code for it.
    fn authorize(&self, authorize_url: &str, tamper: Tamper) -> CallbackParams {
        let url = url::Url::parse(authorize_url).expect("url");
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
        assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
        assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
        for k in ["state", "nonce", "code_challenge"] {
            assert!(q.get(k).is_some_and(|v| v.len() >= 43), "{k} missing or short");
        }
        let code = format!("code-{}", self.shared.counter.fetch_add(1, Ordering::SeqCst));
        lock(&self.shared.grants).insert(
            code.clone(),
            Grant {
                nonce: q["nonce"].clone(),
                challenge: q["code_challenge"].clone(),
                redirect_uri: q["redirect_uri"].clone(),
                tamper,
                used: false,
            },
        );
        CallbackParams {
            state: q.get("state").cloned().map(Into::into),
            code: Some(code.into()),
            iss: Some(self.shared.issuer.clone()),
            ..CallbackParams::default()
        }
    }
}

fn secret_var() -> String {
    let var = format!("VESTIBULE_OIDC_HOSTILE_SECRET_{}", std::process::id());
    std::env::set_var(&var, CLIENT_SECRET);
    var
}

fn source_with(op: &Hostile, extra: &str) -> OidcSource {
    let config: OidcConfig = toml::from_str(&format!(
        "id = \"hostile\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{}\"\n{extra}",
        op.issuer(),
        secret_var()
    ))
    .expect("config");
    OidcSource::new(config).expect("source")
}

async fn sign_in(source: &OidcSource, op: &Hostile, tamper: Tamper) -> Result<ExternalIdentity, SourceError> {
    let started = source.start(CALLBACK).await?;
    let params = op.authorize(&started.authorize_url, tamper);
    source.finish(started.pending, CALLBACK, &params).await
}

#[tokio::test]
async fn honest_token_passes_and_every_forgery_is_refused() {
    let op = Hostile::start().await;
    let source = source_with(&op, "");
    let who = sign_in(&source, &op, Tamper::Honest).await.expect("honest sign-in");
    assert_eq!(who.source.as_str(), "hostile");
    assert_eq!(who.subject.as_str(), SUB);
    assert_eq!(who.login.as_deref(), Some("eve"));
    assert_eq!(who.email.as_deref(), Some("eve@example.com"));
    assert!(who.email_verified);

    let userinfo_before = op.hits()[3];
    for &(tamper, reason) in FORGERIES {
        let result = sign_in(&source, &op, tamper).await;
        assert!(
            matches!(result, Err(SourceError::Protocol(ref m)) if m.contains(reason)),
            "{tamper:?} was not refused for `{reason}`: {result:?}"
        );
    }
    // A refused ID token ends the flow: only the one forgery that is about userinfo reached userinfo.
    assert_eq!(
        op.hits()[3] - userinfo_before,
        1,
        "userinfo called after a refused ID token"
    );
    // The attacker's key URLs were never fetched.
    assert_eq!(op.hits()[4], 0, "jku/x5u followed");

    // `email_verified: "true"` (a string) signs in, but the address is not taken as verified.
    let who = sign_in(&source, &op, Tamper::EmailVerifiedString)
        .await
        .expect("string boolean");
    assert_eq!(who.email.as_deref(), Some("eve@example.com"));
    assert!(!who.email_verified);

    // And the honest flow still works after all that.
    sign_in(&source, &op, Tamper::Honest).await.expect("honest again");
}

/// Asked for a new login (step-up, or a browser that is already signed in), the request says `prompt=login` and
/// `max_age=0`, and the answer must say when the person authenticated: an ID token without `auth_time` is refused
/// then (it would pass for a plain sign-in), and with it the identity carries that time for the broker to judge.
#[tokio::test]
async fn a_request_for_a_new_login_says_so_and_needs_auth_time_back() {
    let op = Hostile::start().await;
    let source = source_with(&op, "");
    let params_of = |url: &str| -> HashMap<String, String> {
        url::Url::parse(url).expect("url").query_pairs().into_owned().collect()
    };

    let plain = source.start(CALLBACK).await.expect("start");
    let q = params_of(&plain.authorize_url);
    assert!(!q.contains_key("prompt") && !q.contains_key("max_age"), "{q:?}");
    let params = op.authorize(&plain.authorize_url, Tamper::Honest);
    let who = source
        .finish(plain.pending, CALLBACK, &params)
        .await
        .expect("plain sign-in");
    assert_eq!(who.auth_time, None, "the token said nothing of it");

    let (source, op) = (&source, &op);
    let again = |tamper| async move {
        let started = source
            .start_with(CALLBACK, &StartOptions::reauthenticate())
            .await
            .expect("start");
        let q = params_of(&started.authorize_url);
        assert_eq!(q.get("prompt").map(String::as_str), Some("login"), "{q:?}");
        assert_eq!(q.get("max_age").map(String::as_str), Some("0"), "{q:?}");
        let params = op.authorize(&started.authorize_url, tamper);
        source.finish(started.pending, CALLBACK, &params).await
    };
    let refused = again(Tamper::Honest).await;
    assert!(
        matches!(refused, Err(SourceError::Protocol(ref m)) if m.contains("lacks auth_time")),
        "{refused:?}"
    );
    let who = again(Tamper::AuthenticatedAgo(5)).await.expect("with auth_time");
    let at = who.auth_time.expect("auth_time").0;
    assert!((now() - 10..=now()).contains(&at), "{at}");
}

#[tokio::test]
async fn old_id_tokens_are_refused_and_the_age_limit_is_configurable() {
    let op = Hostile::start().await;
    // Default: ten minutes.
    let source = source_with(&op, "");
    sign_in(&source, &op, Tamper::IssuedAgo(480))
        .await
        .expect("eight minutes old: within the default");
    for ago in [720, 3600, 86_400 * 30] {
        let r = sign_in(&source, &op, Tamper::IssuedAgo(ago)).await;
        assert!(
            matches!(r, Err(SourceError::Protocol(ref m)) if m.contains("issued too long ago")),
            "{ago} s old: {r:?}"
        );
    }

    // Tighter.
    let strict = source_with(&op, "max_id_token_age_secs = 60");
    sign_in(&strict, &op, Tamper::Honest).await.expect("fresh token");
    let r = sign_in(&strict, &op, Tamper::IssuedAgo(300)).await;
    assert!(
        matches!(r, Err(SourceError::Protocol(ref m)) if m.contains("issued too long ago")),
        "{r:?}"
    );

    // Looser, for a provider whose tokens are legitimately older on arrival.
    let loose = source_with(&op, "max_id_token_age_secs = 3600");
    sign_in(&loose, &op, Tamper::IssuedAgo(1800))
        .await
        .expect("half an hour old, limit one hour");

    // The Google preset takes the key too.
    let config: GoogleConfig = toml::from_str(&format!(
        "id = \"google\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{}\"\nissuer = \"{}\"\n\
         max_id_token_age_secs = 60",
        secret_var(),
        op.issuer()
    ))
    .expect("config");
    let google = OidcSource::google(config).expect("source");
    sign_in(&google, &op, Tamper::Honest).await.expect("fresh token");
    let r = sign_in(&google, &op, Tamper::IssuedAgo(300)).await;
    assert!(
        matches!(r, Err(SourceError::Protocol(ref m)) if m.contains("issued too long ago")),
        "{r:?}"
    );
}

#[tokio::test]
async fn duplicate_names_are_refused_before_any_further_request_to_the_provider() {
    for &tamper in DUPLICATES {
        // A fresh provider and source each time, so nothing is cached: the JWKS would be fetched, and userinfo
        // asked, if the token got past parsing.
        let op = Hostile::start().await;
        let source = source_with(&op, "");
        let r = sign_in(&source, &op, tamper).await;
        assert!(
            matches!(r, Err(SourceError::Protocol(ref m)) if m.contains("duplicate")),
            "{tamper:?} was not refused as a duplicate: {r:?}"
        );
        let [discovery, jwks, token, userinfo, evil] = op.hits();
        assert_eq!((discovery, token), (1, 1), "{tamper:?}");
        assert_eq!(userinfo, 0, "{tamper:?}: userinfo asked about a refused token");
        assert_eq!(jwks, 0, "{tamper:?}: JWKS fetched for a token refused by parsing");
        assert_eq!(evil, 0);
        // The same source signs the honest token in afterwards.
        sign_in(&source, &op, Tamper::Honest).await.expect("honest after");
        assert_eq!(op.hits()[1..4], [1, 2, 1], "{tamper:?}");
    }
}

#[tokio::test]
async fn discovery_and_jwks_are_fetched_once_for_100_sign_ins() {
    let op = Hostile::start().await;
    let source = source_with(&op, "");
    assert_eq!(op.hits(), [0, 0, 0, 0, 0], "construction touches no network");
    for _ in 0..100 {
        sign_in(&source, &op, Tamper::Honest).await.expect("sign-in");
    }
    let [discovery, jwks, token, userinfo, _] = op.hits();
    assert_eq!((discovery, jwks), (1, 1), "discovery and JWKS served from cache");
    assert_eq!((token, userinfo), (100, 100));
}

#[tokio::test]
async fn key_rotation_is_followed_and_unknown_kid_floods_are_floored() {
    let op = Hostile::start().await;
    let source = source_with(&op, "");
    sign_in(&source, &op, Tamper::Honest).await.expect("before rotation");
    assert_eq!(op.hits()[1], 1);

    op.shared.rotated.store(true, Ordering::SeqCst);
    let since_refetch = Instant::now();
    let who = sign_in(&source, &op, Tamper::Honest)
        .await
        .expect("after rotation: refetched JWKS");
    assert_eq!(who.subject.as_str(), SUB);
    assert_eq!(op.hits()[1], 2, "one refetch for the new kid");

    // Fifty tokens with made-up kids: all refused, and the provider sees at most one JWKS request per 10 s
    // (none at all when the flood is quick; a loaded machine running debug RSA may take longer than 10 s).
    for _ in 0..50 {
        let r = sign_in(&source, &op, Tamper::UnknownKid).await;
        assert!(matches!(r, Err(SourceError::Protocol(_))), "{r:?}");
    }
    let allowed = since_refetch.elapsed().as_secs() as usize / 10;
    let extra = op.hits()[1] - 2;
    assert!(
        extra <= allowed,
        "{extra} refetches in {:?}: floor broken",
        since_refetch.elapsed()
    );
    sign_in(&source, &op, Tamper::Honest).await.expect("honest still fine");
}

#[tokio::test]
async fn replayed_code_and_tampered_callbacks_are_refused() {
    let op = Hostile::start().await;
    op.shared.announce_iss_param.store(true, Ordering::SeqCst);
    let source = source_with(&op, "");

    // Replay: the provider answers invalid_grant the second time.
    let started = source.start(CALLBACK).await.expect("start");
    let params = op.authorize(&started.authorize_url, Tamper::Honest);
    source
        .finish(started.pending.clone(), CALLBACK, &params)
        .await
        .expect("first use");
    let replay = source.finish(started.pending, CALLBACK, &params).await;
    assert!(
        matches!(replay, Err(SourceError::Protocol(ref m)) if m.contains("invalid_grant")),
        "{replay:?}"
    );

    // Each of these is refused before any request to the token endpoint.
    let tokens_before = op.hits()[2];
    let started = source.start(CALLBACK).await.expect("start");
    let good = op.authorize(&started.authorize_url, Tamper::Honest);
    let mut cases: Vec<(&str, CallbackParams, &str)> = Vec::new();
    let mut p = good.clone();
    p.state = Some("tampered-state".into());
    cases.push(("tampered state", p, CALLBACK));
    let mut p = good.clone();
    p.state = None;
    cases.push(("missing state", p, CALLBACK));
    let mut p = good.clone();
    p.iss = Some("https://evil.example".into());
    cases.push(("RFC 9207 iss mismatch", p, CALLBACK));
    let mut p = good.clone();
    p.iss = None;
    cases.push(("iss missing though announced", p, CALLBACK));
    let mut p = good.clone();
    p.code = None;
    cases.push(("no code", p, CALLBACK));
    cases.push((
        "another callback URL",
        good.clone(),
        "https://broker.example/callback/other",
    ));
    for (what, params, callback) in cases {
        let r = source.finish(started.pending.clone(), callback, &params).await;
        assert!(matches!(r, Err(SourceError::Protocol(_))), "{what}: {r:?}");
    }
    let mut cancelled = good.clone();
    cancelled.code = None;
    cancelled.error = Some("access_denied".into());
    let r = source.finish(started.pending.clone(), CALLBACK, &cancelled).await;
    assert!(
        matches!(r, Err(SourceError::Cancelled(ref c)) if c == "access_denied"),
        "{r:?}"
    );
    assert_eq!(op.hits()[2], tokens_before, "no token request for a refused callback");

    // Pending data from another source (another issuer) is refused too.
    let other = Hostile::start().await;
    let other_source = source_with(&other, "");
    let foreign = other_source.start(CALLBACK).await.expect("start");
    let mut p = good.clone();
    p.state = Some(foreign.pending.state.clone());
    assert!(source.finish(foreign.pending, CALLBACK, &p).await.is_err());

    // The untouched callback still completes.
    source
        .finish(started.pending, CALLBACK, &good)
        .await
        .expect("honest callback");
}

#[tokio::test]
async fn discovery_for_another_issuer_is_refused() {
    let op = Hostile::start().await;
    *lock(&op.shared.discovery_issuer) = Some("https://evil.example".into());
    let source = source_with(&op, "");
    let r = source.start(CALLBACK).await;
    assert!(matches!(r, Err(SourceError::Protocol(_))), "{r:?}");
}

#[tokio::test]
async fn slow_or_down_provider_is_unavailable_within_the_timeout() {
    let op = Hostile::start().await;
    let source = source_with(&op, "timeout_secs = 1");
    sign_in(&source, &op, Tamper::Honest).await.expect("warm");
    *lock(&op.shared.token_delay) = Duration::from_secs(5);
    let t = Instant::now();
    let r = sign_in(&source, &op, Tamper::Honest).await;
    assert!(matches!(r, Err(SourceError::Unavailable(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_millis(2500), "took {:?}", t.elapsed());

    // Nothing listening at all: a port held bound but not listening, so no other process can take it meanwhile.
    let refusing = vestibule_tests::net::RefusingPort::new();
    let port = refusing.port();
    let config: OidcConfig = toml::from_str(&format!(
        "id = \"down\"\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"x\"\nclient_secret_env = \"{}\"\ntimeout_secs = 1",
        secret_var()
    ))
    .expect("config");
    let down = OidcSource::new(config).expect("constructs without the provider");
    let t = Instant::now();
    assert!(matches!(down.start(CALLBACK).await, Err(SourceError::Unavailable(_))));
    assert!(t.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn explicit_endpoints_skip_discovery() {
    let op = Hostile::start().await;
    let i = op.issuer().to_owned();
    let source = source_with(
        &op,
        &format!(
            "authorization_endpoint = \"{i}/authorize\"\ntoken_endpoint = \"{i}/token\"\njwks_uri = \"{i}/jwks\"\n\
             userinfo_endpoint = \"{i}/userinfo\""
        ),
    );
    let who = sign_in(&source, &op, Tamper::Honest).await.expect("sign-in");
    assert_eq!(who.subject.as_str(), SUB);
    assert!(matches!(
        sign_in(&source, &op, Tamper::AlgNone).await,
        Err(SourceError::Protocol(_))
    ));
    assert_eq!(op.hits()[0], 0, "no discovery request");
}

#[tokio::test]
async fn google_preset_checks_hd_and_accepts_both_issuer_spellings() {
    let op = Hostile::start().await;
    let config: GoogleConfig = toml::from_str(&format!(
        "id = \"google\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{}\"\nissuer = \"{}\"\n\
         allowed_domains = [\"Example.com\"]",
        secret_var(),
        op.issuer()
    ))
    .expect("config");
    let google = OidcSource::google(config).expect("source");
    let who = sign_in(&google, &op, Tamper::Hd("example.com"))
        .await
        .expect("workspace member");
    assert_eq!(who.source.as_str(), "google");
    assert_eq!(who.login.as_deref(), Some("eve@example.com"));
    for t in [Tamper::Hd("evil.example"), Tamper::Honest] {
        let r = sign_in(&google, &op, t).await;
        assert!(
            matches!(r, Err(SourceError::Rejected(RejectReason::NotPermitted))),
            "{t:?}: {r:?}"
        );
    }

    let config: GoogleConfig = toml::from_str(&format!(
        "id = \"google\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{}\"\nissuer = \"{}\"",
        secret_var(),
        op.issuer()
    ))
    .expect("config");
    let any = OidcSource::google(config).expect("source");
    sign_in(&any, &op, Tamper::Honest).await.expect("no domain restriction");
    sign_in(&any, &op, Tamper::BareIssuer)
        .await
        .expect("iss without scheme, as Google sometimes sends");
    assert!(sign_in(&any, &op, Tamper::WrongIss).await.is_err());
}

#[test]
fn debug_output_holds_no_secret() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let op = Hostile::start().await;
        let source = source_with(&op, "");
        let started = source.start(CALLBACK).await.expect("start");
        let debug = format!("{source:?} {:?}", started.pending);
        assert!(!debug.contains(CLIENT_SECRET));
        assert!(!debug.contains(started.pending.state.expose_secret()));
    });
}
