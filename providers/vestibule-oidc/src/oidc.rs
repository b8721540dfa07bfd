//! The OpenID Connect source: discovery (lazy, cached), authorization request with state + nonce + PKCE S256,
//! code exchange, ID-token verification against a cached JWKS, userinfo, and claim mapping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::reqwest;
use openidconnect::reqwest::header::HeaderMap;
use openidconnect::Nonce;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use url::Url;
use vestibule_core::{
    AuthSource, CallbackParams, Clock, ConfigIssue, ExposeSecret, ExternalIdentity, Flow, PendingRedirect, Probe,
    RedirectFlow, RedirectStart, RejectReason, SecretString, SourceError, SourceId, StartOptions, Subject, SystemClock,
};

use crate::config::{check_url, read_client_secret, GoogleConfig, OidcConfig};
use crate::flow::{self, finish_logged, AuthorizationRequest, PendingData, RANDOM_BYTES};
use crate::http::{self, protocol};
use crate::jwt::{self, Expected, JwtError, UnverifiedToken};
use crate::token::Exchange;

/// How long discovery results are kept. Providers change endpoints rarely; a restart is not needed to pick up
/// a change, only this long.
const DISCOVERY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a JWKS is kept before a routine refetch, so a key the provider withdrew stops verifying within an
/// hour even if no unknown `kid` ever forces a refetch.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// At most one JWKS refetch forced by an unknown `kid` per this interval and source, so a flood of tokens with
/// made-up `kid`s cannot turn the broker into a traffic amplifier against the provider.
pub(crate) const JWKS_REFETCH_FLOOR: Duration = Duration::from_secs(10);

/// Where a provider's endpoints are, and what it announced.
#[derive(Debug)]
struct Endpoints {
    authorization: Url,
    token: Url,
    jwks: Url,
    userinfo: Option<Url>,
    algs: Vec<CoreJwsSigningAlgorithm>,
    /// RFC 9207: the provider promised an `iss` parameter on every authorization response.
    iss_param_required: bool,
    /// `client_secret_post` only (no `client_secret_basic` announced).
    secret_in_body: bool,
}

/// The subset of the discovery document this source reads.
#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: Option<String>,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// What `finish` needs from `start`, serialized into [`PendingRedirect::data`].
#[derive(Serialize, Deserialize)]
struct Pending {
    /// Format version, so a broker upgrade mid-flight fails cleanly instead of misreading.
    v: u8,
    /// The issuer the authorization request went to (mix-up defence: the answer must come from it).
    issuer: String,
    redirect_uri: String,
    nonce: String,
    pkce_verifier: String,
    /// A new login was asked for (`max_age=0`): the ID token must then say when it happened (`auth_time`).
    #[serde(default)]
    reauthenticate: bool,
}

impl PendingData for Pending {
    fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }
}

/// Which claims fill which identity fields.
#[derive(Debug, Clone)]
struct ClaimMapping {
    login: String,
    display_name: String,
    email: String,
    groups: Option<String>,
}

/// A sign-in source for one OpenID provider (`kind = "oidc"` or `kind = "google"`).
pub struct OidcSource {
    id: SourceId,
    display_name: String,
    issuer: String,
    /// `iss` spellings accepted in ID tokens and the RFC 9207 parameter.
    accepted_issuers: Vec<String>,
    explicit: Option<Arc<Endpoints>>,
    client_id: String,
    client_secret: SecretString,
    scopes: String,
    claims: ClaimMapping,
    use_userinfo: bool,
    signing_algs: Option<Vec<CoreJwsSigningAlgorithm>>,
    trusted_audiences: Vec<String>,
    /// Google `hd` restriction; empty admits everyone.
    allowed_domains: Vec<String>,
    /// `max_id_token_age_secs`: the oldest `iat` accepted.
    max_id_token_age_secs: i64,
    timeout: Duration,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    discovery: moka::sync::Cache<(), Arc<Endpoints>>,
    discovery_lock: tokio::sync::Mutex<()>,
    jwks: moka::sync::Cache<String, Arc<CoreJsonWebKeySet>>,
    jwks_lock: tokio::sync::Mutex<()>,
    last_forced_jwks: Mutex<Option<Instant>>,
}

