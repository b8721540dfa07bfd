//! Linking policy with in-process sources, a real SQLite store and an injected clock: the account-takeover attacks
//! of the baseline (nOAuth, pre-account-takeover, same `sub` at two providers, link-token reuse) each fail, and
//! where cheap each is first shown to succeed against a weakened policy.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vestibule::{
    Broker, ClientInfo, LoginError, LoginOutcome, Provisioning, SessionSettings, SourcePolicy, UnlinkError,
};
use vestibule_core::{
    AccountId, CallbackParams, ExposeSecret, ExternalIdentity, FixedClock, SourceId, Subject, Timestamp,
};
use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher};
use vestibule_store::{NewLocalAccount, Store};
use vestibule_tests::fakes::{PasswordFake, RedirectFake};

const T0: Timestamp = Timestamp(1_800_000_000);

struct Fx {
    broker: Arc<Broker>,
    /// The broker's store, opened by the test: what the broker wrote, read directly.
    store: Store,
    clock: Arc<FixedClock>,
    /// A password source that is asked again (like LDAP), every 300 s; everyone's password is "pw".
    dir: Arc<PasswordFake>,
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
    let local = Arc::new(LocalSource::new(
        &config,
        Arc::new(store.clone()),
        Arc::new(PasswordHasher::new(cheap).unwrap()),
    ));
    let directory = Arc::new(PasswordFake::new("dir").rechecked_every(std::time::Duration::from_secs(300)));
    let broker = Broker::builder(store.clone(), "https://id.example.com")
        .source(local.clone())
        .password_changer(local)
        .source(directory.clone())
        // Providers the test fully controls: the callback's code is the identity they assert, so a test can play an
        // honest provider or one that lets anyone claim any email.
        .source_with_policy(Arc::new(RedirectFake::scripted("google")), google)
        .source_with_policy(Arc::new(RedirectFake::scripted("github")), github)
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
        store,
        clock,
        dir: directory,
        _dir: dir,
    }
}

async fn default_fixture() -> Fx {
    fixture(SourcePolicy::default(), SourcePolicy::default()).await
}

/// A source the operator trusts for addresses at `example.org` (the test accounts' domain).
fn trusting() -> SourcePolicy {
    SourcePolicy {
        provisioning: Provisioning::Create,
        trust_email: true,
        authoritative_email_domains: vec!["example.org".into()],
        ..Default::default()
    }
}

/// A fresh session of `account` (as if its owner had just signed in), for the actions that need one.
async fn fresh(fx: &Fx, account: &AccountId) -> Arc<vestibule::ActiveSession> {
    let s = fx
        .broker
        .create_session(account, &id("local"), &client(), None)
        .await
        .unwrap();
    fx.broker.session(s.token.expose()).await.unwrap().unwrap()
}

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
        password_hash: hasher.hash(format!("{username} password").into()).await.unwrap().into(),
    };
    fx.store.create_local_account(&new, T0).await.unwrap()
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
    let session = match current {
        Some(account) => Some(fresh(fx, account).await),
        None => None,
    };
    let begin = match &session {
        Some(session) => fx.broker.start_link_redirect(&id(source), session).await?,
        None => fx.broker.start_redirect(&id(source), None).await?,
    };
    let state = begin.authorize_url.split("state=").nth(1).unwrap().to_owned();
    let params = CallbackParams {
        state: Some(state.into()),
        code: Some(serde_json::to_string(identity).unwrap().into()),
        ..Default::default()
    };
    fx.broker
        .finish_redirect(
            &id(source),
            &params,
            Some(begin.browser_token.expose()),
            &client(),
            None,
            session.as_deref(),
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
    fx.store
        .find_identity(&id(source), &Subject::new(subject).unwrap())
        .await
        .unwrap()
        .map(|r| r.account_id)
}

async fn events(fx: &Fx) -> Vec<String> {
    fx.store
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
        (trusting(), false),
    ] {
        let fx = fixture(policy.clone(), SourcePolicy::default()).await;
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
        assert_eq!(fx.store.identities_of(&victim).await.unwrap().len(), 1);
        assert!(events(&fx).await.contains(&"link_required".to_string()));
        // Without the victim's own credentials the attacker cannot confirm: confirming needs a session of the
        // victim's account, which only signing in to it gives. Confirming into the attacker's own account is
        // their own business and never touches the victim.
    }
}

