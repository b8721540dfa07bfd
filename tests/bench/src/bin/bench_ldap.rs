//! LDAP sign-ins per second through `Broker::login_password`, next to `LdapSource` on its own and the bare LDAP
//! operations a sign-in costs (ldap3), all measured in one run against one throwaway local slapd (the launcher of
//! the LDAP tests, `vestibule_tests::ldap`; user `bench` of `tests/ldap/directory.ldif`).
//!
//! ```text
//! bench_ldap [COUNT] [CONCURRENT_TASKS] [ROUNDS]
//! ```
//!
//! Defaults: 2000 sign-ins per row, 8 concurrent tasks, 3 rounds; over `ldap://` and `ldaps://`. In each round the
//! four rows run back to back, in turn:
//!
//! * `bare`: ldap3 alone, the work `LdapSource` does: one search on a kept, service-bound connection (one per
//!   task, no pool) + one bind on a fresh connection;
//! * `kept`: ldap3 alone, one search + one re-bind on kept connections (one pair per task): a lower bound no safe
//!   source reaches, since a connection bound as a user must not be reused;
//! * `source`: `PasswordFlow::authenticate` on the `LdapSource` (pooled service connection, fresh connection for
//!   the user bind, groups from memberOf, identity mapping);
//! * `broker`: `Broker::login_password` with that same source registered, over a SQLite store in a temporary
//!   folder: the source's work plus identity resolution, an audit row and a session row per sign-in.
//!
//! Output: `ROW=VALUE` lines on stdout, `round=R scheme=S bare=.. kept=.. source=.. broker=..` (sign-ins per
//! second), then a summary (medians over the rounds). Traffic goes to 127.0.0.1 only; slapd stops when the launcher is dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use vestibule::{Broker, ClientInfo, LoginOutcome};
use vestibule_bench::{arg, cpus, open_store, BenchResult};
use vestibule_core::{PasswordFlow, SecretString, SourceId};
use vestibule_ldap::{LdapConfig, LdapSource};
use vestibule_tests::ldap::{Options, Slapd, PEOPLE, SVC_DN, SVC_PASSWORD};

/// The benchmark's user in `tests/ldap/directory.ldif` (member of `staff`).
const LOGIN: &str = "bench";
const PASSWORD: &str = "bench-password";

#[derive(Clone)]
struct Target {
    url: String,
    ca_file: Option<PathBuf>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("url", &self.url).finish_non_exhaustive()
    }
}

async fn connect(t: &Target) -> BenchResult<Ldap> {
    let mut settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(5));
    if let Some(tls) = &t.tls {
        settings = settings.set_config(tls.clone());
    }
    let (conn, ldap) = LdapConnAsync::with_settings(settings, &t.url).await?;
    ldap3::drive!(conn);
    Ok(ldap)
}

async fn service(t: &Target) -> BenchResult<Ldap> {
    let mut ldap = connect(t).await?;
    ldap.simple_bind(SVC_DN, SVC_PASSWORD).await?.success()?;
    Ok(ldap)
}

/// The search `LdapSource` makes: the user's entry by uid, with the attributes it maps.
async fn bare_search(svc: &mut Ldap) -> BenchResult<String> {
    let (entries, _) = svc
        .search(
            PEOPLE,
            Scope::Subtree,
            &format!("(uid={})", ldap3::ldap_escape(LOGIN)),
            vec!["entryUUID", "uid", "cn", "mail", "memberOf"],
        )
        .await?
        .success()?;
    let mut entries = entries.into_iter();
    match (entries.next(), entries.next()) {
        (Some(entry), None) => Ok(SearchEntry::construct(entry).dn),
        _ => Err("the search did not find exactly one entry".into()),
    }
}

/// Runs `total / tasks` iterations of `f(task index)` in each of `tasks` tasks; returns sign-ins per second.
/// Every iteration must succeed.
async fn run<F, Fut>(total: usize, tasks: usize, f: F) -> BenchResult<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = BenchResult<()>> + Send,
{
    let per_task = total / tasks;
    let start = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                f(task).await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok((per_task * tasks) as f64 / start.elapsed().as_secs_f64())
}

struct Rows {
    bare: f64,
    kept: f64,
    source: f64,
    broker: f64,
}

