//! Passkeys at the broker, answered by a software authenticator (`vestibule_tests::passkey`): registration, the
//! second step, passwordless sign-in, and the ceremony rules (single use, bound, five minutes, one purpose), the
//! counter, user verification, and one account's passkey against another's second step.

use vestibule::core::storage::AuditKind;
use vestibule::{
    ActiveSession, Assurance, AuthMethod, LoginOutcome, NewSession, SecondFactorError, SecondFactorPolicy,
    SecondFactorSettings,
};
use vestibule_core::ExposeSecret;
use vestibule_tests::passkey::{SoftAuthenticator, SoftCredential};

use super::client;
use super::second_factor::{half, primary, tf, Tf};

const ORIGIN: &str = "https://id.example.com";
/// A browser's pre-session cookie value, to which a passwordless ceremony is bound.
const BROWSER: &str = "browser-binding-of-the-person-signing-in-00";
const OTHER_BROWSER: &str = "browser-binding-of-someone-else-entirely-0";

async fn active(t: &Tf, s: &NewSession) -> std::sync::Arc<ActiveSession> {
    t.broker
        .session(s.token.expose())
        .await
        .unwrap()
        .expect("a live session")
}

/// Registers a passkey for `login` (signing in with the password first); returns the credential and the renewed
/// session.
async fn register(t: &Tf, login: &str, auth: &SoftAuthenticator) -> (SoftCredential, NewSession) {
    let s = primary(t, login).await.session().expect("no factor yet: a session");
    let a = active(t, &s).await;
    let challenge = t.broker.begin_passkey_registration(&a).await.unwrap();
    let (cred, answer) = auth.create(&challenge.options);
    let added = t
        .broker
        .finish_passkey_registration(&a, challenge.ceremony.expose_secret(), "laptop", &answer, &client())
        .await
        .unwrap();
    (cred, added.session)
}

/// A passwordless sign-in started in the browser `started_in`, answered by `cred`, finished from `finished_in`.
async fn passwordless(
    t: &Tf,
    auth: &SoftAuthenticator,
    cred: &mut SoftCredential,
    started_in: &str,
    finished_in: &str,
) -> Result<vestibule::PasswordlessDone, SecondFactorError> {
    let c = t.broker.begin_passwordless(started_in).await.unwrap();
    let answer = auth.get(cred, &c.options);
    t.broker
        .finish_passwordless(finished_in, c.ceremony.expose_secret(), &answer, &client(), None)
        .await
}

/// A passkey second step started for the half-signed-in state `started_for`, answered by `cred`, finished with the
/// state `finished_with`.
async fn second_step(
    t: &Tf,
    auth: &SoftAuthenticator,
    cred: &mut SoftCredential,
    started_for: &str,
    finished_with: &str,
) -> Result<vestibule::SecondStepDone, SecondFactorError> {
    let c = t
        .broker
        .begin_passkey_second_factor(started_for)
        .await
        .unwrap()
        .unwrap();
    let answer = auth.get(cred, &c.options);
    t.broker
        .finish_second_factor_passkey(finished_with, c.ceremony.expose_secret(), &answer, &client(), None)
        .await
}

async fn audit_kinds(t: &Tf) -> Vec<AuditKind> {
    t.store
        .recent_audit(200)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| AuditKind::parse(&r.event))
        .collect()
}