impl fmt::Debug for OidcSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSource")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl OidcSource {
    /// Builds a source from `kind = "oidc"` configuration: checks it and reads the client secret. Touches no
    /// network: discovery runs on the first sign-in, so a provider that is down at startup stops nothing.
    pub fn new(config: OidcConfig) -> Result<Self, ConfigIssue> {
        config.check()?;
        let secret = read_client_secret(&config.client_secret_file, &config.client_secret_env)?;
        let signing_algs = config.signing_algs.as_ref().map(|names| {
            names
                .iter()
                .filter_map(|n| jwt::parse_asymmetric_alg(n))
                .collect::<Vec<_>>()
        });
        let explicit = match (&config.authorization_endpoint, &config.token_endpoint, &config.jwks_uri) {
            (Some(a), Some(t), Some(j)) => Some(Arc::new(Endpoints {
                authorization: check_url("authorization_endpoint", a)?,
                token: check_url("token_endpoint", t)?,
                jwks: check_url("jwks_uri", j)?,
                userinfo: config
                    .userinfo_endpoint
                    .as_deref()
                    .map(|u| check_url("userinfo_endpoint", u))
                    .transpose()?,
                algs: signing_algs
                    .clone()
                    .unwrap_or_else(|| vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]),
                iss_param_required: false,
                secret_in_body: false,
            })),
            _ => None,
        };
        let display_name = config.display_name.clone().unwrap_or_else(|| config.id.to_string());
        Self::build(Parts {
            id: config.id,
            display_name,
            accepted_issuers: vec![config.issuer.clone()],
            issuer: config.issuer,
            explicit,
            client_id: config.client_id,
            client_secret: secret,
            scopes: config.scopes,
            claims: ClaimMapping {
                login: config.login_claim,
                display_name: config.display_name_claim,
                email: config.email_claim,
                groups: config.groups_claim,
            },
            use_userinfo: config.userinfo,
            signing_algs,
            trusted_audiences: config.trusted_audiences,
            allowed_domains: Vec::new(),
            max_id_token_age_secs: config.max_id_token_age_secs,
            timeout_secs: config.timeout_secs,
        })
    }

    /// Builds a Google source (`kind = "google"`): discovery at `https://accounts.google.com`, both `iss`
    /// spellings Google uses, and the `hd` (Workspace domain) restriction when `allowed_domains` is set.
    pub fn google(config: GoogleConfig) -> Result<Self, ConfigIssue> {
        config.check()?;
        let secret = read_client_secret(&config.client_secret_file, &config.client_secret_env)?;
        // Google documents `iss` as either `https://accounts.google.com` or `accounts.google.com`.
        let mut accepted_issuers = vec![config.issuer.clone()];
        if let Some(bare) = config
            .issuer
            .strip_prefix("https://")
            .or_else(|| config.issuer.strip_prefix("http://"))
        {
            accepted_issuers.push(bare.to_owned());
        }
        Self::build(Parts {
            id: config.id,
            display_name: config.display_name.unwrap_or_else(|| "Google".to_owned()),
            issuer: config.issuer,
            accepted_issuers,
            explicit: None,
            client_id: config.client_id,
            client_secret: secret,
            scopes: config.scopes,
            // Google sends no preferred_username; the address is the name people know their account by.
            claims: ClaimMapping {
                login: "email".into(),
                display_name: "name".into(),
                email: "email".into(),
                groups: None,
            },
            use_userinfo: true,
            signing_algs: None,
            trusted_audiences: Vec::new(),
            allowed_domains: config.allowed_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            max_id_token_age_secs: config.max_id_token_age_secs,
            timeout_secs: config.timeout_secs,
        })
    }

    fn build(p: Parts) -> Result<Self, ConfigIssue> {
        let timeout = Duration::from_secs(p.timeout_secs);
        Ok(OidcSource {
            id: p.id,
            display_name: p.display_name,
            issuer: p.issuer,
            accepted_issuers: p.accepted_issuers,
            explicit: p.explicit,
            client_id: p.client_id,
            client_secret: p.client_secret,
            scopes: p.scopes.join(" "),
            claims: p.claims,
            use_userinfo: p.use_userinfo,
            signing_algs: p.signing_algs,
            trusted_audiences: p.trusted_audiences,
            allowed_domains: p.allowed_domains,
            // `check` bounds the value far below i64::MAX; saturate rather than trust that here.
            max_id_token_age_secs: i64::try_from(p.max_id_token_age_secs).unwrap_or(i64::MAX),
            timeout,
            http: http::client(timeout)?,
            clock: Arc::new(SystemClock),
            discovery: moka::sync::Cache::builder()
                .max_capacity(1)
                .time_to_live(DISCOVERY_TTL)
                .build(),
            discovery_lock: tokio::sync::Mutex::new(()),
            jwks: moka::sync::Cache::builder()
                .max_capacity(4)
                .time_to_live(JWKS_TTL)
                .build(),
            jwks_lock: tokio::sync::Mutex::new(()),
            last_forced_jwks: Mutex::new(None),
        })
    }

    /// Replaces the clock that token times are checked against (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn endpoints(&self) -> Result<Arc<Endpoints>, SourceError> {
        if let Some(e) = &self.explicit {
            return Ok(e.clone());
        }
        if let Some(e) = self.discovery.get(&()) {
            return Ok(e);
        }
        // One discovery at a time: a burst of first sign-ins costs the provider one request, not a hundred.
        let _guard = self.discovery_lock.lock().await;
        if let Some(e) = self.discovery.get(&()) {
            return Ok(e);
        }
        let e = Arc::new(self.discover().await?);
        self.discovery.insert((), e.clone());
        Ok(e)
    }

    async fn discover(&self) -> Result<Endpoints, SourceError> {
        let url = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        ))
        .map_err(|_| protocol("issuer does not form a discovery URL"))?;
        let body = http::get_json_object(&self.http, "discovery", &url, None, HeaderMap::new()).await?;
        let doc: DiscoveryDocument = serde_json::from_value(Value::Object(body))
            .map_err(|_| protocol("discovery: document lacks required fields"))?;
        // ASVS 10.5.3 / OIDC Discovery 4.3: metadata for another issuer is an attack or a misconfiguration.
        if doc.issuer != self.issuer {
            return Err(protocol("discovery: issuer does not match the configured issuer"));
        }
        let endpoint = |key: &str, value: &str| check_url(key, value).map_err(|e| protocol(format!("discovery: {e}")));
        let token = doc
            .token_endpoint
            .as_deref()
            .ok_or_else(|| protocol("discovery: no token_endpoint"))?;
        let algs = match &self.signing_algs {
            Some(a) => a.clone(),
            None if doc.id_token_signing_alg_values_supported.is_empty() => {
                vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]
            }
            None => doc
                .id_token_signing_alg_values_supported
                .iter()
                .filter_map(|a| jwt::parse_asymmetric_alg(a))
                .collect(),
        };
        if algs.is_empty() {
            return Err(protocol(
                "discovery: the provider announces no asymmetric ID-token algorithm",
            ));
        }
        let secret_in_body = doc.token_endpoint_auth_methods_supported.as_ref().is_some_and(|m| {
            !m.iter().any(|x| x == "client_secret_basic") && m.iter().any(|x| x == "client_secret_post")
        });
        Ok(Endpoints {
            authorization: endpoint("authorization_endpoint", &doc.authorization_endpoint)?,
            token: endpoint("token_endpoint", token)?,
            jwks: endpoint("jwks_uri", &doc.jwks_uri)?,
            userinfo: doc
                .userinfo_endpoint
                .as_deref()
                .map(|u| endpoint("userinfo_endpoint", u))
                .transpose()?,
            algs,
            iss_param_required: doc.authorization_response_iss_parameter_supported,
            secret_in_body,
        })
    }

    async fn fetch_jwks(&self, url: &Url) -> Result<Arc<CoreJsonWebKeySet>, SourceError> {
        let fetched = http::get(
            &self.http,
            "jwks",
            url,
            "application/jwk-set+json, application/json",
            None,
            HeaderMap::new(),
        )
        .await?;
        // Keys this library cannot parse are skipped, not fatal (RFC 7517 5; conformance IDT-09).
        let set: CoreJsonWebKeySet =
            serde_json::from_slice(&fetched.body).map_err(|_| protocol("jwks: not a JWK set"))?;
        let set = Arc::new(set);
        self.jwks.insert(url.to_string(), set.clone());
        Ok(set)
    }

    async fn cached_jwks(&self, url: &Url) -> Result<Arc<CoreJsonWebKeySet>, SourceError> {
        if let Some(k) = self.jwks.get(url.as_str()) {
            return Ok(k);
        }
        let _guard = self.jwks_lock.lock().await;
        if let Some(k) = self.jwks.get(url.as_str()) {
            return Ok(k);
        }
        self.fetch_jwks(url).await
    }

    /// Claims the right to one forced JWKS refetch, at most once per [`JWKS_REFETCH_FLOOR`].
    fn claim_refetch(&self) -> bool {
        let mut last = self
            .last_forced_jwks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match *last {
            Some(t) if now.duration_since(t) < JWKS_REFETCH_FLOOR => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// Verifies a parsed ID token's signature, refetching the JWKS once when its `kid` is unknown (key rotation).
    async fn verify_id_token<'t>(
        &self,
        ep: &Endpoints,
        token: &'t UnverifiedToken<'_>,
    ) -> Result<&'t Map<String, Value>, SourceError> {
        let keys = self.cached_jwks(&ep.jwks).await?;
        match token.verified_claims(&keys) {
            Ok(claims) => return Ok(claims),
            Err(e @ JwtError::Invalid(_)) => return Err(refused(e)),
            Err(JwtError::UnknownKey) => {}
        }
        let fresh = {
            let _guard = self.jwks_lock.lock().await;
            match self.jwks.get(ep.jwks.as_str()) {
                // Another sign-in refetched while we waited: use its result.
                Some(current) if !Arc::ptr_eq(&current, &keys) => current,
                _ if self.claim_refetch() => {
                    tracing::info!(source = %self.id, "unknown ID-token key id; refetching the JWKS");
                    self.fetch_jwks(&ep.jwks).await?
                }
                _ => {
                    tracing::warn!(source = %self.id, "unknown ID-token key id; JWKS refetch suppressed by the floor");
                    return Err(refused(JwtError::UnknownKey));
                }
            }
        };
        token.verified_claims(&fresh).map_err(refused)
    }

    async fn start_inner(&self, callback: &str, options: &StartOptions) -> Result<RedirectStart, SourceError> {
        let ep = self.endpoints().await?;
        let nonce = Nonce::new_random_len(RANDOM_BYTES);
        AuthorizationRequest {
            endpoint: &ep.authorization,
            client_id: &self.client_id,
            redirect_uri: callback,
            scope: &self.scopes,
            nonce: Some(nonce.secret()),
            reauthenticate: options.reauthenticate,
        }
        .start(|pkce_verifier| Pending {
            v: 1,
            issuer: self.issuer.clone(),
            redirect_uri: callback.to_owned(),
            nonce: nonce.secret().clone(),
            pkce_verifier,
            reauthenticate: options.reauthenticate,
        })
    }

    async fn finish_inner(
        &self,
        pending: PendingRedirect,
        callback: &str,
        params: &CallbackParams,
    ) -> Result<ExternalIdentity, SourceError> {
        let pending = flow::check_callback(&pending, callback, params, |data: &Pending| {
            if data.v != 1 {
                return Err(protocol("pending sign-in data has an unknown version"));
            }
            if data.issuer != self.issuer {
                return Err(protocol("pending sign-in was started for another issuer"));
            }
            Ok(())
        })?;
        let ep = self.endpoints().await?;
        // RFC 9207 mix-up defence: the answer must say it comes from the issuer the request went to.
        match &params.iss {
            Some(iss) if !self.accepted_issuers.iter().any(|a| a == iss) => {
                return Err(protocol("callback iss does not match the issuer"));
            }
            None if ep.iss_param_required => {
                return Err(protocol("callback lacks the iss parameter the provider announced"));
            }
            _ => {}
        }
        let code = params
            .code
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .ok_or_else(|| protocol("callback has no code"))?;
        let tokens = Exchange {
            http: &self.http,
            token_url: &ep.token,
            client_id: &self.client_id,
            client_secret: &self.client_secret,
            secret_in_body: ep.secret_in_body,
            redirect_uri: &pending.redirect_uri,
            code,
            pkce_verifier: &pending.pkce_verifier,
        }
        .run()
        .await?;
        let id_token = tokens
            .id_token
            .as_ref()
            .ok_or_else(|| protocol("token response has no id_token"))?;
        // Parsing needs no key and no request: a malformed token (duplicate names included) ends the sign-in
        // before the JWKS or userinfo endpoint hears of it.
        let token = jwt::parse(id_token.expose_secret(), &ep.algs).map_err(refused)?;
        let claims = self.verify_id_token(&ep, &token).await?;
        let sub = jwt::check_claims(
            claims,
            &Expected {
                issuers: &self.accepted_issuers,
                client_id: &self.client_id,
                trusted_audiences: &self.trusted_audiences,
                nonce: &pending.nonce,
                now: self.clock.now().0,
                max_age_secs: self.max_id_token_age_secs,
            },
        )
        .map_err(refused)?;
        if !self.allowed_domains.is_empty() {
            // Google's `hd` from the signed ID token, never the email's domain: a gmail.com account can carry any
            // address, and only `hd` says the account belongs to the Workspace domain.
            let hd = claims.get("hd").and_then(Value::as_str).map(str::to_ascii_lowercase);
            if !hd.is_some_and(|hd| self.allowed_domains.contains(&hd)) {
                return Err(SourceError::Rejected(RejectReason::NotPermitted));
            }
        }
        let userinfo = match (&ep.userinfo, self.use_userinfo) {
            (Some(url), true) => Some(self.userinfo(url, &tokens.access_token, &sub).await?),
            _ => None,
        };
        let identity = self.identity(&sub, claims, userinfo.as_ref())?;
        if pending.reauthenticate && identity.auth_time.is_none() {
            // Asked with max_age=0, a provider must say when the person authenticated; without it nothing shows
            // that a new login happened, and the broker would take the answer as fresh.
            return Err(protocol(
                "ID token lacks auth_time after a request for a new login (max_age=0)",
            ));
        }
        Ok(identity)
    }

    async fn userinfo(
        &self,
        url: &Url,
        access_token: &SecretString,
        sub: &str,
    ) -> Result<Map<String, Value>, SourceError> {
        let fetched = http::get(
            &self.http,
            "userinfo",
            url,
            "application/json",
            Some(access_token.expose_secret()),
            HeaderMap::new(),
        )
        .await?;
        if fetched.content_type.starts_with("application/jwt") {
            return Err(protocol("userinfo: signed responses are not supported; configure JSON"));
        }
        let claims = http::parse_object("userinfo", &fetched.body)?;
        // OIDC Core 5.3.2: a userinfo answer about someone else (token substitution) must not be used.
        match claims.get("sub").and_then(Value::as_str) {
            Some(s) if bool::from(s.as_bytes().ct_eq(sub.as_bytes())) => Ok(claims),
            _ => Err(protocol("userinfo sub does not match the ID token")),
        }
    }

    fn identity(
        &self,
        sub: &str,
        id: &Map<String, Value>,
        userinfo: Option<&Map<String, Value>>,
    ) -> Result<ExternalIdentity, SourceError> {
        let from_either = |name: &str| string_claim(id, name).or_else(|| userinfo.and_then(|u| string_claim(u, name)));
        let mut who = ExternalIdentity::new(self.id.clone(), Subject::new(sub)?);
        who.login = from_either(&self.claims.login);
        who.display_name = from_either(&self.claims.display_name);
        // The address and its verified flag come as a pair from the same document, never mixed across two.
        let email_source = if string_claim(id, &self.claims.email).is_some() {
            Some(id)
        } else {
            userinfo.filter(|u| string_claim(u, &self.claims.email).is_some())
        };
        if let Some(src) = email_source {
            if let Some(email) = string_claim(src, &self.claims.email) {
                // Only the JSON boolean `true` counts: "true" as a string, absent or anything else is unverified.
                let verified = matches!(src.get("email_verified"), Some(Value::Bool(true)));
                who = who.with_email(email, verified);
            }
        }
        if let Some(g) = &self.claims.groups {
            let groups = id.get(g).or_else(|| userinfo.and_then(|u| u.get(g)));
            who.groups = match groups {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            };
        }
        // How the provider authenticated the person (RFC 8176 names), from the signed ID token only: it describes
        // this sign-in, which a userinfo document does not. Strings only; anything else is ignored.
        if let Some(Value::Array(amr)) = id.get("amr") {
            who.amr = amr
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .take(16)
                .collect();
        }
        // When the person last authenticated (OIDC Core 2: a JSON number of seconds), from the signed ID token
        // only, like `amr`. A provider may answer from an old single sign-on session; the broker uses this time,
        // not the callback's, for a trusted upstream second factor. Anything but a non-negative number is ignored.
        who.auth_time = id
            .get("auth_time")
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            })
            .filter(|t| *t >= 0)
            .map(vestibule_core::Timestamp);
        Ok(who)
    }
}

