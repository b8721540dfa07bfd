//! The whole authorization-code flow against a real, strict OpenID provider (panva/oidc-provider, OpenID
//! Certified) started on loopback by the test itself. Needs `tests/oidc-provider/install.sh` to have run once;
//! without it the tests fail (never skip) and say so.

use std::time::{Duration, Instant};

use vestibule_core::{RedirectFlow, SourceError};
use vestibule_oidc::{OidcConfig, OidcSource};
use vestibule_tests::net::RefusingPort;
use vestibule_tests::oidc::{authorize, browser, secret_env, NodeOptions, NodeProvider, Person};

const CALLBACK: &str = "http://127.0.0.1:9/callback/corp";

fn source(issuer: &str, secret_var: &str, extra: &str) -> OidcSource {
    let config: OidcConfig = toml::from_str(&format!(
        "id = \"corp\"\nissuer = \"{issuer}\"\nclient_id = \"vestibule\"\nclient_secret_env = \"{secret_var}\"\n{extra}"
    ))
    .expect("config");
    OidcSource::new(config).expect("source")
}

fn provider(secret: &str, claims_in: &str, port: u16) -> NodeProvider {
    NodeProvider::start(NodeOptions {
        client_id: "vestibule",
        client_secret: secret,
        redirect_uri: CALLBACK,
        claims_in,
        port,
    })
}

#[tokio::test]
async fn sign_in_through_the_real_provider() {
    let secret = "real-provider-secret-0123456789abcdef";
    let op = provider(secret, "id_token", 0);
    let var = secret_env("REAL1", secret);
    let source = source(&op.issuer, &var, "");

    // Alice: verified email, claims in the ID token.
    let started = source.start(CALLBACK).await.expect("start");
    let url = &started.authorize_url;
    for p in [
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
        "response_type=code",
    ] {
        assert!(url.contains(p), "{p} missing from {url}");
    }
    let params = authorize(&browser(), url, CALLBACK, Person::SignIn("alice")).await;
    assert_eq!(
        params.iss.as_deref(),
        Some(op.issuer.as_str()),
        "oidc-provider sends RFC 9207 iss"
    );
    let who = source
        .finish(started.pending.clone(), CALLBACK, &params)
        .await
        .expect("alice signs in");
    assert_eq!(who.source.as_str(), "corp");
    assert_eq!(who.subject.as_str(), "alice");
    assert_eq!(who.login.as_deref(), Some("alice.l"));
    assert_eq!(who.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(who.email.as_deref(), Some("alice@example.com"));
    assert!(who.email_verified);

    // The same code again: the provider refuses the replay, and so do we.
    let replay = source.finish(started.pending, CALLBACK, &params).await;
    assert!(matches!(replay, Err(SourceError::Protocol(_))), "{replay:?}");

    // Bob: email_verified is false at the provider.
    let started = source.start(CALLBACK).await.expect("start");
    let params = authorize(&browser(), &started.authorize_url, CALLBACK, Person::SignIn("bob")).await;
    let who = source.finish(started.pending, CALLBACK, &params).await.expect("bob");
    assert_eq!(who.subject.as_str(), "bob");
    assert_eq!(who.email.as_deref(), Some("bob@example.com"));
    assert!(!who.email_verified);

    // A state that is not the one we sent is refused before the code is spent.
    let started = source.start(CALLBACK).await.expect("start");
    let mut params = authorize(&browser(), &started.authorize_url, CALLBACK, Person::SignIn("alice")).await;
    let good_state = params.state.clone();
    params.state = Some("tampered".into());
    assert!(source.finish(started.pending.clone(), CALLBACK, &params).await.is_err());
    params.state = good_state;
    source
        .finish(started.pending, CALLBACK, &params)
        .await
        .expect("the code was not spent by the refused attempt");

    // Cancel at the provider: an `error=access_denied` callback is a cancellation, not a failure page.
    let started = source.start(CALLBACK).await.expect("start");
    let params = authorize(&browser(), &started.authorize_url, CALLBACK, Person::Cancel).await;
    assert_eq!(params.error.as_deref(), Some("access_denied"));
    let cancelled = source.finish(started.pending, CALLBACK, &params).await;
    assert!(
        matches!(cancelled, Err(SourceError::Cancelled(ref c)) if c == "access_denied"),
        "{cancelled:?}"
    );
}

#[tokio::test]
async fn email_claims_only_at_userinfo() {
    let secret = "real-provider-secret-userinfo-mode-42";
    let op = provider(secret, "userinfo", 0);
    let var = secret_env("REAL2", secret);

    // With userinfo (the default) the address arrives from the userinfo endpoint, verified.
    let source_ui = source(&op.issuer, &var, "");
    let started = source_ui.start(CALLBACK).await.expect("start");
    let params = authorize(&browser(), &started.authorize_url, CALLBACK, Person::SignIn("alice")).await;
    let who = source_ui
        .finish(started.pending, CALLBACK, &params)
        .await
        .expect("alice");
    assert_eq!(who.subject.as_str(), "alice");
    assert_eq!(who.email.as_deref(), Some("alice@example.com"));
    assert!(who.email_verified);
    assert_eq!(who.login.as_deref(), Some("alice.l"));

    // Without userinfo, this provider's ID token carries no email: proof the claims came from userinfo.
    let source_id_only = source(&op.issuer, &var, "userinfo = false");
    let started = source_id_only.start(CALLBACK).await.expect("start");
    let params = authorize(&browser(), &started.authorize_url, CALLBACK, Person::SignIn("bob")).await;
    let who = source_id_only
        .finish(started.pending, CALLBACK, &params)
        .await
        .expect("bob");
    assert_eq!(who.subject.as_str(), "bob");
    assert_eq!(who.email, None);
    assert!(!who.email_verified);

    // Bob through userinfo: address present, not verified.
    let started = source_ui.start(CALLBACK).await.expect("start");
    let params = authorize(&browser(), &started.authorize_url, CALLBACK, Person::SignIn("bob")).await;
    let who = source_ui.finish(started.pending, CALLBACK, &params).await.expect("bob");
    assert_eq!(who.email.as_deref(), Some("bob@example.com"));
    assert!(!who.email_verified);
}

#[tokio::test]
async fn provider_down_at_startup_then_up() {
    let secret = "real-provider-secret-late-start-0000";
    // The source is configured with the provider's address before the provider exists, so the port is chosen
    // first: held bound (connections refused) while the provider is "down", released just before it starts. Only
    // in that instant could another process take it.
    let reserved = RefusingPort::new();
    let port = reserved.port();
    let var = secret_env("REAL3", secret);
    // Construction needs no network, so a provider that is down does not stop the server.
    let source = source(&format!("http://127.0.0.1:{port}"), &var, "timeout_secs = 3");
    let t = Instant::now();
    let down = source.start(CALLBACK).await;
    assert!(matches!(down, Err(SourceError::Unavailable(_))), "{down:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "unavailable within the timeout");

    // The provider comes up; the next sign-in retries discovery and succeeds.
    let op = provider(secret, "id_token", reserved.release());
    assert_eq!(op.issuer, format!("http://127.0.0.1:{port}"));
    let started = source.start(CALLBACK).await.expect("start after the provider came up");
    let params = authorize(&browser(), &started.authorize_url, CALLBACK, Person::SignIn("alice")).await;
    let who = source.finish(started.pending, CALLBACK, &params).await.expect("alice");
    assert_eq!(who.subject.as_str(), "alice");
}