#[tokio::test]
async fn a_passkey_is_registered_then_used_as_second_step_and_alone() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let auth = SoftAuthenticator::new(ORIGIN);
    let other = primary(&t, "ann").await.session().unwrap();
    let s = primary(&t, "ann").await.session().unwrap();
    let a = active(&t, &s).await;
    let challenge = t.broker.begin_passkey_registration(&a).await.unwrap();
    assert_eq!(format!("{challenge:?}"), "PasskeyChallenge(..)");
    // Asked for as a discoverable credential, verified: it can sign in alone.
    let options: serde_json::Value = serde_json::from_str(&challenge.options).unwrap();
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{options}");
    assert_eq!(selection["userVerification"], "required", "{options}");
    assert_eq!(options["publicKey"]["rp"]["id"], "id.example.com", "{options}");
    let (mut cred, answer) = auth.create(&challenge.options);
    let added = t
        .broker
        .finish_passkey_registration(&a, challenge.ceremony.expose_secret(), " laptop ", &answer, &client())
        .await
        .unwrap();
    // The first factor comes with recovery codes; every other session ended; this one goes on, multi-factor.
    assert_eq!(added.recovery_codes.as_ref().unwrap().0.len(), 10);
    assert!(t.broker.session(other.token.expose()).await.unwrap().is_none());
    assert!(t.broker.session(s.token.expose()).await.unwrap().is_none());
    let renewed = active(&t, &added.session).await;
    assert_eq!(renewed.methods, [AuthMethod::Password, AuthMethod::Passkey]);
    let listed = t.broker.passkeys(&a.account_id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "laptop");
    assert!(listed[0].last_used_at.is_none());
    assert!(t.broker.has_second_factor(&a.account_id).await.unwrap());

    // A password alone no longer signs in: the second step offers the passkey.
    let token = half(&t, "ann").await;
    let ceremony = t
        .broker
        .begin_passkey_second_factor(token.expose())
        .await
        .unwrap()
        .unwrap();
    let answer = auth.get(&mut cred, &ceremony.options);
    let done = t
        .broker
        .finish_second_factor_passkey(
            token.expose(),
            ceremony.ceremony.expose_secret(),
            &answer,
            &client(),
            None,
        )
        .await
        .unwrap();
    let second = active(&t, &done.session).await;
    assert_eq!(second.methods, [AuthMethod::Password, AuthMethod::Passkey]);
    assert_eq!(second.assurance, Assurance::Multi);
    assert_eq!(done.next_path.as_deref(), Some("/after"));

    // Passwordless: the passkey alone, the person verified by the authenticator.
    let ceremony = t.broker.begin_passwordless(BROWSER).await.unwrap();
    let options: serde_json::Value = serde_json::from_str(&ceremony.options).unwrap();
    assert!(options["mediation"].is_null(), "a button, not autofill: {options}");
    let answer = auth.get(&mut cred, &ceremony.options);
    let done = t
        .broker
        .finish_passwordless(BROWSER, ceremony.ceremony.expose_secret(), &answer, &client(), None)
        .await
        .unwrap();
    let alone = active(&t, &done.session).await;
    assert_eq!(alone.account_id, a.account_id);
    assert_eq!(alone.methods, [AuthMethod::Passkey, AuthMethod::UserVerified]);
    assert_eq!(alone.assurance, Assurance::Multi);
    assert!(t.broker.is_fresh(&alone) && t.broker.is_fresh_multi_factor(&alone));
    assert!(t.broker.passkeys(&a.account_id).await.unwrap()[0]
        .last_used_at
        .is_some());

    // Step-up with the passkey: the session goes on under a new id, its second factor proven now.
    t.clock.advance(700);
    let stale = active(&t, &done.session).await;
    assert!(!t.broker.is_fresh_multi_factor(&stale));
    let c = t.broker.begin_passkey_step_up(&stale).await.unwrap().unwrap();
    let answer = auth.get(&mut cred, &c.options);
    let renewed = t
        .broker
        .step_up_passkey(&stale, c.ceremony.expose_secret(), &answer, &client())
        .await
        .unwrap();
    assert!(t.broker.session(done.session.token.expose()).await.unwrap().is_none());
    let renewed = active(&t, &renewed).await;
    assert!(t.broker.is_fresh_multi_factor(&renewed));
    assert_eq!(renewed.methods, [AuthMethod::Passkey, AuthMethod::UserVerified]);

    let events = audit_kinds(&t).await;
    assert!(events.contains(&AuditKind::SecondFactorAdded), "{events:?}");
    assert_eq!(
        events.iter().filter(|k| **k == AuditKind::LoginSuccess).count(),
        5,
        "{events:?}"
    );
}

