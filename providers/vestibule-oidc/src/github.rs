//! GitHub: plain OAuth2 (no ID token), so the person is whoever the user API says the access token belongs to.
//! Subject is GitHub's numeric user id (logins can be renamed and then claimed by someone else); the email is
//! taken only from `/user/emails`, and only when GitHub marks it primary and verified.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use openidconnect::reqwest;
use openidconnect::reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use vestibule_core::{
    AuthSource, CallbackParams, ConfigIssue, ExposeSecret, ExternalIdentity, Flow, PendingRedirect, RedirectFlow,
    RedirectStart, SecretString, SourceError, SourceId, Subject,
};

use crate::config::{check_url, read_client_secret, GithubConfig};
use crate::flow::{self, finish_logged, AuthorizationRequest, PendingData};
use crate::http::{self, protocol};
use crate::token::Exchange;

/// What `finish` needs from `start`.
#[derive(Serialize, Deserialize)]
struct Pending {
    v: u8,
    /// The token endpoint the flow was started against: a reconfigured source must not finish an old flow.
    token_url: String,
    redirect_uri: String,
    pkce_verifier: String,
}

impl PendingData for Pending {
    fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }
}

/// A sign-in source for GitHub or GitHub Enterprise (`kind = "github"`).
pub struct GithubSource {
    id: SourceId,
    display_name: String,
    client_id: String,
    client_secret: SecretString,
    scopes: String,
    authorize_url: Url,
    token_url: Url,
    api_base: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl fmt::Debug for GithubSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubSource")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// `/user`, the fields used.
#[derive(Deserialize)]
struct GithubUser {
    /// A JSON integer; a string here would be a different API and is refused by the type.
    id: u64,
    login: Option<String>,
    name: Option<String>,
}

/// One entry of `/user/emails`.
#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: Value,
    #[serde(default)]
    verified: Value,
}

impl GithubSource {
    /// Builds the source: checks the configuration and reads the client secret, without any network call.
    pub fn new(config: GithubConfig) -> Result<Self, ConfigIssue> {
        config.check()?;
        let secret = read_client_secret(&config.client_secret_file, &config.client_secret_env)?;
        let timeout = Duration::from_secs(config.timeout_secs);
        Ok(GithubSource {
            display_name: config.display_name.clone().unwrap_or_else(|| "GitHub".to_owned()),
            id: config.id,
            client_id: config.client_id,
            client_secret: secret,
            scopes: config.scopes.join(" "),
            authorize_url: check_url("authorize_url", &config.authorize_url)?,
            token_url: check_url("token_url", &config.token_url)?,
            api_base: check_url("api_base_url", &config.api_base_url)?
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            timeout,
            http: http::client(timeout)?,
        })
    }

    fn api(&self, path: &str) -> Result<Url, SourceError> {
        Url::parse(&format!("{}{path}", self.api_base)).map_err(|_| protocol("bad API URL"))
    }

