//! Test support for Vestibule, in one crate: every test and benchmark of the workspace that needs a real server
//! starts it from here, and a third party writing its own source runs [`conformance`] on it.
//!
//! - [`ldap`]: a throwaway OpenLDAP `slapd` loaded with `tests/ldap/directory.ldif`;
//! - [`oidc`]: the Node OpenID provider (`tests/oidc-provider/server.mjs`) and a client that plays its login pages;
//! - `github` (feature `github`): GitHub-shaped endpoints served in process;
//! - [`server`]: the `vestibule` binary on `127.0.0.1:0`, its CLI, and temporary folders;
//! - [`pg`]: a PostgreSQL database per test; [`browser`]: a cookie-keeping HTTP client for end-to-end tests;
//! - `chrome` (feature `chrome`): a headless Chromium driven through chromedriver, for tests in a real browser;
//! - [`net`]: a loopback port that refuses connections, for "server down" tests;
//! - [`smtp`]: a throwaway SMTP server (Python aiosmtpd) whose received messages the tests read;
//! - [`fakes`]: in-process password and redirect sources whose answers the test chooses;
//! - [`totp`]: an authenticator app: codes from the base32 key an enrolment page shows;
//! - [`openapi`]: a real OpenAPI validator (swagger-parser on Node), for the admin API's document;
//! - [`conformance`]: the generic [`AuthSource`](vestibule_core::AuthSource) contract, runnable on any source.
//!
//! Nothing here skips a test when a server is missing: it fails and says which setup script to run.

#![allow(clippy::unwrap_used)]

pub mod browser;
#[cfg(feature = "chrome")]
pub mod chrome;
/// The source conformance kit, published on its own as `vestibule-testkit` for third-party sources.
pub use vestibule_testkit::conformance;
pub mod fakes;
#[cfg(feature = "github")]
pub mod github;
pub mod ldap;
pub mod net;
pub mod oidc;
pub mod openapi;
pub mod passkey;
pub mod pg;
pub mod server;
pub mod smtp;
pub mod totp;

/// A random lowercase suffix for names that must not collide between concurrent tests.
pub fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..12).map(|_| char::from(b'a' + rng.gen_range(0..26))).collect()
}
