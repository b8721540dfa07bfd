//! Asking the directory again, without a password, about an identity it proved earlier (`Recheck`): today's
//! groups and attributes while the person is still admitted, `None` once they are gone or no longer admitted, an
//! error when the directory cannot answer.
//!
//! Each test makes entries of its own (names starting `rc-`) on the shared server, so that changing them cannot
//! disturb another test.

use std::time::{Duration, Instant};

use vestibule_core::{AuthSource, ExternalIdentity, RejectReason, SourceError, Subject};
use vestibule_ldap::LdapSource;

use crate::slapd::{Options, Slapd, GROUPS, PEOPLE, SVC_DN};
use crate::support::*;

/// A person `uid={uid}` with password `{uid}-password`, plus any LDIF lines in `extra`.
fn add_person(s: &Slapd, uid: &str, extra: &str) {
    s.modify(&format!(
        "dn: uid={uid},{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} Person\n\
         sn: Person\nmail: {uid}@example.org\nuserPassword: {uid}-password\n{extra}"
    ));
}

/// A group with these people (by uid) and the admin entry, so that removing one never empties it (groupOfNames
/// needs a member).
fn add_group(s: &Slapd, cn: &str, uids: &[&str]) {
    let mut ldif = format!(
        "dn: cn={cn},{GROUPS}\nchangetype: add\nobjectClass: groupOfNames\ncn: {cn}\nmember: uid=admin,{PEOPLE}\n"
    );
    for uid in uids {
        ldif.push_str(&format!("member: uid={uid},{PEOPLE}\n"));
    }
    s.modify(&ldif);
}

fn remove_from_group(s: &Slapd, cn: &str, uid: &str) {
    s.modify(&format!(
        "dn: cn={cn},{GROUPS}\nchangetype: modify\ndelete: member\nmember: uid={uid},{PEOPLE}\n"
    ));
}

fn delete(s: &Slapd, dn: &str) {
    s.modify(&format!("dn: {dn}\nchangetype: delete\n"));
}

/// Rechecks through the traits, as the broker does.
async fn recheck(src: &LdapSource, subject: &Subject) -> Result<Option<ExternalIdentity>, SourceError> {
    let r = AuthSource::recheck(src).expect("this source can be asked again");
    guarded(60, r.recheck(subject)).await
}

async fn still_there(src: &LdapSource, subject: &Subject, what: &str) -> ExternalIdentity {
    match recheck(src, subject).await {
        Ok(Some(identity)) => identity,
        other => panic!("{what}: expected Ok(Some(_)), got {other:?}"),
    }
}

async fn not_admitted(src: &LdapSource, subject: &Subject, what: &str) {
    match recheck(src, subject).await {
        Ok(None) => {}
        other => panic!("{what}: expected Ok(None), got {other:?}"),
    }
}

#[tokio::test]
async fn recheck_reports_todays_groups_email_and_name() {
    let s = Slapd::shared();
    add_person(s, "rc-ada", "");
    add_group(s, "rc-ada-team", &["rc-ada"]);
    let src = source(search_config(s));
    let r = AuthSource::recheck(&src).expect("search mode with a service account can be asked again");
    assert_eq!(r.recheck_interval(), Duration::from_secs(300), "recheck_secs default");
    let who = sign_in(&src, "rc-ada", "rc-ada-password").await.expect("signs in");
    assert_eq!(still_there(&src, &who.subject, "unchanged").await, who);

    add_group(s, "rc-ada-new", &["rc-ada"]);
    s.modify(&format!(
        "dn: uid=rc-ada,{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: ada@new.example.org\n-\n\
         replace: cn\ncn: Ada Changed\n"
    ));
    let now = still_there(&src, &who.subject, "changed").await;
    assert_eq!(now.subject, who.subject);
    assert_eq!(now.groups, vec!["rc-ada-new".to_owned(), "rc-ada-team".to_owned()]);
    assert_eq!(now.email.as_deref(), Some("ada@new.example.org"));
    assert_eq!(now.display_name.as_deref(), Some("Ada Changed"));

    // Found by its subject, so a rename changes the login name and nothing else.
    s.modify(&format!(
        "dn: uid=rc-ada,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=rc-ada-renamed\ndeleteoldrdn: 1\n"
    ));
    let renamed = still_there(&src, &who.subject, "renamed").await;
    assert_eq!(renamed.login.as_deref(), Some("rc-ada-renamed"));
    assert_eq!(renamed.groups, now.groups);
}

#[tokio::test]
async fn recheck_is_none_once_out_of_the_required_group() {
    let s = Slapd::shared();
    for group_search in [false, true] {
        let uid = format!("rc-bea-{group_search}");
        let gate = format!("rc-gate-{group_search}");
        add_person(s, &uid, "");
        add_group(s, &gate, &[&uid]);
        let mut c = search_config(s);
        c.require_group = Some(gate.clone());
        if group_search {
            c.group_base = Some(GROUPS.into());
        }
        let src = source(c);
        let who = sign_in(&src, &uid, &format!("{uid}-password")).await.expect("a member");
        still_there(&src, &who.subject, "a member").await;
        remove_from_group(s, &gate, &uid);
        not_admitted(&src, &who.subject, &format!("removed, group search {group_search}")).await;
        // The same rule as at sign-in.
        assert_rejected(
            sign_in(&src, &uid, &format!("{uid}-password")).await,
            RejectReason::NotPermitted,
            "sign-in after removal",
        );
    }
}

