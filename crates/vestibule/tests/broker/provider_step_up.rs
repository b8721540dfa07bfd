//! Proof times of redirect sign-ins, and step-up at an identity provider whose own multi-factor sign-in is trusted
//! (`trust_upstream_mfa`): the provider's `auth_time` is when the person proved who they are, and a step-up renews
//! only the session that started it, only for that account's identity, only with a trusted `amr` and only with an
//! authentication from after its start.

use std::sync::Arc;

use vestibule::{Broker, LoginError, LoginOutcome, SessionSettings, SourcePolicy};
use vestibule_core::{ExternalIdentity, FixedClock, RejectReason, SourceId, StartOptions, Subject, Timestamp};
use vestibule_store::Store;
use vestibule_tests::fakes::RedirectFake;
use vestibule_tests::server::TempDir;

use super::{client, params, query_param, sqlite_store, T0};

struct Sso {
    broker: Arc<Broker>,
    store: Store,
    clock: Arc<FixedClock>,
    idp: Arc<RedirectFake>,
    _dir: TempDir,
}

/// A broker with one redirect source `sso` that asserts whatever the callback's code says (see
/// [`RedirectFake::scripted`]), its MFA trusted or not.
async fn sso(trusted: bool) -> Sso {
    let (dir, store) = sqlite_store("vestibule-stepup").await;
    let clock = Arc::new(FixedClock::new(T0));
    let idp = Arc::new(RedirectFake::scripted("sso"));
    let broker = Broker::builder(store.clone(), "https://id.example.com")
        .source_with_policy(
            idp.clone(),
            SourcePolicy {
                trust_upstream_mfa: trusted,
                ..Default::default()
            },
        )
        .clock(clock.clone())
        .settings(SessionSettings {
            idle_timeout_secs: 30_000,
            absolute_timeout_secs: 72_000,
            fresh_secs: 600,
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    Sso {
        broker: Arc::new(broker),
        store,
        clock,
        idp,
        _dir: dir,
    }
}

fn sso_id() -> SourceId {
    SourceId::new("sso").unwrap()
}

/// What the provider says: this subject, these `amr` values, authenticated at `at`.
fn said(subject: &str, amr: &[&str], at: Option<Timestamp>) -> ExternalIdentity {
    let mut who = ExternalIdentity::new(sso_id(), Subject::new(subject).unwrap())
        .with_amr(amr.iter().map(|a| (*a).to_owned()).collect());
    who.auth_time = at;
    who
}

/// The callback of a begun flow, the provider saying `who`, in a browser signed in as `current`.
async fn back(
    s: &Sso,
    begin: &vestibule::RedirectBegin,
    who: &ExternalIdentity,
    current: Option<&vestibule::ActiveSession>,
) -> Result<LoginOutcome, LoginError> {
    let state = query_param(&begin.authorize_url, "state");
    let code = serde_json::to_string(who).unwrap();
    s.broker
        .finish_redirect(
            &sso_id(),
            &params(Some(&state), Some(&code)),
            Some(begin.browser_token.expose()),
            &client(),
            None,
            current,
        )
        .await
        .map(|f| f.outcome)
}

/// Signs in at the provider as `who` and returns the session.
async fn sign_in(s: &Sso, who: &ExternalIdentity) -> Arc<vestibule::ActiveSession> {
    signed_in(s, who).await.1
}

/// [`sign_in`], with the session cookie's value.
async fn signed_in(s: &Sso, who: &ExternalIdentity) -> (String, Arc<vestibule::ActiveSession>) {
    let begin = s.broker.start_redirect(&sso_id(), None).await.unwrap();
    let new = back(s, &begin, who, None).await.unwrap().session().expect("signed in");
    let token = new.token.expose().to_owned();
    let active = s.broker.session(&token).await.unwrap().unwrap();
    (token, active)
}

/// A single sign-on answer from a login two hours old is not a fresh sign-in: the session is proven at the
/// provider's `auth_time`, so a sensitive action asks for a new sign-in. (Proven at the callback, as before, the
/// same answer passed as fresh.) A signed-in browser that signs in again asks the provider for a new login.
#[tokio::test]
async fn a_redirect_sign_in_is_as_fresh_as_the_providers_auth_time() {
    let s = sso(false).await;
    let old = sign_in(&s, &said("u1", &["pwd"], Some(T0.plus_secs(-2 * 3600)))).await;
    assert_eq!(old.authenticated_at, T0.plus_secs(-2 * 3600));
    assert!(!s.broker.is_fresh(&old), "an SSO answer from an old login is not fresh");
    let recent = sign_in(&s, &said("u1", &["pwd"], Some(T0.plus_secs(-30)))).await;
    assert!(s.broker.is_fresh(&recent));
    // A provider that does not say when (GitHub): proven now, as nothing better is known.
    let unknown = sign_in(&s, &said("u1", &["pwd"], None)).await;
    assert_eq!(unknown.authenticated_at, T0);
    // A clock ahead of ours counts as now, never later.
    let ahead = sign_in(&s, &said("u1", &["pwd"], Some(T0.plus_secs(900)))).await;
    assert_eq!(ahead.authenticated_at, T0);

    assert_eq!(s.idp.reauthentications(), 0);
    s.broker
        .start_redirect_with(&sso_id(), None, StartOptions::reauthenticate())
        .await
        .unwrap();
    assert_eq!(s.idp.reauthentications(), 1, "the source was asked for a new login");
}

/// The step-up happy path: an account whose second factor is its provider's steps up there; the provider is
/// asked for a new login, the session goes on under a new id with a fresh second factor, the old id ends, and it
/// is audited.
#[tokio::test]
async fn a_step_up_at_the_provider_renews_the_session_that_began_it() {
    let s = sso(true).await;
    let (cookie, session) = signed_in(&s, &said("u1", &["pwd", "mfa"], Some(T0))).await;
    assert!(s.broker.is_fresh_multi_factor(&session));
    s.clock.advance(3600);
    assert!(
        !s.broker.is_fresh_multi_factor(&session),
        "an hour later the factor is stale"
    );
    assert!(
        !s.broker.has_second_factor(&session.account_id).await.unwrap(),
        "no factor of its own here"
    );
    assert_eq!(s.broker.provider_step_up_sources(&session).await.unwrap(), [sso_id()]);

    let begin = s
        .broker
        .start_provider_step_up(&session, &sso_id(), Some("/admin".into()))
        .await
        .unwrap();
    assert_eq!(
        s.idp.reauthentications(),
        1,
        "a step-up asks the provider for a new login"
    );
    s.clock.advance(20);
    let now = T0.plus_secs(3600 + 20);
    let renewed = back(
        &s,
        &begin,
        &said("u1", &["pwd", "mfa"], Some(now.plus_secs(-10))),
        Some(&session),
    )
    .await
    .unwrap()
    .session()
    .expect("renewed");
    assert!(s.broker.session(&cookie).await.unwrap().is_none(), "the old id ended");
    let renewed = s.broker.session(renewed.token.expose()).await.unwrap().unwrap();
    assert_eq!(renewed.account_id, session.account_id);
    assert!(s.broker.is_fresh_multi_factor(&renewed));
    assert!(
        s.broker.is_fresh(&renewed),
        "the provider's new login is a fresh sign-in too"
    );
    assert_eq!(renewed.second_factor_at, now.plus_secs(-10));
    let audit = s.store.recent_audit(20).await.unwrap();
    assert!(audit
        .iter()
        .any(|r| r.event == "login_success" && r.detail.as_deref() == Some("step-up: mfa")));
}

/// Every way a step-up's callback could be abused is refused, audited, and leaves the session as it was. Each
/// answer that is refused as a step-up would have signed in as a plain sign-in (shown first), so what refuses it
/// is the step-up's own check:
/// - finished in another browser session (one of the same account, one of another account, none): the flow is
///   bound to the session that began it;
/// - another person at the provider (someone who can sign in there but is not this account);
/// - a login without a trusted second factor (`amr` of a password only);
/// - an answer from a login before the step-up began (a provider that ignored `max_age=0`), or with no
///   `auth_time` at all.
#[tokio::test]
async fn a_step_up_at_the_provider_refuses_what_does_not_prove_this_account_now() {
    let s = sso(true).await;
    let (cookie, session) = signed_in(&s, &said("u1", &["pwd", "mfa"], Some(T0))).await;
    let other_same_account = sign_in(&s, &said("u1", &["pwd", "mfa"], Some(T0))).await;
    let mallory = sign_in(&s, &said("mallory", &["pwd", "mfa"], Some(T0))).await;
    s.clock.advance(3600);
    let now = T0.plus_secs(3600);
    let good = said("u1", &["pwd", "mfa"], Some(now));

    // Each answer below, given to a plain sign-in, signs in: the provider's word alone is not what is refused.
    for who in [
        said("mallory", &["pwd", "mfa"], Some(now)),
        said("u1", &["pwd"], Some(now)),
    ] {
        let begin = s.broker.start_redirect(&sso_id(), None).await.unwrap();
        assert!(back(&s, &begin, &who, None).await.unwrap().session().is_some());
    }

    let wrong_session: [(&str, Option<&vestibule::ActiveSession>); 3] = [
        ("another session of the account", Some(&other_same_account)),
        ("another account's session", Some(&mallory)),
        ("no session", None),
    ];
    for (what, current) in wrong_session {
        let begin = s
            .broker
            .start_provider_step_up(&session, &sso_id(), None)
            .await
            .unwrap();
        let r = back(&s, &begin, &good, current).await;
        assert!(matches!(r, Err(LoginError::InvalidFlow)), "{what}: {r:?}");
    }
    let refused = [
        (
            "another person at the provider",
            said("mallory", &["pwd", "mfa"], Some(now)),
        ),
        ("no trusted second factor", said("u1", &["pwd"], Some(now))),
        (
            "a login from before the start",
            said("u1", &["pwd", "mfa"], Some(now.plus_secs(-600))),
        ),
        ("no auth_time", said("u1", &["pwd", "mfa"], None)),
    ];
    for (what, who) in refused {
        let begin = s
            .broker
            .start_provider_step_up(&session, &sso_id(), None)
            .await
            .unwrap();
        let r = back(&s, &begin, &who, Some(&session)).await;
        assert!(
            matches!(r, Err(LoginError::Rejected(RejectReason::NotPermitted))),
            "{what}: {r:?}"
        );
    }
    // Nothing renewed: the session is still the stale one, under its old id.
    let still = s
        .broker
        .session(&cookie)
        .await
        .unwrap()
        .expect("the session goes on under its old id");
    assert!(!s.broker.is_fresh_multi_factor(&still));
    let audit = s.store.recent_audit(100).await.unwrap();
    for why in [
        "step_up_from_another_session",
        "step_up_other_identity",
        "step_up_without_mfa",
        "step_up_stale_authentication",
    ] {
        assert!(
            audit
                .iter()
                .any(|r| r.event == "login_failure" && r.detail.as_deref() == Some(why)),
            "{why} audited"
        );
    }
    assert!(!audit.iter().any(|r| r.detail.as_deref() == Some("step-up: mfa")));
    // The same flow, right session, right person, now: renewed (so the refusals above were the checks').
    let begin = s
        .broker
        .start_provider_step_up(&session, &sso_id(), None)
        .await
        .unwrap();
    assert!(back(&s, &begin, &good, Some(&session))
        .await
        .unwrap()
        .session()
        .is_some());
}

/// A source whose MFA is not trusted, or where the account has no identity, offers no step-up.
#[tokio::test]
async fn only_a_trusted_provider_of_the_account_steps_up() {
    let s = sso(false).await;
    let session = sign_in(&s, &said("u1", &["pwd", "mfa"], Some(T0))).await;
    assert!(s.broker.provider_step_up_sources(&session).await.unwrap().is_empty());
    let r = s.broker.start_provider_step_up(&session, &sso_id(), None).await;
    assert!(matches!(r, Err(LoginError::UnknownSource)), "{r:?}");
}
