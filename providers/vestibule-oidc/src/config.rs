//! The TOML shapes of the three source kinds, and the checks that name the offending key.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;
use vestibule_core::{read_secret, ConfigIssue, SecretString, SourceId};

/// Google's issuer, in the spelling its discovery document uses.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// GitHub's authorization endpoint.
pub const GITHUB_AUTHORIZE_URL: &str = "https://github.com/login/oauth/authorize";
/// GitHub's token endpoint.
pub const GITHUB_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
/// GitHub's REST API.
pub const GITHUB_API_BASE_URL: &str = "https://api.github.com";

/// The longest `timeout_secs` accepted: a sign-in that waits longer than this on a provider is a hung page.
const MAX_TIMEOUT_SECS: u64 = 120;
/// The default `max_id_token_age_secs`: a sign-in's ID token is minted seconds before the broker reads it, so
/// ten minutes leaves room for slow providers and clocks while shutting out tokens replayed from long ago.
const DEFAULT_MAX_ID_TOKEN_AGE_SECS: u64 = 600;
/// Bounds on `max_id_token_age_secs`. Under a minute, a provider clock a little behind refuses honest
/// tokens (the same minute of skew is tolerated on `exp`); over a day, the limit no longer protects anything.
const MAX_ID_TOKEN_AGE_RANGE: std::ops::RangeInclusive<u64> = 60..=86_400;

