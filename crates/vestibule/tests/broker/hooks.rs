//! The app's hooks: each stored change is told once, with the right ids, from every path that makes it; the
//! `after_sign_in` gate refuses before any session exists, audited, and only after the second step when one is due.

use std::sync::{Arc, Mutex};

use vestibule::core::storage::NewLocalAccount;
use vestibule::{
    AccountView, Broker, BrokerHooks, HookError, HookRefusal, LoginError, LoginOutcome, SecondFactorError,
    SessionSettings,
};
use vestibule_core::{AccountId, Clock, ExposeSecret, ExternalIdentity, FixedClock, SourceId, Subject, Timestamp};
use vestibule_store::Store;
use vestibule_tests::fakes::{PasswordFake, RedirectFake};
use vestibule_tests::server::TempDir;

use super::{ann_at, client, params, sqlite_store, state_and_code};

const T0: Timestamp = Timestamp(1_800_000_000);

/// What a hook was called with, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Created(String, Vec<String>),
    Linked(String, String, String),
    Unlinked(String, String, String),
    Disabled(String),
    Enabled(String),
    Deleted(String),
    SignIn(String, String),
}

/// Records every call; refuses the sign-ins of `refuse` (an account id, once known); fails every notification
/// when `fail` is set.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
    refuse: Mutex<Option<String>>,
    fail: bool,
}

