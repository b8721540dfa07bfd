//! Broker behaviour with in-process sources, a real SQLite store and an injected clock.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vestibule::{Broker, ClientInfo, LoginError, LoginOutcome, SessionSettings};
use vestibule_core::{
    CallbackParams, ExposeSecret, ExternalIdentity, FixedClock, RejectReason, SourceId, Subject, Timestamp,
};
use vestibule_store::Store;
use vestibule_tests::fakes::{PasswordFake, RedirectFake};
use vestibule_tests::server::TempDir;

const T0: Timestamp = Timestamp(1_800_000_000);

#[path = "broker/second_factor.rs"]
mod second_factor;

#[path = "broker/passkey.rs"]
mod passkey;

#[path = "broker/admin_scope.rs"]
mod admin_scope;

#[path = "broker/hooks.rs"]
mod hooks;

#[path = "broker/provider_step_up.rs"]
mod provider_step_up;

struct Fixture {
    broker: Arc<Broker>,
    /// The broker's store, opened by the test: what the broker wrote, read directly.
    store: Store,
    clock: Arc<FixedClock>,
    /// One user, "ann" with "right password"; counts sign-ins so tests can prove the broker refused before asking.
    password: Arc<PasswordFake>,
    /// Honest about one person; the code it accepts is the nonce kept in the stored flow.
    idp: Arc<RedirectFake>,
    _dir: TempDir,
}

