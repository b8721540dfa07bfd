//! One contract suite, run against SQLite and PostgreSQL: every case is generated once per backend.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;
use vestibule_core::storage::{BrokerStore, EmailToken, EmailTokenPurpose};
use vestibule_core::{
    AccountId, CredentialRepository, ExposeSecret, ExternalIdentity, PasswordFlow, SecretString, SourceId, Subject,
    Timestamp,
};
use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher, PasswordPolicy};
use vestibule_store::{
    AuditEvent, AuditKind, Backend, NewLocalAccount, PasskeyCeremony, PasskeyRecord, PendingLink, PendingRecord,
    PendingSecondFactor, SessionRecord, Store, StoreError, StoreOptions, Unlinked,
};
use vestibule_tests::pg::TempDatabase;

const NOW: Timestamp = Timestamp(1_800_000_000);

async fn with_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("vestibule-store-{}", vestibule_tests::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    case(store.clone()).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn with_postgres<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TempDatabase::create().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    case(store.clone()).await;
    store.close().await;
    db.drop_db().await;
}

/// A connected store whose database has no tables yet, for cases about migrating itself.
async fn with_empty_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("vestibule-store-{}", vestibule_tests::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .unwrap();
    case(store.clone()).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// As [`with_empty_sqlite`], on a fresh PostgreSQL database.
async fn with_empty_postgres<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TempDatabase::create().await;
    let store = Store::connect(&db.url).await.unwrap();
    case(store.clone()).await;
    store.close().await;
    db.drop_db().await;
}

macro_rules! contract {
    ($($name:ident),* $(,)?; unmigrated: $($fresh:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::with_sqlite(super::$name).await } )*
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $fresh() { super::with_empty_sqlite(super::$fresh).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::with_postgres(super::$name).await } )*
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $fresh() { super::with_empty_postgres(super::$fresh).await } )*
        }
    };
}

contract!(
    migrations_are_idempotent,
    audit_queries_filter_and_page,
    local_accounts_and_credentials,
    identities_are_keyed_by_source_and_subject,
    concurrent_first_logins_create_one_account,
    sessions_lifecycle,
    pending_flows_are_single_use,
    audit_log_is_append_only,
    keys_are_created_once,
    disabling_an_account_kills_its_sessions,
    email_lookup_and_pending_links,
    unlinking_keeps_one_way_in,
    unlinking_ends_what_the_identity_opened,
    local_login_names_are_canonical,
    sessions_and_series_keep_their_methods,
    totp_steps_are_accepted_once,
    recovery_codes_are_single_use,
    pending_second_factor_is_single_use,
    passkeys_are_unique_and_recorded_with_compare_and_set,
    passkey_ceremonies_are_single_use,
    email_tokens_are_single_use_and_void_after_a_password_change,
    an_address_change_takes_a_free_address_and_voids_the_old_links,
    a_password_change_or_a_disabled_account_voids_pending_address_changes,
    accounts_list_in_pages_and_search_literally,
    deleting_an_account_removes_every_row_but_its_audit,
    assigned_groups_survive_sign_ins_and_go_with_the_password;
    unmigrated: colliding_login_names_refuse_to_migrate,
);

fn src(s: &str) -> SourceId {
    SourceId::new(s).unwrap()
}

fn ident(source: &str, subject: &str) -> ExternalIdentity {
    ExternalIdentity::new(src(source), Subject::new(subject).unwrap())
        .with_login("someone")
        .with_email("someone@example.org", true)
        .with_groups(vec!["staff".into()])
}

fn new_local(username: &str) -> NewLocalAccount {
    NewLocalAccount {
        source: src("local"),
        username: username.into(),
        display_name: Some("Alice A.".into()),
        email: Some(format!("{username}@example.org")),
        email_verified: false,
        // Not a real hash: the store never interprets it.
        password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
    }
}

fn session(hash: &str, account: &AccountId) -> SessionRecord {
    SessionRecord {
        id_hash: hash.into(),
        account_id: account.clone(),
        source: src("local"),
        created_at: NOW,
        last_seen_at: NOW,
        authenticated_at: NOW,
        expires_at: NOW.plus_secs(3600),
        user_agent: Some("test-agent".into()),
        ip: Some("127.0.0.1".into()),
        fingerprint: None,
        subject: None,
        checked_at: None,
        methods: Vec::new(),
        second_factor_at: None,
    }
}

/// A remember-me series of `account` from a local sign-in, valid an hour.
fn remember(hash: &str, account: &AccountId) -> vestibule_store::RememberSeries {
    vestibule_store::RememberSeries {
        series_hash: hash.into(),
        account_id: account.clone(),
        source: src("local"),
        subject: None,
        token_hash: "t".into(),
        previous_token_hash: None,
        rotated_at: NOW,
        authenticated_at: NOW,
        expires_at: NOW.plus_secs(3600),
        methods: Vec::new(),
    }
}

async fn migrations_are_idempotent(store: Store) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn local_accounts_and_credentials(store: Store) {
    let id = store.create_local_account(&new_local("alice"), NOW).await.unwrap();
    let rec = store.find_password("alice").await.unwrap().unwrap();
    assert_eq!(rec.account_id, id);
    assert_eq!(rec.email.as_deref(), Some("alice@example.org"));
    assert!(!rec.disabled);
    assert_eq!(
        store.find_password("ALICE").await.unwrap().map(|r| r.account_id),
        Some(id.clone()),
        "usernames compare in canonical form"
    );
    assert!(store.find_password("bob").await.unwrap().is_none());

    // A taken username is a conflict, and the failed attempt leaves no half-created account behind.
    let dup = store.create_local_account(&new_local("alice"), NOW).await;
    assert!(matches!(dup, Err(StoreError::Conflict("username"))), "{dup:?}");

    // The local identity is (local source, account id).
    let ids = store.identities_of(&id).await.unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].subject.as_str(), id.as_str());
    assert_eq!(ids[0].login.as_deref(), Some("alice"));

    // Hash replacement is compare-and-swap.
    store
        .replace_password_hash(&id, "not-the-old-hash", "new1")
        .await
        .unwrap();
    assert_ne!(
        store.find_password("alice").await.unwrap().unwrap().password_hash,
        "new1"
    );
    store
        .replace_password_hash(&id, &rec.password_hash, "new2")
        .await
        .unwrap();
    assert_eq!(
        store.find_password("alice").await.unwrap().unwrap().password_hash,
        "new2"
    );

    let account = store.get_account(&id).await.unwrap().unwrap();
    assert_eq!(account.display_name.as_deref(), Some("Alice A."));
    assert_eq!(account.created_at, NOW);
}

async fn identities_are_keyed_by_source_and_subject(store: Store) {
    let a = store
        .create_account_for_identity(&ident("google", "1234"), true, NOW)
        .await
        .unwrap();
    // Same subject from another provider is another identity, and another account.
    let b = store
        .create_account_for_identity(&ident("github", "1234"), true, NOW)
        .await
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(
        store
            .find_identity(&src("google"), &Subject::new("1234").unwrap())
            .await
            .unwrap()
            .unwrap()
            .account_id,
        a
    );
    assert_eq!(
        store
            .find_identity(&src("github"), &Subject::new("1234").unwrap())
            .await
            .unwrap()
            .unwrap()
            .account_id,
        b
    );

    // An identity already linked is never moved.
    let moved = store.link_identity(&ident("google", "1234"), &b, NOW).await;
    assert!(matches!(moved, Err(StoreError::Conflict("identity"))), "{moved:?}");
    // One account holds several identities.
    store.link_identity(&ident("google", "5678"), &a, NOW).await.unwrap();
    assert_eq!(store.identities_of(&a).await.unwrap().len(), 2);

    // A later sign-in refreshes what the source says, not the key.
    let renamed = ident("google", "1234")
        .with_login("new-name")
        .with_groups(vec!["admins".into(), "staff".into()]);
    store.record_identity_login(&renamed, NOW.plus_secs(10)).await.unwrap();
    let rec = store
        .find_identity(&src("google"), &Subject::new("1234").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.login.as_deref(), Some("new-name"));
    assert_eq!(rec.groups, vec!["admins".to_string(), "staff".to_string()]);
    assert_eq!(rec.last_login_at, Some(NOW.plus_secs(10)));
    assert!(rec.email_verified);
}

