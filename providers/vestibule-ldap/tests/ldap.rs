//! Tests of the LDAP source against a real OpenLDAP slapd, started by this test binary itself (the launcher is
//! `vestibule_tests::ldap`). Most tests share one server; tests that stop it or need a
//! different configuration start their own. Nothing is skipped: without slapd the tests fail and say how to
//! install it (`tests/ldap/install.sh`).

use vestibule_tests::ldap as slapd;

#[path = "ldap/support.rs"]
mod support;

#[path = "ldap/availability.rs"]
mod availability;
#[path = "ldap/groups.rs"]
mod groups;
#[path = "ldap/injection.rs"]
mod injection;
#[path = "ldap/passwords.rs"]
mod passwords;
#[path = "ldap/recheck.rs"]
mod recheck;
#[path = "ldap/secrets.rs"]
mod secrets;
#[path = "ldap/sign_in.rs"]
mod sign_in;
#[path = "ldap/tls.rs"]
mod tls;
#[path = "ldap/warnings.rs"]
mod warnings;