#[tokio::test]
async fn recheck_is_none_once_the_entry_is_gone() {
    let s = Slapd::shared();
    add_person(s, "rc-cy", "");
    let src = source(search_config(s));
    let who = sign_in(&src, "rc-cy", "rc-cy-password").await.expect("signs in");
    delete(s, &dn_of("rc-cy"));
    not_admitted(&src, &who.subject, "deleted").await;
    let never = Subject::new("00000000-0000-4000-8000-000000000000").expect("subject");
    not_admitted(&src, &never, "a subject no entry has").await;
    // A subject that is a filter of its own finds nothing either.
    let hostile = Subject::new("*)(uid=*").expect("subject");
    not_admitted(&src, &hostile, "a filter as subject").await;
}

#[tokio::test]
async fn recheck_keeps_the_user_filter() {
    // A user_filter that refuses some accounts (here: description=locked; on AD, the disabled bit) refuses them on
    // recheck as well.
    let s = Slapd::shared();
    add_person(s, "rc-dee", "");
    let mut c = search_config(s);
    c.user_filter = Some("(&(uid={username})(!(description=locked)))".into());
    let src = source(c);
    let who = sign_in(&src, "rc-dee", "rc-dee-password").await.expect("signs in");
    still_there(&src, &who.subject, "not locked").await;
    s.modify(&format!(
        "dn: uid=rc-dee,{PEOPLE}\nchangetype: modify\nadd: description\ndescription: locked\n"
    ));
    not_admitted(&src, &who.subject, "locked").await;
    assert_rejected(
        sign_in(&src, "rc-dee", "rc-dee-password").await,
        RejectReason::InvalidCredentials,
        "sign-in when locked",
    );
}

#[tokio::test]
async fn direct_bind_rechecks_with_a_service_account_and_not_without() {
    let s = Slapd::shared();
    // Without a service account nothing can search: no recheck, and sessions end only at their lifetime.
    assert!(AuthSource::recheck(&source(direct_config(s))).is_none());

    add_person(s, "rc-eve", "");
    let mut c = direct_config(s);
    c.bind_dn = Some(SVC_DN.into());
    c.bind_password_file = Some(svc_password_file(s));
    c.recheck_secs = 60;
    let src = source(c);
    let r = AuthSource::recheck(&src).expect("with a service account");
    assert_eq!(r.recheck_interval(), Duration::from_secs(60));
    let who = sign_in(&src, "rc-eve", "rc-eve-password").await.expect("signs in");
    assert_eq!(still_there(&src, &who.subject, "there").await, who);
    delete(s, &dn_of("rc-eve"));
    not_admitted(&src, &who.subject, "deleted").await;
}

#[tokio::test]
async fn an_unreachable_directory_is_an_error_not_a_verdict() {
    let mut s = Slapd::start(Options {
        tls: false,
        allow_bind_anon_dn: false,
    });
    let mut c = search_config(&s);
    c.connect_timeout_secs = 1;
    c.timeout_secs = 1;
    let src = source(c);
    let who = sign_in(&src, "alice", "alice-password").await.expect("up");
    s.stop();
    let started = Instant::now();
    match recheck(&src, &who.subject).await {
        Err(SourceError::Unavailable(_)) => {}
        other => panic!("directory down: expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    s.restart();
    still_there(&src, &who.subject, "back up").await;

    let mut c = search_config(&s);
    // Bound but not listening, held until the end of the test: connections are refused.
    let down = vestibule_tests::net::RefusingPort::new();
    c.url = format!("ldap://{}", down.addr());
    match recheck(&source(c), &who.subject).await {
        Err(SourceError::Unavailable(_)) => {}
        other => panic!("nothing listening: expected Unavailable, got {other:?}"),
    }
}

/// The wire bytes of an objectGUID with filter specials in it (`(`, `)`, `*`, `\`, NUL) and a byte that is not
/// UTF-8, so that it arrives as binary and must be escaped byte by byte to be found again.
const GUID_BASE64: &str = "KCkqXAD/EBGaDAMF6CwzAQ==";
/// The same GUID as Active Directory's tools write it (first three fields little-endian on the wire).
const GUID_STRING: &str = "5c2a2928-ff00-1110-9a0c-0305e82c3301";

#[tokio::test]
async fn active_directory_object_guid_and_disabled_accounts() {
    let s = Slapd::shared();
    add_person(
        s,
        "rc-ad",
        &format!("objectClass: extensibleObject\nobjectGUID:: {GUID_BASE64}\nuserAccountControl: 512\n"),
    );
    let mut c = search_config(s);
    c.subject_attribute = "objectGUID".into();
    let src = source(c);
    let who = sign_in(&src, "rc-ad", "rc-ad-password").await.expect("signs in");
    assert_eq!(who.subject.as_str(), GUID_STRING);
    assert_eq!(still_there(&src, &who.subject, "enabled").await, who);

    let set_uac = |value: u32| {
        s.modify(&format!(
            "dn: uid=rc-ad,{PEOPLE}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {value}\n"
        ))
    };
    // 514 = NORMAL_ACCOUNT | ACCOUNTDISABLE. Active Directory refuses the bind of a disabled account (49, data
    // 533); the source applies the same rule to the entry itself, at sign-in and on recheck.
    set_uac(514);
    not_admitted(&src, &who.subject, "disabled").await;
    assert_rejected(
        sign_in(&src, "rc-ad", "rc-ad-password").await,
        RejectReason::InvalidCredentials,
        "sign-in when disabled",
    );
    set_uac(512);
    still_there(&src, &who.subject, "enabled again").await;
    let malformed = Subject::new("not-a-guid").expect("subject");
    not_admitted(&src, &malformed, "not a GUID").await;
    delete(s, &dn_of("rc-ad"));
    not_admitted(&src, &who.subject, "deleted").await;
}