async fn concurrent_first_logins_create_one_account(store: Store) {
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.create_account_for_identity(&ident("corp", "uuid-1"), true, NOW).await
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(id) => won.push(id),
            Err(StoreError::Conflict("identity")) => {}
            // SQLite may report a busy database under write contention; that is a loss too, not a second account.
            Err(StoreError::Database(_) | StoreError::Timeout(_)) if store.backend() == Backend::Sqlite => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one first login wins");
    let rec = store
        .find_identity(&src("corp"), &Subject::new("uuid-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.account_id, won[0]);
}

async fn sessions_lifecycle(store: Store) {
    let id = store.create_local_account(&new_local("alice"), NOW).await.unwrap();
    for h in ["h1", "h2", "h3"] {
        store.insert_session(&session(h, &id)).await.unwrap();
    }
    assert!(matches!(
        store.insert_session(&session("h1", &id)).await,
        Err(StoreError::Conflict("session"))
    ));
    assert_eq!(
        store.get_session("h1").await.unwrap().unwrap().user_agent.as_deref(),
        Some("test-agent")
    );
    assert!(store.get_session("nope").await.unwrap().is_none());

    store.touch_session("h1", NOW.plus_secs(60)).await.unwrap();
    store.touch_session("h1", NOW.plus_secs(30)).await.unwrap();
    assert_eq!(
        store.get_session("h1").await.unwrap().unwrap().last_seen_at,
        NOW.plus_secs(60),
        "only forward"
    );

    assert!(store.delete_session("h2").await.unwrap());
    assert!(!store.delete_session("h2").await.unwrap());
    assert_eq!(store.sessions_of(&id).await.unwrap().len(), 2);

    let gone = store.delete_sessions_of(&id, Some("h1")).await.unwrap();
    assert_eq!(gone, vec!["h3".to_string()]);
    assert_eq!(store.sessions_of(&id).await.unwrap().len(), 1);

    // Purge: absolute expiry and idle cutoff.
    store.insert_session(&session("h4", &id)).await.unwrap();
    let purged = store
        .purge_sessions(NOW.plus_secs(10), NOW.plus_secs(59))
        .await
        .unwrap();
    assert_eq!(purged, 1, "h4 was idle since NOW; h1 was seen at NOW+60");
    let purged = store.purge_sessions(NOW.plus_secs(3600), NOW).await.unwrap();
    assert_eq!(purged, 1, "h1 reached its absolute expiry");
}

async fn pending_flows_are_single_use(store: Store) {
    let p = PendingRecord {
        state_hash: "s1".into(),
        source: src("google"),
        browser_hash: "b1".into(),
        data: "{\"nonce\":\"n\"}".into(),
        next_path: Some("/after".into()),
        expires_at: NOW.plus_secs(600),
        link_account: None,
        started_at: NOW,
        step_up_session: Some("c0ffee".into()),
    };
    store.insert_pending(&p).await.unwrap();
    let store = Arc::new(store);
    let a = {
        let s = store.clone();
        tokio::spawn(async move { s.take_pending("s1").await.unwrap() })
    };
    let b = {
        let s = store.clone();
        tokio::spawn(async move { s.take_pending("s1").await.unwrap() })
    };
    let got: Vec<_> = [a.await.unwrap(), b.await.unwrap()].into_iter().flatten().collect();
    assert_eq!(got.len(), 1, "exactly one callback gets the flow");
    // Field by field: the flow data is a secret and has no `PartialEq`.
    let g = &got[0];
    assert_eq!(g.state_hash, p.state_hash);
    assert_eq!(g.source, p.source);
    assert_eq!(g.browser_hash, p.browser_hash);
    assert_eq!(g.data.expose_secret(), p.data.expose_secret());
    assert_eq!(g.next_path, p.next_path);
    assert_eq!(g.expires_at, p.expires_at);
    assert_eq!(g.link_account, p.link_account);
    assert_eq!(g.started_at, p.started_at);
    assert_eq!(g.step_up_session, p.step_up_session);
    assert!(store.take_pending("s1").await.unwrap().is_none());

    store
        .insert_pending(&PendingRecord {
            state_hash: "s2".into(),
            expires_at: NOW,
            ..p
        })
        .await
        .unwrap();
    assert_eq!(store.purge_pending(NOW).await.unwrap(), 1);
}

async fn audit_queries_filter_and_page(store: Store) {
    use vestibule_core::storage::AuditQuery;
    let events = [
        (AuditKind::LoginFailure, Some("acc-1"), "10.0.0.1", NOW.0 - 7200),
        (AuditKind::LoginSuccess, Some("acc-1"), "10.0.0.1", NOW.0 - 60),
        (AuditKind::LoginFailure, Some("acc-2"), "10.0.0.2", NOW.0),
        (AuditKind::AccountDisabled, None, "10.0.0.2", NOW.0),
    ];
    for (kind, account, ip, at) in events {
        let e = AuditEvent {
            account_id: account,
            ip: Some(ip),
            ..AuditEvent::of(kind)
        };
        store.audit(Timestamp(at), &e).await.unwrap();
    }
    let q = |q: AuditQuery| {
        let store = store.clone();
        async move {
            let rows = store.query_audit(&AuditQuery { limit: 10, ..q }).await.unwrap();
            rows.into_iter()
                .map(|r| (r.event, r.account_id, r.ip))
                .collect::<Vec<_>>()
        }
    };
    let row = |e: &str, a: Option<&str>, ip: &str| (e.to_owned(), a.map(str::to_owned), Some(ip.to_owned()));
    assert_eq!(q(AuditQuery::default()).await.len(), 4);
    assert_eq!(
        q(AuditQuery {
            account_id: Some("acc-1".into()),
            ..Default::default()
        })
        .await,
        [
            row("login_success", Some("acc-1"), "10.0.0.1"),
            row("login_failure", Some("acc-1"), "10.0.0.1")
        ]
    );
    assert_eq!(
        q(AuditQuery {
            event: Some("login_failure".into()),
            ip: Some("10.0.0.2".into()),
            ..Default::default()
        })
        .await,
        [row("login_failure", Some("acc-2"), "10.0.0.2")]
    );
    assert_eq!(
        q(AuditQuery {
            since: Some(Timestamp(NOW.0 - 3600)),
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    // Paging: one at a time, each page older than the last row of the one before.
    let mut before = None;
    let mut seen = Vec::new();
    loop {
        let page = store
            .query_audit(&AuditQuery {
                before_id: before,
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(r) = page.first() else { break };
        seen.push(r.id);
        before = Some(r.id);
    }
    assert_eq!(seen.len(), 4);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));
}

async fn audit_log_is_append_only(store: Store) {
    for kind in [AuditKind::LoginFailure, AuditKind::LoginSuccess] {
        store
            .audit(
                NOW,
                &AuditEvent {
                    source: Some("local"),
                    ip: Some("127.0.0.1"),
                    ..AuditEvent::of(kind)
                },
            )
            .await
            .unwrap();
    }
    let rows = store.recent_audit(10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.event.as_str()).collect::<Vec<_>>(),
        ["login_success", "login_failure"]
    );
    assert_eq!(rows[0].ip.as_deref(), Some("127.0.0.1"));
    // Nobody rewrites history, not even the broker's own database user.
    let pool = sqlx::AnyPool::connect(&store_url_of(&store)).await;
    if let Ok(pool) = pool {
        assert!(sqlx::query("UPDATE audit_log SET event = 'x'")
            .execute(&pool)
            .await
            .is_err());
        assert!(sqlx::query("DELETE FROM audit_log").execute(&pool).await.is_err());
        pool.close().await;
    } else {
        panic!("could not reopen the database");
    }
    assert_eq!(store.recent_audit(10).await.unwrap().len(), 2);
}

async fn keys_are_created_once(store: Store) {
    let first = store.get_or_insert_key("csrf", "aaa", NOW).await.unwrap();
    let second = store.get_or_insert_key("csrf", "bbb", NOW).await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("aaa", "aaa"));
}

async fn disabling_an_account_kills_its_sessions(store: Store) {
    let id = store.create_local_account(&new_local("carol"), NOW).await.unwrap();
    store.insert_session(&session("hc", &id)).await.unwrap();
    assert!(store.set_account_disabled(&id, true).await.unwrap());
    assert!(store.get_session("hc").await.unwrap().is_none());
    assert!(store.find_password("carol").await.unwrap().unwrap().disabled);
}

fn store_url_of(store: &Store) -> String {
    store.url().to_owned()
}

async fn email_lookup_and_pending_links(store: Store) {
    let id = store.create_local_account(&new_local("dora"), NOW).await.unwrap();
    let found = store.accounts_with_email("DORA@Example.org").await.unwrap();
    assert_eq!(found.iter().map(|a| a.id.clone()).collect::<Vec<_>>(), vec![id]);
    assert!(store
        .accounts_with_email("dora@example.org.evil")
        .await
        .unwrap()
        .is_empty());

    let p = PendingLink {
        token_hash: "t1".into(),
        identity: ident("google", "g-1"),
        may_create: true,
        expires_at: NOW,
    };
    store.insert_pending_link(&p).await.unwrap();
    assert_eq!(
        store.get_pending_link("t1").await.unwrap().as_ref(),
        Some(&p),
        "reading does not use it up"
    );
    let store = Arc::new(store);
    let a = {
        let s = store.clone();
        tokio::spawn(async move { s.take_pending_link("t1").await.unwrap() })
    };
    let b = {
        let s = store.clone();
        tokio::spawn(async move { s.take_pending_link("t1").await.unwrap() })
    };
    let got: Vec<_> = [a.await.unwrap(), b.await.unwrap()].into_iter().flatten().collect();
    assert_eq!(got, vec![p], "single use");
    store
        .insert_pending_link(&PendingLink {
            token_hash: "t2".into(),
            identity: ident("google", "g-2"),
            may_create: false,
            expires_at: NOW,
        })
        .await
        .unwrap();
    assert_eq!(store.purge_pending_links(NOW).await.unwrap(), 1);
}

async fn unlinking_keeps_one_way_in(store: Store) {
    let id = store.create_local_account(&new_local("erin"), NOW).await.unwrap();
    let other = store
        .create_account_for_identity(&ident("corp", "x-1"), true, NOW)
        .await
        .unwrap();
    let local_subject = Subject::new(id.as_str()).unwrap();
    // The only identity cannot go.
    assert_eq!(
        store.unlink_identity(&id, &src("local"), &local_subject).await.unwrap(),
        Unlinked::LastIdentity
    );
    // Someone else's identity is not found from this account (no IDOR).
    assert_eq!(
        store
            .unlink_identity(&id, &src("corp"), &Subject::new("x-1").unwrap())
            .await
            .unwrap(),
        Unlinked::NotFound
    );
    assert!(store
        .find_identity(&src("corp"), &Subject::new("x-1").unwrap())
        .await
        .unwrap()
        .is_some());
    let _ = other;

    store.link_identity(&ident("google", "g-9"), &id, NOW).await.unwrap();
    store.link_identity(&ident("github", "42"), &id, NOW).await.unwrap();
    // Removing the local identity removes the password with it.
    assert_eq!(
        store.unlink_identity(&id, &src("local"), &local_subject).await.unwrap(),
        Unlinked::Done { ended: vec![] }
    );
    assert!(store.find_password("erin").await.unwrap().is_none());

    // Two concurrent unlinks of the last two identities: one wins, one way in stays.
    let store = Arc::new(store);
    let a = {
        let (s, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            s.unlink_identity(&id, &src("google"), &Subject::new("g-9").unwrap())
                .await
        })
    };
    let b = {
        let (s, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            s.unlink_identity(&id, &src("github"), &Subject::new("42").unwrap())
                .await
        })
    };
    let results = [a.await.unwrap(), b.await.unwrap()];
    let done = results
        .iter()
        .filter(|r| matches!(r, Ok(Unlinked::Done { .. })))
        .count();
    assert_eq!(done, 1, "{results:?}");
    assert_eq!(store.identities_of(&id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_runs_in_wal_with_normal_sync_and_foreign_keys() {
    with_sqlite(|store: Store| async move {
        let pool = sqlx::AnyPool::connect(store.url()).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        // Through the store's own pool: synchronous=NORMAL (1) and foreign keys on.
        let sync: i64 = store.sqlite_pragma("synchronous").await.unwrap();
        assert_eq!(sync, 1);
        let fk: i64 = store.sqlite_pragma("foreign_keys").await.unwrap();
        assert_eq!(fk, 1);
        pool.close().await;
    })
    .await;
}

async fn unlinking_ends_what_the_identity_opened(store: Store) {
    let id = store.create_local_account(&new_local("fay"), NOW).await.unwrap();
    store.link_identity(&ident("google", "g-1"), &id, NOW).await.unwrap();
    store.link_identity(&ident("google", "g-2"), &id, NOW).await.unwrap();
    let opened_by = |hash: &str, source: &str, subject: Option<&str>| SessionRecord {
        source: src(source),
        subject: subject.map(|s| Subject::new(s).unwrap()),
        ..session(hash, &id)
    };
    for s in [
        opened_by("by-g1", "google", Some("g-1")),
        opened_by("by-g2", "google", Some("g-2")),
        opened_by("legacy-google", "google", None),
        opened_by("by-local", "local", Some(id.as_str())),
    ] {
        store.insert_session(&s).await.unwrap();
    }
    let token = |tid: &str, subject: &str| vestibule_store::AccessToken {
        id: tid.into(),
        token_hash: format!("hash-{tid}"),
        account_id: id.clone(),
        name: tid.into(),
        scopes: String::new(),
        created_at: NOW,
        expires_at: NOW.plus_secs(3600),
        last_used_at: None,
        created_by: Some((src("google"), Subject::new(subject).unwrap())),
        checked_at: None,
        methods: vec!["pwd".into(), "otp".into()],
    };
    store.insert_token(&token("t1", "g-1")).await.unwrap();
    store.insert_token(&token("t2", "g-2")).await.unwrap();
    let series = |hash: &str, subject: &str| vestibule_store::RememberSeries {
        series_hash: hash.into(),
        account_id: id.clone(),
        source: src("google"),
        subject: Some(Subject::new(subject).unwrap()),
        token_hash: format!("t-{hash}"),
        previous_token_hash: None,
        rotated_at: NOW,
        authenticated_at: NOW,
        expires_at: NOW.plus_secs(3600),
        methods: vec!["fed".into()],
    };
    store.insert_remember(&series("r1", "g-1")).await.unwrap();
    store.insert_remember(&series("r2", "g-2")).await.unwrap();

    let Unlinked::Done { mut ended } = store
        .unlink_identity(&id, &src("google"), &Subject::new("g-1").unwrap())
        .await
        .unwrap()
    else {
        panic!("unlink refused")
    };
    ended.sort();
    assert_eq!(ended, vec!["by-g1", "hash-t1", "legacy-google"]);
    let left: Vec<String> = store
        .sessions_of(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id_hash)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"by-g2".to_string()) && left.contains(&"by-local".to_string()));
    assert!(store.find_token("hash-t1").await.unwrap().is_none());
    let kept = store.find_token("hash-t2").await.unwrap().unwrap();
    assert_eq!(kept.methods, ["pwd", "otp"], "a token keeps how its session was proven");
    assert!(store.get_remember("r1").await.unwrap().is_none());
    assert!(store.get_remember("r2").await.unwrap().is_some());
}

// --- Bounded waits on the database (#9 item 13) ---

/// A statement blocked on a lock that another client keeps (as a client that died mid-transaction keeps it until
/// TCP notices) ends with [`StoreError::Timeout`] after `statement_timeout`, instead of hanging its request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statement_timeout_ends_a_blocked_query() {
    let db = TempDatabase::create().await;
    let options = StoreOptions {
        statement_timeout: Duration::from_millis(500),
        ..StoreOptions::default()
    };
    let store = Store::connect_with(&db.url, options).await.unwrap();
    store.migrate().await.unwrap();
    let id = store.create_local_account(&new_local("frank"), NOW).await.unwrap();

    let mut other = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(id.as_str())
        .fetch_all(&mut other)
        .await
        .unwrap();

    let started = Instant::now();
    let blocked = tokio::time::timeout(Duration::from_secs(30), store.set_account_disabled(&id, true)).await;
    let result = blocked.expect("the store waited on the lock for 30 s: no statement timeout");
    assert!(matches!(result, Err(StoreError::Timeout(_))), "{result:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    // Other queries are answered meanwhile, and the blocked one goes through once the lock is gone.
    store.ping().await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert!(store.set_account_disabled(&id, true).await.unwrap());
    let _ = other.close().await;
    store.close().await;
    db.drop_db().await;
}

/// SQLite: a write that waits for another connection's write lock gives up after the busy timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_busy_timeout_ends_a_blocked_write() {
    let dir = std::env::temp_dir().join(format!("vestibule-store-{}", vestibule_tests::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = StoreOptions {
        sqlite_busy_timeout: Duration::from_millis(300),
        ..StoreOptions::default()
    };
    let store = Store::connect_with(&format!("sqlite://{}/t.db", dir.display()), options)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.sqlite_pragma("busy_timeout").await.unwrap(), 300);
    let id = store.create_local_account(&new_local("grace"), NOW).await.unwrap();

    let mut other = sqlx::AnyConnection::connect(store.url()).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let started = Instant::now();
    let blocked = tokio::time::timeout(Duration::from_secs(30), store.set_account_disabled(&id, true)).await;
    let result = blocked.expect("the store waited on the write lock for 30 s");
    assert!(matches!(result, Err(StoreError::Timeout(_))), "{result:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert!(store.set_account_disabled(&id, true).await.unwrap());
    let _ = other.close().await;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

// --- Login names in canonical form (#9 item 11) ---

fn cheap_argon2() -> Argon2Settings {
    Argon2Settings {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

async fn local_login_names_are_canonical(store: Store) {
    // `vestibule user add Alice`: a real (cheap) hash, so that sign-in goes through the local source as in the server.
    let hasher = Arc::new(PasswordHasher::new(cheap_argon2()).unwrap());
    let mut alice = new_local("Alice");
    alice.password_hash = hasher.hash("correct horse".into()).await.unwrap().into();
    let id = store.create_local_account(&alice, NOW).await.unwrap();
    let config = LocalConfig {
        id: src("local"),
        display_name: None,
        argon2: cheap_argon2(),
        password: PasswordPolicy::default(),
    };
    let local = LocalSource::new(&config, Arc::new(store.clone()), hasher);
    for typed in ["Alice", "alice", "ALICE", "ＡＬＩＣＥ", "ａｌｉｃｅ"] {
        let who = local.authenticate(typed, &SecretString::from("correct horse")).await;
        let who = who.unwrap_or_else(|e| panic!("signing in as {typed:?}: {e:?}"));
        assert_eq!(who.subject.as_str(), id.as_str());
        assert_eq!(
            who.login.as_deref(),
            Some("Alice"),
            "the name as it was added, for display"
        );
    }
    assert!(local
        .authenticate("alice", &SecretString::from("wrong horse"))
        .await
        .is_err());
    // The same name in another case or width is taken; nothing is left behind by the refusals.
    for again in ["alice", "ALICE", "ＡＬＩＣＥ"] {
        let dup = store.create_local_account(&new_local(again), NOW).await;
        assert!(
            matches!(dup, Err(StoreError::Conflict("username"))),
            "{again:?}: {dup:?}"
        );
    }
    assert_eq!(
        store.accounts_with_email("alice@example.org").await.unwrap().len(),
        1,
        "only the first account exists"
    );
    // A name with no canonical form is neither stored nor found.
    let invisible = store.create_local_account(&new_local("al\u{200B}ice"), NOW).await;
    assert!(matches!(invisible, Err(StoreError::InvalidLogin(_))), "{invisible:?}");
    assert!(store.find_password("al\u{200B}ice").await.unwrap().is_none());
    assert!(store.find_password("").await.unwrap().is_none());
}

/// Runs the migrations before `version` only: the database as an older release left it.
async fn migrate_before(store: &Store, version: i64) {
    let mut migrator = match store.backend() {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    let older: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect();
    assert!(
        older.len() < migrator.migrations.len(),
        "no migration {version} or later"
    );
    migrator.migrations = older.into();
    let pool = sqlx::AnyPool::connect(store.url()).await.unwrap();
    migrator.run(&pool).await.unwrap();
    pool.close().await;
}

async fn colliding_login_names_refuse_to_migrate(store: Store) {
    migrate_before(&store, 6).await;
    // Names an older release stored side by side, byte for byte different.
    let pool = sqlx::AnyPool::connect(store.url()).await.unwrap();
    let names = ["Alice", "ＡＬＩＣＥ", "alice", "Bob", "bob", "carol", "eve\u{200B}"];
    for (i, name) in names.iter().enumerate() {
        let id = format!("acc{i}");
        sqlx::query("INSERT INTO accounts (id, email_verified, disabled, created_at) VALUES ($1, 0, 0, $2)")
            .bind(&id)
            .bind(NOW.0)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO local_credentials (account_id, username, password_hash, updated_at) VALUES ($1, $2, 'h', $3)",
        )
        .bind(&id)
        .bind(*name)
        .bind(NOW.0)
        .execute(&pool)
        .await
        .unwrap();
    }

    let refused = store.migrate().await;
    let Err(StoreError::LoginNames(problems)) = &refused else {
        panic!("migrated over colliding names: {refused:?}")
    };
    assert_eq!(
        problems.collisions,
        vec![
            (
                "alice".to_string(),
                vec!["Alice".to_string(), "alice".into(), "ＡＬＩＣＥ".into()]
            ),
            ("bob".to_string(), vec!["Bob".to_string(), "bob".into()]),
        ]
    );
    assert_eq!(problems.invalid.len(), 1);
    let message = problems.to_string();
    for shown in [
        r#""Alice""#,
        r#""ＡＬＩＣＥ""#,
        r#""alice""#,
        r#""Bob""#,
        r#""bob""#,
        r#""eve\u{200b}""#,
    ] {
        assert!(message.contains(shown), "{shown} missing from: {message}");
    }
    assert!(!message.contains("carol"), "{message}");
    // Every start refuses until the names are fixed, and nothing was half-done.
    assert!(matches!(store.migrate().await, Err(StoreError::LoginNames(_))));
    let filled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM local_credentials WHERE username_canonical IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(filled, 0);

    // The operator renames; then the store starts, and every old name signs in whatever its case or width.
    for (old, new) in [
        ("ＡＬＩＣＥ", "alice2"),
        ("alice", "alice3"),
        ("bob", "bobby"),
        ("eve\u{200B}", "eve"),
    ] {
        sqlx::query("UPDATE local_credentials SET username = $1 WHERE username = $2")
            .bind(new)
            .bind(old)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    store.migrate().await.unwrap();
    for (typed, account) in [
        ("ALICE", "acc0"),
        ("Alice2", "acc1"),
        ("ＢＯＢ", "acc3"),
        ("Carol", "acc5"),
        ("EVE", "acc6"),
    ] {
        let found = store.find_password(typed).await.unwrap();
        assert_eq!(
            found.map(|r| r.account_id.to_string()).as_deref(),
            Some(account),
            "{typed}"
        );
    }
    let dup = store.create_local_account(&new_local("CAROL"), NOW).await;
    assert!(matches!(dup, Err(StoreError::Conflict("username"))), "{dup:?}");
}

async fn sessions_and_series_keep_their_methods(store: Store) {
    let id = store.create_local_account(&new_local("meg"), NOW).await.unwrap();
    let with_methods = SessionRecord {
        methods: vec!["pwd".into(), "otp".into()],
        second_factor_at: Some(NOW.plus_secs(5)),
        ..session("m1", &id)
    };
    store.insert_session(&with_methods).await.unwrap();
    store.insert_session(&session("m2", &id)).await.unwrap();
    assert_eq!(store.get_session("m1").await.unwrap().unwrap(), with_methods);
    let plain = store.get_session("m2").await.unwrap().unwrap();
    assert!(plain.methods.is_empty());
    assert_eq!(plain.second_factor_at, None);
    let series = vestibule_store::RememberSeries {
        methods: vec!["pwd".into(), "otp".into()],
        ..remember("s1", &id)
    };
    store.insert_remember(&series).await.unwrap();
    assert_eq!(store.get_remember("s1").await.unwrap().unwrap(), series);
}

async fn totp_steps_are_accepted_once(store: Store) {
    let id = store.create_local_account(&new_local("tia"), NOW).await.unwrap();
    assert!(store.get_totp(&id).await.unwrap().is_none());
    assert!(store.put_totp(&id, "sealed-1", "session-a", NOW).await.unwrap());
    assert_eq!(
        store.get_totp(&id).await.unwrap().unwrap().begun_by.as_deref(),
        Some("session-a")
    );
    // Unconfirmed: replaced by a new enrolment (with who began it); a sign-in step is not accepted for it.
    assert!(store.put_totp(&id, "sealed-2", "session-b", NOW).await.unwrap());
    assert!(!store.accept_totp_step(&id, 100, None, NOW).await.unwrap());
    let f = store.get_totp(&id).await.unwrap().unwrap();
    assert_eq!(
        (
            f.sealed_secret.as_str(),
            f.confirmed_at,
            f.last_step,
            f.begun_by.as_deref()
        ),
        ("sealed-2", None, 0, Some("session-b"))
    );
    // A code checked against another secret (replaced meanwhile by a new enrolment) confirms nothing.
    assert!(!store.accept_totp_step(&id, 100, Some("sealed-1"), NOW).await.unwrap());
    // Confirmed by a code of step 100: that step is used.
    assert!(store.accept_totp_step(&id, 100, Some("sealed-2"), NOW).await.unwrap());
    assert!(!store.accept_totp_step(&id, 100, Some("sealed-2"), NOW).await.unwrap());
    let f = store.get_totp(&id).await.unwrap().unwrap();
    assert_eq!((f.confirmed_at, f.last_step), (Some(NOW), 100));
    // Replay and earlier steps are refused; a later step once.
    assert!(!store.accept_totp_step(&id, 100, None, NOW).await.unwrap());
    assert!(!store.accept_totp_step(&id, 99, None, NOW).await.unwrap());
    assert!(store.accept_totp_step(&id, 101, None, NOW).await.unwrap());
    assert!(!store.accept_totp_step(&id, 101, None, NOW).await.unwrap());
    // A confirmed factor is not replaced by a new enrolment.
    assert!(!store.put_totp(&id, "sealed-3", "session-c", NOW).await.unwrap());
    assert_eq!(store.get_totp(&id).await.unwrap().unwrap().sealed_secret, "sealed-2");
    // Two concurrent uses of one step: exactly one wins.
    let (a, b) = tokio::join!(
        store.accept_totp_step(&id, 102, None, NOW),
        store.accept_totp_step(&id, 102, None, NOW)
    );
    assert!(a.unwrap() ^ b.unwrap());
    assert!(store.delete_second_factors(&id).await.unwrap());
    assert!(store.get_totp(&id).await.unwrap().is_none());
    assert!(!store.delete_second_factors(&id).await.unwrap());
}

async fn recovery_codes_are_single_use(store: Store) {
    let id = store.create_local_account(&new_local("rob"), NOW).await.unwrap();
    let other = store.create_local_account(&new_local("sam"), NOW).await.unwrap();
    let hashes: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
    store.replace_recovery_codes(&id, &hashes, NOW).await.unwrap();
    assert_eq!(store.recovery_codes_left(&id).await.unwrap(), 10);
    // Never another account's code.
    assert!(!store.use_recovery_code(&other, "h1", NOW).await.unwrap());
    assert!(store.use_recovery_code(&id, "h1", NOW).await.unwrap());
    assert!(!store.use_recovery_code(&id, "h1", NOW).await.unwrap());
    assert_eq!(store.recovery_codes_left(&id).await.unwrap(), 9);
    // Regenerating revokes the old set.
    store
        .replace_recovery_codes(&id, &["n1".to_owned()], NOW)
        .await
        .unwrap();
    assert!(!store.use_recovery_code(&id, "h2", NOW).await.unwrap());
    assert_eq!(store.recovery_codes_left(&id).await.unwrap(), 1);
    assert!(store.delete_second_factors(&id).await.unwrap());
    assert_eq!(store.recovery_codes_left(&id).await.unwrap(), 0);
}

async fn pending_second_factor_is_single_use(store: Store) {
    let id = store.create_local_account(&new_local("pia"), NOW).await.unwrap();
    let pending = PendingSecondFactor {
        token_hash: "p1".into(),
        account_id: id.clone(),
        source: src("local"),
        subject: Subject::new(id.as_str()).unwrap(),
        methods: vec!["pwd".into()],
        next_path: Some("/after".into()),
        remember: true,
        enrol: false,
        failures: 0,
        expires_at: NOW.plus_secs(300),
    };
    store.insert_pending_second_factor(&pending).await.unwrap();
    assert!(matches!(
        store.insert_pending_second_factor(&pending).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_pending_second_factor("p1").await.unwrap().unwrap(), pending);
    assert_eq!(store.fail_pending_second_factor("p1").await.unwrap(), Some(1));
    assert_eq!(store.fail_pending_second_factor("p1").await.unwrap(), Some(2));
    assert_eq!(store.fail_pending_second_factor("nope").await.unwrap(), None);
    let taken = store.take_pending_second_factor("p1").await.unwrap().unwrap();
    assert_eq!(taken.failures, 2);
    assert!(store.take_pending_second_factor("p1").await.unwrap().is_none());
    let old = PendingSecondFactor {
        token_hash: "p2".into(),
        expires_at: NOW,
        ..pending
    };
    store.insert_pending_second_factor(&old).await.unwrap();
    assert_eq!(store.purge_pending_second_factor(NOW).await.unwrap(), 1);
    assert!(store.get_pending_second_factor("p2").await.unwrap().is_none());
}

fn passkey(id: &str, account: &AccountId, cred_id: &str) -> PasskeyRecord {
    PasskeyRecord {
        id: id.into(),
        account_id: account.clone(),
        cred_id: cred_id.into(),
        user_handle: "0b5c6f1e-0000-4000-8000-000000000000".into(),
        name: format!("key {id}"),
        credential: r#"{"cred":{"counter":1}}"#.into(),
        created_at: NOW,
        last_used_at: None,
    }
}

async fn passkeys_are_unique_and_recorded_with_compare_and_set(store: Store) {
    let id = store.create_local_account(&new_local("kim"), NOW).await.unwrap();
    let other = store.create_local_account(&new_local("lee"), NOW).await.unwrap();
    store.insert_passkey(&passkey("k1", &id, "cred-a")).await.unwrap();
    store.insert_passkey(&passkey("k2", &id, "cred-b")).await.unwrap();
    // A credential id is registered once, whoever tries again.
    assert!(matches!(
        store.insert_passkey(&passkey("k3", &other, "cred-a")).await,
        Err(StoreError::Conflict(_))
    ));
    let keys = store.passkeys_of(&id).await.unwrap();
    assert_eq!(keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k1", "k2"]);
    assert_eq!(keys[0], passkey("k1", &id, "cred-a"));
    assert!(store.passkeys_of(&other).await.unwrap().is_empty());
    assert_eq!(store.passkey_by_cred_id("cred-b").await.unwrap().unwrap().id, "k2");
    assert!(store.passkey_by_cred_id("cred-z").await.unwrap().is_none());
    // A use is recorded only over the credential it was checked against; never on another account's row.
    let old = r#"{"cred":{"counter":1}}"#;
    let new = r#"{"cred":{"counter":2}}"#;
    assert!(!store.record_passkey_use(&other, "k1", old, new, NOW).await.unwrap());
    assert!(store
        .record_passkey_use(&id, "k1", old, new, NOW.plus_secs(5))
        .await
        .unwrap());
    assert!(!store.record_passkey_use(&id, "k1", old, new, NOW).await.unwrap());
    let k1 = store.passkey_by_cred_id("cred-a").await.unwrap().unwrap();
    assert_eq!(k1.credential, new);
    assert_eq!(k1.last_used_at, Some(NOW.plus_secs(5)));
    // Removal: never another account's; the recovery codes go with the last factor only.
    store
        .replace_recovery_codes(&id, &["c1".to_owned(), "c2".to_owned()], NOW)
        .await
        .unwrap();
    assert!(!store.delete_passkey(&other, "k1").await.unwrap());
    assert!(store.delete_passkey(&id, "k1").await.unwrap());
    assert!(!store.delete_passkey(&id, "k1").await.unwrap());
    assert_eq!(store.recovery_codes_left(&id).await.unwrap(), 2);
    assert!(store.put_totp(&id, "sealed", "begun-by", NOW).await.unwrap());
    assert!(store.accept_totp_step(&id, 1, Some("sealed"), NOW).await.unwrap());
    assert!(store.delete_passkey(&id, "k2").await.unwrap());
    assert_eq!(
        store.recovery_codes_left(&id).await.unwrap(),
        2,
        "the TOTP factor is left"
    );
    assert!(store.delete_totp(&id).await.unwrap());
    assert_eq!(store.recovery_codes_left(&id).await.unwrap(), 0, "no factor left");
    assert!(!store.delete_totp(&id).await.unwrap());
    // Removing the TOTP factor keeps passkeys and the codes; removing everything (reset) takes passkeys too.
    store.insert_passkey(&passkey("k4", &id, "cred-d")).await.unwrap();
    store
        .replace_recovery_codes(&id, &["c3".to_owned()], NOW)
        .await
        .unwrap();
    assert!(store.put_totp(&id, "sealed-2", "begun-by", NOW).await.unwrap());
    assert!(store.delete_totp(&id).await.unwrap());
    assert_eq!(store.recovery_codes_left(&id).await.unwrap(), 1);
    assert!(store.delete_second_factors(&id).await.unwrap());
    assert!(store.passkeys_of(&id).await.unwrap().is_empty());
    assert!(store.passkey_by_cred_id("cred-d").await.unwrap().is_none());
}

async fn passkey_ceremonies_are_single_use(store: Store) {
    let id = store.create_local_account(&new_local("max"), NOW).await.unwrap();
    let ceremony = PasskeyCeremony {
        id_hash: "c1".into(),
        purpose: "register".into(),
        bound_to: "session-hash".into(),
        account_id: Some(id.clone()),
        state: "{}".into(),
        expires_at: NOW.plus_secs(300),
    };
    store.insert_passkey_ceremony(&ceremony).await.unwrap();
    assert!(matches!(
        store.insert_passkey_ceremony(&ceremony).await,
        Err(StoreError::Conflict(_))
    ));
    // Of two takes at once, one gets it.
    let (a, b) = tokio::join!(store.take_passkey_ceremony("c1"), store.take_passkey_ceremony("c1"));
    let taken: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0], ceremony);
    // A passwordless ceremony belongs to no account yet.
    let anonymous = PasskeyCeremony {
        id_hash: "c2".into(),
        purpose: "passwordless".into(),
        account_id: None,
        expires_at: NOW,
        ..ceremony
    };
    store.insert_passkey_ceremony(&anonymous).await.unwrap();
    assert_eq!(store.purge_passkey_ceremonies(NOW).await.unwrap(), 1);
    assert!(store.take_passkey_ceremony("c2").await.unwrap().is_none());
}

fn email_token(hash: &str, account: &AccountId, purpose: EmailTokenPurpose) -> EmailToken {
    EmailToken {
        token_hash: hash.into(),
        purpose,
        account_id: account.clone(),
        email: "dana@example.org".into(),
        created_at: NOW,
        expires_at: NOW.plus_secs(1800),
    }
}

async fn email_tokens_are_single_use_and_void_after_a_password_change(store: Store) {
    let id = store.create_local_account(&new_local("dana"), NOW).await.unwrap();
    let reset = EmailTokenPurpose::PasswordReset;
    let verify = EmailTokenPurpose::VerifyEmail;
    store.insert_email_token(&email_token("r1", &id, reset)).await.unwrap();
    store.insert_email_token(&email_token("v1", &id, verify)).await.unwrap();

    // A reset token cannot confirm an address, nor the other way round.
    assert!(store.take_email_token("r1", verify).await.unwrap().is_none());
    assert!(store.get_email_token("v1", reset).await.unwrap().is_none());
    // Reading leaves it; taking uses it up, once.
    assert_eq!(
        store.get_email_token("r1", reset).await.unwrap().unwrap().email,
        "dana@example.org"
    );
    let taken = store.take_email_token("r1", reset).await.unwrap().unwrap();
    assert_eq!(taken, email_token("r1", &id, reset));
    assert!(store.take_email_token("r1", reset).await.unwrap().is_none());

    // Two requests racing with one link: one gets it.
    store.insert_email_token(&email_token("r2", &id, reset)).await.unwrap();
    let (a, b) = tokio::join!(store.take_email_token("r2", reset), store.take_email_token("r2", reset));
    assert_eq!(usize::from(a.unwrap().is_some()) + usize::from(b.unwrap().is_some()), 1);

    // A password change by any route voids the reset links mailed before it, not the address confirmation.
    store.insert_email_token(&email_token("r3", &id, reset)).await.unwrap();
    let old = store.find_password("dana").await.unwrap().unwrap().password_hash;
    assert!(store.change_password_hash(&id, &old, "new-hash").await.unwrap());
    assert!(store.get_email_token("r3", reset).await.unwrap().is_none());
    assert!(store.get_email_token("v1", verify).await.unwrap().is_some());

    // A confirmation confirms the address it was mailed to, and only while the account still has it.
    assert!(!store.get_account(&id).await.unwrap().unwrap().email_verified);
    assert!(!store.confirm_email(&id, "someone-else@example.org").await.unwrap());
    assert!(store.confirm_email(&id, "DANA@example.org").await.unwrap());
    assert!(store.get_account(&id).await.unwrap().unwrap().email_verified);

    // Expired tokens are purged; the rest of an account's go on request.
    store.insert_email_token(&email_token("r4", &id, reset)).await.unwrap();
    assert_eq!(store.purge_email_tokens(NOW.plus_secs(1799)).await.unwrap(), 0);
    assert_eq!(store.delete_email_tokens_of(&id, reset).await.unwrap(), 1);
    assert_eq!(store.purge_email_tokens(NOW.plus_secs(1800)).await.unwrap(), 1);

    // Personal access tokens all end at once (after a reset).
    assert!(BrokerStore::delete_tokens_of(&store, &id).await.unwrap().is_empty());
}

/// A pending address change is a way to take the account over (its link needs no session, and the address it
/// confirms receives the reset mail): what ends a hijacker's hold on the account ends it too. A password change,
/// by any route, voids it in the change's own transaction, with the reset links; disabling the account voids both.
/// A confirmation of the account's current address is no way in and stays.
async fn a_password_change_or_a_disabled_account_voids_pending_address_changes(store: Store) {
    let (reset, verify, change) = (
        EmailTokenPurpose::PasswordReset,
        EmailTokenPurpose::VerifyEmail,
        EmailTokenPurpose::ChangeEmail,
    );
    let dana = store.create_local_account(&new_local("dana"), NOW).await.unwrap();
    let erin = store.create_local_account(&new_local("erin"), NOW).await.unwrap();
    for (hash, who, purpose) in [
        ("d-reset", &dana, reset),
        ("d-verify", &dana, verify),
        ("d-change", &dana, change),
        ("e-change", &erin, change),
    ] {
        store
            .insert_email_token(&email_token(hash, who, purpose))
            .await
            .unwrap();
    }
    let old = store.find_password("dana").await.unwrap().unwrap().password_hash;
    assert!(store.change_password_hash(&dana, &old, "new-hash").await.unwrap());
    assert!(store.get_email_token("d-change", change).await.unwrap().is_none());
    assert!(store.get_email_token("d-reset", reset).await.unwrap().is_none());
    assert!(store.get_email_token("d-verify", verify).await.unwrap().is_some());
    assert!(
        store.get_email_token("e-change", change).await.unwrap().is_some(),
        "another account's change is not touched"
    );
    // A change that lost its race (the hash was no longer `old`) changes nothing, links included.
    store
        .insert_email_token(&email_token("d-change2", &dana, change))
        .await
        .unwrap();
    assert!(!store.change_password_hash(&dana, &old, "newer-hash").await.unwrap());
    assert!(store.get_email_token("d-change2", change).await.unwrap().is_some());

    // Disabling: the account's reset and change links go with its sessions; enabling again brings none back.
    store
        .insert_email_token(&email_token("e-reset", &erin, reset))
        .await
        .unwrap();
    assert!(store.set_account_disabled(&erin, true).await.unwrap());
    assert!(store.get_email_token("e-change", change).await.unwrap().is_none());
    assert!(store.get_email_token("e-reset", reset).await.unwrap().is_none());
    assert!(store.set_account_disabled(&erin, false).await.unwrap());
    assert!(store.email_tokens_of(&erin, change).await.unwrap().is_empty());
    assert!(store.get_email_token("d-change2", change).await.unwrap().is_some());
}

async fn an_address_change_takes_a_free_address_and_voids_the_old_links(store: Store) {
    let dana = store.create_local_account(&new_local("dana"), NOW).await.unwrap();
    let erin = store.create_local_account(&new_local("erin"), NOW).await.unwrap();
    let frank = store.create_local_account(&new_local("frank"), NOW).await.unwrap();
    assert!(store.confirm_email(&erin, "erin@example.org").await.unwrap());
    let change = EmailTokenPurpose::ChangeEmail;
    let token = |hash: &str, email: &str, at: i64, purpose| EmailToken {
        email: email.into(),
        created_at: NOW.plus_secs(at),
        ..email_token(hash, &dana, purpose)
    };
    store
        .insert_email_token(&token("c1", "new@example.org", 0, change))
        .await
        .unwrap();
    store
        .insert_email_token(&token("c2", "newer@example.org", 5, change))
        .await
        .unwrap();
    store
        .insert_email_token(&token("r1", "dana@example.org", 0, EmailTokenPurpose::PasswordReset))
        .await
        .unwrap();
    store
        .insert_email_token(&email_token("e1", &erin, change))
        .await
        .unwrap();

    // An account's tokens of one purpose, newest first; another purpose or account is not among them.
    let pending: Vec<String> = store
        .email_tokens_of(&dana, change)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.token_hash)
        .collect();
    assert_eq!(pending, ["c2", "c1"]);
    assert_eq!(
        store
            .email_tokens_of(&dana, EmailTokenPurpose::VerifyEmail)
            .await
            .unwrap(),
        []
    );
    // A change token is not a confirmation of the current address, nor a reset link.
    assert!(store
        .take_email_token("c1", EmailTokenPurpose::VerifyEmail)
        .await
        .unwrap()
        .is_none());
    assert!(store.get_email_token("c1", change).await.unwrap().is_some());

    // Another account's verified address is refused (ASCII case ignored); nothing changes.
    assert!(!store.change_email(&dana, "ERIN@example.org").await.unwrap());
    let a = store.get_account(&dana).await.unwrap().unwrap();
    assert_eq!(
        (a.email.as_deref(), a.email_verified),
        (Some("dana@example.org"), false)
    );
    assert_eq!(store.email_tokens_of(&dana, change).await.unwrap().len(), 2);

    // Another account's unverified address is no claim: taken, verified, and every mailed token of the account
    // (the reset link to the old address, the older change) is void. Other accounts keep theirs.
    assert!(store.change_email(&dana, "Frank@Example.org").await.unwrap());
    let a = store.get_account(&dana).await.unwrap().unwrap();
    assert_eq!(
        (a.email.as_deref(), a.email_verified),
        (Some("Frank@Example.org"), true)
    );
    assert!(store
        .get_email_token("r1", EmailTokenPurpose::PasswordReset)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.email_tokens_of(&dana, change).await.unwrap(), []);
    assert_eq!(store.email_tokens_of(&erin, change).await.unwrap().len(), 1);
    let f = store.get_account(&frank).await.unwrap().unwrap();
    assert_eq!(
        (f.email.as_deref(), f.email_verified),
        (Some("frank@example.org"), false)
    );
    // Its own verified address again: no other account holds it, so it is no conflict.
    assert!(store.change_email(&dana, "frank@example.org").await.unwrap());
    // Now dana's verified address blocks erin from taking it.
    assert!(!store.change_email(&erin, "FRANK@example.org").await.unwrap());
}

// --- Operator administration (#15) ---

async fn accounts_list_in_pages_and_search_literally(store: Store) {
    use vestibule_core::storage::AccountQuery;
    let mut ids = Vec::new();
    for name in ["alice", "bob", "carol", "dave", "erin", "50%_off", "50x-off"] {
        let display_name = (name == "dave").then(|| "Dave Q. Public".to_owned());
        let new = NewLocalAccount {
            display_name,
            ..new_local(name)
        };
        ids.push(store.create_local_account(&new, NOW).await.unwrap());
    }
    // One that signs in elsewhere only: found by its identity's subject and login.
    let gh = ExternalIdentity::new(src("github"), Subject::new("583231").unwrap()).with_login("Octocat");
    ids.push(store.create_account_for_identity(&gh, false, NOW).await.unwrap());
    ids.sort();
    // Pages of three, each after the last id of the one before: every account once, in id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_accounts(&AccountQuery {
                after: after.clone(),
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.into_iter().map(|a| a.id));
    }
    assert_eq!(seen, ids);
    let search = |text: &str| {
        let store = store.clone();
        let text = text.to_owned();
        async move {
            let found = store
                .list_accounts(&AccountQuery {
                    search: Some(text),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut names = Vec::new();
            for a in found {
                let login = store.identities_of(&a.id).await.unwrap()[0].login.clone().unwrap();
                names.push(login);
            }
            names.sort();
            names
        }
    };
    // Case ignored, by login name, email, identity subject and identity login.
    assert_eq!(search("ALI").await, ["alice"]);
    assert_eq!(search("carol@EXAMPLE").await, ["carol"]);
    assert_eq!(search("58323").await, ["Octocat"]);
    assert_eq!(search("octo").await, ["Octocat"]);
    // Wildcards are literal: `%` and `_` match themselves only, never any text.
    assert_eq!(search("50%_").await, ["50%_off"]);
    assert_eq!(search("%").await, ["50%_off"]);
    assert_eq!(search("_").await, ["50%_off"]);
    assert_eq!(search("0x").await, ["50x-off"]);
    assert!(search("zz").await.is_empty());
    // By display name.
    assert_eq!(search("q. pub").await, ["dave"]);
}

/// Every table with a column naming an account (`account_id`, `link_account`), read from the database itself so
/// that a table added later cannot be forgotten by the deletion without this test noticing.
async fn account_tables(store: &Store) -> Vec<(String, String)> {
    let mut conn = sqlx::AnyConnection::connect(&store_url_of(store)).await.unwrap();
    let sql = match store.backend() {
        Backend::Sqlite => {
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.name IN ('account_id', 'link_account')"
        }
        Backend::Postgres => {
            "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
             WHERE table_schema = current_schema() AND column_name IN ('account_id', 'link_account')"
        }
    };
    let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
    use sqlx::Row;
    rows.iter()
        .map(|r| (r.get::<String, _>("t"), r.get::<String, _>("c")))
        .collect()
}

async fn count_rows(store: &Store, table: &str, column: &str, id: &AccountId) -> i64 {
    let mut conn = sqlx::AnyConnection::connect(&store_url_of(store)).await.unwrap();
    use sqlx::Row;
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = $1"))
        .bind(id.as_str())
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get::<i64, _>("n")
}

async fn deleting_an_account_removes_every_row_but_its_audit(store: Store) {
    let id = store.create_local_account(&new_local("zoe"), NOW).await.unwrap();
    let other = store.create_local_account(&new_local("yan"), NOW).await.unwrap();
    store.link_identity(&ident("google", "g-zoe"), &id, NOW).await.unwrap();
    for who in [&id, &other] {
        let tag = who.as_str();
        store.insert_session(&session(&format!("s-{tag}"), who)).await.unwrap();
        store
            .insert_remember(&remember(&format!("r-{tag}"), who))
            .await
            .unwrap();
        store
            .insert_token(&vestibule_store::AccessToken {
                id: format!("tok-{tag}"),
                token_hash: format!("th-{tag}"),
                account_id: who.clone(),
                name: "ci".into(),
                scopes: "read".into(),
                created_at: NOW,
                expires_at: NOW.plus_secs(3600),
                last_used_at: None,
                created_by: None,
                checked_at: None,
                methods: Vec::new(),
            })
            .await
            .unwrap();
        assert!(store.put_totp(who, "sealed", "begun", NOW).await.unwrap());
        store
            .replace_recovery_codes(who, &[format!("rc-{tag}")], NOW)
            .await
            .unwrap();
        store
            .insert_passkey(&passkey(&format!("pk-{tag}"), who, &format!("cred-{tag}")))
            .await
            .unwrap();
        store
            .insert_passkey_ceremony(&PasskeyCeremony {
                id_hash: format!("c-{tag}"),
                purpose: "register".into(),
                bound_to: "s".into(),
                account_id: Some(who.clone()),
                state: "{}".into(),
                expires_at: NOW.plus_secs(300),
            })
            .await
            .unwrap();
        store
            .insert_pending_second_factor(&PendingSecondFactor {
                token_hash: format!("p-{tag}"),
                account_id: who.clone(),
                source: src("local"),
                subject: Subject::new(who.as_str()).unwrap(),
                methods: vec!["pwd".into()],
                next_path: None,
                remember: false,
                enrol: false,
                failures: 0,
                expires_at: NOW.plus_secs(300),
            })
            .await
            .unwrap();
        store
            .insert_email_token(&email_token(&format!("e-{tag}"), who, EmailTokenPurpose::PasswordReset))
            .await
            .unwrap();
        store
            .insert_pending(&PendingRecord {
                state_hash: format!("st-{tag}"),
                source: src("google"),
                browser_hash: "b".into(),
                data: "{}".into(),
                next_path: None,
                expires_at: NOW.plus_secs(600),
                link_account: Some(who.clone()),
                started_at: NOW,
                step_up_session: None,
            })
            .await
            .unwrap();
        assert!(store.set_assigned_groups(who, &["ops".into()], NOW).await.unwrap());
        store
            .audit(
                NOW,
                &AuditEvent {
                    account_id: Some(tag),
                    ..AuditEvent::of(AuditKind::LoginSuccess)
                },
            )
            .await
            .unwrap();
    }
    let tables = account_tables(&store).await;
    assert!(tables.len() >= 14, "{tables:?}");
    for (table, column) in &tables {
        assert!(
            count_rows(&store, table, column, &id).await > 0,
            "the setup fills {table}"
        );
    }

    let deleted = store.delete_account(&id).await.unwrap().unwrap();
    let mut ended = deleted.ended.clone();
    ended.sort();
    assert_eq!(ended, [format!("s-{id}"), format!("th-{id}")]);
    assert!(deleted.rows.contains(&("accounts", 1)) && deleted.rows.contains(&("identities", 2)));
    for (table, column) in &tables {
        let left = count_rows(&store, table, column, &id).await;
        if table == "audit_log" {
            assert_eq!(left, 1, "the audit log keeps the deleted account's rows");
        } else {
            assert_eq!(left, 0, "{table} keeps rows of the deleted account");
        }
        assert!(
            count_rows(&store, table, column, &other).await > 0,
            "{table}: the other account lost rows"
        );
    }
    assert_eq!(count_rows(&store, "accounts", "id", &id).await, 0);
    assert!(store
        .find_identity(&src("google"), &Subject::new("g-zoe").unwrap())
        .await
        .unwrap()
        .is_none());
    assert!(store.find_password("zoe").await.unwrap().is_none());
    // The name is free again; deleting twice finds nothing.
    assert!(store.delete_account(&id).await.unwrap().is_none());
    store.create_local_account(&new_local("zoe"), NOW).await.unwrap();
}

async fn assigned_groups_survive_sign_ins_and_go_with_the_password(store: Store) {
    let id = store.create_local_account(&new_local("ann"), NOW).await.unwrap();
    assert!(store.assigned_groups_of(&id).await.unwrap().is_empty());
    let groups = ["ops".to_owned(), "admins".to_owned(), "ops".to_owned()];
    assert!(store.set_assigned_groups(&id, &groups, NOW).await.unwrap());
    assert_eq!(store.assigned_groups_of(&id).await.unwrap(), ["admins", "ops"]);
    // A local sign-in refreshes the identity's own groups (none): the assigned ones stay.
    let local = ExternalIdentity::new(src("local"), Subject::new(id.as_str()).unwrap()).with_login("ann");
    store.record_identity_login(&local, NOW).await.unwrap();
    assert_eq!(store.assigned_groups_of(&id).await.unwrap(), ["admins", "ops"]);
    assert!(store.set_assigned_groups(&id, &["dev".into()], NOW).await.unwrap());
    assert_eq!(store.assigned_groups_of(&id).await.unwrap(), ["dev"]);
    let missing = AccountId::new("no-such-account").unwrap();
    assert!(!store.set_assigned_groups(&missing, &["dev".into()], NOW).await.unwrap());
    // Unlinking another way in keeps them; unlinking the password removes them with it.
    store.link_identity(&ident("corp", "c-ann"), &id, NOW).await.unwrap();
    store.link_identity(&ident("google", "g-ann"), &id, NOW).await.unwrap();
    let unlinked = store
        .unlink_identity(&id, &src("google"), &Subject::new("g-ann").unwrap())
        .await
        .unwrap();
    assert!(matches!(unlinked, Unlinked::Done { .. }), "{unlinked:?}");
    assert_eq!(store.assigned_groups_of(&id).await.unwrap(), ["dev"]);
    let unlinked = store
        .unlink_identity(&id, &src("local"), &Subject::new(id.as_str()).unwrap())
        .await
        .unwrap();
    assert!(matches!(unlinked, Unlinked::Done { .. }), "{unlinked:?}");
    assert!(store.assigned_groups_of(&id).await.unwrap().is_empty());
}