#[tokio::test]
async fn trust_email_links_only_a_verified_email_to_exactly_one_verified_account() {
    // The weakened-looking but legitimate path works: both sides verified, one account.
    let fx = fixture(trusting(), SourcePolicy::default()).await;
    let owner_account = local_account(&fx, "ann", "ann@example.org", true).await;
    let s = via(&fx, "google", &asserted("g-ann", "ann@example.org", true), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    assert_eq!(s.account_id, owner_account, "auto-linked");
    assert!(events(&fx).await.contains(&"identity_linked".to_string()));

    // Two accounts with that address: never guess.
    let fx = fixture(trusting(), SourcePolicy::default()).await;
    local_account(&fx, "ann", "ann@example.org", true).await;
    local_account(&fx, "ann2", "ann@example.org", true).await;
    let out = via(&fx, "google", &asserted("g-ann", "ann@example.org", true), None)
        .await
        .unwrap();
    assert!(matches!(out, LoginOutcome::LinkRequired(_)), "{out:?}");

    // Trust on another source does not leak: github keeps the default.
    let fx = fixture(trusting(), SourcePolicy::default()).await;
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
    let fx = fixture(trusting(), SourcePolicy::default()).await;
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
        .store
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
        fx.broker
            .confirm_link(foreign.expose(), &*fresh(&fx, &ann).await, &client())
            .await,
        Err(LoginError::InvalidFlow)
    ));
    // Ann proves she owns the account by signing in to it, then confirms.
    let view = fx.broker.pending_link(link.token.expose()).await.unwrap().unwrap();
    assert_eq!(view.source, id("google"));
    let s = sign_in_local(&fx, "ann").await;
    assert_eq!(s.account_id, ann);
    assert_eq!(
        fx.broker
            .confirm_link(link.token.expose(), &*fresh(&fx, &ann).await, &client())
            .await
            .unwrap(),
        id("google")
    );
    assert_eq!(owner(&fx, "google", "g-ann").await, Some(ann.clone()));
    // Used twice: refused.
    assert!(matches!(
        fx.broker
            .confirm_link(link.token.expose(), &*fresh(&fx, &ann).await, &client())
            .await,
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
        fx.broker
            .confirm_link(link.token.expose(), &*fresh(&fx, &ann).await, &client())
            .await,
        Err(LoginError::InvalidFlow)
    ));
    assert_eq!(owner(&fx, "google", "g-ann").await, None);
}

