use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::{ExternalIdentity, SourceError, SourceId, Subject};

/// A way of signing in. Object-safe: sources are built at run time and held as `Arc<dyn AuthSource>`.
pub trait AuthSource: Send + Sync {
    /// The id from configuration; half of every identity key and the `{source}` in `/login/{source}`.
    fn id(&self) -> &SourceId;
    /// The name on the login page ("Company directory", "Google").
    fn display_name(&self) -> &str;
    /// Which of the two flows this source runs.
    fn flow(&self) -> Flow<'_>;
    /// Whether the source can be asked again about an identity it proved earlier, without a credential. Long
    /// sessions and remember-me restores use it so that a person disabled at the source (or removed from a required
    /// group) stops coming back. `None` (the default): the source cannot be asked; the broker caps what it can.
    fn recheck(&self) -> Option<&dyn Recheck> {
        None
    }
    /// Whether the source can be asked if it answers at all, for a readiness check (`/readyz`): an LDAP service
    /// bind, an identity provider's discovery document. `None` (the default): nothing to ask (the source lives in
    /// the store, or has no endpoint that answers without a person); readiness then counts it as ready.
    fn probe(&self) -> Option<&dyn Probe> {
        None
    }
}

/// Asks a source whether it answers, without a person's credential.
#[async_trait]
pub trait Probe: Send + Sync {
    /// `Ok(())` when the source answered as it should; an error saying what failed otherwise (for the log: it may
    /// name internal hosts, so readiness answers over HTTP only say which source is down). Implementations bound
    /// their own time (their configured timeouts); the broker adds an overall deadline.
    async fn probe(&self) -> Result<(), SourceError>;
}

/// Asks a source again about an identity it proved earlier (an LDAP search by the stored subject, no password).
#[async_trait]
pub trait Recheck: Send + Sync {
    /// How long an answer stays good: the broker asks again once a session or a remember-me restore is older.
    fn recheck_interval(&self) -> std::time::Duration;
    /// `Ok(Some(identity))` with today's attributes (groups, email, names) when the subject still exists and is
    /// still admitted by the source's rules; `Ok(None)` when it is gone, disabled or no longer admitted (the broker
    /// ends its sessions); `Err(_)` when the source could not answer (the broker keeps the session and asks later,
    /// so an outage does not sign everyone out).
    async fn recheck(&self, subject: &Subject) -> Result<Option<ExternalIdentity>, SourceError>;
}

/// The two shapes of sign-in, as in Dex's password/redirect connector split.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Flow<'a> {
    /// A login name and password checked by the source (local database, LDAP).
    Password(&'a dyn PasswordFlow),
    /// A round trip through an identity provider (OpenID Connect, OAuth2).
    Redirect(&'a dyn RedirectFlow),
}

impl fmt::Debug for Flow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flow::Password(_) => "Flow::Password",
            Flow::Redirect(_) => "Flow::Redirect",
        })
    }
}

/// Checks a login name and password.
#[async_trait]
pub trait PasswordFlow: Send + Sync {
    /// Proves an identity or says why not. Implementations must refuse empty passwords themselves, spend similar
    /// effort on unknown and known login names, and never put the password in an error.
    async fn authenticate(&self, login: &str, password: &SecretString) -> Result<ExternalIdentity, SourceError>;
}

/// Sends the browser to an identity provider and verifies what comes back.
#[async_trait]
pub trait RedirectFlow: Send + Sync {
    /// Builds the authorization URL for one sign-in. `callback` is the absolute URL the provider must return to,
    /// built by the broker from its configured public URL (never from request headers).
    async fn start(&self, callback: &str) -> Result<RedirectStart, SourceError>;
    /// As [`RedirectFlow::start`], asked for with `options`. The broker calls this one; a source that cannot honour
    /// an option may ignore it (the default does), since the broker checks what it relies on in the answer: after
    /// [`StartOptions::reauthenticate`] it takes the identity's `auth_time`, not the callback's time, as when the
    /// person proved who they are, and a step-up needs an `auth_time` from after the start.
    async fn start_with(&self, callback: &str, options: &StartOptions) -> Result<RedirectStart, SourceError> {
        let _ = options;
        self.start(callback).await
    }
    /// Verifies the provider's answer. The broker has already matched `params.state` against `pending.state` in
    /// constant time, checked that the same browser started the flow, and deleted `pending` so it is single use.
    async fn finish(
        &self,
        pending: PendingRedirect,
        callback: &str,
        params: &CallbackParams,
    ) -> Result<ExternalIdentity, SourceError>;
}

