//! The second factor at the broker: enrolment, the half-signed-in state, replay, recovery codes, failures,
//! policy, a trusted provider's MFA, and sealing at rest.

use std::sync::Arc;

use vestibule::core::storage::AuditKind;
use vestibule::{
    Assurance, AuthMethod, Broker, Credentials, LoginOutcome, SecondFactorError, SecondFactorPolicy,
    SecondFactorPrompt, SecondFactorSettings, SessionSettings, SourcePolicy,
};
use vestibule_core::{Clock, ExposeSecret, ExternalIdentity, FixedClock, SourceId, Subject, Timestamp};
use vestibule_store::Store;
use vestibule_tests::fakes::{PasswordFake, RedirectFake};
use vestibule_tests::server::TempDir;

use super::{begin_with_code_for, client, params, sqlite_store};

const T0: Timestamp = Timestamp(1_800_000_000);

pub(super) struct Tf {
    pub(super) broker: Arc<Broker>,
    pub(super) store: Store,
    pub(super) clock: Arc<FixedClock>,
    pub(super) dir: TempDir,
}

/// "ann" (password "right password", groups `staff`) and "root" (groups `admins`) at the password source `dir`;
/// one person at the redirect source `idp` whose provider says `amr: ["pwd", "mfa"]`, trusted or not.
pub(super) async fn tf(settings: SecondFactorSettings, trust_idp: bool) -> Tf {
    tf_at(settings, trust_idp, None).await
}

/// [`tf`] with the provider saying when the person authenticated there (`auth_time`).
async fn tf_at(settings: SecondFactorSettings, trust_idp: bool, auth_time: Option<Timestamp>) -> Tf {
    let (dir, store) = sqlite_store("vestibule-2fa").await;
    let clock = Arc::new(FixedClock::new(T0));
    let src = SourceId::new("dir").unwrap();
    let password = PasswordFake::new("dir")
        .user(
            "ann",
            "right password",
            ExternalIdentity::new(src.clone(), Subject::new("ann-uuid").unwrap())
                .with_login("ann")
                .with_groups(vec!["staff".into()]),
        )
        .user(
            "root",
            "right password",
            ExternalIdentity::new(src, Subject::new("root-uuid").unwrap())
                .with_login("root")
                .with_groups(vec!["admins".into()]),
        );
    let mut asserted = ExternalIdentity::new(SourceId::new("idp").unwrap(), Subject::new("idp-sub-1").unwrap())
        .with_amr(vec!["pwd".into(), "mfa".into()]);
    asserted.auth_time = auth_time;
    let idp = RedirectFake::new("idp", asserted);
    let broker = Broker::builder(store.clone(), "https://id.example.com")
        .source(Arc::new(password))
        .source_with_policy(
            Arc::new(idp),
            SourcePolicy {
                trust_upstream_mfa: trust_idp,
                ..Default::default()
            },
        )
        .clock(clock.clone())
        .settings(SessionSettings {
            idle_timeout_secs: 3000,
            absolute_timeout_secs: 7200,
            ..Default::default()
        })
        .second_factor(settings)
        .build()
        .await
        .unwrap();
    Tf {
        broker: Arc::new(broker),
        store,
        clock,
        dir,
    }
}

pub(super) async fn primary(t: &Tf, login: &str) -> LoginOutcome {
    t.broker
        .login_password(
            &SourceId::new("dir").unwrap(),
            login,
            &"right password".into(),
            &client(),
            None,
        )
        .await
        .unwrap()
}

/// Enrols a TOTP authenticator for `login` from the account page; returns its base32 key.
async fn enrol(t: &Tf, login: &str) -> String {
    let s = primary(t, login).await.session().expect("no factor yet: a session");
    let active = t.broker.session(s.token.expose()).await.unwrap().unwrap();
    let enrolment = t.broker.begin_totp(&active).await.unwrap();
    let key = enrolment.secret_base32.expose_secret().to_owned();
    assert!(enrolment.uri.expose_secret().contains(&format!("secret={key}")));
    let code = vestibule_tests::totp::code(&key, t.clock.now().0);
    t.broker.confirm_totp(&active, &code, &client()).await.unwrap();
    key
}