#[tokio::test]
async fn existing_only_sources_never_create_accounts() {
    let only = SourcePolicy {
        provisioning: Provisioning::ExistingOnly,
        ..Default::default()
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
    let begin = fx
        .broker
        .start_link_redirect(&id("google"), &*fresh(&fx, &ann).await)
        .await
        .unwrap();
    let state = begin.authorize_url.split("state=").nth(1).unwrap().to_owned();
    let params = CallbackParams {
        state: Some(state.into()),
        code: Some(serde_json::to_string(&identity).unwrap().into()),
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
            Some(&*fresh(&fx, &bob).await),
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
    assert_eq!(fx.store.identities_of(&ann).await.unwrap().len(), 2);

    // Bob trying to add Ann's Google identity is refused and audited; it is not moved.
    let r = via(&fx, "google", &identity, Some(&bob)).await;
    assert!(matches!(r, Err(LoginError::AlreadyLinked)), "{r:?}");
    assert_eq!(owner(&fx, "google", "g-ann").await, Some(ann.clone()));
    assert!(events(&fx).await.contains(&"link_refused".to_string()));

    // Linking a password source from the account page checks its password.
    let r = fx
        .broker
        .link_password(
            &id("local"),
            &*fresh(&fx, &ann).await,
            "bob",
            &"wrong".into(),
            &client(),
        )
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

/// A policy for `github` playing the hostile provider: it asserts whatever address it likes as verified.
fn authoritative_for(domains: &[&str]) -> SourcePolicy {
    SourcePolicy {
        authoritative_email_domains: domains.iter().map(|d| d.to_string()).collect(),
        ..Default::default()
    }
}

fn hostile(subject: &str, email: &str) -> ExternalIdentity {
    let mut i = asserted(subject, email, true);
    i.source = id("github");
    i
}

async fn account_email_verified(fx: &Fx, account: &AccountId) -> bool {
    fx.store.get_account(account).await.unwrap().unwrap().email_verified
}

#[tokio::test]
async fn a_source_that_may_not_vouch_for_an_address_cannot_capture_a_trusting_sources_account() {
    // Weakened setup first: the hostile source is (wrongly) made an authority for every address. Its account for
    // the victim's address counts as verified, and the victim's first sign-in through the trusting source lands in
    // the attacker's account — the takeover the review reproduced.
    let fx = fixture(trusting(), authoritative_for(&["*"])).await;
    let attackers = via(&fx, "github", &hostile("mallory", "victim@example.org"), None)
        .await
        .unwrap()
        .session()
        .unwrap()
        .account_id;
    assert!(account_email_verified(&fx, &attackers).await);
    let victims = via(&fx, "google", &asserted("victim-sub", "victim@example.org", true), None)
        .await
        .unwrap()
        .session()
        .unwrap()
        .account_id;
    assert_eq!(victims, attackers, "weakened setup: the attack works");

    // The default: a source vouches for nothing. The address it asserted "verified" is stored unverified, and the
    // victim's sign-in never joins the attacker's account silently.
    let fx = fixture(trusting(), SourcePolicy::default()).await;
    let attackers = via(&fx, "github", &hostile("mallory", "victim@example.org"), None)
        .await
        .unwrap()
        .session()
        .unwrap()
        .account_id;
    assert!(!account_email_verified(&fx, &attackers).await);
    let out = via(&fx, "google", &asserted("victim-sub", "victim@example.org", true), None)
        .await
        .unwrap();
    assert!(matches!(out, LoginOutcome::LinkRequired(_)), "{out:?}");
    assert_eq!(owner(&fx, "google", "victim-sub").await, None);

    // A source authoritative for other domains cannot vouch for this one either.
    let fx = fixture(trusting(), authoritative_for(&["github.example", "*.example.org"])).await;
    let attackers = via(&fx, "github", &hostile("mallory", "victim@example.org"), None)
        .await
        .unwrap()
        .session()
        .unwrap()
        .account_id;
    assert!(!account_email_verified(&fx, &attackers).await);
}

#[tokio::test]
async fn trust_email_needs_the_source_to_be_authoritative_for_the_address() {
    // Trusting, but not an authority for example.org: the verified claim does not count.
    let policy = SourcePolicy {
        authoritative_email_domains: vec!["corp.example".into()],
        ..trusting()
    };
    let fx = fixture(policy, SourcePolicy::default()).await;
    local_account(&fx, "ann", "ann@example.org", true).await;
    let out = via(&fx, "google", &asserted("g-ann", "ann@example.org", true), None)
        .await
        .unwrap();
    assert!(matches!(out, LoginOutcome::LinkRequired(_)), "{out:?}");
    // Authoritative for the address: an account it creates has it verified.
    let s = via(&fx, "google", &asserted("g-bob", "bob@corp.example", true), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    assert!(account_email_verified(&fx, &s.account_id).await);
}

#[tokio::test]
async fn a_recycled_address_does_not_inherit_the_old_account() {
    let fx = fixture(trusting(), SourcePolicy::default()).await;
    // The address belonged to someone who signed in through Google long ago...
    let old = via(&fx, "google", &asserted("g-old", "desk@example.org", true), None)
        .await
        .unwrap()
        .session()
        .unwrap()
        .account_id;
    assert!(account_email_verified(&fx, &old).await);
    // ...and now Google asserts it, verified, for a new person (a new `sub`): never the old account silently.
    let out = via(&fx, "google", &asserted("g-new", "desk@example.org", true), None)
        .await
        .unwrap();
    assert!(matches!(out, LoginOutcome::LinkRequired(_)), "{out:?}");
    assert_eq!(owner(&fx, "google", "g-new").await, None);
    assert_eq!(fx.store.identities_of(&old).await.unwrap().len(), 1);
}

/// A session restored from remember-me: never fresh.
async fn restored(fx: &Fx, account: &AccountId) -> Arc<vestibule::ActiveSession> {
    let s = fx
        .broker
        .create_session(account, &id("local"), &client(), None)
        .await
        .unwrap();
    let cookie = fx.broker.remember(&s).await.unwrap().expose_secret().to_owned();
    let vestibule::Restored::Session { session, .. } = fx.broker.restore(&cookie, &client()).await.unwrap() else {
        panic!("not restored")
    };
    fx.broker.session(session.token.expose()).await.unwrap().unwrap()
}

#[tokio::test]
async fn adding_a_way_in_needs_a_fresh_sign_in() {
    let fx = default_fixture().await;
    let ann = local_account(&fx, "ann", "ann@example.org", true).await;
    let stale = restored(&fx, &ann).await;
    assert!(!fx.broker.is_fresh(&stale));

    let r = fx.broker.start_link_redirect(&id("google"), &stale).await;
    assert!(matches!(r, Err(LoginError::NotFresh)), "{r:?}");
    fx.dir.put(
        "bob",
        "pw",
        ExternalIdentity::new(id("dir"), Subject::new("bob").unwrap()),
    );
    let r = fx
        .broker
        .link_password(&id("dir"), &stale, "bob", &"pw".into(), &client())
        .await;
    assert!(matches!(r, Err(LoginError::NotFresh)), "{r:?}");
    assert_eq!(owner(&fx, "dir", "bob").await, None);

    // The confirmation of a pending link too; the pending link survives for after the new sign-in.
    let LoginOutcome::LinkRequired(link) = via(&fx, "google", &asserted("g-x", "ann@example.org", true), None)
        .await
        .unwrap()
    else {
        panic!()
    };
    let r = fx.broker.confirm_link(link.token.expose(), &stale, &client()).await;
    assert!(matches!(r, Err(LoginError::NotFresh)), "{r:?}");
    assert!(fx.broker.pending_link(link.token.expose()).await.unwrap().is_some());
    fx.broker
        .confirm_link(link.token.expose(), &*fresh(&fx, &ann).await, &client())
        .await
        .unwrap();
    assert_eq!(owner(&fx, "google", "g-x").await, Some(ann.clone()));
    // With a fresh session, the password link works.
    fx.broker
        .link_password(&id("dir"), &*fresh(&fx, &ann).await, "bob", &"pw".into(), &client())
        .await
        .unwrap();
    assert_eq!(owner(&fx, "dir", "bob").await, Some(ann));
}

#[tokio::test]
async fn unlinking_ends_the_sessions_series_and_tokens_the_identity_opened() {
    let fx = default_fixture().await;
    let ann = local_account(&fx, "ann", "ann@example.org", true).await;
    via(&fx, "google", &asserted("g-ann", "x@example.org", false), Some(&ann))
        .await
        .unwrap();
    // Through Google: a session, a remember-me series and a token made from that session.
    let by_google = via(&fx, "google", &asserted("g-ann", "x@example.org", false), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    assert_eq!(by_google.account_id, ann);
    let cookie = fx.broker.remember(&by_google).await.unwrap().expose_secret().to_owned();
    let google_session = fx.broker.session(by_google.token.expose()).await.unwrap().unwrap();
    let token = fx
        .broker
        .create_token(&google_session, "ci", 30, "read", &client())
        .await
        .unwrap();
    assert!(fx.broker.bearer(token.value.expose_secret()).await.unwrap().is_some());
    // Through the password: the session that removes Google.
    let by_password = sign_in_local(&fx, "ann").await;
    let current = fx.broker.session(by_password.token.expose()).await.unwrap().unwrap();

    fx.broker.unlink(&current, "google", "g-ann", &client()).await.unwrap();
    assert!(fx.broker.session(by_google.token.expose()).await.unwrap().is_none());
    assert!(fx.broker.bearer(token.value.expose_secret()).await.unwrap().is_none());
    assert!(matches!(
        fx.broker.restore(&cookie, &client()).await.unwrap(),
        vestibule::Restored::Invalid
    ));
    assert!(fx.broker.session(by_password.token.expose()).await.unwrap().is_some());
}

#[tokio::test]
async fn long_sessions_and_restores_ask_the_source_again() {
    let fx = default_fixture().await;
    let person = |groups: &[&str]| {
        ExternalIdentity::new(id("dir"), Subject::new("carol").unwrap())
            .with_login("carol")
            .with_groups(groups.iter().map(|g| g.to_string()).collect())
    };
    fx.dir.put("carol", "pw", person(&["staff"]));
    let s = fx
        .broker
        .login_password(&id("dir"), "carol", &"pw".into(), &client(), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    let cookie = fx.broker.remember(&s).await.unwrap().expose_secret().to_owned();
    let asked = || fx.dir.rechecks();

    // Within the interval nobody asks; after it, the directory is asked once and new groups are picked up.
    fx.dir.put("carol", "pw", person(&["staff", "admins"]));
    fx.clock.advance(200);
    assert!(fx.broker.session(s.token.expose()).await.unwrap().is_some());
    assert_eq!(asked(), 0);
    fx.clock.advance(200);
    assert!(fx.broker.session(s.token.expose()).await.unwrap().is_some());
    assert_eq!(asked(), 1);
    let again = fx.broker.session(s.token.expose()).await.unwrap().unwrap();
    assert_eq!(again.groups, vec!["admins".to_string(), "staff".to_string()]);
    assert_eq!(asked(), 1);

    // The directory is down: the session goes on (an outage does not sign everyone out).
    fx.dir.down();
    fx.clock.advance(301);
    assert!(fx.broker.session(s.token.expose()).await.unwrap().is_some());
    assert_eq!(asked(), 2);

    // Carol is removed from the directory: the session ends, and the remember-me cookie restores nothing usable.
    fx.dir.up();
    fx.dir.remove("carol");
    fx.clock.advance(61);
    assert!(fx.broker.session(s.token.expose()).await.unwrap().is_none());
    let restored = fx.broker.restore(&cookie, &client()).await.unwrap();
    if let vestibule::Restored::Session { session, .. } = restored {
        assert!(
            fx.broker.session(session.token.expose()).await.unwrap().is_none(),
            "a restored session of a person gone from the directory must not be usable"
        );
    }
    assert!(events(&fx).await.contains(&"identity_rechecked".to_string()));
}

#[tokio::test]
async fn a_remember_me_restore_asks_the_source_before_the_session_is_used() {
    let fx = default_fixture().await;
    fx.dir.put(
        "dan",
        "pw",
        ExternalIdentity::new(id("dir"), Subject::new("dan").unwrap()),
    );
    let s = fx
        .broker
        .login_password(&id("dir"), "dan", &"pw".into(), &client(), None)
        .await
        .unwrap()
        .session()
        .unwrap();
    let cookie = fx.broker.remember(&s).await.unwrap().expose_secret().to_owned();
    // Days later, without the session cookie, Dan is disabled at the directory: the restore yields nothing usable.
    fx.clock.advance(3 * 86_400);
    fx.dir.remove("dan");
    if let vestibule::Restored::Session { session, .. } = fx.broker.restore(&cookie, &client()).await.unwrap() {
        assert!(fx.broker.session(session.token.expose()).await.unwrap().is_none());
    }
    assert_eq!(fx.dir.rechecks(), 1);
}

#[tokio::test]
async fn a_password_change_renews_the_session_id_and_ends_the_rest_at_once() {
    let fx = default_fixture().await;
    let ann = local_account(&fx, "ann", "ann@example.org", true).await;
    let a = sign_in_local(&fx, "ann").await;
    let b = sign_in_local(&fx, "ann").await;
    let cookie = fx.broker.remember(&b).await.unwrap().expose_secret().to_owned();
    let current = fx.broker.session(a.token.expose()).await.unwrap().unwrap();
    // A wrong current password changes and ends nothing.
    let r = fx
        .broker
        .change_password(&current, &"nope".into(), &"a new password".into(), &client())
        .await;
    assert!(matches!(r, Err(vestibule::SelfServiceError::Password(_))), "{r:?}");
    assert!(fx.broker.session(b.token.expose()).await.unwrap().is_some());

    let changed = fx
        .broker
        .change_password(&current, &"ann password".into(), &"a new password".into(), &client())
        .await
        .unwrap();
    assert_eq!(changed.others_ended, 1);
    assert!(
        fx.broker.session(a.token.expose()).await.unwrap().is_none(),
        "the id this session had before the change is void"
    );
    assert!(fx.broker.session(b.token.expose()).await.unwrap().is_none());
    let renewed = fx
        .broker
        .session(changed.session.token.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.account_id, ann);
    assert!(fx.broker.is_fresh(&renewed));
    assert!(matches!(
        fx.broker.restore(&cookie, &client()).await.unwrap(),
        vestibule::Restored::Invalid
    ));
    fx.broker
        .login_password(&id("local"), "ann", &"a new password".into(), &client(), None)
        .await
        .unwrap();
}