fn default_oidc_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}
fn default_github_scopes() -> Vec<String> {
    vec!["read:user".into(), "user:email".into()]
}
fn default_login_claim() -> String {
    "preferred_username".into()
}
fn default_display_name_claim() -> String {
    "name".into()
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_max_id_token_age_secs() -> u64 {
    DEFAULT_MAX_ID_TOKEN_AGE_SECS
}
fn default_true() -> bool {
    true
}
fn default_google_issuer() -> String {
    GOOGLE_ISSUER.into()
}
fn default_github_authorize_url() -> String {
    GITHUB_AUTHORIZE_URL.into()
}
fn default_github_token_url() -> String {
    GITHUB_TOKEN_URL.into()
}
fn default_github_api_base_url() -> String {
    GITHUB_API_BASE_URL.into()
}

/// `kind = "oidc"`: any OpenID Connect provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The source id: half of every identity key and the `{source}` in `/login/{source}`.
    pub id: SourceId,
    /// The button text on the login page (default: the id).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The issuer identifier, exactly as the provider spells it. Always required: it is what every ID token's
    /// `iss` must equal. Without explicit endpoints it is also where discovery starts
    /// (`{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// Explicit endpoints instead of discovery: set `authorization_endpoint`, `token_endpoint` and `jwks_uri`
    /// together (and optionally `userinfo_endpoint`), or none of them.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// See `authorization_endpoint`.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// See `authorization_endpoint`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// See `authorization_endpoint`. Only with explicit endpoints; discovery supplies its own.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// The client id registered at the provider.
    pub client_id: String,
    /// A file holding the client secret (one of `client_secret_file` / `client_secret_env`).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// An environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Scopes to request; must contain `openid`. Default `["openid", "email", "profile"]`.
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// The claim that becomes the login name (default `preferred_username`). Never the identity key.
    #[serde(default = "default_login_claim")]
    pub login_claim: String,
    /// The claim that becomes the display name (default `name`).
    #[serde(default = "default_display_name_claim")]
    pub display_name_claim: String,
    /// The claim holding the email address (default `email`); it is verified only when `email_verified` is
    /// the JSON boolean `true`.
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// A claim holding group names (a string array or a single string); none by default.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Whether to call the userinfo endpoint (when there is one) for claims missing from the ID token.
    /// Default `true`; its `sub` must equal the ID token's.
    #[serde(default = "default_true")]
    pub userinfo: bool,
    /// ID-token signing algorithms to accept (default: the asymmetric ones the provider announces in
    /// discovery, or `["RS256"]` with explicit endpoints). `none` and the HMAC algorithms are always refused.
    #[serde(default)]
    pub signing_algs: Option<Vec<String>>,
    /// Audiences besides `client_id` that an ID token may also name (then `azp` must be `client_id`).
    /// Default: none, so a token for several audiences is refused.
    #[serde(default)]
    pub trusted_audiences: Vec<String>,
    /// The oldest ID token accepted: one whose `iat` is more than this many seconds ago is refused, whatever
    /// its `exp` says. Default 600 (10 minutes); between 60 and 86400.
    #[serde(default = "default_max_id_token_age_secs")]
    pub max_id_token_age_secs: u64,
    /// Upper bound, in seconds, on one whole `start` or `finish` (every request to the provider included).
    /// Default 10.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// `kind = "google"`: Google accounts (issuer `https://accounts.google.com`, both spellings of its `iss`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// The source id.
    pub id: SourceId,
    /// The button text (default `Google`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The OAuth client id from the Google Cloud console.
    pub client_id: String,
    /// A file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// An environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Google Workspace domains allowed to sign in, checked against the ID token's `hd` claim (never against
    /// the request or the email). Empty (the default) admits every Google account, including gmail.com.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Scopes; default `["openid", "email", "profile"]`.
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// The issuer; default `https://accounts.google.com`. Only a test stand-in has a reason to change it.
    #[serde(default = "default_google_issuer")]
    pub issuer: String,
    /// The oldest ID token accepted, in seconds since its `iat`. Default 600 (10 minutes); between 60 and 86400.
    #[serde(default = "default_max_id_token_age_secs")]
    pub max_id_token_age_secs: u64,
    /// Upper bound in seconds on one `start` or `finish`; default 10.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// `kind = "github"`: GitHub's plain OAuth2 (no ID token): the person is read from the user API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// The source id.
    pub id: SourceId,
    /// The button text (default `GitHub`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The OAuth app's client id.
    pub client_id: String,
    /// A file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// An environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Scopes; default `["read:user", "user:email"]` (`user:email` is needed to read verified addresses).
    #[serde(default = "default_github_scopes")]
    pub scopes: Vec<String>,
    /// Default `https://github.com/login/oauth/authorize` (GitHub Enterprise: your host).
    #[serde(default = "default_github_authorize_url")]
    pub authorize_url: String,
    /// Default `https://github.com/login/oauth/access_token`.
    #[serde(default = "default_github_token_url")]
    pub token_url: String,
    /// Default `https://api.github.com` (GitHub Enterprise: `https://HOST/api/v3`).
    #[serde(default = "default_github_api_base_url")]
    pub api_base_url: String,
    /// Upper bound in seconds on one `start` or `finish`; default 10.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl OidcConfig {
    /// Checks the configuration without touching the network or reading the secret.
    pub fn check(&self) -> Result<(), ConfigIssue> {
        check_url("issuer", &self.issuer)?;
        let explicit = [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("jwks_uri", &self.jwks_uri),
        ];
        let set = explicit.iter().filter(|(_, v)| v.is_some()).count();
        if set != 0 && set != explicit.len() {
            let missing = explicit
                .iter()
                .find(|(_, v)| v.is_none())
                .map_or("authorization_endpoint", |(k, _)| *k);
            return Err(ConfigIssue::new(
                missing,
                "set authorization_endpoint, token_endpoint and jwks_uri together, or none of them to use \
                 discovery",
            ));
        }
        for (key, value) in explicit {
            if let Some(v) = value {
                check_url(key, v)?;
            }
        }
        if let Some(v) = &self.userinfo_endpoint {
            if set == 0 {
                return Err(ConfigIssue::new(
                    "userinfo_endpoint",
                    "only with explicit endpoints; discovery supplies the userinfo endpoint",
                ));
            }
            check_url("userinfo_endpoint", v)?;
        }
        check_client(&self.client_id, &self.client_secret_file, &self.client_secret_env)?;
        check_oidc_scopes(&self.scopes)?;
        for (key, value) in [
            ("login_claim", &self.login_claim),
            ("display_name_claim", &self.display_name_claim),
            ("email_claim", &self.email_claim),
        ] {
            check_claim_name(key, value)?;
        }
        if let Some(g) = &self.groups_claim {
            check_claim_name("groups_claim", g)?;
        }
        if let Some(algs) = &self.signing_algs {
            if algs.is_empty() {
                return Err(ConfigIssue::new("signing_algs", "name at least one algorithm"));
            }
            for a in algs {
                if crate::jwt::parse_asymmetric_alg(a).is_none() {
                    return Err(ConfigIssue::new(
                        "signing_algs",
                        format!(
                            "`{a}` is not an accepted ID-token algorithm (RS256/384/512, PS256/384/512, \
                             ES256/384, EdDSA; never none or HMAC)"
                        ),
                    ));
                }
            }
        }
        for a in &self.trusted_audiences {
            if a.is_empty() || a == &self.client_id {
                return Err(ConfigIssue::new(
                    "trusted_audiences",
                    "list other clients' ids only (not empty, not client_id)",
                ));
            }
        }
        check_max_id_token_age(self.max_id_token_age_secs)?;
        check_timeout(self.timeout_secs)
    }
}