pub(super) async fn half(t: &Tf, login: &str) -> vestibule::SecretToken {
    match primary(t, login).await {
        LoginOutcome::SecondFactorRequired(challenge) => t
            .broker
            .hold_for_second_factor(challenge, Some("/after".into()), false)
            .await
            .unwrap(),
        other => panic!("expected the second step, got {other:?}"),
    }
}

/// A second factor required for everyone.
fn required() -> SecondFactorSettings {
    SecondFactorSettings {
        policy: SecondFactorPolicy::Required,
        ..Default::default()
    }
}

/// Signs "ann" in with her password where she must enrol, and opens the enrolment page of that half-signed-in
/// state: its token and the key shown.
async fn enrolment_at_sign_in(t: &Tf) -> (vestibule::SecretToken, String) {
    let LoginOutcome::SecondFactorRequired(challenge) = primary(t, "ann").await else {
        panic!("must enrol");
    };
    let token = t.broker.hold_for_second_factor(challenge, None, false).await.unwrap();
    let Some(SecondFactorPrompt::Enrol(e)) = t.broker.second_factor_prompt(token.expose()).await.unwrap() else {
        panic!("enrolment page");
    };
    (token, e.secret_base32.expose_secret().to_owned())
}

/// Signs the provider's person in at the redirect source `idp` (start, then the callback with the right state and
/// code).
async fn provider_sign_in(t: &Tf) -> LoginOutcome {
    let idp = SourceId::new("idp").unwrap();
    let (state, code, browser) = begin_with_code_for(&t.broker, &t.store).await;
    t.broker
        .finish_redirect(
            &idp,
            &params(Some(&state), Some(&code)),
            Some(browser.expose()),
            &client(),
            None,
            None,
        )
        .await
        .unwrap()
        .outcome
}

#[tokio::test]
async fn enrolment_needs_a_confirming_code_and_ends_other_sessions() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let first = primary(&t, "ann").await.session().unwrap();
    let second = primary(&t, "ann").await.session().unwrap();
    let active = t.broker.session(second.token.expose()).await.unwrap().unwrap();
    assert_eq!(active.assurance, Assurance::Single);
    assert_eq!(active.methods, [AuthMethod::Password]);
    // A token minted on the password alone, as someone who knew it could have before the factor was turned on.
    let minted = t
        .broker
        .create_token(&active, "ci", 30, "read", &client())
        .await
        .unwrap();
    assert!(t.broker.bearer(minted.value.expose_secret()).await.unwrap().is_some());
    let enrolment = t.broker.begin_totp(&active).await.unwrap();
    assert_eq!(format!("{enrolment:?}"), "TotpEnrolment(..)");
    let key = enrolment.secret_base32.expose_secret().to_owned();
    // Not yet a factor: signing in still needs no code.
    assert!(!t.broker.has_second_factor(&active.account_id).await.unwrap());
    let wrong = t.broker.confirm_totp(&active, "000000", &client()).await;
    assert!(matches!(wrong, Err(SecondFactorError::WrongCode { .. })), "{wrong:?}");
    let code = vestibule_tests::totp::code(&key, T0.0);
    let added = t.broker.confirm_totp(&active, &code, &client()).await.unwrap();
    assert_eq!(added.recovery_codes.0.len(), 10);
    assert!(t.broker.has_second_factor(&active.account_id).await.unwrap());
    // Every session of the account ended; the person's own goes on under a new id, multi-factor.
    assert!(t.broker.session(first.token.expose()).await.unwrap().is_none());
    assert!(t.broker.session(second.token.expose()).await.unwrap().is_none());
    // So did every access token: all were granted on the password alone.
    assert!(
        t.broker.bearer(minted.value.expose_secret()).await.unwrap().is_none(),
        "a token minted before the first factor outlived its enrolment"
    );
    let renewed = t.broker.session(added.session.token.expose()).await.unwrap().unwrap();
    assert_eq!(renewed.assurance, Assurance::Multi);
    assert_eq!(renewed.methods, [AuthMethod::Password, AuthMethod::Otp]);
    assert!(t.broker.is_fresh_multi_factor(&renewed));
    // Not fresh: no enrolment.
    t.clock.advance(700);
    let stale = t.broker.session(added.session.token.expose()).await.unwrap().unwrap();
    assert!(matches!(
        t.broker.begin_totp(&stale).await,
        Err(SecondFactorError::NotFresh)
    ));
    assert!(!t.broker.is_fresh_multi_factor(&stale));
    let events: Vec<AuditKind> = t
        .store
        .recent_audit(50)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| AuditKind::parse(&r.event))
        .collect();
    assert!(events.contains(&AuditKind::SecondFactorAdded), "{events:?}");
    assert!(events.contains(&AuditKind::SecondFactorFailed), "{events:?}");
}

