//! The authorization-code exchange, on the `oauth2` crate (the one openidconnect is built on): client
//! authentication, PKCE verifier, `redirect_uri`, and error parsing. Shared by the OIDC and GitHub sources.

use std::fmt;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, ExtraTokenFields, HttpClientError, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use openidconnect::reqwest;
use serde::{Deserialize, Serialize};
use url::Url;
use vestibule_core::{ExposeSecret, SecretString, SourceError};

use crate::http::{protocol, send_failure, unavailable};

/// The token response's extra field an OpenID provider adds. Kept as the raw compact JWT: it is verified by
/// [`crate::jwt`], not trusted because it came over TLS.
#[derive(Clone, Default, Deserialize, Serialize)]
pub(crate) struct IdTokenField {
    #[serde(default)]
    pub id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdTokenField { .. }")
    }
}

impl ExtraTokenFields for IdTokenField {}

/// The tokens out of one exchange. Not `Debug`-printable in full: both are bearer secrets.
pub(crate) struct Tokens {
    pub access_token: SecretString,
    pub id_token: Option<SecretString>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

/// One code exchange.
pub(crate) struct Exchange<'a> {
    pub http: &'a reqwest::Client,
    pub token_url: &'a Url,
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
    /// `client_secret_post` instead of HTTP Basic, for providers that only take that.
    pub secret_in_body: bool,
    pub redirect_uri: &'a str,
    pub code: &'a str,
    pub pkce_verifier: &'a str,
}

impl Exchange<'_> {
    pub(crate) async fn run(self) -> Result<Tokens, SourceError> {
        let redirect = RedirectUrl::new(self.redirect_uri.to_owned()).map_err(|_| protocol("bad redirect_uri"))?;
        let client = oauth2::Client::<
            BasicErrorResponse,
            StandardTokenResponse<IdTokenField, BasicTokenType>,
            BasicTokenIntrospectionResponse,
            StandardRevocableToken,
            BasicRevocationErrorResponse,
        >::new(ClientId::new(self.client_id.to_owned()))
        .set_client_secret(ClientSecret::new(self.client_secret.expose_secret().to_owned()))
        .set_auth_type(if self.secret_in_body {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        })
        .set_token_uri(TokenUrl::from_url(self.token_url.clone()))
        .set_redirect_uri(redirect);
        let response = client
            .exchange_code(AuthorizationCode::new(self.code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(self.pkce_verifier.to_owned()))
            .request_async(self.http)
            .await
            .map_err(classify)?;
        Ok(Tokens {
            access_token: SecretString::from(response.access_token().secret().clone()),
            id_token: response.extra_fields().id_token.clone().map(SecretString::from),
        })
    }
}

/// Turns a failed exchange into a [`SourceError`] without echoing the response body, which may hold a token.
fn classify(e: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>) -> SourceError {
    match e {
        // `invalid_grant` (a replayed or expired code) and friends: a standard code, safe to log.
        RequestTokenError::ServerResponse(r) => {
            protocol(format!("token endpoint refused the code: {}", r.error().as_ref()))
        }
        RequestTokenError::Request(HttpClientError::Reqwest(e)) => send_failure("token endpoint", &e),
        RequestTokenError::Request(_) => unavailable("token endpoint: request failed"),
        RequestTokenError::Parse(_, _) => protocol("token endpoint: unexpected response"),
        RequestTokenError::Other(_) => protocol("token endpoint: unexpected response"),
    }
}