#[tokio::test]
async fn a_passkey_alone_satisfies_a_policy_that_requires_a_factor() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let auth = SoftAuthenticator::new(ORIGIN);
    let (mut cred, _) = register(&t, "ann", &auth).await;
    // The same database under a broker whose policy requires a factor of everyone.
    let required = tf_over(
        &t,
        SecondFactorSettings {
            policy: SecondFactorPolicy::Required,
            ..Default::default()
        },
    )
    .await;
    match primary(&required, "ann").await {
        LoginOutcome::SecondFactorRequired(c) => assert!(!c.enrol(), "a passkey is a factor: no enrolment"),
        other => panic!("expected the second step, got {other:?}"),
    }
    let ceremony = required.broker.begin_passwordless(BROWSER).await.unwrap();
    let answer = auth.get(&mut cred, &ceremony.options);
    let done = required
        .broker
        .finish_passwordless(BROWSER, ceremony.ceremony.expose_secret(), &answer, &client(), None)
        .await
        .unwrap();
    // Loaded under the policy (a single-factor session would be refused here).
    assert!(required
        .broker
        .session(done.session.token.expose())
        .await
        .unwrap()
        .is_some());
}

/// A second broker over the same database with other settings.
async fn tf_over(t: &Tf, settings: SecondFactorSettings) -> Tf {
    let other = tf(settings, false).await;
    let broker = vestibule::Broker::builder(t.store.clone(), "https://id.example.com")
        .source(t.broker.sources()[0].clone())
        .clock(t.clock.clone())
        .second_factor(other.broker.second_factor_settings().clone())
        .build()
        .await
        .unwrap();
    Tf {
        broker: std::sync::Arc::new(broker),
        store: t.store.clone(),
        clock: t.clock.clone(),
        dir: other.dir,
    }
}

#[tokio::test]
async fn ceremonies_are_single_use_bound_to_their_browser_and_expire() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let auth = SoftAuthenticator::new(ORIGIN);
    let (mut cred, _) = register(&t, "ann", &auth).await;
    let finish = |binding: &'static str, ceremony: String, answer: String| {
        let broker = t.broker.clone();
        async move {
            broker
                .finish_passwordless(binding, &ceremony, &answer, &client(), None)
                .await
        }
    };

    // Single use: a second, valid answer (a fresh signature, a higher counter) to a used ceremony is refused.
    let c = t.broker.begin_passwordless(BROWSER).await.unwrap();
    let id = c.ceremony.expose_secret().to_owned();
    finish(BROWSER, id.clone(), auth.get(&mut cred, &c.options))
        .await
        .unwrap();
    let again = finish(BROWSER, id, auth.get(&mut cred, &c.options)).await;
    assert!(matches!(again, Err(SecondFactorError::WrongCode { .. })), "{again:?}");

    // Bound: another browser holding the ceremony id (and a good answer) cannot finish it — and it is spent.
    let c = t.broker.begin_passwordless(BROWSER).await.unwrap();
    let id = c.ceremony.expose_secret().to_owned();
    let foreign = finish(OTHER_BROWSER, id.clone(), auth.get(&mut cred, &c.options)).await;
    assert!(
        matches!(foreign, Err(SecondFactorError::WrongCode { .. })),
        "{foreign:?}"
    );
    let spent = finish(BROWSER, id, auth.get(&mut cred, &c.options)).await;
    assert!(spent.is_err(), "a refused ceremony is gone");

    // Five minutes: just inside works, just past does not.
    let c = t.broker.begin_passwordless(BROWSER).await.unwrap();
    t.clock.advance(299);
    finish(
        BROWSER,
        c.ceremony.expose_secret().to_owned(),
        auth.get(&mut cred, &c.options),
    )
    .await
    .unwrap();
    let c = t.broker.begin_passwordless(BROWSER).await.unwrap();
    t.clock.advance(301);
    let late = finish(
        BROWSER,
        c.ceremony.expose_secret().to_owned(),
        auth.get(&mut cred, &c.options),
    )
    .await;
    assert!(matches!(late, Err(SecondFactorError::WrongCode { .. })), "{late:?}");

    // One purpose: a step-up ceremony does not finish a passwordless sign-in, even in the same browser.
    let s = {
        let c = t.broker.begin_passwordless(BROWSER).await.unwrap();
        finish(
            BROWSER,
            c.ceremony.expose_secret().to_owned(),
            auth.get(&mut cred, &c.options),
        )
        .await
        .unwrap()
        .session
    };
    let a = active(&t, &s).await;
    let c = t.broker.begin_passkey_step_up(&a).await.unwrap().unwrap();
    let wrong = t
        .broker
        .finish_passwordless(
            s.token.expose(),
            c.ceremony.expose_secret(),
            &auth.get(&mut cred, &c.options),
            &client(),
            None,
        )
        .await;
    assert!(matches!(wrong, Err(SecondFactorError::WrongCode { .. })), "{wrong:?}");
}