#[tokio::test]
async fn the_half_signed_in_state_grants_nothing_and_a_code_makes_a_session() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let key = enrol(&t, "ann").await;
    t.clock.advance(60);
    let token = half(&t, "ann").await;
    // Not a session, however it is presented.
    assert!(t.broker.session(token.expose()).await.unwrap().is_none());
    let auth = t
        .broker
        .authenticate(&Credentials {
            session: Some(token.expose()),
            remember: Some(token.expose()),
            ..Default::default()
        })
        .await;
    assert!(auth.principal.is_none());
    assert!(matches!(
        t.broker.second_factor_prompt(token.expose()).await.unwrap(),
        Some(SecondFactorPrompt::Code)
    ));
    let code = vestibule_tests::totp::code(&key, t.clock.now().0);
    let done = t
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await
        .unwrap();
    assert_eq!(done.next_path.as_deref(), Some("/after"));
    assert!(done.recovery_codes.is_none() && done.remember.is_none());
    let s = t.broker.session(done.session.token.expose()).await.unwrap().unwrap();
    assert_eq!(s.methods, [AuthMethod::Password, AuthMethod::Otp]);
    assert_eq!(s.assurance, Assurance::Multi);
    assert_eq!(s.second_factor_at, t.clock.now());
    // Single use: the state is gone.
    let again = t
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await;
    assert!(matches!(again, Err(SecondFactorError::Expired)), "{again:?}");
    assert!(t.broker.second_factor_prompt(token.expose()).await.unwrap().is_none());

    // The same code in its step, for a new sign-in: replay, refused.
    let token = half(&t, "ann").await;
    let replay = t
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await;
    assert!(
        matches!(replay, Err(SecondFactorError::WrongCode { discarded: false })),
        "{replay:?}"
    );
    // The next step's code works.
    t.clock.advance(30);
    let next = vestibule_tests::totp::code(&key, t.clock.now().0);
    assert!(t
        .broker
        .finish_second_factor(token.expose(), &next, &client(), None)
        .await
        .is_ok());

    // The state expires.
    let token = half(&t, "ann").await;
    t.clock.advance(301);
    let code = vestibule_tests::totp::code(&key, t.clock.now().0);
    let late = t
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await;
    assert!(matches!(late, Err(SecondFactorError::Expired)), "{late:?}");
}

