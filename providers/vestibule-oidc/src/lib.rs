//! OpenID Connect and OAuth2 sign-in sources for Vestibule: any OpenID provider (`kind = "oidc"`: Keycloak,
//! Entra ID, Okta, Authentik, Dex...), a Google preset (`kind = "google"`) and GitHub (`kind = "github"`).
//!
//! Each source implements [`vestibule_core::AuthSource`] with a [`vestibule_core::RedirectFlow`]: `start` returns
//! the provider's authorization URL and a [`vestibule_core::PendingRedirect`] (the `state`, and inside `data` the
//! nonce, the PKCE verifier and the issuer) that the broker keeps server-side, bound to the browser; `finish`
//! exchanges the code and proves who came back.
//!
//! # Tutorial
//!
//! ## Any OpenID provider
//!
//! Register a confidential client at the provider with the redirect URI
//! `https://YOUR-BROKER/callback/{id}` (the broker builds it from its configured public URL), then:
//!
//! ```toml
//! [[sources]]
//! id = "corp"                          # half of every identity key: never change it once people signed in
//! kind = "oidc"
//! display_name = "Corporate sign-in"
//! issuer = "https://sso.example.com/realms/main"   # exactly as the provider spells it; discovery starts here
//! client_id = "vestibule"
//! client_secret_file = "/run/secrets/corp-oidc"    # or client_secret_env = "CORP_OIDC_SECRET"
//! # Optional, with their defaults:
//! # scopes = ["openid", "email", "profile"]
//! # login_claim = "preferred_username"
//! # display_name_claim = "name"
//! # email_claim = "email"
//! # groups_claim = "groups"            # default: no groups
//! # userinfo = true                    # also read the userinfo endpoint
//! # signing_algs = ["RS256"]           # default: what the provider announces (never none or HS*)
//! # trusted_audiences = []             # other audiences an ID token may name (then azp must be client_id)
//! # max_id_token_age_secs = 600        # refuse ID tokens whose iat is older than this
//! # timeout_secs = 10                  # bound on a whole start or finish
//! ```
//!
//! A provider without discovery takes explicit endpoints instead (all three, plus an optional userinfo); the
//! `issuer` is still required because every ID token's `iss` must equal it:
//!
//! ```toml
//! [[sources]]
//! id = "legacy"
//! kind = "oidc"
//! issuer = "https://legacy.example.com"
//! authorization_endpoint = "https://legacy.example.com/oauth/authorize"
//! token_endpoint = "https://legacy.example.com/oauth/token"
//! jwks_uri = "https://legacy.example.com/oauth/jwks"
//! userinfo_endpoint = "https://legacy.example.com/oauth/userinfo"
//! client_id = "vestibule"
//! client_secret_env = "LEGACY_SECRET"
//! ```
//!
//! ## Google
//!
//! ```toml
//! [[sources]]
//! id = "google"
//! kind = "google"
//! client_id = "1234-abc.apps.googleusercontent.com"
//! client_secret_env = "GOOGLE_CLIENT_SECRET"
//! allowed_domains = ["example.com"]    # Workspace domains, checked against the ID token's `hd`; default: any
//! # max_id_token_age_secs = 600        # refuse ID tokens whose iat is older than this
//! ```
//!
//! ## GitHub
//!
//! ```toml
//! [[sources]]
//! id = "github"
//! kind = "github"
//! client_id = "Iv1.0123456789abcdef"
//! client_secret_file = "/run/secrets/github"
//! # scopes = ["read:user", "user:email"]
//! # GitHub Enterprise Server:
//! # authorize_url = "https://github.example.com/login/oauth/authorize"
//! # token_url = "https://github.example.com/login/oauth/access_token"
//! # api_base_url = "https://github.example.com/api/v3"
//! ```
//!
//! ## In code
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use vestibule_core::AuthSource;
//! use vestibule_oidc::{OidcConfig, OidcSource};
//!
//! let config: OidcConfig = toml::from_str(r#"
//!     id = "corp"
//!     issuer = "https://sso.example.com"
//!     client_id = "vestibule"
//!     client_secret_env = "CORP_OIDC_SECRET"
//! "#)?;
//! config.check()?;                                  // names the offending key
//! let source: Arc<dyn AuthSource> = Arc::new(OidcSource::new(config)?);  // no network yet
//! # Ok(()) }
//! ```
//!
//! # What is enforced
//!
//! - `state`, `nonce` and PKCE S256 on every flow (GitHub: `state` and PKCE); each 256 random bits.
//! - Discovery only from the configured issuer, whose document must name that same issuer; every endpoint
//!   `https` (plain `http` only on loopback). Discovery runs on first use and is cached; a failure is retried by
//!   the next sign-in.
//! - ID tokens: signature against the provider's JWKS only (never `jku`, `x5u`, `jwk` or `x5c` headers), with the
//!   asymmetric algorithms it announces; `none` and HMAC refused; `iss`, `aud`, `azp`, `exp`, `iat` (not in the
//!   future, and not older than `max_id_token_age_secs`, default 10 minutes), `nbf`, `nonce` and `sub` checked.
//!   A header or claims object that names a member twice, at any depth, refuses the token while it is parsed,
//!   before the JWKS or userinfo endpoint is asked anything. The JWKS is cached (moka) and refetched when an
//!   unknown `kid` appears, at most once per 10 s per source.
//! - Userinfo `sub` must equal the ID token's; `email_verified` counts only as the JSON boolean `true`.
//! - RFC 9207: an `iss` callback parameter must be the issuer, and is required when the provider announces it.
//! - The identity is `(source id, sub)` (GitHub: the numeric user id), never an email or a login name.
//! - The HTTP client follows no redirects; each `start`/`finish` is bounded by `timeout_secs`, and a provider that
//!   is down or slow yields [`vestibule_core::SourceError::Unavailable`]; an `error=` callback yields
//!   [`vestibule_core::SourceError::Cancelled`].
//! - Secrets (client secret, codes, tokens) never appear in `Debug`, logs or errors.

mod config;
mod flow;
mod github;
mod http;
mod json;
mod jwt;
mod oidc;
mod token;

pub use config::{
    GithubConfig, GoogleConfig, OidcConfig, GITHUB_API_BASE_URL, GITHUB_AUTHORIZE_URL, GITHUB_TOKEN_URL, GOOGLE_ISSUER,
};
pub use github::GithubSource;
pub use oidc::OidcSource;
