//! Linking policy with in-process sources, a real SQLite store and an injected clock: the account-takeover attacks
//! of the baseline (nOAuth, pre-account-takeover, same `sub` at two providers, link-token reuse) each fail, and
//! where cheap each is first shown to succeed against a weakened policy.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vestibule::{
    Broker, ClientInfo, LoginError, LoginOutcome, Provisioning, SessionSettings, SourcePolicy, UnlinkError,
};
use vestibule_core::{
    async_trait, AccountId, AuthSource, CallbackParams, ExternalIdentity, FixedClock, Flow, PendingRedirect,
    RedirectFlow, RedirectStart, SourceError, SourceId, Subject, Timestamp,
};
use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher};
use vestibule_store::{NewLocalAccount, Store};

const T0: Timestamp = Timestamp(1_800_000_000);

/// An identity provider the test fully controls: the callback's `code` is the JSON of the identity it asserts
/// (so a test can play an honest provider or one that lets anyone claim any email).
struct Scripted(SourceId);

impl AuthSource for Scripted {
    fn id(&self) -> &SourceId {
        &self.0
    }
    fn display_name(&self) -> &str {
        "Scripted IdP"
    }
    fn flow(&self) -> Flow<'_> {
        Flow::Redirect(self)
    }
}

#[async_trait]
impl RedirectFlow for Scripted {
    async fn start(&self, _callback: &str) -> Result<RedirectStart, SourceError> {
        let state = vestibule::SecretToken::generate().expose().to_owned();
        Ok(RedirectStart {
            authorize_url: format!("https://idp.test/?state={state}"),
            pending: PendingRedirect {
                state: state.into(),
                data: String::new().into(),
            },
        })
    }
    async fn finish(
        &self,
        _: PendingRedirect,
        _: &str,
        params: &CallbackParams,
    ) -> Result<ExternalIdentity, SourceError> {
        let mut identity: ExternalIdentity = serde_json::from_str(params.code.as_deref().unwrap_or(""))
            .map_err(|e| SourceError::Protocol(e.to_string()))?;
        identity.source = self.0.clone();
        Ok(identity)
    }
}

struct Fx {
    broker: Arc<Broker>,
    clock: Arc<FixedClock>,
    _dir: vestibule_tests::server::TempDir,
}

fn id(s: &str) -> SourceId {
    SourceId::new(s).unwrap()
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("192.0.2.7".into()),
        user_agent: None,
    }
}

