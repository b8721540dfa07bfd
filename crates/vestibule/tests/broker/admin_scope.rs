//! The `admin` scope: only a member of an `[admin] groups` group can create a token with it, and the admin check
//! (`Broker::admin_grant`) reads the store at every use, so leaving the group, a disabled account, a revoked or an
//! expired token ends the token's admin use at once, whatever the credential cache still holds.

use std::sync::Arc;

use vestibule::{AdminRefusal, AdminSettings, Broker, TokenError};
use vestibule_core::{ExposeSecret, ExternalIdentity, FixedClock, SourceId, Subject};
use vestibule_store::Store;
use vestibule_tests::fakes::PasswordFake;
use vestibule_tests::server::TempDir;

use super::{client, sqlite_store, T0};

fn person(subject: &str, groups: &[&str]) -> ExternalIdentity {
    ExternalIdentity::new(SourceId::new("dir").unwrap(), Subject::new(subject).unwrap())
        .with_groups(groups.iter().map(|g| g.to_string()).collect())
}

struct Admins {
    broker: Arc<Broker>,
    store: Store,
    clock: Arc<FixedClock>,
    directory: Arc<PasswordFake>,
    _dir: TempDir,
}

/// "root" is in `admins`, "ann" in `staff`; `admins` is the admin group.
async fn admins() -> Admins {
    let (dir, store) = sqlite_store("vestibule-admin-scope").await;
    let clock = Arc::new(FixedClock::new(T0));
    let directory = Arc::new(
        PasswordFake::new("dir")
            .user("root", "root password", person("root-1", &["admins", "staff"]))
            .user("ann", "ann password", person("ann-1", &["staff"])),
    );
    let broker = Broker::builder(store.clone(), "https://id.example.com")
        .source(directory.clone())
        .clock(clock.clone())
        .admin(AdminSettings {
            groups: vec!["admins".into()],
        })
        .build()
        .await
        .unwrap();
    Admins {
        broker: Arc::new(broker),
        store,
        clock,
        directory,
        _dir: dir,
    }
}

async fn signed_in(a: &Admins, login: &str) -> Arc<vestibule::ActiveSession> {
    let s = a
        .broker
        .login_password(
            &SourceId::new("dir").unwrap(),
            login,
            &format!("{login} password").into(),
            &client(),
            None,
        )
        .await
        .unwrap()
        .session()
        .unwrap();
    a.broker.session(s.token.expose()).await.unwrap().unwrap()
}

/// A token of `session` with `scopes`, for `days`: its creation and the credential it is when presented.
async fn token(
    a: &Admins,
    session: &vestibule::ActiveSession,
    days: i64,
    scopes: &str,
) -> (vestibule::NewToken, Arc<vestibule::ActiveToken>) {
    let made = a
        .broker
        .create_token(session, "ops", days, scopes, &client())
        .await
        .unwrap();
    let held = a.broker.bearer(made.value.expose_secret()).await.unwrap().unwrap();
    (made, held)
}