impl Recorder {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn push(&self, c: Call) -> Result<(), HookError> {
        self.calls.lock().unwrap().push(c);
        if self.fail {
            return Err("the app's database is down".into());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl BrokerHooks for Recorder {
    async fn account_created(&self, account: &AccountView) -> Result<(), HookError> {
        let ids = account
            .identities
            .iter()
            .map(|i| format!("{}:{}", i.source, i.subject))
            .collect();
        self.push(Call::Created(account.id.to_string(), ids))
    }
    async fn identity_linked(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<(), HookError> {
        self.push(Call::Linked(
            account.to_string(),
            source.to_string(),
            subject.to_string(),
        ))
    }
    async fn identity_unlinked(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<(), HookError> {
        self.push(Call::Unlinked(
            account.to_string(),
            source.to_string(),
            subject.to_string(),
        ))
    }
    async fn account_disabled(&self, account: &AccountId) -> Result<(), HookError> {
        self.push(Call::Disabled(account.to_string()))
    }
    async fn account_enabled(&self, account: &AccountId) -> Result<(), HookError> {
        self.push(Call::Enabled(account.to_string()))
    }
    async fn account_deleted(&self, account: &AccountId) -> Result<(), HookError> {
        self.push(Call::Deleted(account.to_string()))
    }
    async fn after_sign_in(&self, account: &AccountView, source: &SourceId) -> Result<(), HookRefusal> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::SignIn(account.id.to_string(), source.to_string()));
        if self.refuse.lock().unwrap().as_deref() == Some(account.id.as_str()) {
            return Err(HookRefusal::new("Your trial has ended."));
        }
        Ok(())
    }
}

struct Hooked {
    broker: Arc<Broker>,
    store: Store,
    clock: Arc<FixedClock>,
    hooks: Arc<Recorder>,
    _dir: TempDir,
}

/// "ann" at the password source `dir`, one person at the redirect source `idp`, and `hooks` registered.
async fn hooked(hooks: Recorder) -> Hooked {
    let (dir, store) = sqlite_store("vestibule-hooks").await;
    let clock = Arc::new(FixedClock::new(T0));
    let password = PasswordFake::new("dir").user(
        "ann",
        "right password",
        ExternalIdentity::new(SourceId::new("dir").unwrap(), Subject::new("ann-uuid").unwrap()).with_login("ann"),
    );
    let idp = RedirectFake::new(
        "idp",
        ExternalIdentity::new(SourceId::new("idp").unwrap(), Subject::new("idp-sub-1").unwrap()),
    );
    let hooks = Arc::new(hooks);
    let broker = Broker::builder(store.clone(), "https://id.example.com/auth")
        .source(Arc::new(password))
        .source(Arc::new(idp))
        .clock(clock.clone())
        .settings(SessionSettings {
            idle_timeout_secs: 3000,
            absolute_timeout_secs: 7200,
            ..Default::default()
        })
        .hooks(hooks.clone())
        .build()
        .await
        .unwrap();
    Hooked {
        broker: Arc::new(broker),
        store,
        clock,
        hooks,
        _dir: dir,
    }
}

async fn ann(h: &Hooked) -> Result<LoginOutcome, LoginError> {
    ann_at(&h.broker).await
}

/// The callback of a flow at `idp` begun by `begin` (the fake provider's code is the stored nonce).
async fn finish_at_idp(
    h: &Hooked,
    begin: vestibule::RedirectBegin,
    current: Option<&vestibule::ActiveSession>,
) -> LoginOutcome {
    let idp = SourceId::new("idp").unwrap();
    let (state, code) = state_and_code(&h.store, &begin).await;
    h.broker
        .finish_redirect(
            &idp,
            &params(Some(&state), Some(&code)),
            Some(begin.browser_token.expose()),
            &client(),
            None,
            current,
        )
        .await
        .unwrap()
        .outcome
}

/// Ann's password, where a second step is due: the half-signed-in state's token.
async fn half(h: &Hooked) -> vestibule::SecretToken {
    let outcome = ann(h).await.unwrap();
    let LoginOutcome::SecondFactorRequired(challenge) = outcome else {
        panic!("a second step is due: {outcome:?}");
    };
    h.broker.hold_for_second_factor(challenge, None, false).await.unwrap()
}

#[tokio::test]
async fn each_change_is_told_once_with_its_ids_on_every_path() {
    let h = hooked(Recorder::default()).await;
    let (dir, idp) = ("dir".to_owned(), "idp".to_owned());

    // A first sign-in creates the account (told once, with its first identity), then passes the gate.
    let s = ann(&h).await.unwrap().session().unwrap();
    let a = s.account_id.to_string();
    assert_eq!(
        h.hooks.take(),
        [
            Call::Created(a.clone(), vec!["dir:ann-uuid".into()]),
            Call::SignIn(a.clone(), dir.clone())
        ]
    );
    // A later sign-in creates nothing.
    ann(&h).await.unwrap().session().unwrap();
    assert_eq!(h.hooks.take(), [Call::SignIn(a.clone(), dir.clone())]);

    // Adding a provider from the account page: linked, and no sign-in (no new session).
    let active = h.broker.session(s.token.expose()).await.unwrap().unwrap();
    let begin = h
        .broker
        .start_link_redirect(&SourceId::new("idp").unwrap(), &active)
        .await
        .unwrap();
    let outcome = finish_at_idp(&h, begin, Some(&active)).await;
    assert!(matches!(outcome, LoginOutcome::Linked { .. }), "{outcome:?}");
    assert_eq!(
        h.hooks.take(),
        [Call::Linked(a.clone(), idp.clone(), "idp-sub-1".into())]
    );
    // Signing in through it finds the account: the gate only.
    let begin = h
        .broker
        .start_redirect(&SourceId::new("idp").unwrap(), None)
        .await
        .unwrap();
    finish_at_idp(&h, begin, None).await.session().unwrap();
    assert_eq!(h.hooks.take(), [Call::SignIn(a.clone(), idp.clone())]);

    // Its owner removes it again.
    h.broker.unlink(&active, "idp", "idp-sub-1", &client()).await.unwrap();
    assert_eq!(
        h.hooks.take(),
        [Call::Unlinked(a.clone(), idp.clone(), "idp-sub-1".into())]
    );
    // A refused unlink (the last way in) tells nothing.
    assert!(h.broker.unlink(&active, "dir", "ann-uuid", &client()).await.is_err());
    assert_eq!(h.hooks.take(), []);

    // The operator's paths (the CLI and the admin API go through these).
    let local = h
        .broker
        .create_local_account(
            &NewLocalAccount {
                source: SourceId::new("local").unwrap(),
                username: "bob".into(),
                display_name: None,
                email: None,
                email_verified: false,
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
                    .into(),
            },
            "test",
        )
        .await
        .unwrap();
    let b = local.to_string();
    assert_eq!(h.hooks.take(), [Call::Created(b.clone(), vec![format!("local:{b}")])]);
    let aid = s.account_id.clone();
    h.broker
        .set_account_disabled_by_operator(&aid, true, "test")
        .await
        .unwrap();
    h.broker
        .set_account_disabled_by_operator(&aid, false, "test")
        .await
        .unwrap();
    assert_eq!(h.hooks.take(), [Call::Disabled(a.clone()), Call::Enabled(a.clone())]);
    // An account that does not exist is not told about.
    let ghost = AccountId::new("no-such-account").unwrap();
    assert_eq!(
        h.broker
            .set_account_disabled_by_operator(&ghost, true, "test")
            .await
            .unwrap(),
        None
    );
    assert_eq!(h.hooks.take(), []);

    // Linked again through the provider's page, so the operator has a second identity to remove.
    let active = h
        .broker
        .session(ann(&h).await.unwrap().session().unwrap().token.expose())
        .await
        .unwrap()
        .unwrap();
    let begin = h
        .broker
        .start_link_redirect(&SourceId::new("idp").unwrap(), &active)
        .await
        .unwrap();
    finish_at_idp(&h, begin, Some(&active)).await;
    h.hooks.take();
    h.broker
        .unlink_identity_by_operator(&aid, "idp", "idp-sub-1", "test")
        .await
        .unwrap();
    assert_eq!(h.hooks.take(), [Call::Unlinked(a.clone(), idp, "idp-sub-1".into())]);
    h.broker.delete_account(&aid, "test").await.unwrap();
    assert_eq!(h.hooks.take(), [Call::Deleted(a.clone())]);
    assert!(h.broker.delete_account(&aid, "test").await.is_err());
    assert_eq!(h.hooks.take(), []);
}

#[tokio::test]
async fn a_failing_notification_hook_never_undoes_the_change() {
    let h = hooked(Recorder {
        fail: true,
        ..Default::default()
    })
    .await;
    let s = ann(&h).await.unwrap().session().unwrap();
    assert!(matches!(h.hooks.take()[0], Call::Created(..)), "the hook was asked");
    assert!(
        h.broker.account_view(&s.account_id).await.unwrap().is_some(),
        "the account stands"
    );
    assert!(
        h.broker.session(s.token.expose()).await.unwrap().is_some(),
        "so does the sign-in"
    );
    h.broker.delete_account(&s.account_id, "test").await.unwrap();
    assert_eq!(h.hooks.take(), [Call::Deleted(s.account_id.to_string())]);
    assert!(
        h.broker.account_view(&s.account_id).await.unwrap().is_none(),
        "deleted all the same"
    );
}

#[tokio::test]
async fn a_refused_sign_in_gets_no_session_and_is_audited() {
    let h = hooked(Recorder::default()).await;
    // Weakened first: without a refusal the same sign-in gets its session.
    let first = ann(&h).await.unwrap().session().unwrap();
    let account = first.account_id.clone();
    h.broker.logout(first.token.expose(), &client()).await.unwrap();
    assert!(h.store.sessions_of(&account).await.unwrap().is_empty());
    *h.hooks.refuse.lock().unwrap() = Some(account.to_string());

    let r = ann(&h).await;
    let Err(LoginError::Refused(refusal)) = r else {
        panic!("refused by the hook: {r:?}");
    };
    assert_eq!(refusal.message(), "Your trial has ended.");
    assert!(
        h.store.sessions_of(&account).await.unwrap().is_empty(),
        "no session was issued"
    );
    let audit = h.store.recent_audit(50).await.unwrap();
    let last = &audit[0];
    assert_eq!(last.event, "login_failure");
    assert_eq!(last.account_id.as_deref(), Some(account.as_str()));
    assert_eq!(last.source.as_deref(), Some("dir"));
    assert_eq!(
        last.detail.as_deref(),
        Some("refused_by_app_hook: Your trial has ended.")
    );
    let successes = audit.iter().filter(|r| r.event == "login_success").count();
    assert_eq!(successes, 1, "only the first, unrefused sign-in is a success");
}

#[tokio::test]
async fn the_gate_runs_only_after_the_second_step() {
    let h = hooked(Recorder::default()).await;
    // Ann enrols an authenticator from her account page.
    let s = ann(&h).await.unwrap().session().unwrap();
    let account = s.account_id.clone();
    let active = h.broker.session(s.token.expose()).await.unwrap().unwrap();
    let enrolment = h.broker.begin_totp(&active).await.unwrap();
    let key = enrolment.secret_base32.expose_secret().to_owned();
    let code = vestibule_tests::totp::code(&key, h.clock.now().0);
    h.broker.confirm_totp(&active, &code, &client()).await.unwrap();
    h.hooks.take();

    // The password alone: the gate is not asked yet.
    let token = half(&h).await;
    assert_eq!(h.hooks.take(), [], "not asked after the first step");
    h.clock.advance(30);
    let code = vestibule_tests::totp::code(&key, h.clock.now().0);
    let done = h
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await
        .unwrap();
    assert_eq!(h.hooks.take(), [Call::SignIn(account.to_string(), "dir".into())]);
    assert!(h.broker.session(done.session.token.expose()).await.unwrap().is_some());

    // Refused after the second step: no session, audited.
    *h.hooks.refuse.lock().unwrap() = Some(account.to_string());
    let before = h.store.sessions_of(&account).await.unwrap().len();
    let token = half(&h).await;
    assert_eq!(h.hooks.take(), []);
    h.clock.advance(30);
    let code = vestibule_tests::totp::code(&key, h.clock.now().0);
    let r = h
        .broker
        .finish_second_factor(token.expose(), &code, &client(), None)
        .await;
    assert!(matches!(r, Err(SecondFactorError::Refused(_))), "{r:?}");
    assert_eq!(h.hooks.take(), [Call::SignIn(account.to_string(), "dir".into())]);
    assert_eq!(
        h.store.sessions_of(&account).await.unwrap().len(),
        before,
        "no new session"
    );
    let audit = h.store.recent_audit(1).await.unwrap();
    assert_eq!(audit[0].event, "login_failure");
    assert!(audit[0].detail.as_deref().unwrap().starts_with("refused_by_app_hook"));
}

/// A passwordless sign-in with a passkey is a sign-in too: the gate is asked (with the source of the account's
/// identity it signs in under), and a refusal leaves no session and is audited.
#[tokio::test]
async fn the_gate_runs_on_a_passwordless_passkey_sign_in() {
    use vestibule_tests::passkey::SoftAuthenticator;
    const BROWSER: &str = "browser-binding-of-the-person-signing-in-00";
    let h = hooked(Recorder::default()).await;
    let auth = SoftAuthenticator::new("https://id.example.com");
    // Ann registers a passkey from her account page.
    let s = ann(&h).await.unwrap().session().unwrap();
    let account = s.account_id.clone();
    let active = h.broker.session(s.token.expose()).await.unwrap().unwrap();
    let challenge = h.broker.begin_passkey_registration(&active).await.unwrap();
    let (mut cred, answer) = auth.create(&challenge.options);
    h.broker
        .finish_passkey_registration(
            &active,
            challenge.ceremony.expose_secret(),
            "laptop",
            &answer,
            &client(),
        )
        .await
        .unwrap();
    h.hooks.take();
    let mut passwordless = async || {
        let c = h.broker.begin_passwordless(BROWSER).await.unwrap();
        let answer = auth.get(&mut cred, &c.options);
        h.broker
            .finish_passwordless(BROWSER, c.ceremony.expose_secret(), &answer, &client(), None)
            .await
    };

    // Weakened first: without a refusal the passkey alone signs in, and the gate was asked.
    let done = passwordless().await.unwrap();
    assert!(h.broker.session(done.session.token.expose()).await.unwrap().is_some());
    assert_eq!(h.hooks.take(), [Call::SignIn(account.to_string(), "dir".into())]);

    *h.hooks.refuse.lock().unwrap() = Some(account.to_string());
    let before = h.store.sessions_of(&account).await.unwrap().len();
    let r = passwordless().await;
    assert!(matches!(r, Err(SecondFactorError::Refused(_))), "{r:?}");
    assert_eq!(h.hooks.take(), [Call::SignIn(account.to_string(), "dir".into())]);
    assert_eq!(
        h.store.sessions_of(&account).await.unwrap().len(),
        before,
        "no new session"
    );
    let audit = h.store.recent_audit(1).await.unwrap();
    assert_eq!(audit[0].event, "login_failure");
    assert!(audit[0].detail.as_deref().unwrap().starts_with("refused_by_app_hook"));
}