    fn api_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static("2022-11-28"),
        );
        h
    }

    async fn finish_inner(
        &self,
        pending: PendingRedirect,
        callback: &str,
        params: &CallbackParams,
    ) -> Result<ExternalIdentity, SourceError> {
        let data = flow::check_callback(&pending, callback, params, |data: &Pending| {
            if data.v != 1 || data.token_url != self.token_url.as_str() {
                return Err(protocol("pending sign-in was started for another configuration"));
            }
            Ok(())
        })?;
        let code = params
            .code
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .ok_or_else(|| protocol("callback has no code"))?;
        let tokens = Exchange {
            http: &self.http,
            token_url: &self.token_url,
            client_id: &self.client_id,
            client_secret: &self.client_secret,
            // GitHub documents client_id/client_secret as form parameters.
            secret_in_body: true,
            redirect_uri: &data.redirect_uri,
            code,
            pkce_verifier: &data.pkce_verifier,
        }
        .run()
        .await?;
        let token = tokens.access_token.expose_secret();
        let user = http::get_json_object(
            &self.http,
            "github user",
            &self.api("/user")?,
            Some(token),
            Self::api_headers(),
        )
        .await?;
        let user: GithubUser =
            serde_json::from_value(Value::Object(user)).map_err(|_| protocol("github user: no numeric id"))?;
        let mut who = ExternalIdentity::new(self.id.clone(), Subject::new(user.id.to_string())?);
        who.login = user.login.filter(|l| !l.is_empty());
        who.display_name = user.name.filter(|n| !n.is_empty()).or_else(|| who.login.clone());
        if let Some(email) = self.primary_verified_email(token).await? {
            who = who.with_email(email, true);
        }
        Ok(who)
    }

    /// The primary address when GitHub has verified it; `None` when there is none or the token may not read
    /// addresses (no `user:email` scope). The public `email` of `/user` is never used: it is unverified text.
    async fn primary_verified_email(&self, token: &str) -> Result<Option<String>, SourceError> {
        let url = self.api("/user/emails")?;
        let fetched = match http::get(
            &self.http,
            "github emails",
            &url,
            "application/json",
            Some(token),
            Self::api_headers(),
        )
        .await
        {
            Ok(f) => f,
            // 403/404 without the scope: sign in without an address rather than fail.
            Err(SourceError::Protocol(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        primary_verified(&fetched.body)
    }
}

/// The primary, verified address in GitHub's `/user/emails` answer. Parsed strictly: `{"verified": false,
/// "verified": true}` must not read as verified to one parser and not to another.
fn primary_verified(body: &[u8]) -> Result<Option<String>, SourceError> {
    let unexpected = |_| protocol("github emails: unexpected response");
    let emails: Vec<GithubEmail> = serde_json::from_value(crate::json::parse_value(body).map_err(unexpected)?)
        .map_err(|_| protocol("github emails: unexpected response"))?;
    Ok(emails
        .into_iter()
        .find(|e| e.primary == Value::Bool(true) && e.verified == Value::Bool(true))
        .map(|e| e.email))
}

impl AuthSource for GithubSource {
    fn id(&self) -> &SourceId {
        &self.id
    }
    fn display_name(&self) -> &str {
        &self.display_name
    }
    fn flow(&self) -> Flow<'_> {
        Flow::Redirect(self)
    }
}

#[async_trait]
impl RedirectFlow for GithubSource {
    async fn start(&self, callback: &str) -> Result<RedirectStart, SourceError> {
        AuthorizationRequest {
            endpoint: &self.authorize_url,
            client_id: &self.client_id,
            redirect_uri: callback,
            scope: &self.scopes,
            nonce: None,
            // GitHub has no way to ask for a new login; the broker takes its answer as proven now.
            reauthenticate: false,
        }
        .start(|pkce_verifier| Pending {
            v: 1,
            token_url: self.token_url.to_string(),
            redirect_uri: callback.to_owned(),
            pkce_verifier,
        })
    }

    async fn finish(
        &self,
        pending: PendingRedirect,
        callback: &str,
        params: &CallbackParams,
    ) -> Result<ExternalIdentity, SourceError> {
        finish_logged!(self, "GitHub", self.finish_inner(pending, callback, params))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_a_primary_verified_address_counts_and_duplicates_are_refused() {
        let ok = br#"[{"email":"a@example.com","primary":false,"verified":true},
                      {"email":"b@example.com","primary":true,"verified":true}]"#;
        assert_eq!(primary_verified(ok).unwrap().as_deref(), Some("b@example.com"));
        let unverified = br#"[{"email":"b@example.com","primary":true,"verified":false}]"#;
        assert_eq!(primary_verified(unverified).unwrap(), None);
        // A generic reader (serde_json's `Value`) keeps the last "verified" (true) and would vouch for this address;
        // it is refused here however the answer is read afterwards.
        let twice = br#"[{"email":"victim@example.com","primary":true,"verified":false,"verified":true}]"#;
        let lenient: Value = serde_json::from_slice(twice).unwrap();
        assert_eq!(
            lenient[0]["verified"],
            Value::Bool(true),
            "a lenient reader takes the last one"
        );
        assert!(matches!(primary_verified(twice), Err(SourceError::Protocol(_))));
    }
}