#[tokio::test]
async fn a_counter_that_does_not_move_forward_is_refused_and_audited() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let auth = SoftAuthenticator::new(ORIGIN);
    let (mut cred, _) = register(&t, "ann", &auth).await;
    // Two second steps under way at once (two browsers): each ceremony remembers the counter as it was when it
    // started.
    let (one, two) = (half(&t, "ann").await, half(&t, "ann").await);
    let first = t
        .broker
        .begin_passkey_second_factor(one.expose())
        .await
        .unwrap()
        .unwrap();
    let second = t
        .broker
        .begin_passkey_second_factor(two.expose())
        .await
        .unwrap()
        .unwrap();
    let answer = auth.get(&mut cred, &first.options);
    t.broker
        .finish_second_factor_passkey(one.expose(), first.ceremony.expose_secret(), &answer, &client(), None)
        .await
        .unwrap();
    // A clone of the authenticator signs with the same counter: above what the second ceremony remembered, not
    // above what is stored now.
    let cloned = auth.get_with_counter(&cred, &second.options, cred.counter);
    let refused = t
        .broker
        .finish_second_factor_passkey(two.expose(), second.ceremony.expose_secret(), &cloned, &client(), None)
        .await;
    assert!(
        matches!(refused, Err(SecondFactorError::WrongCode { .. })),
        "{refused:?}"
    );
    assert!(audit_kinds(&t).await.contains(&AuditKind::PasskeyCounterRegressed));
    // Lower still, passwordless: refused too.
    let c = t.broker.begin_passwordless(BROWSER).await.unwrap();
    let older = auth.get_with_counter(&cred, &c.options, cred.counter - 1);
    let refused = t
        .broker
        .finish_passwordless(BROWSER, c.ceremony.expose_secret(), &older, &client(), None)
        .await;
    assert!(
        matches!(refused, Err(SecondFactorError::WrongCode { .. })),
        "{refused:?}"
    );
    // The real authenticator, moving on, still works.
    passwordless(&t, &auth, &mut cred, BROWSER, BROWSER).await.unwrap();
}