impl GoogleConfig {
    /// Checks the configuration without touching the network or reading the secret.
    pub fn check(&self) -> Result<(), ConfigIssue> {
        check_url("issuer", &self.issuer)?;
        check_client(&self.client_id, &self.client_secret_file, &self.client_secret_env)?;
        check_oidc_scopes(&self.scopes)?;
        for d in &self.allowed_domains {
            let ok = !d.is_empty() && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !ok {
                return Err(ConfigIssue::new(
                    "allowed_domains",
                    format!("`{d}` is not a domain name"),
                ));
            }
        }
        check_max_id_token_age(self.max_id_token_age_secs)?;
        check_timeout(self.timeout_secs)
    }
}

impl GithubConfig {
    /// Checks the configuration without touching the network or reading the secret.
    pub fn check(&self) -> Result<(), ConfigIssue> {
        check_url("authorize_url", &self.authorize_url)?;
        check_url("token_url", &self.token_url)?;
        check_url("api_base_url", &self.api_base_url)?;
        check_client(&self.client_id, &self.client_secret_file, &self.client_secret_env)?;
        check_scopes(&self.scopes)?;
        check_timeout(self.timeout_secs)
    }
}

/// Reads the client secret from whichever of `client_secret_file` / `client_secret_env` is set.
pub(crate) fn read_client_secret(file: &Option<PathBuf>, env: &Option<String>) -> Result<SecretString, ConfigIssue> {
    read_secret("client_secret", file.as_ref(), env.as_deref())
}

