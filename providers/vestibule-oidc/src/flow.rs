//! The parts of the authorization-code flow that the OIDC and GitHub sources share: the authorization request
//! (fresh `state` and PKCE S256, plus a nonce for OpenID), the checks on a callback before any request to the
//! provider (cancel, pending data, `redirect_uri`, constant-time `state`), and the time bound on a whole step.

use std::future::Future;
use std::time::Duration;

use oauth2::{CsrfToken, PkceCodeChallenge};
use serde::de::DeserializeOwned;
use serde::Serialize;
use subtle::ConstantTimeEq;
use url::Url;
use vestibule_core::{CallbackParams, ExposeSecret, PendingRedirect, RedirectStart, SecretString, SourceError};

use crate::http::{protocol, unavailable};

/// Random bytes in `state` and `nonce` (256 bits; ASVS asks for at least 128).
pub(crate) const RANDOM_BYTES: u32 = 32;

/// One authorization request, before its `state` and PKCE pair are drawn.
pub(crate) struct AuthorizationRequest<'a> {
    pub endpoint: &'a Url,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// Space-separated.
    pub scope: &'a str,
    /// OpenID only: the `nonce` the ID token must carry back.
    pub nonce: Option<&'a str>,
    /// OpenID only: ask for a new login now (`prompt=login`, `max_age=0`) instead of a single sign-on answer.
    pub reauthenticate: bool,
}

impl AuthorizationRequest<'_> {
    /// Draws a fresh `state` and a PKCE S256 pair, builds the authorization URL, and serializes what `finish`
    /// needs (`pending`, given the PKCE verifier) into [`PendingRedirect::data`] beside the `state`.
    pub(crate) fn start<P: Serialize>(self, pending: impl FnOnce(String) -> P) -> Result<RedirectStart, SourceError> {
        let state = CsrfToken::new_random_len(RANDOM_BYTES);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut url = self.endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", self.client_id)
                .append_pair("redirect_uri", self.redirect_uri)
                .append_pair("scope", self.scope)
                .append_pair("state", state.secret());
            if let Some(nonce) = self.nonce {
                query.append_pair("nonce", nonce);
            }
            if self.reauthenticate {
                // OIDC Core 3.1.2.1: `max_age=0` also obliges the provider to put `auth_time` in the ID token.
                query.append_pair("prompt", "login").append_pair("max_age", "0");
            }
            query
                .append_pair("code_challenge", challenge.as_str())
                .append_pair("code_challenge_method", "S256");
        }
        let data = serde_json::to_string(&pending(verifier.secret().clone()))
            .map_err(|_| protocol("cannot serialize the pending sign-in"))?;
        Ok(RedirectStart {
            authorize_url: url.into(),
            pending: PendingRedirect {
                state: SecretString::from(state.secret().clone()),
                data: SecretString::from(data),
            },
        })
    }
}

/// What a source keeps in [`PendingRedirect::data`] between `start` and `finish`.
pub(crate) trait PendingData: DeserializeOwned {
    /// The callback URL the authorization request named.
    fn redirect_uri(&self) -> &str;
}

/// Checks shared by every redirect source before any request to the provider: a cancel is a cancel, the
/// pending data is ours (`ours` checks its version and what it is bound to: issuer, token endpoint) and for
/// this callback, and `state` matches (the broker checked it too; checking again costs nothing and keeps this
/// crate safe under a careless caller).
pub(crate) fn check_callback<P: PendingData>(
    pending: &PendingRedirect,
    callback: &str,
    params: &CallbackParams,
    ours: impl FnOnce(&P) -> Result<(), SourceError>,
) -> Result<P, SourceError> {
    if let Some(error) = &params.error {
        return Err(SourceError::Cancelled(sanitize_error_code(error)));
    }
    let data: P =
        serde_json::from_str(pending.data.expose_secret()).map_err(|_| protocol("pending sign-in data is not ours"))?;
    ours(&data)?;
    if data.redirect_uri() != callback {
        return Err(protocol("callback URL differs from the one the sign-in started with"));
    }
    check_state(pending, params)?;
    Ok(data)
}

fn check_state(pending: &PendingRedirect, params: &CallbackParams) -> Result<(), SourceError> {
    let expected = pending.state.expose_secret().as_bytes();
    match &params.state {
        Some(s) if bool::from(s.expose_secret().as_bytes().ct_eq(expected)) => Ok(()),
        _ => Err(protocol("callback state does not match")),
    }
}

/// An OAuth error code is `[\x20-\x7e]` minus `"` and `\`; anything else (or anything long) is cut so a
/// provider cannot inject text into logs or pages.
fn sanitize_error_code(code: &str) -> String {
    let clean: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
        .take(64)
        .collect();
    if clean.is_empty() {
        "unknown_error".to_owned()
    } else {
        clean
    }
}

/// Runs one `start` or `finish` within `timeout`; running out is [`SourceError::Unavailable`] saying `what`.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: &'static str,
    step: impl Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    tokio::time::timeout(timeout, step)
        .await
        .unwrap_or_else(|_| Err(unavailable(what)))
}

/// A bounded `finish`, logged under the calling module's target: a cancel at the provider at `info` (a person
/// pressing cancel is not an incident), any other refusal at `warn` with the error's `Debug` (it keeps the cause
/// of `Unavailable`; no variant holds a secret). `$provider` names the kind in the message.
macro_rules! finish_logged {
    ($source:expr, $provider:literal, $step:expr) => {{
        let source = $source;
        let result = $crate::flow::bounded(source.timeout, "sign-in finish timed out", $step).await;
        match &result {
            Err(vestibule_core::SourceError::Cancelled(code)) => {
                tracing::info!(source = %source.id, %code, "{} sign-in cancelled at the provider", $provider)
            }
            Err(e) => tracing::warn!(source = %source.id, error = ?e, "{} sign-in refused", $provider),
            Ok(_) => {}
        }
        result
    }};
}
pub(crate) use finish_logged;
