//! Password sign-ins per second through `Broker::login_password` with the local source, next to raw argon2
//! verifications measured in the same run, at the default argon2 parameters (m=19456 KiB, t=2, p=1). Run it
//! pinned to one core (`taskset -c 0`) for per-core figures; it reports how many CPUs it could use.
//!
//! ```text
//! bench_login DB_PATH [SECONDS_PER_ROW] [CONCURRENT_TASKS]
//! ```
//!
//! Rows, each `name=value` on stdout (rates per second; `_p50_ms` the median time of one operation):
//!
//! * `argon2_direct`: `argon2::Argon2::verify_password` in a loop on one blocking thread (no runtime at all);
//! * `hasher_verify`: `vestibule_local::PasswordHasher::verify` from CONCURRENT_TASKS tasks (its semaphore lets
//!   one hash per CPU run, on `spawn_blocking`);
//! * `login_password`: the whole sign-in from CONCURRENT_TASKS tasks: credential lookup, the same verification,
//!   identity resolution, audit row, session row.
//! * `login_password_seq` and `login_totp_seq`, one after the other, from one task each, on a broker whose clock
//!   moves 30 s before every sign-in (a TOTP code is accepted once per step): the password-only sign-in, and the
//!   sign-in of an account with an authenticator — the same password check, then the half-signed-in state held,
//!   and the code checked (its secret opened, three HMAC-SHA-1, the step recorded) before the session is issued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordVerifier as _, Version};
use vestibule::{Broker, ClientInfo, LoginOutcome};
use vestibule_bench::{arg, cpus, open_store, BenchResult, LOGIN, PASSWORD};
use vestibule_core::{Clock, ExposeSecret, FixedClock, SecretString, SourceId, Timestamp};
use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher};
use vestibule_store::NewLocalAccount;

struct Row {
    rate: f64,
    p50_ms: f64,
    count: usize,
}

fn row(mut times: Vec<Duration>, elapsed: Duration) -> Row {
    times.sort();
    let p50_ms = times.get(times.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    Row {
        rate: times.len() as f64 / elapsed.as_secs_f64(),
        p50_ms,
        count: times.len(),
    }
}

/// Runs `op` from `tasks` tasks until `seconds` have passed; every operation must succeed.
async fn measure<F, Fut>(seconds: f64, tasks: usize, op: F) -> BenchResult<Row>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = BenchResult<()>> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                op().await?;
                times.push(t.elapsed());
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(times)
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await??);
    }
    Ok(row(all, start.elapsed()))
}

fn print(name: &str, r: &Row) {
    println!("{name}={:.2}", r.rate);
    println!("{name}_p50_ms={:.1}", r.p50_ms);
    println!("{name}_count={}", r.count);
}