/// Refuses anything but `https`, except plain `http` to a loopback address (a provider started by a test or
/// a sidecar on the same host). A client secret and authorization codes travel to these URLs.
pub(crate) fn check_url(key: &str, value: &str) -> Result<Url, ConfigIssue> {
    let url = Url::parse(value).map_err(|e| ConfigIssue::new(key, format!("not an absolute URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigIssue::new(key, "credentials in the URL are not allowed"));
    }
    if url.fragment().is_some() {
        return Err(ConfigIssue::new(key, "a fragment is not allowed"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ConfigIssue::new(
            key,
            "must be https (plain http only to a loopback address)",
        )),
        _ => Err(ConfigIssue::new(key, "must be an https URL")),
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The client every kind registers at its provider: `client_id`, and exactly one of `client_secret_file` and
/// `client_secret_env`.
fn check_client(client_id: &str, file: &Option<PathBuf>, env: &Option<String>) -> Result<(), ConfigIssue> {
    if client_id.is_empty() || client_id.chars().any(char::is_control) {
        return Err(ConfigIssue::new(
            "client_id",
            "must be non-empty, without control characters",
        ));
    }
    match (file, env) {
        (Some(_), Some(_)) => Err(ConfigIssue::new(
            "client_secret_file",
            "set only one of `client_secret_file` and `client_secret_env`",
        )),
        (None, None) => Err(ConfigIssue::new(
            "client_secret_file",
            "missing secret: set `client_secret_file` or `client_secret_env`",
        )),
        _ => Ok(()),
    }
}

fn check_scope(s: &str) -> Result<(), ConfigIssue> {
    // RFC 6749 scope-token: printable ASCII except space, `"` and `\`.
    let ok = !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(ConfigIssue::new("scopes", format!("`{s}` is not a valid scope")))
    }
}

fn check_scopes(scopes: &[String]) -> Result<(), ConfigIssue> {
    scopes.iter().try_for_each(|s| check_scope(s))
}

fn check_oidc_scopes(scopes: &[String]) -> Result<(), ConfigIssue> {
    check_scopes(scopes)?;
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ConfigIssue::new(
            "scopes",
            "must contain `openid` (without it there is no ID token to verify)",
        ));
    }
    Ok(())
}

fn check_claim_name(key: &str, value: &str) -> Result<(), ConfigIssue> {
    if value.is_empty() {
        return Err(ConfigIssue::new(key, "must name a claim"));
    }
    if value == "sub" && key != "login_claim" && key != "display_name_claim" {
        return Err(ConfigIssue::new(key, "`sub` cannot be used here"));
    }
    Ok(())
}

fn check_timeout(secs: u64) -> Result<(), ConfigIssue> {
    if secs == 0 || secs > MAX_TIMEOUT_SECS {
        return Err(ConfigIssue::new(
            "timeout_secs",
            format!("must be between 1 and {MAX_TIMEOUT_SECS}"),
        ));
    }
    Ok(())
}

fn check_max_id_token_age(secs: u64) -> Result<(), ConfigIssue> {
    if !MAX_ID_TOKEN_AGE_RANGE.contains(&secs) {
        return Err(ConfigIssue::new(
            "max_id_token_age_secs",
            format!(
                "must be between {} and {}",
                MAX_ID_TOKEN_AGE_RANGE.start(),
                MAX_ID_TOKEN_AGE_RANGE.end()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(extra: &str) -> Result<OidcConfig, toml::de::Error> {
        toml::from_str(&format!(
            "id = \"corp\"\nissuer = \"https://id.example.com\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\n{extra}"
        ))
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = oidc("").expect("parse");
        assert_eq!(c.scopes, ["openid", "email", "profile"]);
        assert_eq!(c.login_claim, "preferred_username");
        assert_eq!(c.display_name_claim, "name");
        assert_eq!(c.timeout_secs, 10);
        assert_eq!(c.max_id_token_age_secs, 600);
        assert!(c.userinfo);
        c.check().expect("valid");
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(oidc("colour = \"red\"").is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let mut c = oidc("").expect("parse");
        c.issuer = "http://id.example.com".into();
        assert_eq!(c.check().expect_err("http").key, "issuer");
        for ok in ["http://127.0.0.1:8080", "http://[::1]:1", "http://localhost:9"] {
            c.issuer = ok.into();
            c.check().expect(ok);
        }
        c.issuer = "http://127.0.0.1.evil.example".into();
        assert!(c.check().is_err());
    }

    #[test]
    fn explicit_endpoints_go_together() {
        let c = oidc("token_endpoint = \"https://id.example.com/t\"").expect("parse");
        let e = c.check().expect_err("partial");
        assert_eq!(e.key, "authorization_endpoint");
        let c = oidc(
            "authorization_endpoint = \"https://a.example/a\"\ntoken_endpoint = \"http://t.example/t\"\n\
             jwks_uri = \"https://a.example/k\"",
        )
        .expect("parse");
        assert_eq!(c.check().expect_err("http").key, "token_endpoint");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = oidc("scopes = [\"email\"]")
            .expect("parse")
            .check()
            .expect_err("openid");
        assert_eq!(e.key, "scopes");
        let e = oidc("signing_algs = [\"HS256\"]")
            .expect("parse")
            .check()
            .expect_err("hs");
        assert_eq!(e.key, "signing_algs");
        let e = oidc("signing_algs = [\"none\"]")
            .expect("parse")
            .check()
            .expect_err("none");
        assert_eq!(e.key, "signing_algs");
        let e = oidc("timeout_secs = 0").expect("parse").check().expect_err("t");
        assert_eq!(e.key, "timeout_secs");
        for bad in ["0", "59", "86401"] {
            let e = oidc(&format!("max_id_token_age_secs = {bad}"))
                .expect("parse")
                .check()
                .expect_err(bad);
            assert_eq!(e.key, "max_id_token_age_secs");
        }
        for ok in ["60", "86400"] {
            oidc(&format!("max_id_token_age_secs = {ok}"))
                .expect("parse")
                .check()
                .expect(ok);
        }
        assert!(oidc("max_id_token_age_secs = -1").is_err());
        let e = oidc("client_secret_file = \"/x\"")
            .expect("parse")
            .check()
            .expect_err("2");
        assert_eq!(e.key, "client_secret_file");
    }

    #[test]
    fn google_and_github_defaults() {
        let g: GoogleConfig =
            toml::from_str("id = \"google\"\nclient_id = \"x\"\nclient_secret_env = \"G\"").expect("g");
        assert_eq!(g.issuer, GOOGLE_ISSUER);
        assert_eq!(g.max_id_token_age_secs, 600);
        g.check().expect("valid");
        let g: GoogleConfig =
            toml::from_str("id = \"google\"\nclient_id = \"x\"\nclient_secret_env = \"G\"\nmax_id_token_age_secs = 30")
                .expect("g");
        assert_eq!(g.check().expect_err("too small").key, "max_id_token_age_secs");
        let h: GithubConfig =
            toml::from_str("id = \"github\"\nclient_id = \"x\"\nclient_secret_env = \"G\"").expect("h");
        assert_eq!(h.api_base_url, GITHUB_API_BASE_URL);
        assert_eq!(h.scopes, ["read:user", "user:email"]);
        h.check().expect("valid");
        let bad: GithubConfig = toml::from_str(
            "id = \"github\"\nclient_id = \"x\"\nclient_secret_env = \"G\"\ntoken_url = \"http://gh.example/t\"",
        )
        .expect("h");
        assert_eq!(bad.check().expect_err("http").key, "token_url");
    }
}