/// How a redirect sign-in is asked for. `#[non_exhaustive]`: build it with [`StartOptions::default`] and the
/// methods below, so options added later do not break a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartOptions {
    /// Ask the provider to authenticate the person again now, whatever single sign-on session it holds (OpenID
    /// Connect `prompt=login` with `max_age=0`, which also obliges it to report `auth_time`). Asked when a signed-in
    /// person must prove themselves afresh: signing in again for a sensitive action, or a step-up.
    pub reauthenticate: bool,
}

impl StartOptions {
    /// Options asking for a fresh authentication at the provider (see [`StartOptions::reauthenticate`]).
    pub fn reauthenticate() -> Self {
        StartOptions { reauthenticate: true }
    }
}

/// The start of a redirect sign-in: where to send the browser, and what to keep until it comes back. `Debug`
/// shows the authorization URL without its query (which carries this sign-in's `state`).
pub struct RedirectStart {
    /// The provider's authorization URL with `state`, `nonce` and the PKCE challenge in it.
    pub authorize_url: String,
    /// Kept server-side by the broker until the callback.
    pub pending: PendingRedirect,
}

impl std::fmt::Debug for RedirectStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = match self.authorize_url.split_once('?') {
            Some((base, _)) => format!("{base}?…"),
            None => self.authorize_url.clone(),
        };
        f.debug_struct("RedirectStart")
            .field("authorize_url", &shown)
            .field("pending", &self.pending)
            .finish()
    }
}

/// Per-transaction secrets of a redirect sign-in (`state`, and inside `data` the nonce and PKCE verifier). The
/// broker stores it server-side, bound to the browser, for a few minutes, and hands it back once.
#[derive(Clone)]
pub struct PendingRedirect {
    /// The `state` sent to the provider; the broker looks the flow up by its hash.
    pub state: SecretString,
    /// Whatever else the source needs at the callback, serialized by the source itself.
    pub data: SecretString,
}

impl fmt::Debug for PendingRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingRedirect { .. }")
    }
}

/// The query parameters of a callback. `state` and the code are secrets of the flow (the code is exchanged for
/// tokens), so `Debug` does not print them.
#[derive(Debug, Clone, Default)]
pub struct CallbackParams {
    /// `state` as returned by the provider.
    pub state: Option<SecretString>,
    /// The authorization code.
    pub code: Option<SecretString>,
    /// An error code such as `access_denied` when the person cancelled.
    pub error: Option<String>,
    /// RFC 9207 `iss`, when the provider sends it (mix-up defence).
    pub iss: Option<String>,
    /// Every other parameter, for provider-specific checks.
    pub extra: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_params_debug_hides_state_and_code() {
        let params = CallbackParams {
            state: Some("state-8d1f0c".into()),
            code: Some("code-5be93a".into()),
            error: Some("access_denied".into()),
            ..CallbackParams::default()
        };
        let shown = format!("{params:?}");
        assert!(!shown.contains("state-8d1f0c"), "{shown}");
        assert!(!shown.contains("code-5be93a"), "{shown}");
        assert!(shown.contains("access_denied"), "{shown}");
    }

    #[test]
    fn redirect_start_debug_hides_the_query() {
        let start = RedirectStart {
            authorize_url: "https://idp.example.com/authorize?state=st-41c9&nonce=no-77a2&code_challenge=cc".into(),
            pending: PendingRedirect {
                state: "st-41c9".into(),
                data: "{\"nonce\":\"no-77a2\"}".into(),
            },
        };
        let shown = format!("{start:?}");
        assert!(shown.contains("https://idp.example.com/authorize?…"), "{shown}");
        for secret in ["st-41c9", "no-77a2", "code_challenge"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
