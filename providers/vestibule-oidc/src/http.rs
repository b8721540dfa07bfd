//! The one outbound HTTP client (openidconnect's re-exported reqwest, rustls) and how its failures map onto
//! [`SourceError`]: the network or a 5xx is "provider unavailable", anything else the provider says is a protocol
//! violation. No message carries a token, a code or the client secret.

use std::fmt;
use std::time::Duration;

use openidconnect::reqwest;
use openidconnect::reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use url::Url;
use vestibule_core::{ConfigIssue, SourceError};

/// Largest response body read from a provider; discovery documents and JWKS are a few kilobytes.
const MAX_BODY: usize = 1024 * 1024;

/// The cause inside [`SourceError::Unavailable`]: a short description for the log.
#[derive(Debug)]
pub(crate) struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

pub(crate) fn unavailable(what: impl Into<String>) -> SourceError {
    SourceError::Unavailable(Box::new(Failure(what.into())))
}

pub(crate) fn protocol(what: impl Into<String>) -> SourceError {
    SourceError::Protocol(what.into())
}

/// A client that never follows redirects (ASVS 15.3.2: a provider endpoint redirecting elsewhere would carry a
/// code or a bearer token along) and gives up on a connection or a response after `timeout`.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, ConfigIssue> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("vestibule/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigIssue::new("timeout_secs", format!("cannot build the HTTP client: {e}")))
}

/// Describes a send failure without the URL's query (none of ours carry secrets, but stay safe).
pub(crate) fn send_failure(what: &str, e: &reqwest::Error) -> SourceError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    unavailable(format!("{what}: {kind}"))
}

/// What came back from a GET.
pub(crate) struct Fetched {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// GETs `url`, optionally with a bearer token, and returns the body of a 2xx answer.
pub(crate) async fn get(
    http: &reqwest::Client,
    what: &str,
    url: &Url,
    accept: &str,
    bearer: Option<&str>,
    extra_headers: HeaderMap,
) -> Result<Fetched, SourceError> {
    let mut req = http.get(url.clone()).header(ACCEPT, accept).headers(extra_headers);
    if let Some(token) = bearer {
        // In the header, never in the query (OAuth 2 bearer usage; the conformance suite checks it).
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| protocol(format!("{what}: access token is not a valid header value")))?;
        value.set_sensitive(true);
        req = req.header(AUTHORIZATION, value);
    }
    let mut resp = req.send().await.map_err(|e| send_failure(what, &e))?;
    let status = resp.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(unavailable(format!("{what}: provider answered {status}")));
    }
    if !status.is_success() {
        return Err(protocol(format!("{what}: provider answered {status}")));
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| send_failure(what, &e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(protocol(format!("{what}: response too large")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { content_type, body })
}

/// GETs a JSON object.
pub(crate) async fn get_json_object(
    http: &reqwest::Client,
    what: &str,
    url: &Url,
    bearer: Option<&str>,
    extra_headers: HeaderMap,
) -> Result<serde_json::Map<String, Value>, SourceError> {
    let fetched = get(http, what, url, "application/json", bearer, extra_headers).await?;
    parse_object(what, &fetched.body)
}

/// Parses a JSON object strictly: a member named twice anywhere (which parsers resolve differently, first or last
/// wins) is refused like malformed JSON, so no two readers of one answer can disagree on what it says.
pub(crate) fn parse_object(what: &str, body: &[u8]) -> Result<serde_json::Map<String, Value>, SourceError> {
    match crate::json::parse_object(body) {
        Ok(map) => Ok(map),
        Err(crate::json::JsonError::NotAnObject) => Err(protocol(format!("{what}: response is not a JSON object"))),
        Err(crate::json::JsonError::DuplicateName) => Err(protocol(format!("{what}: a member is named twice"))),
        Err(_) => Err(protocol(format!("{what}: response is not JSON"))),
    }
}

#[cfg(test)]
mod strict_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn provider_objects_naming_a_member_twice_are_refused() {
        assert!(parse_object("userinfo", br#"{"sub":"1","email":"a@example.com"}"#).is_ok());
        for body in [
            &br#"{"sub":"1","sub":"2"}"#[..],
            br#"{"sub":"1","address":{"country":"x","country":"y"}}"#,
        ] {
            assert!(matches!(parse_object("userinfo", body), Err(SourceError::Protocol(_))));
        }
        assert!(matches!(
            parse_object("userinfo", b"[1]"),
            Err(SourceError::Protocol(_))
        ));
    }
}