/// Constructor arguments shared by the `oidc` and `google` kinds.
struct Parts {
    id: SourceId,
    display_name: String,
    issuer: String,
    accepted_issuers: Vec<String>,
    explicit: Option<Arc<Endpoints>>,
    client_id: String,
    client_secret: SecretString,
    scopes: Vec<String>,
    claims: ClaimMapping,
    use_userinfo: bool,
    signing_algs: Option<Vec<CoreJwsSigningAlgorithm>>,
    trusted_audiences: Vec<String>,
    allowed_domains: Vec<String>,
    max_id_token_age_secs: u64,
    timeout_secs: u64,
}

/// A refused ID token as the source reports it: the fixed reason, never a claim's value.
fn refused(e: JwtError) -> SourceError {
    protocol(e.to_string())
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl AuthSource for OidcSource {
    fn id(&self) -> &SourceId {
        &self.id
    }
    fn display_name(&self) -> &str {
        &self.display_name
    }
    fn flow(&self) -> Flow<'_> {
        Flow::Redirect(self)
    }
    fn probe(&self) -> Option<&dyn Probe> {
        Some(self)
    }
}

#[async_trait]
impl Probe for OidcSource {
    /// Discovery afresh (the document must still name this issuer and its endpoints), which also renews the
    /// cached endpoints; with endpoints configured by hand, their key set (JWKS). Within the source's timeout.
    async fn probe(&self) -> Result<(), SourceError> {
        let work = async {
            match &self.explicit {
                Some(e) => {
                    http::get_json_object(&self.http, "jwks", &e.jwks, None, HeaderMap::new()).await?;
                }
                None => {
                    let fresh = Arc::new(self.discover().await?);
                    self.discovery.insert((), fresh);
                }
            }
            Ok(())
        };
        flow::bounded(self.timeout, "readiness probe timed out", work).await
    }
}

#[async_trait]
impl RedirectFlow for OidcSource {
    async fn start(&self, callback: &str) -> Result<RedirectStart, SourceError> {
        self.start_with(callback, &StartOptions::default()).await
    }

    async fn start_with(&self, callback: &str, options: &StartOptions) -> Result<RedirectStart, SourceError> {
        flow::bounded(
            self.timeout,
            "sign-in start timed out",
            self.start_inner(callback, options),
        )
        .await
    }

    async fn finish(
        &self,
        pending: PendingRedirect,
        callback: &str,
        params: &CallbackParams,
    ) -> Result<ExternalIdentity, SourceError> {
        finish_logged!(self, "OpenID Connect", self.finish_inner(pending, callback, params))
    }
}
