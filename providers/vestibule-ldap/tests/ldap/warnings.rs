//! What the source says at start about settings that weaken it.

use crate::slapd::Slapd;
use crate::support::*;

const ANONYMOUS: &str = "searches the directory anonymously";

#[test]
fn search_mode_without_a_service_account_warns_that_searches_are_anonymous() {
    let s = Slapd::shared();
    let (logs, _guard) = capture_logs();
    let mut c = search_config(s);
    c.bind_dn = None;
    c.bind_password_file = None;
    source(c);
    let logged = logs.text();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains(ANONYMOUS), "{logged}");
    assert!(
        logged.contains("bind_dn"),
        "the warning says which key to set: {logged}"
    );
}

#[test]
fn no_anonymous_warning_with_a_service_account_or_in_direct_bind() {
    let s = Slapd::shared();
    let (logs, _guard) = capture_logs();
    source(search_config(s));
    // Direct bind without a service account never searches: each person's own connection reads their entry.
    source(direct_config(s));
    assert!(!logs.text().contains(ANONYMOUS), "{}", logs.text());
}
