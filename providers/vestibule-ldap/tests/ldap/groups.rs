//! Groups from memberOf and from a group search, and require_group gating.

use vestibule_core::RejectReason;

use crate::slapd::{Slapd, GROUPS};
use crate::support::*;

#[tokio::test]
async fn groups_from_member_of_are_short_names() {
    let s = Slapd::shared();
    let src = source(search_config(s));
    let alice = sign_in(&src, "alice", "alice-password").await.expect("alice");
    assert_eq!(alice.groups, vec!["admins".to_owned(), "staff".to_owned()]);
    let bob = sign_in(&src, "bob", "bob-password").await.expect("bob");
    assert_eq!(bob.groups, vec!["staff".to_owned()]);
    let twin = sign_in(&src, "twin1", "twin-password").await.expect("twin1");
    assert!(twin.groups.is_empty());
}

#[tokio::test]
async fn groups_from_a_group_search() {
    let s = Slapd::shared();
    let mut c = search_config(s);
    c.group_base = Some(GROUPS.into());
    // Default filter: (member={dn}). memberOf is not even requested in this mode.
    let src = source(c);
    let alice = sign_in(&src, "alice", "alice-password").await.expect("alice");
    assert_eq!(alice.groups, vec!["admins".to_owned(), "staff".to_owned()]);
    let bob = sign_in(&src, "bob", "bob-password").await.expect("bob");
    assert_eq!(bob.groups, vec!["staff".to_owned()]);
    // Direct bind, no service account: the person's own connection searches the groups.
    let mut c = direct_config(s);
    c.group_base = Some(GROUPS.into());
    c.group_filter = Some("(&(objectClass=groupOfNames)(member={dn}))".into());
    let bob = sign_in(&source(c), "bob", "bob-password").await.expect("bob direct");
    assert_eq!(bob.groups, vec!["staff".to_owned()]);
}

#[tokio::test]
async fn require_group_gates_sign_in() {
    let s = Slapd::shared();
    for (how, required) in [
        ("short name", "admins".to_owned()),
        ("short name, other case", "Admins".to_owned()),
        ("DN", format!("cn=admins,{GROUPS}")),
        (
            "DN, other spelling",
            "CN=Admins, OU=Groups,DC=example,DC=org".to_owned(),
        ),
    ] {
        for group_search in [false, true] {
            let mut c = search_config(s);
            c.require_group = Some(required.clone());
            if group_search {
                c.group_base = Some(GROUPS.into());
            }
            let src = source(c);
            let what = format!("{how}, group search {group_search}");
            sign_in(&src, "alice", "alice-password")
                .await
                .unwrap_or_else(|e| panic!("{what}: alice: {e:?}"));
            assert_rejected(
                sign_in(&src, "bob", "bob-password").await,
                RejectReason::NotPermitted,
                &what,
            );
            // A wrong password stays a credentials failure, whatever the groups.
            assert_rejected(
                sign_in(&src, "bob", "wrong").await,
                RejectReason::InvalidCredentials,
                &format!("{what}: wrong password"),
            );
        }
    }
}

#[tokio::test]
async fn removal_from_a_group_takes_effect_at_once() {
    let s = Slapd::shared();
    s.modify(&format!(
        "dn: cn=gate-test,{GROUPS}\nchangetype: add\nobjectClass: groupOfNames\ncn: gate-test\n\
         member: uid=admin,ou=people,dc=example,dc=org\nmember: cn=svc,ou=services,dc=example,dc=org\n"
    ));
    let mut c = search_config(s);
    c.require_group = Some("gate-test".into());
    let src = source(c);
    let who = sign_in(&src, "admin", "admin-password").await.expect("member");
    assert!(who.groups.contains(&"gate-test".to_owned()));
    s.modify(&format!(
        "dn: cn=gate-test,{GROUPS}\nchangetype: modify\ndelete: member\nmember: uid=admin,ou=people,dc=example,dc=org\n"
    ));
    assert_rejected(
        sign_in(&src, "admin", "admin-password").await,
        RejectReason::NotPermitted,
        "removed from the group",
    );
}