async fn run() -> BenchResult<()> {
    let path: String = arg(1, String::new())?;
    if path.is_empty() {
        return Err("usage: bench_login DB_PATH [SECONDS_PER_ROW] [CONCURRENT_TASKS]".into());
    }
    let seconds: f64 = arg(2, 10.0)?;
    let tasks: usize = arg(3, 4)?;

    let settings = Argon2Settings::default();
    let store = open_store(&path).await?;
    let local_id = SourceId::new("local")?;
    let hasher = Arc::new(PasswordHasher::new(settings)?);
    let hash = hasher.hash(PASSWORD.into()).await?;
    store
        .create_local_account(
            &NewLocalAccount {
                source: local_id.clone(),
                username: LOGIN.into(),
                display_name: Some("Bench".into()),
                email: None,
                email_verified: false,
                password_hash: hash.clone().into(),
            },
            Timestamp(vestibule_core::Clock::now(&vestibule_core::SystemClock).0),
        )
        .await?;
    let local = vestibule_bench::local_source(&store, hasher.clone(), settings)?;
    let broker = Arc::new(
        Broker::builder(store, "http://127.0.0.1/auth")
            .source(Arc::new(local))
            .build()
            .await?,
    );

    println!("cpus={}", cpus());
    println!("tasks={tasks}");
    println!(
        "argon2=m={} KiB, t={}, p={}",
        settings.memory_kib, settings.iterations, settings.parallelism
    );

    let login = {
        let (broker, local_id) = (broker.clone(), local_id.clone());
        move || {
            let (broker, local_id) = (broker.clone(), local_id.clone());
            async move {
                let out = broker
                    .login_password(
                        &local_id,
                        LOGIN,
                        &SecretString::from(PASSWORD),
                        &ClientInfo::default(),
                        None,
                    )
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
    let verify = {
        let (hasher, hash) = (hasher.clone(), hash.clone());
        move || {
            let (hasher, hash) = (hasher.clone(), hash.clone());
            async move {
                if hasher.verify(PASSWORD.into(), hash).await?.is_match() {
                    Ok(())
                } else {
                    Err("the right password did not verify".into())
                }
            }
        }
    };

    // Warm-up: a few of each (page faults of the 19 MiB blocks, SQLite caches).
    for _ in 0..3 {
        login().await?;
        verify().await?;
    }

    // Direct argon2 on one blocking thread: the floor no caller can beat.
    let direct = {
        let hash = hash.clone();
        tokio::task::spawn_blocking(move || -> BenchResult<Row> {
            let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
                .map_err(|e| e.to_string())?;
            let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
            let parsed = PasswordHash::new(&hash).map_err(|e| e.to_string())?;
            let start = Instant::now();
            let deadline = start + Duration::from_secs_f64(seconds);
            let mut times = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                argon2
                    .verify_password(PASSWORD.as_bytes(), &parsed)
                    .map_err(|e| e.to_string())?;
                times.push(t.elapsed());
            }
            Ok(row(times, start.elapsed()))
        })
        .await??
    };
    print("argon2_direct", &direct);
    let v = measure(seconds, tasks, verify).await?;
    print("hasher_verify", &v);
    let l = measure(seconds, tasks, login).await?;
    print("login_password", &l);
    println!("login_over_verify={:.3}", l.rate / v.rate);

    let (seq, totp) = second_factor_rows(&path, seconds, settings, hasher, &hash).await?;
    print("login_password_seq", &seq);
    print("login_totp_seq", &totp);
    println!("totp_over_password={:.3}", totp.rate / seq.rate);
    Ok(())
}

/// The password-only and password + TOTP sign-ins, one task each, on a broker over the same database whose clock
/// moves one TOTP step before every sign-in.
async fn second_factor_rows(
    path: &str,
    seconds: f64,
    settings: Argon2Settings,
    hasher: Arc<PasswordHasher>,
    hash: &str,
) -> BenchResult<(Row, Row)> {
    const TOTP_LOGIN: &str = "bench-totp";
    let store = open_store(path).await?;
    let local_id = SourceId::new("local")?;
    let clock = Arc::new(FixedClock::new(Timestamp(1_800_000_000)));
    let account = store
        .create_local_account(
            &NewLocalAccount {
                source: local_id.clone(),
                username: TOTP_LOGIN.into(),
                display_name: None,
                email: None,
                email_verified: false,
                password_hash: hash.to_owned().into(),
            },
            clock.now(),
        )
        .await?;
    let local = LocalSource::new(
        &LocalConfig {
            id: local_id.clone(),
            display_name: None,
            argon2: settings,
            password: Default::default(),
        },
        Arc::new(store.clone()),
        hasher,
    );
    let broker = Arc::new(
        Broker::builder(store, "http://127.0.0.1/auth")
            .source(Arc::new(local))
            .clock(clock.clone())
            .build()
            .await?,
    );
    // Enrol the authenticator as its owner would, from a fresh session.
    let client = ClientInfo::default();
    let s = broker.create_session(&account, &local_id, &client, None).await?;
    let active = broker.session(s.token.expose()).await?.ok_or("no session")?;
    let key = broker
        .begin_totp(&active)
        .await?
        .secret_base32
        .expose_secret()
        .to_owned();
    let code = vestibule_tests::totp::code(&key, clock.now().0);
    broker.confirm_totp(&active, &code, &client).await?;

    let sign_in = |login: &'static str, with_code: bool| {
        let (broker, clock, local_id, key) = (broker.clone(), clock.clone(), local_id.clone(), key.clone());
        move || {
            let (broker, clock, local_id, key) = (broker.clone(), clock.clone(), local_id.clone(), key.clone());
            async move {
                clock.advance(30);
                let client = ClientInfo::default();
                let out = broker
                    .login_password(&local_id, login, &SecretString::from(PASSWORD), &client, None)
                    .await?;
                match (out, with_code) {
                    (LoginOutcome::SignedIn(_), false) => Ok(()),
                    (LoginOutcome::SecondFactorRequired(challenge), true) => {
                        let token = broker.hold_for_second_factor(challenge, None, false).await?;
                        let code = vestibule_tests::totp::code(&key, clock.now().0);
                        broker
                            .finish_second_factor(token.expose(), &code, &client, None)
                            .await?;
                        Ok(())
                    }
                    (other, _) => Err(format!("unexpected outcome: {other:?}").into()),
                }
            }
        }
    };
    let seq = measure(seconds, 1, sign_in(LOGIN, false)).await?;
    let totp = measure(seconds, 1, sign_in(TOTP_LOGIN, true)).await?;
    Ok((seq, totp))
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench_login: {e}");
        std::process::exit(1);
    }
}