#[tokio::test]
async fn recovery_codes_work_once_and_regenerating_revokes_them() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let s = primary(&t, "ann").await.session().unwrap();
    let active = t.broker.session(s.token.expose()).await.unwrap().unwrap();
    let key = t
        .broker
        .begin_totp(&active)
        .await
        .unwrap()
        .secret_base32
        .expose_secret()
        .to_owned();
    let added = t
        .broker
        .confirm_totp(&active, &vestibule_tests::totp::code(&key, T0.0), &client())
        .await
        .unwrap();
    let codes: Vec<String> = added
        .recovery_codes
        .0
        .iter()
        .map(|c| c.expose_secret().to_owned())
        .collect();
    assert_eq!(format!("{:?}", added.recovery_codes), "RecoveryCodes(10 codes)");

    let token = half(&t, "ann").await;
    // Typed in upper case with spaces: still the code.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let done = t
        .broker
        .finish_second_factor(token.expose(), &typed, &client(), None)
        .await
        .unwrap();
    let s = t.broker.session(done.session.token.expose()).await.unwrap().unwrap();
    assert_eq!(s.methods, [AuthMethod::Password, AuthMethod::RecoveryCode]);
    assert_eq!(t.broker.recovery_codes_left(&s.account_id).await.unwrap(), 9);
    // Used once: never again.
    let token = half(&t, "ann").await;
    let reused = t
        .broker
        .finish_second_factor(token.expose(), &codes[0], &client(), None)
        .await;
    assert!(matches!(reused, Err(SecondFactorError::WrongCode { .. })), "{reused:?}");

    // Regenerating (fresh session) revokes the old set.
    let fresh = t.broker.session(added.session.token.expose()).await.unwrap();
    assert!(
        fresh.is_none(),
        "using a recovery code ended the account's other sessions"
    );
    let renewed = t.broker.regenerate_recovery_codes(&s, &client()).await.unwrap();
    let token = half(&t, "ann").await;
    let old = t
        .broker
        .finish_second_factor(token.expose(), &codes[1], &client(), None)
        .await;
    assert!(matches!(old, Err(SecondFactorError::WrongCode { .. })), "{old:?}");
    let new = renewed.0[0].expose_secret().to_owned();
    assert!(t
        .broker
        .finish_second_factor(token.expose(), &new, &client(), None)
        .await
        .is_ok());
}

#[tokio::test]
async fn wrong_codes_discard_the_state_and_are_throttled_per_account() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let key = enrol(&t, "ann").await;
    t.clock.advance(60);
    let token = half(&t, "ann").await;
    for i in 1..=5 {
        let r = t
            .broker
            .finish_second_factor(token.expose(), "123456", &client(), None)
            .await;
        assert!(
            matches!(r, Err(SecondFactorError::WrongCode { discarded }) if discarded == (i == 5)),
            "attempt {i}: {r:?}"
        );
    }
    let code = vestibule_tests::totp::code(&key, t.clock.now().0);
    let gone = t
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await;
    assert!(matches!(gone, Err(SecondFactorError::Expired)), "{gone:?}");
    // A new sign-in does not reset the account's count: past the limiter's free failures (5 from one address),
    // the next code is held back before it is checked, right or wrong.
    let token = half(&t, "ann").await;
    let sixth = t
        .broker
        .finish_second_factor(token.expose(), "123456", &client(), None)
        .await;
    assert!(
        matches!(sixth, Err(SecondFactorError::WrongCode { discarded: false })),
        "{sixth:?}"
    );
    let held = t
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await;
    assert!(matches!(held, Err(SecondFactorError::Throttled { .. })), "{held:?}");
    // Once the delay has passed, the right code works.
    t.clock.advance(30);
    let code = vestibule_tests::totp::code(&key, t.clock.now().0);
    assert!(t
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await
        .is_ok());
}