#[tokio::test]
async fn passwordless_without_user_verification_is_refused() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let mut auth = SoftAuthenticator::new(ORIGIN);
    let (mut cred, _) = register(&t, "ann", &auth).await;
    auth.user_verified = false;
    let refused = passwordless(&t, &auth, &mut cred, BROWSER, BROWSER).await;
    assert!(
        matches!(refused, Err(SecondFactorError::WrongCode { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn one_accounts_passkey_cannot_finish_anothers_second_step() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let auth = SoftAuthenticator::new(ORIGIN);
    let (mut ann, _) = register(&t, "ann", &auth).await;
    let (_root, _) = register(&t, "root", &auth).await;
    // Someone with root's password and ann's passkey (their own account, say) is at root's second step.
    let root_state = half(&t, "root").await;
    let ann_state = half(&t, "ann").await;
    // Ann's passkey answering root's ceremony.
    let refused = second_step(&t, &auth, &mut ann, root_state.expose(), root_state.expose()).await;
    assert!(
        matches!(refused, Err(SecondFactorError::WrongCode { .. })),
        "{refused:?}"
    );
    // Ann's own ceremony and answer, presented with root's half-signed-in state.
    let refused = second_step(&t, &auth, &mut ann, ann_state.expose(), root_state.expose()).await;
    assert!(
        matches!(refused, Err(SecondFactorError::WrongCode { .. })),
        "{refused:?}"
    );
    let events = audit_kinds(&t).await;
    assert!(events.contains(&AuditKind::SecondFactorFailed), "{events:?}");
}

#[tokio::test]
async fn removing_passkeys_and_reset_follow_the_factor_rules() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let auth = SoftAuthenticator::new(ORIGIN);
    let (_, s) = register(&t, "ann", &auth).await;
    let a = active(&t, &s).await;
    // A second one: no new recovery codes.
    let c = t.broker.begin_passkey_registration(&a).await.unwrap();
    let (_, answer) = auth.create(&c.options);
    let added = t
        .broker
        .finish_passkey_registration(&a, c.ceremony.expose_secret(), "phone", &answer, &client())
        .await
        .unwrap();
    assert!(added.recovery_codes.is_none());
    // The same credential again: refused (WebAuthn: a credential id is registered once).
    let a = active(&t, &added.session).await;
    let c = t.broker.begin_passkey_registration(&a).await.unwrap();
    let again = t
        .broker
        .finish_passkey_registration(&a, c.ceremony.expose_secret(), "again", &answer, &client())
        .await;
    assert!(again.is_err(), "{again:?}");
    let keys = t.broker.passkeys(&a.account_id).await.unwrap();
    assert_eq!(keys.len(), 2);

    // Removing needs a second factor proven recently, as for the authenticator app.
    t.clock.advance(700);
    let stale = active(&t, &added.session).await;
    let r = t.broker.remove_passkey(&stale, &keys[0].id, &client()).await;
    assert!(matches!(r, Err(SecondFactorError::NotFresh)), "{r:?}");
    t.clock.advance(-700);
    let a = active(&t, &added.session).await;
    t.broker.remove_passkey(&a, &keys[0].id, &client()).await.unwrap();
    assert_eq!(t.broker.recovery_codes_left(&a.account_id).await.unwrap(), 10);
    // The last one takes the recovery codes with it.
    t.broker.remove_passkey(&a, &keys[1].id, &client()).await.unwrap();
    assert_eq!(t.broker.recovery_codes_left(&a.account_id).await.unwrap(), 0);
    assert!(!t.broker.has_second_factor(&a.account_id).await.unwrap());
    let r = t.broker.remove_passkey(&a, &keys[1].id, &client()).await;
    assert!(matches!(r, Err(SecondFactorError::NoFactor)), "{r:?}");

    // reset-2fa removes passkeys too.
    let (_, s) = register(&t, "ann", &auth).await;
    assert!(t.broker.reset_second_factors(&s.account_id, "cli").await.unwrap());
    assert!(t.broker.passkeys(&s.account_id).await.unwrap().is_empty());
    assert!(!t.broker.has_second_factor(&s.account_id).await.unwrap());
}

#[tokio::test]
async fn passkey_failures_are_throttled_with_the_accounts_codes() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let auth = SoftAuthenticator::new(ORIGIN);
    let (mut cred, _) = register(&t, "ann", &auth).await;
    // Six answers that fail (signed by ann's passkey, finished from another browser): counted under ann's
    // second-factor key, like wrong codes.
    for i in 1..=6 {
        let r = passwordless(&t, &auth, &mut cred, BROWSER, OTHER_BROWSER).await;
        assert!(
            matches!(r, Err(SecondFactorError::WrongCode { .. })),
            "attempt {i}: {r:?}"
        );
    }
    // Past the free failures, a right answer is held back before it is checked ...
    let held = passwordless(&t, &auth, &mut cred, BROWSER, BROWSER).await;
    assert!(matches!(held, Err(SecondFactorError::Throttled { .. })), "{held:?}");
    // ... and so is the account's second step with a passkey: one count for every second-factor check.
    let token = half(&t, "ann").await;
    let held = second_step(&t, &auth, &mut cred, token.expose(), token.expose()).await;
    assert!(matches!(held, Err(SecondFactorError::Throttled { .. })), "{held:?}");
    // Once the delay has passed, the passkey works.
    t.clock.advance(60);
    passwordless(&t, &auth, &mut cred, BROWSER, BROWSER).await.unwrap();
}