async fn fixture() -> Fixture {
    let (dir, store) = sqlite_store("vestibule-broker").await;
    let clock = Arc::new(FixedClock::new(T0));
    let password = Arc::new(PasswordFake::new("dir").user(
        "ann",
        "right password",
        ExternalIdentity::new(SourceId::new("dir").unwrap(), Subject::new("ann-uuid").unwrap()).with_login("ann"),
    ));
    let idp = Arc::new(RedirectFake::new(
        "idp",
        ExternalIdentity::new(SourceId::new("idp").unwrap(), Subject::new("idp-sub-1").unwrap())
            .with_email("x@example.org", true),
    ));
    let broker = Broker::builder(store.clone(), "https://id.example.com/auth")
        .source(password.clone())
        .source(idp.clone())
        .clock(clock.clone())
        .settings(SessionSettings {
            idle_timeout_secs: 600,
            absolute_timeout_secs: 3600,
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    Fixture {
        broker: Arc::new(broker),
        store,
        clock,
        password,
        idp,
        _dir: dir,
    }
}

/// A migrated SQLite store in a fresh temporary directory (removed when the `TempDir` drops).
async fn sqlite_store(prefix: &str) -> (TempDir, Store) {
    let dir = TempDir::new(prefix);
    let store = Store::connect(&format!("sqlite://{}/b.db", dir.0.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
    }
}

async fn sign_in(f: &Fixture) -> vestibule::NewSession {
    let dir = SourceId::new("dir").unwrap();
    let s = (f
        .broker
        .login_password(&dir, "ann", &"right password".into(), &client(), None)
        .await
        .unwrap())
    .session()
    .unwrap();
    s
}

#[tokio::test]
async fn password_sign_in_creates_a_session_that_logout_ends() {
    let f = fixture().await;
    let s = sign_in(&f).await;
    let active = f
        .broker
        .session(s.token.expose())
        .await
        .unwrap()
        .expect("valid session");
    assert_eq!(active.account_id, s.account_id);
    assert_eq!(active.expires_at, T0.plus_secs(3600));
    // Only the hash is stored.
    let stored = f.store.get_session(&s.token.hash_hex()).await.unwrap().unwrap();
    assert_ne!(stored.id_hash, s.token.expose());

    assert_eq!(
        f.broker.logout(s.token.expose(), &client()).await.unwrap(),
        Some(s.account_id.clone())
    );
    assert!(
        f.broker.session(s.token.expose()).await.unwrap().is_none(),
        "replay after logout refused"
    );
    assert!(f.store.get_session(&s.token.hash_hex()).await.unwrap().is_none());

    let events: Vec<_> = f
        .store
        .recent_audit(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(events, ["logout", "login_success", "account_created"]);
}

#[tokio::test]
async fn the_same_identity_signs_into_the_same_account() {
    let f = fixture().await;
    let a = sign_in(&f).await;
    let b = sign_in(&f).await;
    assert_eq!(a.account_id, b.account_id);
    assert_ne!(a.token, b.token);
}

#[tokio::test]
async fn bad_and_empty_passwords_are_rejected_and_audited() {
    let f = fixture().await;
    let dir = SourceId::new("dir").unwrap();
    let wrong = f
        .broker
        .login_password(&dir, "ann", &"wrong".into(), &client(), None)
        .await;
    assert!(
        matches!(wrong, Err(LoginError::Rejected(RejectReason::InvalidCredentials))),
        "{wrong:?}"
    );
    let calls = f.password.calls();
    for empty in ["", "\0", "\0right password"] {
        let r = f
            .broker
            .login_password(&dir, "ann", &empty.into(), &client(), None)
            .await;
        assert!(
            matches!(r, Err(LoginError::Rejected(RejectReason::EmptyPassword))),
            "{r:?}"
        );
    }
    assert_eq!(f.password.calls(), calls, "empty passwords never reach the source");
    let audit = f.store.recent_audit(10).await.unwrap();
    assert_eq!(audit.len(), 4);
    assert!(audit
        .iter()
        .all(|r| r.event == "login_failure" && r.ip.as_deref() == Some("127.0.0.1")));
    assert!(
        !audit
            .iter()
            .any(|r| r.detail.as_deref().unwrap_or("").contains("wrong")),
        "no password in the audit"
    );
    let unknown = f
        .broker
        .login_password(&SourceId::new("nope").unwrap(), "ann", &"x".into(), &client(), None)
        .await;
    assert!(matches!(unknown, Err(LoginError::UnknownSource)));
    let wrong_kind = f
        .broker
        .login_password(&SourceId::new("idp").unwrap(), "ann", &"x".into(), &client(), None)
        .await;
    assert!(matches!(wrong_kind, Err(LoginError::UnknownSource)));
}

#[tokio::test]
async fn idle_and_absolute_timeouts_end_sessions() {
    let f = fixture().await;
    let s = sign_in(&f).await;
    f.clock.advance(599);
    assert!(
        f.broker.session(s.token.expose()).await.unwrap().is_some(),
        "active within the idle window"
    );
    f.clock.advance(599);
    assert!(
        f.broker.session(s.token.expose()).await.unwrap().is_some(),
        "activity moved the idle window"
    );
    f.clock.advance(601);
    assert!(
        f.broker.session(s.token.expose()).await.unwrap().is_none(),
        "idle too long"
    );
    assert!(
        f.store.get_session(&s.token.hash_hex()).await.unwrap().is_none(),
        "and deleted"
    );

    let s = sign_in(&f).await;
    for _ in 0..8 {
        f.clock.advance(500);
        let _ = f.broker.session(s.token.expose()).await.unwrap();
    }
    assert!(
        f.broker.session(s.token.expose()).await.unwrap().is_none(),
        "absolute lifetime reached despite activity"
    );
}

#[tokio::test]
async fn signing_in_rotates_the_session_id() {
    let f = fixture().await;
    let old = sign_in(&f).await;
    let dir = SourceId::new("dir").unwrap();
    let new = (f
        .broker
        .login_password(
            &dir,
            "ann",
            &"right password".into(),
            &client(),
            Some(old.token.expose()),
        )
        .await
        .unwrap())
    .session()
    .unwrap();
    assert_ne!(old.token, new.token);
    assert!(
        f.broker.session(old.token.expose()).await.unwrap().is_none(),
        "the previous id is dead"
    );
    assert!(f.broker.session(new.token.expose()).await.unwrap().is_some());
}

#[tokio::test]
async fn disabling_an_account_ends_its_sessions_at_once() {
    let f = fixture().await;
    let s = sign_in(&f).await;
    assert!(
        f.broker.session(s.token.expose()).await.unwrap().is_some(),
        "cached now"
    );
    assert!(f.broker.set_account_disabled(&s.account_id, true).await.unwrap());
    assert!(f.broker.session(s.token.expose()).await.unwrap().is_none());
    let dir = SourceId::new("dir").unwrap();
    let r = f
        .broker
        .login_password(&dir, "ann", &"right password".into(), &client(), None)
        .await;
    assert!(
        matches!(r, Err(LoginError::Rejected(RejectReason::AccountDisabled))),
        "{r:?}"
    );
}

#[tokio::test]
async fn garbage_cookies_are_not_sessions() {
    let f = fixture().await;
    for junk in ["", "x", &"A".repeat(43), &"é".repeat(20), "../../etc/passwd"] {
        assert!(f.broker.session(junk).await.unwrap().is_none());
    }
}

fn params(state: Option<&str>, code: Option<&str>) -> CallbackParams {
    CallbackParams {
        state: state.map(Into::into),
        code: code.map(Into::into),
        ..Default::default()
    }
}

fn query_param(url: &str, name: &str) -> String {
    url.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn redirect_flows_are_bound_to_the_browser_and_single_use() {
    let f = fixture().await;
    let idp = SourceId::new("idp").unwrap();
    let begin = f.broker.start_redirect(&idp, Some("/after".into())).await.unwrap();
    assert!(begin
        .authorize_url
        .contains("redirect_uri=https://id.example.com/auth/callback/idp"));
    let state = query_param(&begin.authorize_url, "state");
    // The test IdP's "code" is the nonce it stored; read it back the way the IdP would know it.
    let stored = f
        .store
        .take_pending(&vestibule::SecretToken::generate().hash_hex())
        .await
        .unwrap();
    assert!(stored.is_none());

    // Another browser (no or a different binding cookie) is refused, and that attempt burns the flow.
    let other = vestibule::SecretToken::generate();
    let r = f
        .broker
        .finish_redirect(
            &idp,
            &params(Some(&state), Some("x")),
            Some(other.expose()),
            &client(),
            None,
            None,
        )
        .await;
    assert!(matches!(r, Err(LoginError::InvalidFlow)), "{r:?}");
    let r = f
        .broker
        .finish_redirect(
            &idp,
            &params(Some(&state), Some("x")),
            Some(begin.browser_token.expose()),
            &client(),
            None,
            None,
        )
        .await;
    assert!(matches!(r, Err(LoginError::InvalidFlow)), "a flow is single use: {r:?}");
    assert_eq!(f.idp.finished(), 0, "refused before the source talked to the provider");
}

async fn begin_with_code(f: &Fixture) -> (String, String, vestibule::SecretToken) {
    begin_with_code_for(&f.broker, &f.store).await
}

/// Starts a sign-in at the fake IdP `idp` and learns the code it will accept.
async fn begin_with_code_for(broker: &Broker, store: &Store) -> (String, String, vestibule::SecretToken) {
    let idp = SourceId::new("idp").unwrap();
    let begin = broker.start_redirect(&idp, Some("/after".into())).await.unwrap();
    let (state, code) = state_and_code(store, &begin).await;
    (state, code, begin.browser_token)
}

/// The `state` of a begun flow at the fake IdP, and the code it will accept.
async fn state_and_code(store: &Store, begin: &vestibule::RedirectBegin) -> (String, String) {
    let state = query_param(&begin.authorize_url, "state");
    // Peek at the stored flow to learn the nonce the fake IdP expects as its code, then put it back.
    let key = hex(&vestibule::hash_token(&state));
    let rec = store.take_pending(&key).await.unwrap().unwrap();
    store.insert_pending(&rec).await.unwrap();
    (state, rec.data.expose_secret().to_owned())
}

/// "ann" signs in at `broker`'s password source `dir` with the right password.
async fn ann_at(broker: &Broker) -> Result<LoginOutcome, LoginError> {
    broker
        .login_password(
            &SourceId::new("dir").unwrap(),
            "ann",
            &"right password".into(),
            &client(),
            None,
        )
        .await
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_honest_redirect_flow_signs_in_once() {
    let f = fixture().await;
    let idp = SourceId::new("idp").unwrap();
    let (state, code, browser) = begin_with_code(&f).await;
    let done = f
        .broker
        .finish_redirect(
            &idp,
            &params(Some(&state), Some(&code)),
            Some(browser.expose()),
            &client(),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(done.next_path.as_deref(), Some("/after"));
    let s = (done.outcome).session().unwrap();
    assert!(f.broker.session(s.token.expose()).await.unwrap().is_some());
    // Replaying the same callback gets nothing.
    let replay = f
        .broker
        .finish_redirect(
            &idp,
            &params(Some(&state), Some(&code)),
            Some(browser.expose()),
            &client(),
            None,
            None,
        )
        .await;
    assert!(matches!(replay, Err(LoginError::InvalidFlow)));
    assert_eq!(f.idp.finished(), 1);
}

#[tokio::test]
async fn expired_missing_foreign_and_cancelled_flows_are_refused() {
    let f = fixture().await;
    let idp = SourceId::new("idp").unwrap();

    let (state, code, browser) = begin_with_code(&f).await;
    f.clock.advance(601);
    let r = f
        .broker
        .finish_redirect(
            &idp,
            &params(Some(&state), Some(&code)),
            Some(browser.expose()),
            &client(),
            None,
            None,
        )
        .await;
    assert!(matches!(r, Err(LoginError::InvalidFlow)), "expired: {r:?}");

    let (_, code, browser) = begin_with_code(&f).await;
    let r = f
        .broker
        .finish_redirect(
            &idp,
            &params(None, Some(&code)),
            Some(browser.expose()),
            &client(),
            None,
            None,
        )
        .await;
    assert!(matches!(r, Err(LoginError::InvalidFlow)), "missing state: {r:?}");

    let (state, code, browser) = begin_with_code(&f).await;
    let mut tampered = state.clone();
    tampered.push('x');
    let r = f
        .broker
        .finish_redirect(
            &idp,
            &params(Some(&tampered), Some(&code)),
            Some(browser.expose()),
            &client(),
            None,
            None,
        )
        .await;
    assert!(matches!(r, Err(LoginError::InvalidFlow)), "tampered state: {r:?}");
    let r = f
        .broker
        .finish_redirect(&idp, &params(Some(&state), Some(&code)), None, &client(), None, None)
        .await;
    assert!(matches!(r, Err(LoginError::InvalidFlow)), "no binding cookie: {r:?}");

    let (state, _, browser) = begin_with_code(&f).await;
    let mut p = params(Some(&state), None);
    p.error = Some("access_denied".into());
    let r = f
        .broker
        .finish_redirect(&idp, &p, Some(browser.expose()), &client(), None, None)
        .await;
    assert!(matches!(r, Err(LoginError::Cancelled)), "{r:?}");

    let (state, _, browser) = begin_with_code(&f).await;
    let r = f
        .broker
        .finish_redirect(
            &idp,
            &params(Some(&state), Some("wrong code")),
            Some(browser.expose()),
            &client(),
            None,
            None,
        )
        .await;
    assert!(
        matches!(r, Err(LoginError::Rejected(_))),
        "provider answer failing verification: {r:?}"
    );
    assert_eq!(f.idp.finished(), 1, "only the last flow reached the source");
}

#[tokio::test]
async fn csrf_tokens_depend_on_the_binding() {
    let f = fixture().await;
    let t = f.broker.csrf_token("browser-1");
    assert!(f.broker.verify_csrf("browser-1", &t));
    assert!(!f.broker.verify_csrf("browser-2", &t));
}

#[tokio::test]
async fn concurrent_first_sign_ins_make_one_account() {
    let f = fixture().await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let b = f.broker.clone();
        tasks.push(tokio::spawn(async move {
            let dir = SourceId::new("dir").unwrap();
            b.login_password(&dir, "ann", &"right password".into(), &ClientInfo::default(), None)
                .await
        }));
    }
    let mut accounts = std::collections::HashSet::new();
    for t in tasks {
        if let Ok(LoginOutcome::SignedIn(s)) = t.await.unwrap() {
            accounts.insert(s.account_id);
        }
    }
    assert_eq!(accounts.len(), 1);
}

#[tokio::test]
async fn self_service_needs_a_fresh_sign_in_and_stays_in_its_account() {
    let f = fixture().await;
    let a = sign_in(&f).await;
    let b = sign_in(&f).await;
    let active = f.broker.session(a.token.expose()).await.unwrap().unwrap();
    // Another account's session id is not found from here.
    let other = vestibule::SecretToken::generate();
    let r = f
        .broker
        .revoke_sessions(&active, vestibule::Revoke::One(other.hash_hex()), None, &client())
        .await;
    assert!(matches!(r, Err(vestibule::SelfServiceError::NotFound)), "{r:?}");

    // Keep the session alive (idle window 600 s) but let the sign-in go stale (fresh window 600 s).
    f.clock.advance(400);
    assert!(f.broker.session(a.token.expose()).await.unwrap().is_some());
    assert!(f.broker.session(b.token.expose()).await.unwrap().is_some());
    f.clock.advance(300);
    let active = f.broker.session(a.token.expose()).await.unwrap().unwrap();
    assert!(!f.broker.is_fresh(&active));
    let r = f
        .broker
        .revoke_sessions(&active, vestibule::Revoke::Others, None, &client())
        .await;
    assert!(matches!(r, Err(vestibule::SelfServiceError::NotFresh)), "{r:?}");
    assert!(
        f.broker.session(b.token.expose()).await.unwrap().is_some(),
        "nothing ended"
    );

    let fresh = sign_in(&f).await;
    let active = f.broker.session(fresh.token.expose()).await.unwrap().unwrap();
    assert_eq!(
        f.broker
            .revoke_sessions(&active, vestibule::Revoke::Others, None, &client())
            .await
            .unwrap(),
        2
    );
    assert!(f.broker.session(a.token.expose()).await.unwrap().is_none());
    assert!(f.broker.session(b.token.expose()).await.unwrap().is_none());
    assert!(f.broker.session(fresh.token.expose()).await.unwrap().is_some());
    // No password changer configured: the change is refused rather than half-done.
    let r = f
        .broker
        .change_password(&active, &"a".into(), &"b".into(), &client())
        .await;
    assert!(matches!(r, Err(vestibule::SelfServiceError::NoPasswords)), "{r:?}");
}

#[tokio::test]
async fn remember_me_restores_a_non_fresh_session_rotates_and_detects_theft() {
    let f = fixture().await;
    let first = sign_in(&f).await;
    let cookie = f.broker.remember(&first).await.unwrap().expose_secret().to_owned();
    f.clock.advance(700); // past the fresh window

    // Use: a new session, not fresh, and a rotated cookie.
    let vestibule::Restored::Session {
        session,
        cookie: Some(rotated),
    } = f.broker.restore(&cookie, &client()).await.unwrap()
    else {
        panic!("expected a restored session with a rotated cookie")
    };
    let rotated = rotated.expose_secret().to_owned();
    let active = f.broker.session(session.token.expose()).await.unwrap().unwrap();
    assert_eq!(active.account_id, first.account_id);
    assert!(!f.broker.is_fresh(&active), "remember-me never makes a fresh session");
    assert_ne!(rotated, cookie);
    assert_eq!(rotated.split('.').next(), cookie.split('.').next(), "same series");

    // A parallel request with the old cookie inside the grace window: a session, no second rotation.
    let vestibule::Restored::Session { cookie: None, .. } = f.broker.restore(&cookie, &client()).await.unwrap() else {
        panic!("grace window")
    };

    // Later, the old token again: a stolen copy. Everything of the account is revoked.
    f.clock.advance(11);
    assert!(matches!(
        f.broker.restore(&cookie, &client()).await.unwrap(),
        vestibule::Restored::Theft
    ));
    assert!(
        f.broker.session(session.token.expose()).await.unwrap().is_none(),
        "sessions revoked"
    );
    assert!(
        matches!(
            f.broker.restore(&rotated, &client()).await.unwrap(),
            vestibule::Restored::Invalid
        ),
        "series gone"
    );
    let events: Vec<_> = f
        .store
        .recent_audit(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert!(events.contains(&"remember_theft".to_string()), "{events:?}");

    // Garbage, unknown and expired cookies are just invalid.
    for junk in ["", "x.y", &format!("{}.{}", "A".repeat(43), "B".repeat(43))] {
        assert!(matches!(
            f.broker.restore(junk, &client()).await.unwrap(),
            vestibule::Restored::Invalid
        ));
    }
    let s = sign_in(&f).await;
    let c = f.broker.remember(&s).await.unwrap().expose_secret().to_owned();
    f.clock.advance(31 * 86_400);
    assert!(matches!(
        f.broker.restore(&c, &client()).await.unwrap(),
        vestibule::Restored::Invalid
    ));
    // Forgotten (sign-out): invalid.
    let s = sign_in(&f).await;
    let c = f.broker.remember(&s).await.unwrap().expose_secret().to_owned();
    f.broker.forget_remember(&c).await.unwrap();
    assert!(matches!(
        f.broker.restore(&c, &client()).await.unwrap(),
        vestibule::Restored::Invalid
    ));
}

#[tokio::test]
async fn parallel_requests_with_one_remember_cookie_are_not_theft() {
    let f = fixture().await;
    let s = sign_in(&f).await;
    let cookie = f.broker.remember(&s).await.unwrap().expose_secret().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (b, c) = (f.broker.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            b.restore(&c, &ClientInfo::default()).await.unwrap()
        }));
    }
    let mut rotated = 0;
    for t in tasks {
        match t.await.unwrap() {
            vestibule::Restored::Session { cookie: Some(_), .. } => rotated += 1,
            vestibule::Restored::Session { cookie: None, .. } => {}
            other => panic!("parallel use taken for theft: {other:?}"),
        }
    }
    assert_eq!(rotated, 1, "exactly one request rotates");
}

#[tokio::test]
async fn access_tokens_authenticate_until_expired_or_revoked() {
    let f = fixture().await;
    let s = sign_in(&f).await;
    let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
    for (name, days, scopes) in [
        ("", 30, "read"),
        ("ci", 0, "read"),
        ("ci", 400, "read"),
        ("ci", 30, ""),
        ("ci", 30, "Read!"),
    ] {
        let r = f.broker.create_token(&active, name, days, scopes, &client()).await;
        assert!(
            matches!(r, Err(vestibule::TokenError::Invalid(_))),
            "{name:?} {days} {scopes:?}: {r:?}"
        );
    }
    let t = f
        .broker
        .create_token(&active, "ci", 2, "read write:repo", &client())
        .await
        .unwrap();
    assert!(t.value.expose_secret().starts_with("vst_"));
    let listed = f.broker.tokens(&active).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].scopes, ["read", "write:repo"]);
    let stored = f.store.tokens_of(&active.account_id).await.unwrap();
    assert_ne!(stored[0].token_hash, t.value.expose_secret(), "only the hash is stored");

    let who = f
        .broker
        .bearer(t.value.expose_secret())
        .await
        .unwrap()
        .expect("valid token");
    assert_eq!(who.account_id, s.account_id);
    assert_eq!(who.scopes, ["read".to_string(), "write:repo".to_string()]);
    // A token proves no sign-in and cannot mint tokens: `is_fresh` and `create_token` take a browser session, so
    // that is checked by the compiler. Through the one way in, it comes out as a token that binds no form.
    let auth = f
        .broker
        .authenticate(&vestibule::Credentials {
            bearer: Some(t.value.expose_secret()),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(auth.principal, Some(vestibule::Principal::Token(_))),
        "{auth:?}"
    );
    assert!(auth.session_token.is_none(), "a token binds no CSRF token");
    // Not interchangeable with session cookies.
    assert!(f.broker.session(t.value.expose_secret()).await.unwrap().is_none());
    assert!(f
        .broker
        .bearer(&format!("vst_{}", s.token.expose()))
        .await
        .unwrap()
        .is_none());
    assert!(f.broker.bearer(s.token.expose()).await.unwrap().is_none());

    // Expiry (sessions kept alive meanwhile are irrelevant to it).
    f.clock.advance(2 * 86_400);
    assert!(
        f.broker.bearer(t.value.expose_secret()).await.unwrap().is_none(),
        "expired"
    );

    // Revocation, and revocation with the account.
    let s = sign_in(&f).await;
    let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
    let t1 = f
        .broker
        .create_token(&active, "a", 30, "read", &client())
        .await
        .unwrap();
    let t2 = f
        .broker
        .create_token(&active, "b", 30, "read", &client())
        .await
        .unwrap();
    assert!(
        f.broker.bearer(t1.value.expose_secret()).await.unwrap().is_some(),
        "cached now"
    );
    f.broker.revoke_token(&active, &t1.id, &client()).await.unwrap();
    assert!(
        f.broker.bearer(t1.value.expose_secret()).await.unwrap().is_none(),
        "revoked at once despite the cache"
    );
    assert!(matches!(
        f.broker.revoke_token(&active, &t1.id, &client()).await,
        Err(vestibule::TokenError::NotFound)
    ));
    assert!(f.broker.bearer(t2.value.expose_secret()).await.unwrap().is_some());
    f.broker.set_account_disabled(&active.account_id, true).await.unwrap();
    f.broker.evict(&vestibule::SecretToken::generate().hash_hex());
    assert!(
        f.store.tokens_of(&active.account_id).await.unwrap().is_empty(),
        "disabled: tokens deleted"
    );

    // Stale sessions cannot mint tokens.
    let f = fixture().await;
    let s = sign_in(&f).await;
    f.clock.advance(590);
    let _ = f.broker.session(s.token.expose()).await.unwrap();
    f.clock.advance(20);
    let stale = f.broker.session(s.token.expose()).await.unwrap().unwrap();
    assert!(matches!(
        f.broker.create_token(&stale, "x", 1, "read", &client()).await,
        Err(vestibule::TokenError::NotFresh)
    ));
}

async fn fixture_with(protection: vestibule::Protection) -> Fixture {
    let f = fixture().await;
    let (dir, store) = sqlite_store("vestibule-broker").await;
    let broker = Broker::builder(store.clone(), "https://id.example.com/auth")
        .source(f.password.clone())
        .source(f.idp.clone())
        .clock(f.clock.clone())
        .settings(SessionSettings {
            protection,
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    Fixture {
        broker: Arc::new(broker),
        store,
        _dir: dir,
        ..f
    }
}

#[tokio::test]
async fn session_protection_modes() {
    let elsewhere = ClientInfo {
        ip: Some("198.51.100.20".into()),
        user_agent: Some("test".into()),
    };
    let same_device_new_port = ClientInfo {
        ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
    };
    let other_browser = ClientInfo {
        ip: Some("127.0.0.1".into()),
        user_agent: Some("other".into()),
    };

    let f = fixture_with(vestibule::Protection::Basic).await;
    let s = sign_in(&f).await;
    let a = f.broker.session(s.token.expose()).await.unwrap().unwrap();
    assert!(f.broker.check_client(&a, &same_device_new_port).await.unwrap());
    assert!(f.broker.is_fresh(&a));
    assert!(
        f.broker.check_client(&a, &elsewhere).await.unwrap(),
        "basic keeps the session"
    );
    assert!(!f.broker.is_fresh(&a), "but it is no longer fresh");
    assert_eq!(
        f.store
            .get_session(&s.token.hash_hex())
            .await
            .unwrap()
            .unwrap()
            .authenticated_at,
        Timestamp(0)
    );

    let f = fixture_with(vestibule::Protection::Strong).await;
    let s = sign_in(&f).await;
    let a = f.broker.session(s.token.expose()).await.unwrap().unwrap();
    assert!(f.broker.check_client(&a, &client()).await.unwrap());
    assert!(
        !f.broker.check_client(&a, &other_browser).await.unwrap(),
        "strong ends it"
    );
    assert!(f.broker.session(s.token.expose()).await.unwrap().is_none());

    let f = fixture_with(vestibule::Protection::Off).await;
    let s = sign_in(&f).await;
    let a = f.broker.session(s.token.expose()).await.unwrap().unwrap();
    assert!(f.broker.check_client(&a, &other_browser).await.unwrap());
    assert!(f.broker.is_fresh(&a));
}

/// `Broker::authenticate` is the one way in: session cookie (with protection), then remember-me when the front end
/// allows it, then a bearer token — without HTTP.
#[tokio::test]
async fn authenticate_decides_in_order_session_remember_bearer() {
    use vestibule::{Credentials, Principal, RememberCookie};
    let f = fixture_with(vestibule::Protection::Strong).await;
    let ip = Some("127.0.0.1".parse().unwrap());
    let s = sign_in(&f).await;
    let by_cookie = f
        .broker
        .authenticate(&Credentials {
            session: Some(s.token.expose()),
            user_agent: Some("test"),
            ip,
            ..Default::default()
        })
        .await;
    let Some(Principal::Session(active)) = &by_cookie.principal else {
        panic!("a live session cookie is a session: {by_cookie:?}");
    };
    assert_eq!(active.account_id, s.account_id);
    assert_eq!(active.methods, [vestibule::AuthMethod::Password]);
    assert_eq!(active.assurance, vestibule::Assurance::Single);
    assert_eq!(
        by_cookie.session_token.as_ref().map(|t| t.expose_secret().to_owned()),
        Some(s.token.expose().to_owned())
    );
    assert!(!by_cookie.restored());

    // A remember-me cookie the front end did not pass (a form post, /verify) restores nothing.
    let cookie = f.broker.remember(&s).await.unwrap();
    let token = f
        .broker
        .create_token(active, "api", 1, "read", &client())
        .await
        .unwrap();
    let nobody = f
        .broker
        .authenticate(&Credentials {
            session: Some("not-a-session"),
            user_agent: Some("test"),
            ip,
            ..Default::default()
        })
        .await;
    assert!(nobody.principal.is_none() && matches!(nobody.remember_cookie, RememberCookie::Keep));

    // Session protection (strong) refuses the cookie from another browser; its remember-me cookie then restores a
    // new, non-fresh session there, and the front end is told to set both cookies.
    let moved = f
        .broker
        .authenticate(&Credentials {
            session: Some(s.token.expose()),
            remember: Some(cookie.expose_secret()),
            user_agent: Some("other"),
            ip,
            ..Default::default()
        })
        .await;
    let Some(Principal::Session(restored)) = &moved.principal else {
        panic!("restored from remember-me: {moved:?}");
    };
    assert!(moved.restored());
    assert!(!f.broker.is_fresh(restored));
    // Restored: nothing proven now, and the assurance of the sign-in that started the series (a password) — no more.
    assert_eq!(
        restored.methods,
        [vestibule::AuthMethod::RememberMe, vestibule::AuthMethod::Password]
    );
    assert_eq!(restored.assurance, vestibule::Assurance::Single);
    assert!(matches!(moved.remember_cookie, RememberCookie::Set(_)));
    assert_ne!(
        moved.new_session_cookie.as_ref().map(|c| c.expose_secret().to_owned()),
        Some(s.token.expose().to_owned())
    );

    // The old remember-me value again (past the grace) is theft: nobody, and the cookie is cleared.
    f.clock.advance(120);
    let stolen = f
        .broker
        .authenticate(&Credentials {
            remember: Some(cookie.expose_secret()),
            bearer: Some("vst_garbage"),
            ..Default::default()
        })
        .await;
    assert!(stolen.principal.is_none());
    assert!(matches!(stolen.remember_cookie, RememberCookie::Clear));

    // A bearer token alongside a dead session cookie: the token, binding no form. (Theft ended the account's
    // sessions and series, but not its API tokens.)
    let api = f
        .broker
        .authenticate(&Credentials {
            session: Some(s.token.expose()),
            bearer: Some(token.value.expose_secret()),
            ..Default::default()
        })
        .await;
    let Some(Principal::Token(t)) = &api.principal else {
        panic!("a bearer token: {api:?}");
    };
    assert_eq!(t.id, token.id);
    assert!(api.session_token.is_none() && api.new_session_cookie.is_none());
}

/// Guessing is throttled before the credential is checked: after the free failures, the next attempt — even with
/// the right password — is refused without asking the source and signs nobody in; after the delay it works. An
/// unknown name is throttled the same way, and every refusal is audited.
#[tokio::test]
async fn repeated_failures_are_throttled_before_the_source_is_asked() {
    let f = fixture().await;
    let dir = SourceId::new("dir").unwrap();
    let try_as = |login: &'static str, password: &'static str| {
        let broker = f.broker.clone();
        let dir = dir.clone();
        async move {
            broker
                .login_password(&dir, login, &password.into(), &client(), None)
                .await
        }
    };
    for login in ["ann", "nobody"] {
        for i in 0..6 {
            let r = try_as(login, "wrong").await;
            assert!(matches!(r, Err(LoginError::Rejected(_))), "{login} {i}: {r:?}");
        }
        let asked = f.password.calls();
        let r = try_as(login, "right password").await;
        let Err(LoginError::Throttled { retry_after_secs }) = r else {
            panic!("{login}: throttled, even with the right password: {r:?}");
        };
        assert_eq!(retry_after_secs, 2, "{login}");
        assert_eq!(f.password.calls(), asked, "{login}: the source was not asked");
    }
    // Hammering a throttled name costs the attacker little; it must not cost one audit row per request.
    for _ in 0..20 {
        assert!(matches!(
            try_as("ann", "wrong").await,
            Err(LoginError::Throttled { .. })
        ));
    }
    let audit = f.store.recent_audit(50).await.unwrap();
    assert_eq!(
        audit.iter().filter(|r| r.event == "throttled").count(),
        2,
        "the first refusal of each name and address in a minute is audited"
    );
    assert!(audit
        .iter()
        .all(|r| !r.detail.as_deref().unwrap_or("").contains("right password")));

    f.clock.advance(2);
    let done = try_as("ann", "right password").await.unwrap();
    assert!(done.session().is_some(), "after the delay the right password signs in");
}

/// Guessing bearer tokens spends the address's allowance: after the burst, a token from that address — a valid
/// one too — is not looked up and the front end is told to answer 429; other addresses are not affected, and a
/// valid token's own use spends nothing.
#[tokio::test]
async fn bearer_guessing_is_throttled_per_address() {
    use vestibule::{Credentials, Principal};
    let f = fixture().await;
    let s = sign_in(&f).await;
    let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
    let token = f
        .broker
        .create_token(&active, "api", 1, "read", &client())
        .await
        .unwrap();
    let from = |ip: &str, bearer: String| {
        let broker = f.broker.clone();
        let ip = ip.parse().ok();
        async move {
            broker
                .authenticate(&Credentials {
                    bearer: Some(&bearer),
                    ip,
                    ..Default::default()
                })
                .await
        }
    };
    let valid = token.value.expose_secret().to_owned();
    for _ in 0..50 {
        let ok = from("192.0.2.50", valid.clone()).await;
        assert!(
            matches!(ok.principal, Some(Principal::Token(_))),
            "using a valid token spends nothing"
        );
    }
    for i in 0..30 {
        let guess = format!("vst_{}", vestibule::SecretToken::generate().expose());
        let r = from("192.0.2.66", guess).await;
        assert!(r.principal.is_none() && r.throttled.is_none(), "guess {i}");
    }
    let r = from("192.0.2.66", valid.clone()).await;
    assert!(r.principal.is_none(), "not looked up, valid or not");
    assert!(r.throttled.is_some_and(|s| s >= 1), "{r:?}");
    for _ in 0..10 {
        assert!(from("192.0.2.66", valid.clone()).await.throttled.is_some());
    }
    let audit = f.store.recent_audit(50).await.unwrap();
    let throttled: Vec<_> = audit.iter().filter(|r| r.event == "throttled").collect();
    assert_eq!(throttled.len(), 1, "audited once a minute per address: {throttled:?}");
    assert_eq!(throttled[0].ip.as_deref(), Some("192.0.2.66"));
    assert!(throttled[0]
        .detail
        .as_deref()
        .is_some_and(|d| d.starts_with("bearer address")));
    let other = from("192.0.2.67", valid).await;
    assert!(
        matches!(other.principal, Some(Principal::Token(_))),
        "another address is not affected"
    );
}

/// `Broker::authenticate_cached`, the answer from memory the layer tries first: the session `authenticate` gives,
/// when nothing has to be loaded, ended, asked or written; otherwise nothing, and never a session that ended
/// (signed out, idle, disabled, refused by protection) even though it was cached a moment before.
#[tokio::test]
async fn the_cached_answer_is_authenticates_own_and_never_an_ended_session() {
    use vestibule::Credentials;
    let f = fixture().await;
    let s = sign_in(&f).await;
    let ip = Some("127.0.0.1".parse().unwrap());
    let here = Credentials {
        session: Some(s.token.expose()),
        user_agent: Some("test"),
        ip,
        ..Default::default()
    };
    let cached = |c: &Credentials<'_>| f.broker.authenticate_cached(c).map(|a| a.account_id.clone());
    assert_eq!(cached(&here), None, "not loaded yet: a miss is not decided from memory");
    assert!(f.broker.authenticate(&here).await.principal.is_some());
    assert_eq!(cached(&here), Some(s.account_id.clone()));
    assert_eq!(
        cached(&Credentials {
            session: Some("x"),
            ..here
        }),
        None
    );

    // Another client under `basic`: the first request marks the session stale (a write), so it is not answered
    // from memory; once marked, the same answer (the session, not fresh) comes from memory.
    let elsewhere = Credentials {
        user_agent: Some("other"),
        ..here
    };
    assert_eq!(cached(&elsewhere), None);
    assert!(f.broker.authenticate(&elsewhere).await.principal.is_some());
    assert_eq!(cached(&elsewhere), Some(s.account_id.clone()));

    // The minute's write of `last_seen` is due: left to `authenticate`, then memory again.
    f.clock.advance(61);
    assert_eq!(cached(&here), None);
    assert!(f.broker.authenticate(&here).await.principal.is_some());
    assert_eq!(cached(&here), Some(s.account_id.clone()));

    // Idle past the timeout (600 s): ended, not served from the cache that still holds it.
    f.clock.advance(601);
    assert_eq!(cached(&here), None);
    assert!(f.broker.authenticate(&here).await.principal.is_none());

    // Signed out, or the account disabled: gone from memory at once.
    let s = sign_in(&f).await;
    let here = Credentials {
        session: Some(s.token.expose()),
        ..here
    };
    assert!(f.broker.authenticate(&here).await.principal.is_some());
    assert!(cached(&here).is_some());
    f.broker.logout(s.token.expose(), &client()).await.unwrap();
    assert_eq!(cached(&here), None);
    let s = sign_in(&f).await;
    let here = Credentials {
        session: Some(s.token.expose()),
        ..here
    };
    assert!(f.broker.authenticate(&here).await.principal.is_some());
    f.broker.set_account_disabled(&s.account_id, true).await.unwrap();
    assert_eq!(cached(&here), None);
    assert!(f.broker.authenticate(&here).await.principal.is_none());

    // `strong`: another client is never answered from memory, and `authenticate` ends the session.
    let f = fixture_with(vestibule::Protection::Strong).await;
    let s = sign_in(&f).await;
    let here = Credentials {
        session: Some(s.token.expose()),
        ..here
    };
    assert!(f.broker.authenticate(&here).await.principal.is_some());
    assert!(f.broker.authenticate_cached(&here).is_some());
    let elsewhere = Credentials {
        user_agent: Some("other"),
        ..here
    };
    assert!(f.broker.authenticate_cached(&elsewhere).is_none());
    assert!(f.broker.authenticate(&elsewhere).await.principal.is_none());
    assert!(f.broker.authenticate_cached(&here).is_none(), "ended for everyone");
}

/// A source that is asked about its identities again: when the question is due, the cached answer steps aside so
/// that `authenticate` asks (once), and comes back after.
#[tokio::test]
async fn the_cached_answer_leaves_a_due_recheck_to_authenticate() {
    use vestibule::Credentials;
    let f = fixture().await;
    let clock = f.clock.clone();
    let source = Arc::new(
        PasswordFake::new("dir")
            .rechecked_every(std::time::Duration::from_secs(300))
            .user(
                "ann",
                "right password",
                ExternalIdentity::new(SourceId::new("dir").unwrap(), Subject::new("ann-uuid").unwrap()),
            ),
    );
    let broker = Broker::builder(f.store.clone(), "https://id.example.com/auth")
        .source(source.clone())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let s = ann_at(&broker).await.unwrap().session().unwrap();
    let here = Credentials {
        session: Some(s.token.expose()),
        user_agent: Some("test"),
        ip: Some("127.0.0.1".parse().unwrap()),
        ..Default::default()
    };
    assert!(broker.authenticate(&here).await.principal.is_some());
    // At 250 s the minute's write happens (through `authenticate`); at 305 s only the recheck is due.
    clock.advance(250);
    assert!(broker.authenticate(&here).await.principal.is_some());
    assert!(broker.authenticate_cached(&here).is_some());
    clock.advance(55);
    assert!(broker.authenticate_cached(&here).is_none());
    assert_eq!(source.rechecks(), 0);
    assert!(broker.authenticate(&here).await.principal.is_some());
    assert_eq!(source.rechecks(), 1);
    assert!(broker.authenticate_cached(&here).is_some());
}

/// Password reset by a mailed link, address confirmation and notices, over the real local source and store, with
/// a mailer that keeps what it is given.
mod reset {
    use std::sync::{Arc, Mutex};

    use vestibule::{Broker, Mail, MailError, Mailer, Message, ResetError};
    use vestibule_core::{
        AccountId, CredentialRepository, ExposeSecret, FixedClock, PasswordChangeError, PasswordChanger, SourceId,
    };
    use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher, PasswordPolicy};
    use vestibule_store::{NewLocalAccount, Store};
    use vestibule_tests::server::TempDir;

    use super::{client, T0};

    #[derive(Debug, Default)]
    struct Outbox(Mutex<Vec<Mail>>);

    impl Mailer for Outbox {
        fn queue(&self, mail: Mail) -> Result<(), MailError> {
            self.0.lock().unwrap().push(mail);
            Ok(())
        }
        fn has_room(&self) -> bool {
            true
        }
    }

    impl Outbox {
        fn take(&self) -> Vec<Mail> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    struct F {
        broker: Arc<Broker>,
        store: Store,
        clock: Arc<FixedClock>,
        mail: Arc<Outbox>,
        hasher: Arc<PasswordHasher>,
        _dir: TempDir,
    }

    const BASE: &str = "https://id.example.com/auth";

    async fn fixture() -> F {
        let (dir, store) = super::sqlite_store("vestibule-reset").await;
        let clock = Arc::new(FixedClock::new(T0));
        let hasher = Arc::new(
            PasswordHasher::new(Argon2Settings {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            })
            .unwrap(),
        );
        let config = LocalConfig {
            id: SourceId::new("local").unwrap(),
            display_name: None,
            argon2: Default::default(),
            password: PasswordPolicy::default(),
        };
        let repo: Arc<dyn CredentialRepository> = Arc::new(store.clone());
        let local = Arc::new(LocalSource::new(&config, repo, hasher.clone()));
        let mail = Arc::new(Outbox::default());
        // A directory that is authoritative for its people's addresses: its accounts have no local password.
        let directory = Arc::new(
            vestibule_tests::fakes::PasswordFake::new("dir").user(
                "joe",
                "directory password",
                vestibule_core::ExternalIdentity::new(
                    SourceId::new("dir").unwrap(),
                    vestibule_core::Subject::new("joe-uuid").unwrap(),
                )
                .with_login("joe")
                .with_email("joe@example.org", true),
            ),
        );
        let policy = vestibule::SourcePolicy {
            authoritative_email_domains: vec!["example.org".into()],
            ..Default::default()
        };
        // A provider whose own MFA counts here (linking it adds a multi-factor way in).
        let mfa_idp = Arc::new(vestibule_tests::fakes::RedirectFake::new(
            "mfa-idp",
            vestibule_core::ExternalIdentity::new(
                SourceId::new("mfa-idp").unwrap(),
                vestibule_core::Subject::new("mfa-sub").unwrap(),
            )
            .with_amr(vec!["mfa".into()]),
        ));
        let trusted = vestibule::SourcePolicy {
            trust_upstream_mfa: true,
            ..Default::default()
        };
        // An identity provider, authoritative too: its accounts have no local password either.
        let idp = Arc::new(vestibule_tests::fakes::RedirectFake::new(
            "idp",
            vestibule_core::ExternalIdentity::new(
                SourceId::new("idp").unwrap(),
                vestibule_core::Subject::new("gil-sub").unwrap(),
            )
            .with_email("gil@example.org", true),
        ));
        let broker = Broker::builder(store.clone(), BASE)
            .source(local.clone())
            .source_with_policy(directory, policy.clone())
            .source_with_policy(idp, policy)
            .source_with_policy(mfa_idp, trusted)
            .password_changer(local as Arc<dyn PasswordChanger>)
            .mailer(mail.clone())
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        F {
            broker: Arc::new(broker),
            store,
            clock,
            mail,
            hasher,
            _dir: dir,
        }
    }

    async fn add(f: &F, name: &str, email: Option<&str>, verified: bool) -> AccountId {
        let hash = f.hasher.hash("old password".into()).await.unwrap();
        f.broker
            .create_local_account(
                &NewLocalAccount {
                    source: SourceId::new("local").unwrap(),
                    username: name.into(),
                    display_name: Some(name.into()),
                    email: email.map(str::to_owned),
                    email_verified: verified,
                    password_hash: hash.into(),
                },
                "test",
            )
            .await
            .unwrap()
    }

    async fn ask(f: &F, login: &str) -> Vec<Mail> {
        f.broker
            .request_password_reset(login, &client())
            .await
            .unwrap()
            .delivered()
            .await;
        f.mail.take()
    }

    fn reset_token(mails: &[Mail]) -> String {
        let links: Vec<&str> = mails
            .iter()
            .filter_map(|m| match &m.message {
                Message::PasswordReset { link, .. } => Some(link.expose()),
                _ => None,
            })
            .collect();
        assert_eq!(links.len(), 1, "{mails:?}");
        let token = links[0]
            .strip_prefix(&format!("{BASE}/reset/"))
            .expect("built from the configured public URL");
        token.to_owned()
    }

    async fn sign_in(f: &F, login: &str, password: &str) -> Option<vestibule::NewSession> {
        let local = SourceId::new("local").unwrap();
        match f
            .broker
            .login_password(&local, login, &password.into(), &client(), None)
            .await
        {
            Ok(o) => o.session(),
            Err(_) => None,
        }
    }

    /// Joe signs in through the directory (his account has no local password).
    async fn sign_in_joe(f: &F) -> vestibule::LoginOutcome {
        let dir = SourceId::new("dir").unwrap();
        f.broker
            .login_password(&dir, "joe", &"directory password".into(), &client(), None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_mailed_link_sets_the_password_once_and_ends_every_session() {
        let f = fixture().await;
        let ann = add(&f, "ann", Some("ann@example.org"), true).await;
        let s1 = sign_in(&f, "ann", "old password").await.unwrap();
        let s2 = sign_in(&f, "ann", "old password").await.unwrap();
        let series = f.broker.remember(&s1).await.unwrap();
        assert!(series.expose_secret().len() > 10);

        let mails = ask(&f, "ann").await;
        assert_eq!(mails[0].to, "ann@example.org");
        let token = reset_token(&mails);
        assert!(token.len() >= 43, "256 random bits, base64url");
        f.broker.check_reset_link(&token).await.unwrap();

        // A password the policy refuses: refused, and the link still works.
        let short = f
            .broker
            .complete_password_reset(&token, &"short".into(), &client())
            .await;
        assert!(
            matches!(short, Err(ResetError::Password(PasswordChangeError::Policy(_)))),
            "{short:?}"
        );
        let done = f
            .broker
            .complete_password_reset(&token, &"brand new password".into(), &client())
            .await
            .unwrap();
        assert_eq!(done.account_id, ann);
        assert_eq!(done.sessions_ended, 2);

        // Every session and remember-me series has ended; nobody is signed in by the reset.
        for s in [&s1, &s2] {
            assert!(f.broker.session(s.token.expose()).await.unwrap().is_none());
        }
        assert!(f.store.sessions_of(&ann).await.unwrap().is_empty());
        let restored = f.broker.restore(series.expose_secret(), &client()).await.unwrap();
        assert!(matches!(restored, vestibule::Restored::Invalid), "{restored:?}");

        // Single use.
        let again = f
            .broker
            .complete_password_reset(&token, &"another password".into(), &client())
            .await;
        assert!(matches!(again, Err(ResetError::InvalidLink)), "{again:?}");

        // The new password signs in, the old one no longer; the owner was told.
        assert!(sign_in(&f, "ann", "old password").await.is_none());
        assert!(sign_in(&f, "ann", "brand new password").await.is_some());
        assert!(f.mail.take().iter().any(|m| m.message == Message::PasswordWasReset));
        let events: Vec<String> = f
            .store
            .recent_audit(50)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert!(events.contains(&"password_reset_requested".to_owned()), "{events:?}");
        assert!(events.contains(&"password_reset_completed".to_owned()), "{events:?}");
    }

    #[tokio::test]
    async fn only_a_known_verified_address_gets_a_message() {
        let f = fixture().await;
        add(&f, "bea", Some("bea@example.org"), false).await;
        add(&f, "cid", Some("cid@example.org"), true).await;
        add(&f, "dot", None, false).await;
        // Unknown names, unverified or missing addresses: the same Ok, and nothing mailed.
        for login in ["nobody", "nobody@example.org", "bea", "bea@example.org", "dot"] {
            assert!(ask(&f, login).await.is_empty(), "{login}");
        }
        // The verified address finds its account as the login name does.
        assert_eq!(reset_token(&ask(&f, "CID@example.org").await).len(), 43);
        assert_eq!(reset_token(&ask(&f, "cid").await).len(), 43);
    }

    #[tokio::test]
    async fn a_link_expires_and_only_the_newest_works() {
        let f = fixture().await;
        add(&f, "eve", Some("eve@example.org"), true).await;
        let first = reset_token(&ask(&f, "eve").await);
        let second = reset_token(&ask(&f, "eve").await);
        assert!(
            f.broker.check_reset_link(&first).await.is_err(),
            "replaced by the newer link"
        );
        f.clock.advance(30 * 60);
        let late = f
            .broker
            .complete_password_reset(&second, &"brand new password".into(), &client())
            .await;
        assert!(matches!(late, Err(ResetError::InvalidLink)), "{late:?}");
        assert!(sign_in(&f, "eve", "old password").await.is_some(), "nothing changed");
    }

    #[tokio::test]
    async fn a_password_change_voids_a_link_mailed_before_it() {
        let f = fixture().await;
        add(&f, "fay", Some("fay@example.org"), true).await;
        let token = reset_token(&ask(&f, "fay").await);
        let s = sign_in(&f, "fay", "old password").await.unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        f.broker
            .change_password(&active, &"old password".into(), &"changed password".into(), &client())
            .await
            .unwrap();
        assert!(
            f.mail.take().iter().any(|m| m.message == Message::PasswordChanged),
            "notice mailed"
        );
        let r = f
            .broker
            .complete_password_reset(&token, &"brand new password".into(), &client())
            .await;
        assert!(matches!(r, Err(ResetError::InvalidLink)), "{r:?}");
        assert!(sign_in(&f, "fay", "changed password").await.is_some());
    }

    #[tokio::test]
    async fn reset_requests_are_throttled_per_address() {
        let f = fixture().await;
        let mut refused = None;
        for i in 0..200 {
            match f.broker.request_password_reset(&format!("name{i}"), &client()).await {
                Ok(_) => {}
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        assert!(matches!(refused, Some(ResetError::Throttled { .. })), "{refused:?}");
    }

    /// The per-account limit counts the account a request resolves to, however it was named: its login name and
    /// its address are two names, each with a counter of its own, but one mailbox. Asked for from many addresses
    /// under both names, the account gets no more links than one name's allowance, and the requester cannot tell
    /// (every answer is the same `Ok` until a name itself is throttled, as for a name nobody has).
    #[tokio::test]
    async fn reset_requests_for_one_account_are_limited_under_any_name() {
        let f = fixture().await;
        add(&f, "ann", Some("ann@example.org"), true).await;
        let allowance = usize::try_from(vestibule::ThrottleSettings::default().account_free_failures).unwrap();
        let (mut answered, mut mailed) = (0, 0);
        for i in 0..4 * allowance {
            let login = if i % 2 == 0 { "ann" } else { "Ann@Example.org" };
            let from = vestibule::ClientInfo {
                ip: Some(format!("10.1.{}.{}", i / 100, i % 100 + 1)),
                ..client()
            };
            match f.broker.request_password_reset(login, &from).await {
                Ok(requested) => {
                    requested.delivered().await;
                    answered += 1;
                }
                Err(ResetError::Throttled { .. }) => {}
                Err(e) => panic!("{e:?}"),
            }
            mailed += f.mail.take().len();
        }
        assert!(
            answered > 2 * allowance,
            "each name is answered up to its own allowance: {answered}"
        );
        assert_eq!(mailed, answered / 2, "one mailbox, one name's allowance");
    }

    /// A reset sets a password; it proves nothing about the second factor. The person signs in afresh with the
    /// new password, and the second step is asked as before.
    #[tokio::test]
    async fn a_reset_never_bypasses_a_second_factor() {
        let f = fixture().await;
        add(&f, "tia", Some("tia@example.org"), true).await;
        let s = sign_in(&f, "tia", "old password").await.unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        let key = f
            .broker
            .begin_totp(&active)
            .await
            .unwrap()
            .secret_base32
            .expose_secret()
            .to_owned();
        f.broker
            .confirm_totp(&active, &vestibule_tests::totp::code(&key, T0.0), &client())
            .await
            .unwrap();
        let token = reset_token(&ask(&f, "tia").await);
        f.broker
            .complete_password_reset(&token, &"brand new password".into(), &client())
            .await
            .unwrap();
        let local = SourceId::new("local").unwrap();
        let outcome = f
            .broker
            .login_password(&local, "tia", &"brand new password".into(), &client(), None)
            .await
            .unwrap();
        assert!(
            matches!(outcome, vestibule::LoginOutcome::SecondFactorRequired(_)),
            "signed in without the second factor: {outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_confirmation_link_verifies_the_address_once() {
        let f = fixture().await;
        let gus = add(&f, "gus", Some("gus@example.org"), false).await;
        assert!(f.broker.send_email_verification(&gus).await.unwrap());
        let mails = f.mail.take();
        let link = match &mails[0].message {
            Message::VerifyEmail { link, .. } => link.expose().to_owned(),
            other => panic!("{other:?}"),
        };
        let token = link.strip_prefix(&format!("{BASE}/email/verify/")).unwrap();
        assert!(
            ask(&f, "gus").await.is_empty(),
            "not used for reset before it is confirmed"
        );
        assert_eq!(
            f.broker.confirm_email(token, &client()).await.unwrap(),
            "gus@example.org"
        );
        assert!(f.store.get_account(&gus).await.unwrap().unwrap().email_verified);
        assert!(matches!(
            f.broker.confirm_email(token, &client()).await,
            Err(ResetError::InvalidLink)
        ));
        assert!(
            !f.broker.send_email_verification(&gus).await.unwrap(),
            "nothing left to confirm"
        );
        assert_eq!(reset_token(&ask(&f, "gus").await).len(), 43);
    }

    #[tokio::test]
    async fn a_directory_account_is_told_where_its_password_is_kept() {
        let f = fixture().await;
        let outcome = sign_in_joe(&f).await;
        let joe = outcome.session().unwrap().account_id;
        assert!(f.store.get_account(&joe).await.unwrap().unwrap().email_verified);
        let mails = ask(&f, "joe@example.org").await;
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert_eq!(mails[0].to, "joe@example.org");
        let Message::ResetElsewhere { directories, providers } = &mails[0].message else {
            panic!("{mails:?}")
        };
        assert_eq!(
            (directories, providers),
            (&vec!["Directory".to_owned()], &vec![]),
            "the directory, by its display name"
        );
        // No link: nothing stored that a reset could use.
        let events: Vec<String> = f
            .store
            .recent_audit(10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert!(events.contains(&"password_reset_requested".to_owned()), "{events:?}");
    }

    /// An account that signs in at an identity provider is told its password is the provider's, not sent to
    /// "your organisation's directory"; no link is made (a reset cannot create a local password).
    #[tokio::test]
    async fn a_provider_account_is_told_its_password_is_the_providers() {
        let f = fixture().await;
        let idp = SourceId::new("idp").unwrap();
        let begin = f.broker.start_redirect(&idp, None).await.unwrap();
        let (state, code) = super::state_and_code(&f.store, &begin).await;
        let done = f
            .broker
            .finish_redirect(
                &idp,
                &super::params(Some(&state), Some(&code)),
                Some(begin.browser_token.expose()),
                &client(),
                None,
                None,
            )
            .await
            .unwrap();
        let gil = done.outcome.session().unwrap().account_id;
        let mails = ask(&f, "gil@example.org").await;
        assert_eq!(mails.len(), 1, "{mails:?}");
        let Message::ResetElsewhere { directories, providers } = &mails[0].message else {
            panic!("{mails:?}")
        };
        assert_eq!((directories, providers), (&vec![], &vec!["Test IdP".to_owned()]));
        assert!(f
            .store
            .email_tokens_of(&gil, vestibule_core::storage::EmailTokenPurpose::PasswordReset)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn notices_go_to_a_verified_address_only() {
        let f = fixture().await;
        let hal = add(&f, "hal", Some("hal@example.org"), true).await;
        let ivy = add(&f, "ivy", Some("ivy@example.org"), false).await;
        for id in [&hal, &ivy] {
            f.broker
                .set_account_disabled_by_operator(id, true, "test")
                .await
                .unwrap();
        }
        let mails = f.mail.take();
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert_eq!(
            (mails[0].to.as_str(), &mails[0].message),
            ("hal@example.org", &Message::AccountDisabled)
        );
        // A disabled account's link no longer works either.
        f.broker
            .set_account_disabled_by_operator(&hal, false, "test")
            .await
            .unwrap();
        let token = reset_token(&ask(&f, "hal").await);
        f.broker
            .set_account_disabled_by_operator(&hal, true, "test")
            .await
            .unwrap();
        let r = f
            .broker
            .complete_password_reset(&token, &"brand new password".into(), &client())
            .await;
        assert!(matches!(r, Err(ResetError::InvalidLink)), "{r:?}");
    }

    /// The second-factor notices mailed so far, in order, each checked to have gone to `to`.
    fn factor_notices(f: &F, to: &str) -> Vec<vestibule::FactorChange> {
        f.mail
            .take()
            .into_iter()
            .filter_map(|m| match m.message {
                vestibule::Message::SecondFactorChanged { change } => {
                    assert_eq!(m.to, to);
                    Some(change)
                }
                _ => None,
            })
            .collect()
    }

    /// Second-factor changes are mailed to the owner (#12 with #13): set up, new recovery codes, removed, and an
    /// operator's reset; each says what changed.
    #[tokio::test]
    async fn second_factor_changes_are_noticed() {
        use vestibule::FactorChange;
        let f = fixture().await;
        add(&f, "kim", Some("kim@example.org"), true).await;
        let s = sign_in(&f, "kim", "old password").await.unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        let key = f
            .broker
            .begin_totp(&active)
            .await
            .unwrap()
            .secret_base32
            .expose_secret()
            .to_owned();
        let added = f
            .broker
            .confirm_totp(&active, &vestibule_tests::totp::code(&key, T0.0), &client())
            .await
            .unwrap();
        let active = f.broker.session(added.session.token.expose()).await.unwrap().unwrap();
        f.broker.regenerate_recovery_codes(&active, &client()).await.unwrap();
        f.broker.remove_totp(&active, &client()).await.unwrap();
        let id = active.account_id.clone();
        // Nothing left to remove: no notice for an empty reset.
        assert!(!f.broker.reset_second_factors(&id, "test").await.unwrap());
        let changes = factor_notices(&f, "kim@example.org");
        assert_eq!(
            changes,
            [
                FactorChange::AuthenticatorAdded,
                FactorChange::RecoveryCodesRegenerated,
                FactorChange::AuthenticatorRemoved
            ]
        );
    }

    /// Adding and removing a passkey are mailed to the owner too, each saying which.
    #[tokio::test]
    async fn passkey_changes_are_noticed() {
        use vestibule::FactorChange;
        let f = fixture().await;
        add(&f, "pat", Some("pat@example.org"), true).await;
        let s = sign_in(&f, "pat", "old password").await.unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        let auth = vestibule_tests::passkey::SoftAuthenticator::new("https://id.example.com");
        let c = f.broker.begin_passkey_registration(&active).await.unwrap();
        let (_, answer) = auth.create(&c.options);
        let added = f
            .broker
            .finish_passkey_registration(&active, c.ceremony.expose_secret(), "key", &answer, &client())
            .await
            .unwrap();
        let active = f.broker.session(added.session.token.expose()).await.unwrap().unwrap();
        let id = f.broker.passkeys(&active.account_id).await.unwrap()[0].id.clone();
        f.broker.remove_passkey(&active, &id, &client()).await.unwrap();
        let changes = factor_notices(&f, "pat@example.org");
        assert_eq!(changes, [FactorChange::PasskeyAdded, FactorChange::PasskeyRemoved]);
    }

    /// Removing the authenticator or replacing the recovery codes needs a second factor proven just now, not only a
    /// fresh password (ASVS 7.5.1): a password change renews the session's password time, and someone holding the
    /// session and the password must not be able to take the factor away with that alone.
    #[tokio::test]
    async fn a_fresh_password_alone_neither_removes_nor_adds_a_factor() {
        use vestibule::SecondFactorError;
        let f = fixture().await;
        add(&f, "lou", Some("lou@example.org"), true).await;
        let s = sign_in(&f, "lou", "old password").await.unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        let key = f
            .broker
            .begin_totp(&active)
            .await
            .unwrap()
            .secret_base32
            .expose_secret()
            .to_owned();
        let added = f
            .broker
            .confirm_totp(&active, &vestibule_tests::totp::code(&key, T0.0), &client())
            .await
            .unwrap();
        // Just proven with the new factor: another may be added.
        let fresh = f.broker.session(added.session.token.expose()).await.unwrap().unwrap();
        assert!(f.broker.begin_passkey_registration(&fresh).await.is_ok());
        let mfa_idp = SourceId::new("mfa-idp").unwrap();
        assert!(f.broker.start_link_redirect(&mfa_idp, &fresh).await.is_ok());
        f.clock.advance(500);
        let active = f.broker.session(added.session.token.expose()).await.unwrap().unwrap();
        let changed = f
            .broker
            .change_password(&active, &"old password".into(), &"a newer password".into(), &client())
            .await
            .unwrap();
        // 200 s later: the password was proven 200 s ago, the second factor 700 s ago (fresh means 600).
        f.clock.advance(200);
        let active = f.broker.session(changed.session.token.expose()).await.unwrap().unwrap();
        assert!(f.broker.is_fresh(&active) && !f.broker.is_fresh_multi_factor(&active));
        assert!(matches!(
            f.broker.remove_totp(&active, &client()).await,
            Err(SecondFactorError::NotFresh)
        ));
        assert!(matches!(
            f.broker.regenerate_recovery_codes(&active, &client()).await,
            Err(SecondFactorError::NotFresh)
        ));
        // Nor add one: someone holding the session and the password would register a passkey of their own, which
        // then signs in alone as multi-factor.
        assert!(matches!(
            f.broker.begin_passkey_registration(&active).await,
            Err(SecondFactorError::NotFresh)
        ));
        assert!(matches!(
            f.broker.begin_totp(&active).await,
            Err(SecondFactorError::NotFresh)
        ));
        // Nor link a provider whose own MFA counts here: another multi-factor way in.
        assert!(matches!(
            f.broker.start_link_redirect(&mfa_idp, &active).await,
            Err(vestibule::LoginError::NotFresh)
        ));
        assert!(f.broker.has_second_factor(&active.account_id).await.unwrap());
    }

    /// Linking a way in and removing it are mailed to the account's verified address, naming the source as people
    /// see it (its display name).
    #[tokio::test]
    async fn linking_and_unlinking_are_noticed() {
        let f = fixture().await;
        add(&f, "max", Some("max@example.org"), true).await;
        let s = sign_in(&f, "max", "old password").await.unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        let dir = SourceId::new("dir").unwrap();
        f.broker
            .link_password(&dir, &active, "joe", &"directory password".into(), &client())
            .await
            .unwrap();
        f.broker.unlink(&active, "dir", "joe-uuid", &client()).await.unwrap();
        let notices: Vec<(String, Message)> = f.mail.take().into_iter().map(|m| (m.to, m.message)).collect();
        assert_eq!(
            notices,
            [
                (
                    "max@example.org".to_owned(),
                    Message::IdentityLinked {
                        source: "Directory".into()
                    }
                ),
                (
                    "max@example.org".to_owned(),
                    Message::IdentityUnlinked {
                        source: "Directory".into()
                    }
                ),
            ]
        );
    }

    /// The token of the one change link in `mails`, and that it went to `to`.
    fn change_token(mails: &[Mail], to: &str) -> String {
        let links: Vec<(&str, &str)> = mails
            .iter()
            .filter_map(|m| match &m.message {
                Message::ConfirmEmailChange { link, .. } => Some((m.to.as_str(), link.expose())),
                _ => None,
            })
            .collect();
        assert_eq!(links.len(), 1, "{mails:?}");
        assert_eq!(links[0].0, to);
        links[0]
            .1
            .strip_prefix(&format!("{BASE}/email/verify/"))
            .expect("built from the configured public URL")
            .to_owned()
    }

    /// A session signed in as `name` (password "old password") asks to change the address to
    /// `attacker@evil.example`, as a hijacker holding a fresh session would; returns the change link's token.
    async fn hijacked_change(f: &F, name: &str) -> String {
        let s = sign_in(f, name, "old password").await.unwrap();
        let hijacker = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        f.broker
            .request_email_change(&hijacker, "attacker@evil.example", &client())
            .await
            .unwrap();
        change_token(&f.mail.take(), "attacker@evil.example")
    }

    /// The change link of [`hijacked_change`] opens nothing any more, and the account kept its address.
    async fn change_is_void(f: &F, id: &AccountId, token: &str, after: &str) {
        assert_eq!(
            f.broker.pending_email_change(id).await.unwrap(),
            None,
            "{after}: still pending"
        );
        let confirmed = f.broker.confirm_email(token, &client()).await;
        assert!(
            matches!(confirmed, Err(ResetError::InvalidLink)),
            "{after}: the hijacker's link still confirms: {confirmed:?}"
        );
        let account = f.store.get_account(id).await.unwrap().unwrap();
        let own = format!("{}@example.org", account.display_name.unwrap_or_default());
        assert_eq!(
            (account.email.as_deref(), account.email_verified),
            (Some(own.as_str()), true),
            "{after}"
        );
    }

    /// A hijacked session asks to move the address to the attacker's; the owner, warned by the notice, resets the
    /// password. The attacker's link (valid for a day, no session needed) must open nothing afterwards: it would
    /// make the attacker's mailbox the account's verified address, and the next reset mail theirs.
    #[tokio::test]
    async fn a_reset_cancels_a_pending_address_change() {
        let f = fixture().await;
        let ann = add(&f, "ann", Some("ann@example.org"), true).await;
        let change = hijacked_change(&f, "ann").await;
        let token = reset_token(&ask(&f, "ann").await);
        f.broker
            .complete_password_reset(&token, &"brand new password".into(), &client())
            .await
            .unwrap();
        change_is_void(&f, &ann, &change, "reset").await;
    }

    /// The same for a password change from the account page (the notice's advice).
    #[tokio::test]
    async fn a_password_change_cancels_a_pending_address_change() {
        let f = fixture().await;
        let bo = add(&f, "bo", Some("bo@example.org"), true).await;
        let change = hijacked_change(&f, "bo").await;
        let s = sign_in(&f, "bo", "old password").await.unwrap();
        let owner = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        f.broker
            .change_password(&owner, &"old password".into(), &"changed password".into(), &client())
            .await
            .unwrap();
        change_is_void(&f, &bo, &change, "password change").await;
    }

    /// Everything else that ends a hijacker's hold ends the pending change too: the owner signing out the other
    /// sessions or all of them, an operator ending the sessions, resetting the second factors or disabling the
    /// account, and a replayed remember-me cookie (theft).
    #[tokio::test]
    async fn ending_a_hijack_cancels_a_pending_address_change() {
        use vestibule::Revoke;
        let f = fixture().await;
        for (i, after) in [
            "sign out other sessions",
            "sign out everywhere",
            "operator: end sessions",
            "operator: reset second factors",
            "operator: disable",
            "remember-me theft",
        ]
        .into_iter()
        .enumerate()
        {
            let name = format!("u{i}");
            let id = add(&f, &name, Some(&format!("{name}@example.org")), true).await;
            // The owner's own remember-me series, for the theft case.
            let s = sign_in(&f, &name, "old password").await.unwrap();
            let series = f.broker.remember(&s).await.unwrap();
            let change = hijacked_change(&f, &name).await;
            let owner = f.broker.session(s.token.expose()).await.unwrap().unwrap();
            match after {
                "sign out other sessions" => {
                    f.broker
                        .revoke_sessions(&owner, Revoke::Others, None, &client())
                        .await
                        .unwrap();
                }
                "sign out everywhere" => {
                    f.broker
                        .revoke_sessions(&owner, Revoke::All, None, &client())
                        .await
                        .unwrap();
                }
                "operator: end sessions" => {
                    f.broker.end_sessions_by_operator(&id, false, "test").await.unwrap();
                }
                "operator: reset second factors" => {
                    f.broker.reset_second_factors(&id, "test").await.unwrap();
                }
                "operator: disable" => {
                    f.broker
                        .set_account_disabled_by_operator(&id, true, "test")
                        .await
                        .unwrap();
                    f.broker
                        .set_account_disabled_by_operator(&id, false, "test")
                        .await
                        .unwrap();
                }
                _ => {
                    // The owner's browser restores (the token rotates); then a copy of the old cookie comes back.
                    let restored = f.broker.restore(series.expose_secret(), &client()).await.unwrap();
                    assert!(matches!(restored, vestibule::Restored::Session { .. }), "{restored:?}");
                    // Past the grace window for parallel requests.
                    f.clock.advance(60);
                    let replayed = f.broker.restore(series.expose_secret(), &client()).await.unwrap();
                    assert!(matches!(replayed, vestibule::Restored::Theft), "{replayed:?}");
                }
            }
            change_is_void(&f, &id, &change, after).await;
            f.mail.take();
        }
    }

    #[tokio::test]
    async fn a_pending_address_is_used_for_nothing_and_its_link_expires() {
        let f = fixture().await;
        let ivy = add(&f, "ivy", Some("ivy@example.org"), true).await;
        let s = sign_in(&f, "ivy", "old password").await.unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        let started = f
            .broker
            .request_email_change(&active, " ivy.new@example.org ", &client())
            .await
            .unwrap();
        assert_eq!(started, vestibule::EmailChangeStarted::LinkSent);
        let mails = f.mail.take();
        let token = change_token(&mails, "ivy.new@example.org");
        assert!(mails.iter().any(|m| m.to == "ivy@example.org"
            && m.message
                == Message::EmailChangeRequested {
                    new_address: "i***@example.org".into()
                }));
        assert_eq!(
            f.broker.pending_email_change(&ivy).await.unwrap().as_deref(),
            Some("ivy.new@example.org")
        );

        // Reset: the pending address is no account's; the old verified one still is.
        assert!(ask(&f, "ivy.new@example.org").await.is_empty());
        let reset = ask(&f, "ivy").await;
        assert_eq!(reset.len(), 1);
        assert_eq!(reset[0].to, "ivy@example.org");

        // A day later the link is void and nothing is pending; the address never changed.
        f.clock.advance(24 * 3600);
        assert_eq!(f.broker.pending_email_change(&ivy).await.unwrap(), None);
        assert!(matches!(
            f.broker.confirm_email(&token, &client()).await,
            Err(ResetError::InvalidLink)
        ));
        let account = f.store.get_account(&ivy).await.unwrap().unwrap();
        assert_eq!(account.email.as_deref(), Some("ivy@example.org"));
        // And the session that asked is no longer fresh: asking again is refused, nothing is mailed.
        assert!(matches!(
            f.broker
                .request_email_change(&active, "ivy.new@example.org", &client())
                .await,
            Err(vestibule::SelfServiceError::NotFresh)
        ));
        assert!(f.mail.take().is_empty());
    }

    #[tokio::test]
    async fn address_change_requests_are_throttled_and_checked() {
        let f = fixture().await;
        add(&f, "jo", Some("jo@example.org"), true).await;
        let s = sign_in(&f, "jo", "old password").await.unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        for bad in ["jo", "jo@example.org, eve@example.org", "Jo <jo@example.org>"] {
            assert!(matches!(
                f.broker.request_email_change(&active, bad, &client()).await,
                Err(vestibule::SelfServiceError::Invalid(_))
            ));
        }
        // Its own verified address is no change.
        assert!(matches!(
            f.broker
                .request_email_change(&active, "JO@example.org", &client())
                .await,
            Err(vestibule::SelfServiceError::Invalid(_))
        ));
        // Each request mails a stranger's address: past the allowance, refused before anything is mailed.
        let mut sent = 0;
        let throttled = loop {
            match f
                .broker
                .request_email_change(&active, &format!("jo{sent}@example.org"), &client())
                .await
            {
                Ok(_) => sent += 1,
                Err(vestibule::SelfServiceError::Throttled { retry_after_secs }) => break retry_after_secs,
                Err(e) => panic!("{e:?}"),
            }
            assert!(sent <= 10, "never throttled");
        };
        assert!(throttled > 0);
        assert_eq!(
            f.mail.take().len(),
            2 * sent,
            "a link and a notice per request taken, nothing after"
        );
    }

    #[tokio::test]
    async fn a_directory_account_changes_its_own_address_and_the_identity_keeps_the_directorys() {
        let f = fixture().await;
        let s = sign_in_joe(&f).await.session().unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        let joe = active.account_id.clone();
        f.mail.take();
        f.broker
            .request_email_change(&active, "joe@home.example", &client())
            .await
            .unwrap();
        let token = change_token(&f.mail.take(), "joe@home.example");
        // Opened without any session: the token is the proof.
        assert_eq!(
            f.broker.confirm_email(&token, &client()).await.unwrap(),
            "joe@home.example"
        );
        let account = f.store.get_account(&joe).await.unwrap().unwrap();
        assert_eq!(
            (account.email.as_deref(), account.email_verified),
            (Some("joe@home.example"), true)
        );
        // What the directory asserted stays on its identity, and a new sign-in does not write it back.
        sign_in_joe(&f).await;
        let identities = f.store.identities_of(&joe).await.unwrap();
        assert_eq!(identities[0].email.as_deref(), Some("joe@example.org"));
        let account = f.store.get_account(&joe).await.unwrap().unwrap();
        assert_eq!(account.email.as_deref(), Some("joe@home.example"));
        let notices: Vec<(String, Message)> = f.mail.take().into_iter().map(|m| (m.to, m.message)).collect();
        assert_eq!(
            notices,
            [(
                "joe@example.org".to_owned(),
                Message::EmailChanged {
                    new_address: "j***@home.example".into()
                }
            )]
        );
    }

    #[tokio::test]
    async fn an_unconfirmed_address_entered_again_gets_its_confirmation_again() {
        let f = fixture().await;
        let kim = add(&f, "kim", Some("kim@example.org"), false).await;
        let s = sign_in(&f, "kim", "old password").await.unwrap();
        let active = f.broker.session(s.token.expose()).await.unwrap().unwrap();
        let started = f
            .broker
            .request_email_change(&active, "KIM@example.org", &client())
            .await
            .unwrap();
        assert_eq!(started, vestibule::EmailChangeStarted::ConfirmationResent);
        let mails = f.mail.take();
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert!(matches!(&mails[0].message, Message::VerifyEmail { .. }) && mails[0].to == "kim@example.org");
        assert_eq!(f.broker.pending_email_change(&kim).await.unwrap(), None);
    }
}

/// `/readyz`'s answer at the broker: the store and each source, a source that is down makes the node not ready,
/// and one run of the probes is shared: requests at the same time wait for it, and requests within
/// `FRESH_FOR` get its answer, so anyone polling the open route cannot make the broker hammer the directory.
#[tokio::test]
async fn readiness_names_each_check_and_shares_one_probe_run() {
    use vestibule::{CheckState, SourceCheck};
    let f = fixture().await;
    let mut at_once = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let broker = f.broker.clone();
        at_once.spawn(async move { broker.readiness().await });
    }
    let all = at_once.join_all().await;
    assert_eq!(f.password.probes(), 1, "eight requests at once, one probe");
    let r = &all[0];
    assert!(all.iter().all(|x| x == r));
    assert!(r.ready);
    assert_eq!(r.store, CheckState::Up);
    assert_eq!(
        r.sources,
        [
            SourceCheck {
                id: "dir".into(),
                state: CheckState::Up
            },
            SourceCheck {
                id: "idp".into(),
                state: CheckState::NotChecked
            },
        ]
    );
    f.password.down();
    // Within FRESH_FOR: the same answer, no new probe.
    assert!(f.broker.readiness().await.ready);
    assert_eq!(f.password.probes(), 1);
    tokio::time::sleep(vestibule::FRESH_FOR + std::time::Duration::from_millis(100)).await;
    let r = f.broker.readiness().await;
    assert_eq!(f.password.probes(), 2);
    assert!(!r.ready);
    assert_eq!(r.sources[0].state, CheckState::Down);
    f.password.up();
    tokio::time::sleep(vestibule::FRESH_FOR + std::time::Duration::from_millis(100)).await;
    assert!(f.broker.readiness().await.ready);
    // The store gone: not ready.
    f.store.close().await;
    tokio::time::sleep(vestibule::FRESH_FOR + std::time::Duration::from_millis(100)).await;
    let r = f.broker.readiness().await;
    assert_eq!((r.ready, r.store), (false, CheckState::Down));
}