/// Someone who knows the password sends many codes at once with one half-signed-in state: each attempt is counted
/// before its code is looked at, and the account's codes are checked in turn, so no more codes are checked than the
/// allowances permit (without both, all thirty were checked: every one passed the limiter's look before the first
/// failure was counted).
#[tokio::test]
async fn codes_sent_at_once_cannot_outnumber_the_allowance() {
    let t = tf(SecondFactorSettings::default(), false).await;
    enrol(&t, "ann").await;
    t.clock.advance(60);
    let token = half(&t, "ann").await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (broker, token) = (t.broker.clone(), token.expose().to_owned());
        tasks.push(tokio::spawn(async move {
            broker
                .finish_second_factor(&token, &format!("{:06}", 100_000 + i), &client(), None)
                .await
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    let checked = t
        .store
        .recent_audit(200)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "second_factor_failed")
        .count();
    assert!((1..=5).contains(&checked), "{checked} codes were checked");
}

#[tokio::test]
async fn policy_sends_members_of_required_groups_to_enrolment() {
    let t = tf(
        SecondFactorSettings {
            policy: SecondFactorPolicy::RequiredForGroups,
            groups: vec!["admins".into()],
            ..Default::default()
        },
        false,
    )
    .await;
    // Not in the group: signed in as before.
    assert!(primary(&t, "ann").await.session().is_some());
    let LoginOutcome::SecondFactorRequired(challenge) = primary(&t, "root").await else {
        panic!("an admin without a factor must enrol");
    };
    assert!(challenge.enrol());
    let token = t.broker.hold_for_second_factor(challenge, None, true).await.unwrap();
    let Some(SecondFactorPrompt::Enrol(e)) = t.broker.second_factor_prompt(token.expose()).await.unwrap() else {
        panic!("enrolment page");
    };
    let key = e.secret_base32.expose_secret().to_owned();
    // Reloading the page shows the same key (the app already scanned it).
    let Some(SecondFactorPrompt::Enrol(again)) = t.broker.second_factor_prompt(token.expose()).await.unwrap() else {
        panic!("enrolment page");
    };
    assert_eq!(again.secret_base32.expose_secret(), key);
    let done = t
        .broker
        .finish_second_factor(
            token.expose(),
            &vestibule_tests::totp::code(&key, T0.0),
            &client(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(done.recovery_codes.map(|c| c.0.len()), Some(10));
    assert!(done.remember.is_some(), "remember me asked for at the primary proof");
    let s = t.broker.session(done.session.token.expose()).await.unwrap().unwrap();
    assert_eq!(s.assurance, Assurance::Multi);
    // From now on, a code.
    t.clock.advance(30);
    let token = half(&t, "root").await;
    assert!(matches!(
        t.broker.second_factor_prompt(token.expose()).await.unwrap(),
        Some(SecondFactorPrompt::Code)
    ));
}

/// Someone who knows the password of an account that must enrol opens the enrolment page and leaves, keeping the
/// secret it showed. When the owner signs in later, a new secret is made for them: the one left behind is not
/// shown again (it was, before: the owner would have enrolled the other person's authenticator).
#[tokio::test]
async fn a_secret_left_by_an_earlier_sign_in_is_not_the_one_enrolled() {
    let t = tf(required(), false).await;
    let (_, planted) = enrolment_at_sign_in(&t).await;
    t.clock.advance(3600);
    let (token, key) = enrolment_at_sign_in(&t).await;
    assert_ne!(key, planted, "the owner gets a secret of their own");
    // The planted secret's codes do not confirm the owner's enrolment.
    let r = t
        .broker
        .finish_second_factor(
            token.expose(),
            &vestibule_tests::totp::code(&planted, t.clock.now().0),
            &client(),
            None,
        )
        .await;
    assert!(r.is_err(), "{r:?}");
}

/// The owner starts enrolling from the account page; someone else signed in with the same password (a session
/// of the same account) can neither read the secret under way (the page shown again after a wrong code) nor
/// confirm it. The same at sign-in, for two half-signed-in states at the same time: the earlier, timing-based rule
/// let the second see the first's secret.
#[tokio::test]
async fn a_secret_under_way_belongs_to_the_sign_in_that_began_it() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let owner = primary(&t, "ann").await.session().unwrap();
    let owner = t.broker.session(owner.token.expose()).await.unwrap().unwrap();
    let thief = primary(&t, "ann").await.session().unwrap();
    let thief = t.broker.session(thief.token.expose()).await.unwrap().unwrap();
    let key = t
        .broker
        .begin_totp(&owner)
        .await
        .unwrap()
        .secret_base32
        .expose_secret()
        .to_owned();
    assert!(
        t.broker.totp_under_way(&thief).await.unwrap().is_none(),
        "shown to another session"
    );
    let code = vestibule_tests::totp::code(&key, T0.0);
    let r = t.broker.confirm_totp(&thief, &code, &client()).await;
    assert!(matches!(r, Err(SecondFactorError::NoFactor)), "{r:?}");
    assert!(!t.broker.has_second_factor(&owner.account_id).await.unwrap());
    // The owner's own session sees it again and confirms it.
    let again = t
        .broker
        .totp_under_way(&owner)
        .await
        .unwrap()
        .expect("the owner's enrolment");
    assert_eq!(again.secret_base32.expose_secret(), key);
    t.broker.confirm_totp(&owner, &code, &client()).await.unwrap();

    // At sign-in, with a factor required: two half-signed-in states of one account at once.
    let t = tf(required(), false).await;
    let (owner, owners_key) = enrolment_at_sign_in(&t).await;
    t.clock.advance(5);
    let (_thief, thiefs_key) = enrolment_at_sign_in(&t).await;
    assert_ne!(
        thiefs_key, owners_key,
        "the second state was shown the first one's secret"
    );
    // The second state replaced the unconfirmed secret; the owner's page then gets a new one of its own, never
    // the thief's.
    let Some(SecondFactorPrompt::Enrol(e)) = t.broker.second_factor_prompt(owner.expose()).await.unwrap() else {
        panic!("enrolment page");
    };
    let key = e.secret_base32.expose_secret().to_owned();
    assert_ne!(key, thiefs_key, "the owner was shown the thief's secret");
    let r = t
        .broker
        .finish_second_factor(
            owner.expose(),
            &vestibule_tests::totp::code(&key, t.clock.now().0),
            &client(),
            None,
        )
        .await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn a_providers_mfa_counts_only_where_trusted() {
    let required = SecondFactorSettings {
        policy: SecondFactorPolicy::Required,
        ..Default::default()
    };
    for trusted in [true, false] {
        let t = tf(required.clone(), trusted).await;
        let outcome = provider_sign_in(&t).await;
        match outcome {
            LoginOutcome::SignedIn(s) if trusted => {
                let s = t.broker.session(s.token.expose()).await.unwrap().unwrap();
                assert_eq!(s.methods, [AuthMethod::Federated, AuthMethod::UpstreamMfa]);
                assert_eq!(s.assurance, Assurance::Multi);
            }
            LoginOutcome::SecondFactorRequired(c) if !trusted => assert!(c.enrol()),
            other => panic!("trusted={trusted}: {other:?}"),
        }
    }
}

/// A trusted provider's MFA is proven when the provider says the person authenticated (`auth_time`), not at the
/// callback: a single sign-on answer from an old login makes a multi-factor session that a step-up check still
/// refuses. Without `auth_time` the time is unknown and step-up refuses too; a future `auth_time` (a clock ahead
/// of ours) counts as now.
#[tokio::test]
async fn a_providers_mfa_is_as_fresh_as_its_auth_time() {
    let cases = [
        (Some(T0.plus_secs(-2 * 3600)), false, Some(T0.plus_secs(-2 * 3600))),
        (Some(T0.plus_secs(-10)), true, Some(T0.plus_secs(-10))),
        (Some(T0.plus_secs(600)), true, Some(T0)),
        (None, false, None),
    ];
    for (auth_time, fresh, recorded) in cases {
        let t = tf_at(SecondFactorSettings::default(), true, auth_time).await;
        let outcome = provider_sign_in(&t).await;
        let s = outcome.session().expect("trusted MFA: signed in");
        let s = t.broker.session(s.token.expose()).await.unwrap().unwrap();
        assert_eq!(s.assurance, Assurance::Multi, "{auth_time:?}");
        assert_eq!(t.broker.is_fresh_multi_factor(&s), fresh, "{auth_time:?}");
        assert_eq!(Some(s.second_factor_at).filter(|t| t.0 != 0), recorded, "{auth_time:?}");
    }
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let key = enrol(&t, "ann").await;
    t.store.close().await;
    let bytes = vestibule_tests::server::files_bytes(&t.dir.0);
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(!haystack.contains(&key), "the base32 key is in the database files");
    assert!(!haystack.contains(&key.to_lowercase()));
    let raw = totp_bytes(&key);
    assert!(
        !bytes.windows(raw.len()).any(|w| w == raw),
        "the raw key is in the database files"
    );
}

fn totp_bytes(base32: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in base32.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

#[tokio::test]
async fn step_up_and_removal_and_reset() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let key = enrol(&t, "ann").await;
    t.clock.advance(30);
    let token = half(&t, "ann").await;
    let code = vestibule_tests::totp::code(&key, t.clock.now().0);
    let done = t
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await
        .unwrap();
    let s = t.broker.session(done.session.token.expose()).await.unwrap().unwrap();
    t.clock.advance(1200);
    let s_later = t.broker.session(done.session.token.expose()).await.unwrap().unwrap();
    assert!(!t.broker.is_fresh_multi_factor(&s_later));
    let code = vestibule_tests::totp::code(&key, t.clock.now().0);
    let stepped = t.broker.step_up(&s_later, &code, &client()).await.unwrap();
    assert!(
        t.broker.session(done.session.token.expose()).await.unwrap().is_none(),
        "old id ended"
    );
    let s2 = t.broker.session(stepped.token.expose()).await.unwrap().unwrap();
    assert!(t.broker.is_fresh_multi_factor(&s2));
    drop(s);
    // Removing needs a fresh sign-in; this one proved its password long ago.
    assert!(matches!(
        t.broker.remove_totp(&s2, &client()).await,
        Err(SecondFactorError::NotFresh)
    ));
    // The operator's reset removes every factor and ends the sessions.
    assert!(t.broker.reset_second_factors(&s2.account_id, "cli").await.unwrap());
    assert!(!t.broker.has_second_factor(&s2.account_id).await.unwrap());
    assert!(t.broker.session(stepped.token.expose()).await.unwrap().is_none());
    assert!(primary(&t, "ann").await.session().is_some(), "no code asked any more");
}

/// A step-up with a recovery code ends the account's other sessions, as the same code at sign-in does, and every
/// successful step-up is audited.
#[tokio::test]
async fn a_recovery_code_at_step_up_ends_other_sessions_and_is_audited() {
    let t = tf(SecondFactorSettings::default(), false).await;
    let s = primary(&t, "ann").await.session().unwrap();
    let active = t.broker.session(s.token.expose()).await.unwrap().unwrap();
    let key = t
        .broker
        .begin_totp(&active)
        .await
        .unwrap()
        .secret_base32
        .expose_secret()
        .to_owned();
    let added = t
        .broker
        .confirm_totp(&active, &vestibule_tests::totp::code(&key, T0.0), &client())
        .await
        .unwrap();
    let code = added.recovery_codes.0[0].expose_secret().to_owned();
    t.clock.advance(60);
    let other = t
        .broker
        .finish_second_factor(
            half(&t, "ann").await.expose(),
            &vestibule_tests::totp::code(&key, t.clock.now().0),
            &client(),
            None,
        )
        .await
        .unwrap();
    let mine = t.broker.session(added.session.token.expose()).await.unwrap().unwrap();
    // A token minted before: whoever holds a lost device may have made it.
    let token = t.broker.create_token(&mine, "api", 1, "read", &client()).await.unwrap();
    let bearer = |value: String| {
        let broker = t.broker.clone();
        async move {
            broker
                .authenticate(&vestibule::Credentials {
                    bearer: Some(&value),
                    ..Default::default()
                })
                .await
                .principal
                .is_some()
        }
    };
    assert!(bearer(token.value.expose_secret().to_owned()).await);
    let stepped = t.broker.step_up(&mine, &code, &client()).await.unwrap();
    assert!(
        !bearer(token.value.expose_secret().to_owned()).await,
        "a recovery code ends the account's tokens too"
    );
    assert!(t.broker.session(stepped.token.expose()).await.unwrap().is_some());
    assert!(
        t.broker.session(other.session.token.expose()).await.unwrap().is_none(),
        "the other session ended"
    );
    let audit = t.store.recent_audit(50).await.unwrap();
    assert!(audit
        .iter()
        .any(|r| r.event == "login_success" && r.detail.as_deref() == Some("step-up: recovery")));
}

#[tokio::test]
async fn single_factor_sessions_and_series_end_when_policy_requires_a_factor() {
    // Before the policy: root has a password session and a remember-me series.
    let before = tf(SecondFactorSettings::default(), false).await;
    let s = primary(&before, "root").await.session().unwrap();
    let series = before.broker.remember(&s).await.unwrap();
    let account = s.account_id.clone();
    let active = before.broker.session(s.token.expose()).await.unwrap().unwrap();
    // And a personal access token minted by that password-only session.
    let token = before
        .broker
        .create_token(&active, "ci", 30, "read", &client())
        .await
        .unwrap();
    assert!(before
        .broker
        .bearer(token.value.expose_secret())
        .await
        .unwrap()
        .is_some());
    // The same database under a broker that requires a factor of admins.
    let required = Broker::builder(before.store.clone(), "https://id.example.com")
        .source(Arc::new(PasswordFake::new("dir")))
        .clock(before.clock.clone())
        .second_factor(SecondFactorSettings {
            policy: SecondFactorPolicy::RequiredForGroups,
            groups: vec!["admins".into()],
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    assert!(required.session(s.token.expose()).await.unwrap().is_none());
    assert!(
        before.store.sessions_of(&account).await.unwrap().is_empty(),
        "ended, not just refused"
    );
    let restored = required.restore(series.expose_secret(), &client()).await.unwrap();
    assert!(matches!(restored, vestibule::Restored::Invalid), "{restored:?}");
    // Under the old broker too, the series is gone.
    let gone = before.broker.restore(series.expose_secret(), &client()).await.unwrap();
    assert!(matches!(gone, vestibule::Restored::Invalid), "{gone:?}");
    // The token ends like the session that minted it.
    assert!(required.bearer(token.value.expose_secret()).await.unwrap().is_none());
    assert!(
        before.store.tokens_of(&account).await.unwrap().is_empty(),
        "ended, not just refused"
    );
    // Not an admin: nothing changes for ann, whose token lives on.
    let ann = primary(&before, "ann").await.session().unwrap();
    assert!(required.session(ann.token.expose()).await.unwrap().is_some());
    let ann = before.broker.session(ann.token.expose()).await.unwrap().unwrap();
    let ann_token = before
        .broker
        .create_token(&ann, "ci", 30, "read", &client())
        .await
        .unwrap();
    assert!(required
        .bearer(ann_token.value.expose_secret())
        .await
        .unwrap()
        .is_some());
    // A token root mints once proven with a second factor works under the policy.
    let root = primary(&before, "root").await.session().unwrap();
    let root = before.broker.session(root.token.expose()).await.unwrap().unwrap();
    let key = before.broker.begin_totp(&root).await.unwrap().secret_base32;
    let code = vestibule_tests::totp::code(key.expose_secret(), before.clock.now().0);
    let added = before.broker.confirm_totp(&root, &code, &client()).await.unwrap();
    let multi = before
        .broker
        .session(added.session.token.expose())
        .await
        .unwrap()
        .unwrap();
    let multi_token = before
        .broker
        .create_token(&multi, "ci", 30, "read", &client())
        .await
        .unwrap();
    assert!(required
        .bearer(multi_token.value.expose_secret())
        .await
        .unwrap()
        .is_some());
}
