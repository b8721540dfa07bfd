//! Sign-ins per second through `LdapSource`, next to the bare LDAP operations they cost, against a throwaway
//! local slapd (the same launcher as the tests: `vestibule_tests::ldap`).
//!
//! ```text
//! cargo run -p vestibule-ldap --release --example ldap_bench -- [COUNT] [CONCURRENCY]
//! ```
//!
//! Defaults: 2000 sign-ins, 8 concurrent tasks, over plain `ldap://` and over `ldaps://` (one row each). Rows:
//!
//! - `LdapSource`: the whole sign-in (search with the pooled service connection, bind on a fresh connection,
//!   groups from memberOf, identity mapping);
//! - `bare ldap3, same work`: one search on a kept service connection + one bind on a fresh connection;
//! - `bare ldap3, no connect`: one search + one re-bind on kept connections (a lower bound no safe source can
//!   reach, since a user-bound connection must not be reused).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use vestibule_core::{PasswordFlow, SecretString, SourceId};
use vestibule_ldap::{LdapConfig, LdapSource};
use vestibule_tests::ldap::{Options, Slapd, PEOPLE, SVC_DN, SVC_PASSWORD};

const LOGIN: &str = "bench";
const PASSWORD: &str = "bench-password";

#[derive(Clone)]
struct Target {
    url: String,
    ca_file: Option<std::path::PathBuf>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

async fn connect(t: &Target) -> Ldap {
    let mut settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(5));
    if let Some(tls) = &t.tls {
        settings = settings.set_config(tls.clone());
    }
    let (conn, ldap) = LdapConnAsync::with_settings(settings, &t.url).await.unwrap();
    ldap3::drive!(conn);
    ldap
}

async fn service(t: &Target) -> Ldap {
    let mut ldap = connect(t).await;
    ldap.simple_bind(SVC_DN, SVC_PASSWORD).await.unwrap().success().unwrap();
    ldap
}

async fn bare_search(svc: &mut Ldap) -> String {
    let (entries, _) = svc
        .search(
            PEOPLE,
            Scope::Subtree,
            &format!("(uid={})", ldap3::ldap_escape(LOGIN)),
            vec!["entryUUID", "uid", "cn", "mail", "memberOf"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(entries.len(), 1);
    SearchEntry::construct(entries.into_iter().next().unwrap()).dn
}

/// Runs `total / tasks` iterations of `f(task index)` in each of `tasks` tasks; returns sign-ins per second.
async fn run<F, Fut>(total: usize, tasks: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per_task = total / tasks;
    let start = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                f(task).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (per_task * tasks) as f64 / start.elapsed().as_secs_f64()
}

async fn bench(name: &str, s: &Slapd, t: Target, total: usize, tasks: usize) {
    // Through the source.
    let mut c = LdapConfig::new(SourceId::new("bench").unwrap(), t.url.clone());
    c.bind_dn = Some(SVC_DN.into());
    let secret = s.dir.join("bench-svc-password");
    std::fs::write(&secret, SVC_PASSWORD).unwrap();
    c.bind_password_file = Some(secret);
    c.user_base = Some(PEOPLE.into());
    c.ca_file = t.ca_file.clone();
    let source = Arc::new(LdapSource::new(c).unwrap());
    for _ in 0..20 {
        source.authenticate(LOGIN, &SecretString::from(PASSWORD)).await.unwrap();
    }
    let src = source.clone();
    let through_source = run(total, tasks, move |_| {
        let src = src.clone();
        async move {
            let who = src.authenticate(LOGIN, &SecretString::from(PASSWORD)).await.unwrap();
            assert_eq!(who.groups, vec!["staff".to_owned()]);
        }
    })
    .await;

    // Bare ldap3, the same work: search on a kept connection, bind on a fresh one. One service connection
    // per task (no pool logic at all).
    let mut svcs = Vec::new();
    for _ in 0..tasks {
        svcs.push(service(&t).await);
    }
    let svcs = Arc::new(svcs);
    let (t2, svcs2) = (t.clone(), svcs.clone());
    let bare_same = run(total, tasks, move |task| {
        let (t, mut svc) = (t2.clone(), svcs2[task].clone());
        async move {
            let dn = bare_search(&mut svc).await;
            let mut user = connect(&t).await;
            user.simple_bind(&dn, PASSWORD).await.unwrap().success().unwrap();
            let _ = user.unbind().await;
        }
    })
    .await;

    // Bare ldap3, no connection per sign-in: search + re-bind on kept connections (one per task).
    let mut users = Vec::new();
    for _ in 0..tasks {
        users.push(connect(&t).await);
    }
    let users = Arc::new(users);
    let bare_min = run(total, tasks, move |task| {
        let (mut svc, mut user) = (svcs[task].clone(), users[task].clone());
        async move {
            let dn = bare_search(&mut svc).await;
            user.simple_bind(&dn, PASSWORD).await.unwrap().success().unwrap();
        }
    })
    .await;

    println!("{name:<8} LdapSource               {through_source:>8.0} sign-ins/s");
    println!("{name:<8} bare ldap3, same work    {bare_same:>8.0} sign-ins/s");
    println!("{name:<8} bare ldap3, no connect   {bare_min:>8.0} sign-ins/s");
    println!("{name:<8} LdapSource / same work = {:.2}", through_source / bare_same);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(2000);
    let tasks: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(8);
    let s = Slapd::start(Options::default());
    println!(
        "LDAP sign-ins against a local slapd: {total} per row, {tasks} concurrent tasks, {} CPUs",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let plain = Target {
        url: s.ldap_url(),
        ca_file: None,
        tls: None,
    };
    bench("ldap://", &s, plain, total, tasks).await;
    // The same CA trust as the source builds from ca_file.
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(s.ca_file()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let ldaps = Target {
        url: s.ldaps_url(),
        ca_file: Some(s.ca_file()),
        tls: Some(Arc::new(tls)),
    };
    bench("ldaps://", &s, ldaps, total, tasks).await;
}