/// One scheme's three rows, `rounds` times; returns the rates of each round.
async fn bench(
    scheme: &str,
    s: &Slapd,
    db_dir: &std::path::Path,
    t: Target,
    total: usize,
    tasks: usize,
    rounds: usize,
) -> BenchResult<Vec<Rows>> {
    let id = SourceId::new("ldap")?;
    let mut c = LdapConfig::new(id.clone(), t.url.clone());
    c.bind_dn = Some(SVC_DN.into());
    let secret = s.dir.join("bench-svc-password");
    std::fs::write(&secret, SVC_PASSWORD)?;
    c.bind_password_file = Some(secret);
    c.user_base = Some(PEOPLE.into());
    c.ca_file = t.ca_file.clone();
    let source = Arc::new(LdapSource::new(c)?);

    let store = open_store(&db_dir.join(format!("b-{scheme}.db")).display().to_string()).await?;
    let broker = Arc::new(
        Broker::builder(store, "http://127.0.0.1:1")
            .source(source.clone())
            .build()
            .await?,
    );

    // Service connections for the bare row, kept for the whole run (one per task, no pool logic at all).
    let mut svcs = Vec::new();
    for _ in 0..tasks {
        svcs.push(service(&t).await?);
    }
    let svcs = Arc::new(svcs);

    let bare = {
        let (t, svcs) = (t.clone(), svcs.clone());
        move |task: usize| {
            let (t, mut svc) = (t.clone(), svcs[task].clone());
            async move {
                let dn = bare_search(&mut svc).await?;
                let mut user = connect(&t).await?;
                user.simple_bind(&dn, PASSWORD).await?.success()?;
                let _ = user.unbind().await;
                Ok(())
            }
        }
    };
    // User connections for the kept row, re-bound at every sign-in (one per task).
    let mut users = Vec::new();
    for _ in 0..tasks {
        users.push(connect(&t).await?);
    }
    let users = Arc::new(users);
    let kept = {
        let svcs = svcs.clone();
        move |task: usize| {
            let (mut svc, mut user) = (svcs[task].clone(), users[task].clone());
            async move {
                let dn = bare_search(&mut svc).await?;
                user.simple_bind(&dn, PASSWORD).await?.success()?;
                Ok(())
            }
        }
    };
    let through_source = {
        let source = source.clone();
        move |_: usize| {
            let source = source.clone();
            async move {
                let who = source.authenticate(LOGIN, &SecretString::from(PASSWORD)).await?;
                if who.groups == ["staff"] {
                    Ok(())
                } else {
                    Err(format!("unexpected groups {:?}", who.groups).into())
                }
            }
        }
    };
    let through_broker = {
        let (broker, id) = (broker.clone(), id.clone());
        move |_: usize| {
            let (broker, id) = (broker.clone(), id.clone());
            async move {
                let out = broker
                    .login_password(&id, LOGIN, &SecretString::from(PASSWORD), &ClientInfo::default(), None)
                    .await?;
                // Any other outcome (a further step, a link to confirm) is not a sign-in.
                if matches!(out, LoginOutcome::SignedIn(_)) {
                    Ok(())
                } else {
                    Err(format!("the sign-in did not complete: {out:?}").into())
                }
            }
        }
    };

    // Warm-up: the first broker sign-in creates the account; pools, caches and TLS sessions fill up.
    for _ in 0..20 {
        bare(0).await?;
        kept(0).await?;
        through_source(0).await?;
        through_broker(0).await?;
    }

    let mut out = Vec::new();
    for round in 1..=rounds {
        let r = Rows {
            bare: run(total, tasks, bare.clone()).await?,
            kept: run(total, tasks, kept.clone()).await?,
            source: run(total, tasks, through_source.clone()).await?,
            broker: run(total, tasks, through_broker.clone()).await?,
        };
        println!(
            "round={round} scheme={scheme} bare={:.1} kept={:.1} source={:.1} broker={:.1}",
            r.bare, r.kept, r.source, r.broker
        );
        out.push(r);
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn tls_config(s: &Slapd) -> BenchResult<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    // The same CA trust as the source builds from ca_file.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(s.ca_file())? {
        roots.add(cert?)?;
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn main_inner() -> BenchResult<()> {
    let total: usize = arg(1, 2000)?;
    let tasks: usize = arg(2, 8)?;
    let rounds: usize = arg(3, 3)?;
    if tasks == 0 || total < tasks || rounds == 0 {
        return Err("usage: bench_ldap [COUNT >= TASKS] [CONCURRENT_TASKS > 0] [ROUNDS > 0]".into());
    }
    let db_dir = vestibule_tests::server::TempDir::new("vestibule-bench-ldap");
    let s = Slapd::start(Options::default());
    println!("cpus={}", cpus());
    println!("count={}", total / tasks * tasks);
    println!("tasks={tasks}");
    println!("rounds={rounds}");
    let plain = Target {
        url: s.ldap_url(),
        ca_file: None,
        tls: None,
    };
    let ldaps = Target {
        url: s.ldaps_url(),
        ca_file: Some(s.ca_file()),
        tls: Some(Arc::new(tls_config(&s)?)),
    };
    let mut summary = Vec::new();
    for (scheme, t) in [("ldap", plain), ("ldaps", ldaps)] {
        let rows = bench(scheme, &s, &db_dir.0, t, total, tasks, rounds).await?;
        summary.push((scheme, rows));
    }
    drop(s);
    for (scheme, rows) in summary {
        let bare = median(rows.iter().map(|r| r.bare).collect());
        let kept = median(rows.iter().map(|r| r.kept).collect());
        let source = median(rows.iter().map(|r| r.source).collect());
        let broker = median(rows.iter().map(|r| r.broker).collect());
        let ratio_source = median(rows.iter().map(|r| r.source / r.bare).collect());
        let ratio_broker = median(rows.iter().map(|r| r.broker / r.bare).collect());
        println!("{scheme}_bare={bare:.1}");
        println!("{scheme}_kept={kept:.1}");
        println!("{scheme}_source={source:.1}");
        println!("{scheme}_broker={broker:.1}");
        println!("{scheme}_source_over_bare={ratio_source:.3}");
        println!("{scheme}_broker_over_bare={ratio_broker:.3}");
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Err(e) = main_inner().await {
        eprintln!("bench_ldap: {e}");
        std::process::exit(1);
    }
}