/// A broker with a local source and two scripted providers, `google` and `github`, with the given policies.
async fn fixture(google: SourcePolicy, github: SourcePolicy) -> Fx {
    let dir = vestibule_tests::server::TempDir::new("vestibule-linking");
    let store = Store::connect(&format!("sqlite://{}/l.db", dir.0.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(FixedClock::new(T0));
    let cheap = Argon2Settings {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let config = LocalConfig {
        id: id("local"),
        display_name: None,
        argon2: cheap,
        password: Default::default(),
    };
    let local = LocalSource::new(
        &config,
        Arc::new(store.clone()),
        Arc::new(PasswordHasher::new(cheap).unwrap()),
    );
    let broker = Broker::builder(store, "https://id.example.com")
        .source(Arc::new(local))
        .source_with_policy(Arc::new(Scripted(id("google"))), google)
        .source_with_policy(Arc::new(Scripted(id("github"))), github)
        .clock(clock.clone())
        .settings(SessionSettings {
            fresh_secs: 300,
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    Fx {
        broker: Arc::new(broker),
        clock,
        _dir: dir,
    }
}

async fn default_fixture() -> Fx {
    fixture(SourcePolicy::default(), SourcePolicy::default()).await
}

const TRUSTING: SourcePolicy = SourcePolicy {
    provisioning: Provisioning::Create,
    trust_email: true,
};

/// Creates a local account directly in the store (as `vestibule user add` does).
async fn local_account(fx: &Fx, username: &str, email: &str, email_verified: bool) -> AccountId {
    let hasher = PasswordHasher::new(Argon2Settings {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let new = NewLocalAccount {
        source: id("local"),
        username: username.into(),
        display_name: Some(username.into()),
        email: Some(email.into()),
        email_verified,
        password_hash: hasher.hash(format!("{username} password").into()).await.unwrap(),
    };
    fx.broker.store().create_local_account(&new, T0).await.unwrap()
}

fn asserted(subject: &str, email: &str, verified: bool) -> ExternalIdentity {
    ExternalIdentity::new(id("google"), Subject::new(subject).unwrap()).with_email(email, verified)
}

/// Runs a whole redirect sign-in through `source` where the provider asserts `identity`.
async fn via(
    fx: &Fx,
    source: &str,
    identity: &ExternalIdentity,
    current: Option<&AccountId>,
) -> Result<LoginOutcome, LoginError> {
    let begin = match current {
        Some(account) => fx.broker.start_link_redirect(&id(source), account).await?,
        None => fx.broker.start_redirect(&id(source), None).await?,
    };
    let state = begin.authorize_url.split("state=").nth(1).unwrap().to_owned();
    let params = CallbackParams {
        state: Some(state),
        code: Some(serde_json::to_string(identity).unwrap()),
        ..Default::default()
    };
    fx.broker
        .finish_redirect(
            &id(source),
            &params,
            Some(begin.browser_token.expose()),
            &client(),
            None,
            current,
        )
        .await
        .map(|f| f.outcome)
}

async fn sign_in_local(fx: &Fx, username: &str) -> vestibule::NewSession {
    let out = fx
        .broker
        .login_password(
            &id("local"),
            username,
            &format!("{username} password").into(),
            &client(),
            None,
        )
        .await
        .unwrap();
    out.session().unwrap()
}

async fn owner(fx: &Fx, source: &str, subject: &str) -> Option<AccountId> {
    fx.broker
        .store()
        .find_identity(&id(source), &Subject::new(subject).unwrap())
        .await
        .unwrap()
        .map(|r| r.account_id)
}

async fn events(fx: &Fx) -> Vec<String> {
    fx.broker
        .store()
        .recent_audit(50)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect()
}

#[tokio::test]
async fn an_unknown_identity_without_email_match_gets_its_own_account() {
    let fx = default_fixture().await;
    let victim = local_account(&fx, "victim", "victim@example.org", true).await;
    let LoginOutcome::SignedIn(s) = via(&fx, "google", &asserted("g-1", "someone@else.example", true), None)
        .await
        .unwrap()
    else {
        panic!("expected a session")
    };
    assert_ne!(s.account_id, victim);
    // Known identity: same account next time.
    let again = via(&fx, "google", &asserted("g-1", "changed@else.example", true), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    assert_eq!(again.account_id, s.account_id);
}

#[tokio::test]
async fn noauth_an_asserted_email_never_opens_the_victims_account() {
    // The provider lets anyone set any email, verified or not (Entra multi-tenant, a hostile IdP).
    for (policy, verified) in [
        (SourcePolicy::default(), false),
        (SourcePolicy::default(), true),
        (TRUSTING, false),
    ] {
        let fx = fixture(policy, SourcePolicy::default()).await;
        let victim = local_account(&fx, "victim", "victim@example.org", true).await;
        let out = via(
            &fx,
            "google",
            &asserted("attacker-sub", "VICTIM@example.org", verified),
            None,
        )
        .await
        .unwrap();
        let LoginOutcome::LinkRequired(link) = out else {
            panic!("policy {policy:?} verified {verified}: {out:?}")
        };
        assert_eq!(link.email.as_deref(), Some("VICTIM@example.org"));
        assert_eq!(owner(&fx, "google", "attacker-sub").await, None, "nothing linked");
        assert_eq!(fx.broker.store().identities_of(&victim).await.unwrap().len(), 1);
        assert!(events(&fx).await.contains(&"link_required".to_string()));
        // Without the victim's own credentials the attacker cannot confirm: confirming needs a session of the
        // victim's account, which only signing in to it gives. Confirming into the attacker's own account is
        // their own business and never touches the victim.
    }
}

#[tokio::test]
async fn trust_email_links_only_a_verified_email_to_exactly_one_verified_account() {
    // The weakened-looking but legitimate path works: both sides verified, one account.
    let fx = fixture(TRUSTING, SourcePolicy::default()).await;
    let owner_account = local_account(&fx, "ann", "ann@example.org", true).await;
    let s = via(&fx, "google", &asserted("g-ann", "ann@example.org", true), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    assert_eq!(s.account_id, owner_account, "auto-linked");
    assert!(events(&fx).await.contains(&"identity_linked".to_string()));

    // Two accounts with that address: never guess.
    let fx = fixture(TRUSTING, SourcePolicy::default()).await;
    local_account(&fx, "ann", "ann@example.org", true).await;
    local_account(&fx, "ann2", "ann@example.org", true).await;
    let out = via(&fx, "google", &asserted("g-ann", "ann@example.org", true), None)
        .await
        .unwrap();
    assert!(matches!(out, LoginOutcome::LinkRequired(_)), "{out:?}");

    // Trust on another source does not leak: github keeps the default.
    let fx = fixture(TRUSTING, SourcePolicy::default()).await;
    local_account(&fx, "ann", "ann@example.org", true).await;
    let mut gh = asserted("42", "ann@example.org", true);
    gh.source = id("github");
    assert!(matches!(
        via(&fx, "github", &gh, None).await.unwrap(),
        LoginOutcome::LinkRequired(_)
    ));
}

#[tokio::test]
async fn pre_account_takeover_the_attackers_unverified_account_is_not_merged() {
    let fx = fixture(TRUSTING, SourcePolicy::default()).await;
    // The attacker registers first with the victim's address, never verified.
    let attacker = local_account(&fx, "mallory", "victim@example.org", false).await;
    // Weakened setup for contrast: had the address been verified, a trusting source would merge (shown above).
    let out = via(
        &fx,
        "google",
        &asserted("victim-google", "victim@example.org", true),
        None,
    )
    .await
    .unwrap();
    let LoginOutcome::LinkRequired(link) = out else {
        panic!("{out:?}")
    };
    assert!(link.may_create);
    // The victim cannot sign in to the attacker's account, so takes a separate account instead.
    let s = fx
        .broker
        .create_from_link(link.token.expose(), &client(), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    assert_ne!(
        s.account_id, attacker,
        "the victim is not signed in to the attacker's account"
    );
    assert_eq!(owner(&fx, "google", "victim-google").await, Some(s.account_id.clone()));
    let attackers_ways: Vec<_> = fx
        .broker
        .store()
        .identities_of(&attacker)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.source)
        .collect();
    assert_eq!(
        attackers_ways,
        vec![id("local")],
        "the attacker's account gained nothing"
    );
}

#[tokio::test]
async fn proving_ownership_links_and_the_token_is_single_use() {
    let fx = default_fixture().await;
    let ann = local_account(&fx, "ann", "ann@example.org", false).await;
    let LoginOutcome::LinkRequired(link) = via(&fx, "google", &asserted("g-ann", "ann@example.org", true), None)
        .await
        .unwrap()
    else {
        panic!()
    };
    // Another browser (a guessed or foreign token) gets nothing.
    let foreign = vestibule::SecretToken::generate();
    assert!(fx.broker.pending_link(foreign.expose()).await.unwrap().is_none());
    assert!(matches!(
        fx.broker.confirm_link(foreign.expose(), &ann, &client()).await,
        Err(LoginError::InvalidFlow)
    ));
    // Ann proves she owns the account by signing in to it, then confirms.
    let view = fx.broker.pending_link(link.token.expose()).await.unwrap().unwrap();
    assert_eq!(view.source, id("google"));
    let s = sign_in_local(&fx, "ann").await;
    assert_eq!(s.account_id, ann);
    assert_eq!(
        fx.broker
            .confirm_link(link.token.expose(), &ann, &client())
            .await
            .unwrap(),
        id("google")
    );
    assert_eq!(owner(&fx, "google", "g-ann").await, Some(ann.clone()));
    // Used twice: refused.
    assert!(matches!(
        fx.broker.confirm_link(link.token.expose(), &ann, &client()).await,
        Err(LoginError::InvalidFlow)
    ));
    // From now on Google signs in to Ann's account directly.
    let s = via(&fx, "google", &asserted("g-ann", "ann@example.org", true), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    assert_eq!(s.account_id, ann);
}

#[tokio::test]
async fn an_expired_link_token_is_refused() {
    let fx = default_fixture().await;
    let ann = local_account(&fx, "ann", "ann@example.org", false).await;
    let LoginOutcome::LinkRequired(link) = via(&fx, "google", &asserted("g-ann", "ann@example.org", true), None)
        .await
        .unwrap()
    else {
        panic!()
    };
    fx.clock.advance(601);
    assert!(fx.broker.pending_link(link.token.expose()).await.unwrap().is_none());
    assert!(matches!(
        fx.broker.confirm_link(link.token.expose(), &ann, &client()).await,
        Err(LoginError::InvalidFlow)
    ));
    assert_eq!(owner(&fx, "google", "g-ann").await, None);
}

#[tokio::test]
async fn existing_only_sources_never_create_accounts() {
    let only = SourcePolicy {
        provisioning: Provisioning::ExistingOnly,
        trust_email: false,
    };
    let fx = fixture(only, SourcePolicy::default()).await;
    let r = via(&fx, "google", &asserted("stranger", "nobody@example.org", true), None).await;
    assert!(
        matches!(r, Err(LoginError::Rejected(vestibule_core::RejectReason::NotPermitted))),
        "{r:?}"
    );
    local_account(&fx, "ann", "ann@example.org", true).await;
    let LoginOutcome::LinkRequired(link) = via(&fx, "google", &asserted("g-ann", "ann@example.org", true), None)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(!link.may_create);
    let r = fx.broker.create_from_link(link.token.expose(), &client(), None).await;
    assert!(matches!(r, Err(LoginError::Rejected(_))), "{r:?}");
}

#[tokio::test]
async fn the_same_sub_at_two_providers_is_two_identities() {
    let fx = default_fixture().await;
    let a = via(&fx, "google", &asserted("12345", "a@example.org", true), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    let mut gh = asserted("12345", "b@example.org", true);
    gh.source = id("github");
    let b = via(&fx, "github", &gh, None).await.unwrap().session().unwrap();
    assert_ne!(a.account_id, b.account_id);
}

#[tokio::test]
async fn links_from_the_account_page_are_bound_to_that_account() {
    let fx = default_fixture().await;
    let ann = local_account(&fx, "ann", "ann@example.org", true).await;
    let bob = local_account(&fx, "bob", "bob@example.org", true).await;
    let identity = asserted("g-ann", "whatever@example.org", false);

    // Started by Ann, finished in a browser signed in as Bob (or signed out): refused, nothing linked.
    let begin = fx.broker.start_link_redirect(&id("google"), &ann).await.unwrap();
    let state = begin.authorize_url.split("state=").nth(1).unwrap().to_owned();
    let params = CallbackParams {
        state: Some(state),
        code: Some(serde_json::to_string(&identity).unwrap()),
        ..Default::default()
    };
    let r = fx
        .broker
        .finish_redirect(
            &id("google"),
            &params,
            Some(begin.browser_token.expose()),
            &client(),
            None,
            Some(&bob),
        )
        .await;
    assert!(matches!(r, Err(LoginError::InvalidFlow)), "{r:?}");
    assert_eq!(owner(&fx, "google", "g-ann").await, None);

    // Done properly: linked to Ann, whose account now has two ways in.
    let out = via(&fx, "google", &identity, Some(&ann)).await.unwrap();
    assert!(
        matches!(out, LoginOutcome::Linked { ref account, .. } if account == &ann),
        "{out:?}"
    );
    assert_eq!(fx.broker.store().identities_of(&ann).await.unwrap().len(), 2);

    // Bob trying to add Ann's Google identity is refused and audited; it is not moved.
    let r = via(&fx, "google", &identity, Some(&bob)).await;
    assert!(matches!(r, Err(LoginError::AlreadyLinked)), "{r:?}");
    assert_eq!(owner(&fx, "google", "g-ann").await, Some(ann.clone()));
    assert!(events(&fx).await.contains(&"link_refused".to_string()));

    // Linking a password source from the account page checks its password.
    let r = fx
        .broker
        .link_password(&id("local"), &ann, "bob", &"wrong".into(), &client())
        .await;
    assert!(matches!(r, Err(LoginError::Rejected(_))), "{r:?}");
}

#[tokio::test]
async fn unlinking_needs_a_fresh_sign_in_and_keeps_one_way_in() {
    let fx = default_fixture().await;
    let ann = local_account(&fx, "ann", "ann@example.org", true).await;
    let s = sign_in_local(&fx, "ann").await;
    let session = fx.broker.session(s.token.expose()).await.unwrap().unwrap();
    let local_subject = ann.as_str().to_owned();

    let r = fx.broker.unlink(&session, "local", &local_subject, &client()).await;
    assert!(matches!(r, Err(UnlinkError::LastIdentity)), "{r:?}");
    via(&fx, "google", &asserted("g-ann", "x@example.org", false), Some(&ann))
        .await
        .unwrap();
    // Someone else's identity cannot be removed from here.
    let other = via(
        &fx,
        "github",
        &{
            let mut i = asserted("99", "y@example.org", false);
            i.source = id("github");
            i
        },
        None,
    )
    .await
    .unwrap()
    .session()
    .unwrap();
    let r = fx.broker.unlink(&session, "github", "99", &client()).await;
    assert!(matches!(r, Err(UnlinkError::NotFound)), "{r:?}");
    assert_eq!(owner(&fx, "github", "99").await, Some(other.account_id));

    // Stale sign-in: refused until the person signs in again.
    fx.clock.advance(301);
    let session = fx.broker.session(s.token.expose()).await.unwrap().unwrap();
    let r = fx.broker.unlink(&session, "google", "g-ann", &client()).await;
    assert!(matches!(r, Err(UnlinkError::NotFresh)), "{r:?}");
    let fresh = sign_in_local(&fx, "ann").await;
    let session = fx.broker.session(fresh.token.expose()).await.unwrap().unwrap();
    fx.broker.unlink(&session, "google", "g-ann", &client()).await.unwrap();
    assert_eq!(owner(&fx, "google", "g-ann").await, None);
    assert!(events(&fx).await.contains(&"identity_unlinked".to_string()));
}