#[tokio::test]
async fn only_members_of_an_admin_group_create_admin_tokens() {
    let a = admins().await;
    let ann = signed_in(&a, "ann").await;
    for scopes in ["admin", "read admin", "admin,read"] {
        let refused = a.broker.create_token(&ann, "ops", 30, scopes, &client()).await;
        assert!(matches!(refused, Err(TokenError::NotAdmin)), "{scopes}: {refused:?}");
    }
    assert!(a.store.tokens_of(&ann.account_id).await.unwrap().is_empty());
    // Other scopes are anyone's, `admin:read` included: only the exact scope is the administrator's.
    a.broker
        .create_token(&ann, "ci", 30, "read admin:read", &client())
        .await
        .unwrap();

    let root = signed_in(&a, "root").await;
    let t = a
        .broker
        .create_token(&root, "ops", 30, "admin", &client())
        .await
        .unwrap();
    let created = a.store.recent_audit(1).await.unwrap().remove(0);
    assert_eq!(created.event, "token_created");
    assert_eq!(
        created.detail.as_deref(),
        Some(format!("{} (scope admin)", t.id).as_str())
    );
    assert_eq!(created.account_id.as_deref(), Some(root.account_id.as_str()));

    // Without `[admin] groups`, nobody is an administrator, whatever their groups.
    let (_dir, store) = sqlite_store("vestibule-admin-none").await;
    let plain = Broker::builder(store, "https://id.example.com")
        .source(a.directory.clone())
        .build()
        .await
        .unwrap();
    let s = plain
        .login_password(
            &SourceId::new("dir").unwrap(),
            "root",
            &"root password".into(),
            &client(),
            None,
        )
        .await
        .unwrap()
        .session()
        .unwrap();
    let root_there = plain.session(s.token.expose()).await.unwrap().unwrap();
    let refused = plain.create_token(&root_there, "ops", 30, "admin", &client()).await;
    assert!(matches!(refused, Err(TokenError::NotAdmin)), "{refused:?}");
}

#[tokio::test]
async fn the_admin_check_reads_the_store_at_every_use() {
    let a = admins().await;
    let root = signed_in(&a, "root").await;
    let (admin, held) = token(&a, &root, 2, "admin").await;
    let (_, read_only) = token(&a, &root, 30, "read").await;
    let grant = a.broker.admin_grant(&held).await.unwrap().unwrap();
    assert_eq!(grant.account_id, root.account_id);
    assert_eq!(grant.token_id, admin.id);
    assert_eq!(grant.audit_detail(), format!("api:{} by {}", admin.id, root.account_id));
    assert_eq!(
        a.broker.admin_grant(&read_only).await.unwrap(),
        Err(AdminRefusal::MissingScope)
    );

    // Root leaves the group at the directory; the next sign-in records it. The token's cached holder still says
    // `admins` (it is served from the cache), but the admin check does not believe it.
    a.directory.put("root", "root password", person("root-1", &["staff"]));
    signed_in(&a, "root").await;
    let cached = a.broker.bearer(admin.value.expose_secret()).await.unwrap().unwrap();
    assert!(
        cached.groups.contains(&"admins".to_string()),
        "still cached: {:?}",
        cached.groups
    );
    assert_eq!(
        a.broker.admin_grant(&cached).await.unwrap(),
        Err(AdminRefusal::NotAdmin)
    );
    // Back in the group: the same token works again (it was never revoked).
    a.directory.put("root", "root password", person("root-1", &["admins"]));
    signed_in(&a, "root").await;
    assert!(a.broker.admin_grant(&cached).await.unwrap().is_ok());

    // Disabled: the credential held from before is refused by the admin check too.
    a.broker
        .set_account_disabled_by_operator(&root.account_id, true, "test")
        .await
        .unwrap();
    assert!(a.broker.bearer(admin.value.expose_secret()).await.unwrap().is_none());
    assert_eq!(
        a.broker.admin_grant(&cached).await.unwrap(),
        Err(AdminRefusal::TokenGone)
    );
    a.broker
        .set_account_disabled_by_operator(&root.account_id, false, "test")
        .await
        .unwrap();

    // Revoked (disabling ended the old tokens; this is a new one): gone from the store, so refused even through a credential held from before.
    let root = signed_in(&a, "root").await;
    let (admin, held) = token(&a, &root, 30, "admin").await;
    a.broker.revoke_token(&root, &admin.id, &client()).await.unwrap();
    assert_eq!(a.broker.admin_grant(&held).await.unwrap(), Err(AdminRefusal::TokenGone));
    // A token that expires.
    let root = signed_in(&a, "root").await;
    let (_, held) = token(&a, &root, 1, "admin").await;
    assert!(a.broker.admin_grant(&held).await.unwrap().is_ok());
    a.clock.advance(86_400);
    assert_eq!(a.broker.admin_grant(&held).await.unwrap(), Err(AdminRefusal::TokenGone));
}
