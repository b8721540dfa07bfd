//! Success by search-then-bind and by direct bind, wrong password, unknown user, renames.

use vestibule_core::RejectReason;

use crate::slapd::{Slapd, SVC_DN};
use crate::support::*;

#[tokio::test]
async fn search_then_bind_signs_in_with_mapped_attributes() {
    let s = Slapd::shared();
    let src = source(search_config(s));
    let who = sign_in(&src, "alice", "alice-password").await.expect("alice signs in");
    assert_eq!(who.source.as_str(), "corp");
    assert_eq!(
        who.subject.as_str(),
        entry_uuid(s, &dn_of("alice")).await,
        "subject is entryUUID"
    );
    assert_eq!(who.login.as_deref(), Some("alice"));
    assert_eq!(who.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(who.email.as_deref(), Some("alice@example.org"));
    assert!(!who.email_verified, "LDAP email is unverified unless configured");
    assert_eq!(who.groups, vec!["admins".to_owned(), "staff".to_owned()]);
    // Again, on the kept-open service connection.
    let again = sign_in(&src, "alice", "alice-password").await.expect("again");
    assert_eq!(again.subject, who.subject);
}

#[tokio::test]
async fn login_name_comes_from_the_directory() {
    let s = Slapd::shared();
    let src = source(search_config(s));
    // uid matching is case-insensitive in the directory; the identity carries the directory's spelling.
    let who = sign_in(&src, "ALICE", "alice-password").await.expect("signs in");
    assert_eq!(who.login.as_deref(), Some("alice"));
}

#[tokio::test]
async fn email_verified_only_when_configured() {
    let s = Slapd::shared();
    let mut c = search_config(s);
    c.email_verified = true;
    let who = sign_in(&source(c), "bob", "bob-password").await.expect("bob");
    assert!(who.email_verified);
    assert_eq!(who.groups, vec!["staff".to_owned()]);
}

#[tokio::test]
async fn direct_bind_signs_in_without_a_service_account() {
    let s = Slapd::shared();
    let src = source(direct_config(s));
    let who = sign_in(&src, "alice", "alice-password").await.expect("direct bind");
    assert_eq!(who.subject.as_str(), entry_uuid(s, &dn_of("alice")).await);
    assert_eq!(who.groups, vec!["admins".to_owned(), "staff".to_owned()]);
    assert_eq!(who.display_name.as_deref(), Some("Alice Liddell"));
}

#[tokio::test]
async fn direct_bind_with_a_service_account_reads_with_it() {
    let s = Slapd::shared();
    let mut c = direct_config(s);
    c.bind_dn = Some(SVC_DN.into());
    c.bind_password_file = Some(svc_password_file(s));
    let who = sign_in(&source(c), "bob", "bob-password").await.expect("direct bind");
    assert_eq!(who.subject.as_str(), entry_uuid(s, &dn_of("bob")).await);
    assert_eq!(who.groups, vec!["staff".to_owned()]);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_the_same_failure() {
    let s = Slapd::shared();
    for (mode, src) in [
        ("search", source(search_config(s))),
        ("direct", source(direct_config(s))),
    ] {
        assert_rejected(
            sign_in(&src, "alice", "not-her-password").await,
            RejectReason::InvalidCredentials,
            &format!("{mode}: wrong password"),
        );
        assert_rejected(
            sign_in(&src, "nobody", "alice-password").await,
            RejectReason::InvalidCredentials,
            &format!("{mode}: unknown user"),
        );
        // The service account is not a person.
        assert_rejected(
            sign_in(&src, "svc", "svc-secret").await,
            RejectReason::InvalidCredentials,
            &format!("{mode}: service account"),
        );
        // And the source still works after failures.
        sign_in(&src, "bob", "bob-password").await.expect("bob after failures");
    }
}

#[tokio::test]
async fn rename_in_the_directory_keeps_the_subject() {
    let s = Slapd::shared();
    let src = source(search_config(s));
    let before = sign_in(&src, "dora", "dora-password").await.expect("dora");
    assert_eq!(before.groups, vec!["staff".to_owned()]);
    s.modify(
        "dn: uid=dora,ou=people,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=dora.renamed\ndeleteoldrdn: 1\n",
    );
    let after = sign_in(&src, "dora.renamed", "dora-password")
        .await
        .expect("renamed dora");
    assert_eq!(after.subject, before.subject, "entryUUID survives a rename");
    assert_eq!(after.login.as_deref(), Some("dora.renamed"));
    // refint rewrote the group's member value, so memberOf still lists the group.
    assert_eq!(after.groups, vec!["staff".to_owned()]);
    assert_rejected(
        sign_in(&src, "dora", "dora-password").await,
        RejectReason::InvalidCredentials,
        "old name",
    );
}

/// A TCP relay to the shared slapd that counts the connections made through it.
async fn counting_relay(target_port: u16) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn unknown_users_cost_a_bind_like_known_ones() {
    use std::sync::atomic::Ordering;
    let s = Slapd::shared();
    let (port, connections) = counting_relay(s.ldap_port).await;
    let mut c = search_config(s);
    c.url = format!("ldap://127.0.0.1:{port}");
    c.pool_size = 1;
    let src = source(c);
    sign_in(&src, "bob", "bob-password")
        .await
        .expect("warm the service connection");
    let before = connections.load(Ordering::SeqCst);
    assert_rejected(
        sign_in(&src, "bob", "wrong").await,
        RejectReason::InvalidCredentials,
        "wrong password",
    );
    let known = connections.load(Ordering::SeqCst) - before;
    assert_rejected(
        sign_in(&src, "nobody-at-all", "wrong").await,
        RejectReason::InvalidCredentials,
        "unknown",
    );
    let unknown = connections.load(Ordering::SeqCst) - before - known;
    assert_eq!(
        known, 1,
        "a known user's password is checked on a connection of its own"
    );
    assert_eq!(unknown, known, "an unknown user costs the same connection and bind");
}
