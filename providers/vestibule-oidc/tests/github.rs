//! GitHub's OAuth2 flow against GitHub-shaped endpoints served in process: authorization URL with state and
//! PKCE S256, the code exchange (GitHub's 200-with-error style included), `/user` for the numeric id, and
//! `/user/emails` for a primary, verified address only.

use std::sync::atomic::Ordering;

use vestibule_core::{AuthSource, CallbackParams, ExternalIdentity, Flow, RedirectFlow, SourceError};
use vestibule_oidc::{GithubConfig, GithubSource};
use vestibule_tests::github::{Account, FakeGithub, CLIENT_ID, CLIENT_SECRET};

const CALLBACK: &str = "https://broker.example/callback/github";

/// A GitHub source pointed at the fake.
fn source(gh: &FakeGithub) -> GithubSource {
    let var = format!("VESTIBULE_GITHUB_TEST_SECRET_{}", std::process::id());
    std::env::set_var(&var, CLIENT_SECRET);
    let config: GithubConfig = toml::from_str(&format!(
        "id = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{var}\"\n{}",
        gh.endpoints_toml()
    ))
    .expect("config");
    GithubSource::new(config).expect("source")
}

async fn sign_in(gh: &FakeGithub, source: &GithubSource, account: Account) -> Result<ExternalIdentity, SourceError> {
    let started = source.start(CALLBACK).await?;
    let params = gh.authorize(&started.authorize_url, CALLBACK, account);
    source.finish(started.pending, CALLBACK, &params).await
}

#[tokio::test]
async fn github_sign_in_keys_on_the_numeric_id_and_takes_only_primary_verified_email() {
    let gh = FakeGithub::start().await;
    let source = source(&gh);
    assert_eq!(source.display_name(), "GitHub");
    assert!(matches!(source.flow(), Flow::Redirect(_)));

    let who = sign_in(&gh, &source, Account::Octocat).await.expect("octocat");
    assert_eq!(who.source.as_str(), "github");
    assert_eq!(
        who.subject.as_str(),
        "583231",
        "subject is the numeric id, never the login"
    );
    assert_eq!(who.login.as_deref(), Some("octocat"));
    assert_eq!(who.display_name.as_deref(), Some("The Octocat"));
    assert_eq!(who.email.as_deref(), Some("octocat@github.com"));
    assert!(who.email_verified);

    let who = sign_in(&gh, &source, Account::PrimaryUnverified)
        .await
        .expect("unverified primary");
    assert_eq!(
        who.email, None,
        "neither the unverified primary nor a secondary is used"
    );
    assert!(!who.email_verified);

    let who = sign_in(&gh, &source, Account::NoEmailScope)
        .await
        .expect("no email scope");
    assert_eq!(who.email, None, "the public /user email is never used");

    let r = sign_in(&gh, &source, Account::StringId).await;
    assert!(matches!(r, Err(SourceError::Protocol(_))), "{r:?}");
}

#[tokio::test]
async fn github_refuses_replays_bad_state_and_reports_cancel() {
    let gh = FakeGithub::start().await;
    let source = source(&gh);
    let started = source.start(CALLBACK).await.expect("start");
    let params = gh.authorize(&started.authorize_url, CALLBACK, Account::Octocat);
    source
        .finish(started.pending.clone(), CALLBACK, &params)
        .await
        .expect("first");
    let replay = source.finish(started.pending, CALLBACK, &params).await;
    assert!(matches!(replay, Err(SourceError::Protocol(_))), "{replay:?}");

    let hits = gh.shared.token_hits.load(Ordering::SeqCst);
    let started = source.start(CALLBACK).await.expect("start");
    let mut params = gh.authorize(&started.authorize_url, CALLBACK, Account::Octocat);
    params.state = Some("forged".into());
    assert!(source.finish(started.pending.clone(), CALLBACK, &params).await.is_err());
    let cancel = CallbackParams {
        error: Some("access_denied".into()),
        ..CallbackParams::default()
    };
    let r = source.finish(started.pending, CALLBACK, &cancel).await;
    assert!(
        matches!(r, Err(SourceError::Cancelled(ref c)) if c == "access_denied"),
        "{r:?}"
    );
    assert_eq!(
        gh.shared.token_hits.load(Ordering::SeqCst),
        hits,
        "no exchange for refused callbacks"
    );
}
