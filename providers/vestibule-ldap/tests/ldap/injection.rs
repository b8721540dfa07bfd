//! Filter and DN injection, ambiguous matches, referrals.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ldap3::Scope;
use vestibule_core::RejectReason;

use crate::slapd::{Slapd, BASE, PEOPLE, SVC_DN, SVC_PASSWORD};
use crate::support::*;

const PAYLOADS: &[&str] = &[
    "*",
    ")(uid=*",
    "\\",
    "\0",
    "admin*)(|(uid=*",
    "admin*",
    "a*",
    "*)(uid=*))(|(uid=*",
    "alice)(|(objectClass=*",
    "alice\0",
    "\\2a",
    "admin,ou=people,dc=example,dc=org",
    "admin+cn=x",
    "#admin",
    "admin\\",
];
// Not in the list: " admin". The directory's own matching rule for uid ignores leading spaces, so it finds
// admin, whose password then decides: that is the same person, not an injection.

#[tokio::test]
async fn unescaped_these_payloads_would_match_others() {
    // Proof that the payloads are dangerous: `(uid={username})` filled raw with `*`, `a*` or
    // `*)(uid=*))(|(uid=*` (the last one truncated by the server at the first complete filter) matches entries.
    let s = Slapd::shared();
    let mut ldap = raw(&s.ldap_url()).await;
    ldap.simple_bind(SVC_DN, SVC_PASSWORD)
        .await
        .expect("bind")
        .success()
        .expect("svc");
    for filter in ["(uid=*)", "(uid=a*)", "(|(uid=admin*)(uid=*))"] {
        let (entries, _) = ldap
            .search(PEOPLE, Scope::Subtree, filter, vec!["1.1"])
            .await
            .expect("search")
            .success()
            .expect("ok");
        assert!(!entries.is_empty(), "{filter} should match");
    }
}

#[tokio::test]
async fn injection_payloads_never_match_anyone() {
    let s = Slapd::shared();
    for (mode, src) in [
        ("search", source(search_config(s))),
        ("direct", source(direct_config(s))),
    ] {
        for payload in PAYLOADS {
            for password in ["alice-password", "admin-password", "bob-password", "twin-password"] {
                assert_rejected(
                    sign_in(&src, payload, password).await,
                    RejectReason::InvalidCredentials,
                    &format!("{mode}: login {payload:?} with {password}"),
                );
            }
        }
        // Still a working source.
        sign_in(&src, "admin", "admin-password").await.expect("admin itself");
    }
}

#[tokio::test]
async fn a_filter_matching_two_entries_is_refused() {
    let s = Slapd::shared();
    let mut c = search_config(s);
    c.user_filter = Some("(mail={username})".into());
    let src = source(c);
    assert_rejected(
        sign_in(&src, "twins@example.org", "twin-password").await,
        RejectReason::Ambiguous,
        "two entries share the mail",
    );
    // One match by the same filter is fine.
    let who = sign_in(&src, "bob@example.org", "bob-password")
        .await
        .expect("unique mail");
    assert_eq!(who.login.as_deref(), Some("bob"));
}

#[tokio::test]
async fn referrals_are_not_chased() {
    let s = Slapd::shared();
    // A listener standing for "another host": it counts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(sock);
        }
    });
    s.modify_manage_dsa_it(&format!(
        "dn: ou=elsewhere,{BASE}\nchangetype: add\nobjectClass: organizationalUnit\nou: elsewhere\n\n\
         dn: uid=faraway,ou=elsewhere,{BASE}\nchangetype: add\nobjectClass: referral\nobjectClass: extensibleObject\n\
         uid: faraway\nref: ldap://127.0.0.1:{port}/uid=faraway,ou=people,{BASE}\n"
    ));
    let mut c = search_config(s);
    c.user_base = Some(BASE.into());
    let src = source(c);
    // A search over the whole tree meets the referral as a continuation reference: ignored.
    let who = sign_in(&src, "alice", "alice-password")
        .await
        .expect("alice over the whole tree");
    assert_eq!(who.login.as_deref(), Some("alice"));
    assert_rejected(
        sign_in(&src, "faraway", "alice-password").await,
        RejectReason::InvalidCredentials,
        "a user behind a referral",
    );
    // A base that is itself a referral gets result 10: not chased either.
    let mut c = search_config(s);
    c.user_base = Some(format!("uid=faraway,ou=elsewhere,{BASE}"));
    assert!(sign_in(&source(c), "faraway", "alice-password").await.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing connected to the referred host");
    server.abort();
}
