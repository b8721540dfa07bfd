//! Helpers shared by the test modules.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapResult, Scope, SearchEntry};
use vestibule_core::{ExternalIdentity, Flow, RejectReason, SecretString, SourceError, SourceId};
use vestibule_ldap::{LdapConfig, LdapSource};

use crate::slapd::{Slapd, ADMIN_DN, ADMIN_PASSWORD, PEOPLE, SVC_DN, SVC_PASSWORD};

/// A file holding the service password, inside the server's own folder (removed with it).
pub fn svc_password_file(s: &Slapd) -> PathBuf {
    let path = s.dir.join("svc-password");
    if !path.exists() {
        std::fs::write(&path, format!("{SVC_PASSWORD}\n")).expect("write secret");
    }
    path
}

/// Search-then-bind over plain ldap:// on loopback, with the service account. Short timeouts: the server is
/// local.
pub fn search_config(s: &Slapd) -> LdapConfig {
    let mut c = LdapConfig::new(SourceId::new("corp").expect("id"), s.ldap_url());
    c.bind_dn = Some(SVC_DN.into());
    c.bind_password_file = Some(svc_password_file(s));
    c.user_base = Some(PEOPLE.into());
    c.connect_timeout_secs = 2;
    c.timeout_secs = 2;
    c
}

/// Direct bind, no service account.
pub fn direct_config(s: &Slapd) -> LdapConfig {
    let mut c = LdapConfig::new(SourceId::new("corp").expect("id"), s.ldap_url());
    c.user_dn_template = Some(format!("uid={{username}},{PEOPLE}"));
    c.connect_timeout_secs = 2;
    c.timeout_secs = 2;
    c
}

pub fn source(c: LdapConfig) -> LdapSource {
    LdapSource::new(c).expect("valid config")
}

/// Signs in through the trait, as the broker does.
pub async fn sign_in(src: &LdapSource, login: &str, password: &str) -> Result<ExternalIdentity, SourceError> {
    use vestibule_core::AuthSource;
    let Flow::Password(flow) = src.flow() else {
        panic!("LDAP is a password source")
    };
    // An outer guard: whatever the directory does, a sign-in must return.
    guarded(60, flow.authenticate(login, &SecretString::from(password))).await
}

pub async fn guarded<T>(secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("did not return within {secs} s"))
}

pub fn assert_rejected(r: Result<ExternalIdentity, SourceError>, want: RejectReason, what: &str) {
    match r {
        Err(SourceError::Rejected(got)) if got == want => {}
        other => panic!("{what}: expected Rejected({want:?}), got {other:?}"),
    }
}

pub fn assert_unavailable(r: Result<ExternalIdentity, SourceError>, what: &str) {
    match r {
        Err(SourceError::Unavailable(_)) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

/// A raw ldap3 connection (plain), not through the source: for proofs and fixtures.
pub async fn raw(url: &str) -> Ldap {
    let (conn, ldap) = LdapConnAsync::new(url).await.expect("raw connect");
    ldap3::drive!(conn);
    ldap
}

/// A raw simple bind on a fresh connection.
pub async fn raw_bind(url: &str, dn: &str, password: &str) -> LdapResult {
    let mut ldap = raw(url).await;
    ldap.simple_bind(dn, password).await.expect("raw bind")
}

/// Reads attributes of one entry as the rootdn.
pub async fn admin_read(s: &Slapd, dn: &str, attrs: &[&str]) -> SearchEntry {
    let mut ldap = raw(&s.ldap_url()).await;
    ldap.simple_bind(ADMIN_DN, ADMIN_PASSWORD)
        .await
        .expect("admin bind")
        .success()
        .expect("admin bind ok");
    let (mut entries, _) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
        .await
        .expect("search")
        .success()
        .expect("search ok");
    SearchEntry::construct(entries.remove(0))
}

pub async fn entry_uuid(s: &Slapd, dn: &str) -> String {
    let e = admin_read(s, dn, &["entryUUID"]).await;
    e.attrs["entryUUID"][0].clone()
}

pub fn dn_of(uid: &str) -> String {
    format!("uid={uid},{PEOPLE}")
}

/// Collects everything `tracing` writes.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf8")
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every `tracing` event of this thread (tokio tests run on one thread) while the guard lives.
pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// An error with its whole chain of causes, Display and Debug.
pub fn error_text(e: &SourceError) -> String {
    let mut text = format!("{e} {e:?}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(" {c} {c:?}"));
        cause = c.source();
    }
    text
}
