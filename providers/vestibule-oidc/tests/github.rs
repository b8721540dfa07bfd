//! GitHub's OAuth2 flow against GitHub-shaped endpoints served in process: authorization URL with state and
//! PKCE S256, the code exchange (GitHub's 200-with-error style included), `/user` for the numeric id, and
//! `/user/emails` for a primary, verified address only.

#[path = "support/github.rs"]
mod fake_github;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use fake_github::{Account, FakeGithub, CLIENT_ID, CLIENT_SECRET};
use vestibule_core::{AuthSource, CallbackParams, ExternalIdentity, Flow, RedirectFlow, SourceError};
use vestibule_oidc::{GithubConfig, GithubSource};

const CALLBACK: &str = "https://broker.example/callback/github";

impl FakeGithub {
    fn source(&self) -> GithubSource {
        let var = format!("VESTIBULE_GITHUB_TEST_SECRET_{}", std::process::id());
        std::env::set_var(&var, CLIENT_SECRET);
        let b = &self.base;
        let config: GithubConfig = toml::from_str(&format!(
            "id = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{var}\"\n\
             authorize_url = \"{b}/login/oauth/authorize\"\ntoken_url = \"{b}/login/oauth/access_token\"\n\
             api_base_url = \"{b}/api/\""
        ))
        .expect("config");
        GithubSource::new(config).expect("source")
    }

    /// Plays GitHub's authorization page.
    fn authorize(&self, authorize_url: &str, account: Account) -> CallbackParams {
        let url = url::Url::parse(authorize_url).expect("url");
        assert!(url
            .as_str()
            .starts_with(&format!("{}/login/oauth/authorize?", self.base)));
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
        assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
        assert_eq!(q.get("redirect_uri").map(String::as_str), Some(CALLBACK));
        assert_eq!(q.get("scope").map(String::as_str), Some("read:user user:email"));
        assert!(q.get("state").is_some_and(|s| s.len() >= 43));
        assert!(q.get("code_challenge").is_some_and(|s| s.len() == 43));
        let code = self.grant(&q["code_challenge"], account);
        CallbackParams {
            state: q.get("state").cloned().map(Into::into),
            code: Some(code.into()),
            ..CallbackParams::default()
        }
    }
}

async fn sign_in(gh: &FakeGithub, source: &GithubSource, account: Account) -> Result<ExternalIdentity, SourceError> {
    let started = source.start(CALLBACK).await?;
    let params = gh.authorize(&started.authorize_url, account);
    source.finish(started.pending, CALLBACK, &params).await
}

#[tokio::test]
async fn github_sign_in_keys_on_the_numeric_id_and_takes_only_primary_verified_email() {
    let gh = FakeGithub::start().await;
    let source = gh.source();
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
    let source = gh.source();
    let started = source.start(CALLBACK).await.expect("start");
    let params = gh.authorize(&started.authorize_url, Account::Octocat);
    source
        .finish(started.pending.clone(), CALLBACK, &params)
        .await
        .expect("first");
    let replay = source.finish(started.pending, CALLBACK, &params).await;
    assert!(matches!(replay, Err(SourceError::Protocol(_))), "{replay:?}");

    let hits = gh.shared.token_hits.load(Ordering::SeqCst);
    let started = source.start(CALLBACK).await.expect("start");
    let mut params = gh.authorize(&started.authorize_url, Account::Octocat);
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
