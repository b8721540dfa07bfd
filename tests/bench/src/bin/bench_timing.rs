//! Timing of refused sign-ins with the limiter in front (issue #11): an unknown name, a wrong password and a
//! disabled account must take the same time (each does one argon2id verification: the dummy hash for an unknown
//! name), and a throttled attempt answers before any of that. Through `Broker::login_password` with the local
//! source on a SQLite store (the limiter's counters in the database, as the server runs), the four cases
//! interleaved in every round so that drifting load hits them alike; allowances raised so that only the
//! throttled case is refused by the limiter.
//!
//! ```text
//! bench_timing DB_PATH [ROUNDS]
//! ```
//!
//! Prints, per case, the median and the 10th and 90th percentiles in milliseconds, and each median over the
//! wrong-password median.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vestibule::{Broker, ClientInfo, LoginError, ThrottleSettings};
use vestibule_bench::{arg, open_store, BenchResult, LOGIN, PASSWORD};
use vestibule_core::{SecretString, SourceId, Timestamp};
use vestibule_local::{Argon2Settings, PasswordHasher};
use vestibule_store::NewLocalAccount;

const CASES: [&str; 4] = ["unknown name", "wrong password", "disabled account", "throttled"];

async fn run() -> BenchResult<()> {
    let path: String = arg(1, String::new())?;
    if path.is_empty() {
        return Err("usage: bench_timing DB_PATH [ROUNDS]".into());
    }
    // At most 90: the hourly ceiling (100) must not hold the wrong-password name back.
    let rounds: usize = arg(2, 60)?;
    let settings = Argon2Settings::default();
    let store = open_store(&path).await?;
    let local_id = SourceId::new("local")?;
    let hasher = Arc::new(PasswordHasher::new(settings)?);
    let now = Timestamp(vestibule_core::Clock::now(&vestibule_core::SystemClock).0);
    let mut accounts = Vec::new();
    for name in [LOGIN, "disabled-one"] {
        let hash = hasher.hash(PASSWORD.into()).await?;
        accounts.push(
            store
                .create_local_account(
                    &NewLocalAccount {
                        source: local_id.clone(),
                        username: name.into(),
                        display_name: None,
                        email: None,
                        email_verified: false,
                        password_hash: hash.into(),
                    },
                    now,
                )
                .await?,
        );
    }
    let local = vestibule_bench::local_source(&store, hasher.clone(), settings)?;
    let broker = Broker::builder(store, "http://127.0.0.1/auth")
        .source(Arc::new(local))
        .throttle(ThrottleSettings {
            address_burst: 10_000,
            account_free_failures: 100,
            pair_free_failures: 100,
            ..ThrottleSettings::default()
        })
        .build()
        .await?;
    broker.set_account_disabled(&accounts[1], true).await?;
    let client = |i: usize| {
        ClientInfo::from_parts(
            None,
            Some(std::net::IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8 + 1])),
        )
    };
    // A name held back from the start: its failures spent beyond every allowance.
    let held = "held-back";
    for _ in 0..101 {
        let _ = broker
            .login_password(&local_id, held, &SecretString::from("x"), &client(9_999), None)
            .await;
    }

    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); CASES.len()];
    for round in 0..rounds {
        for (case, (name, password)) in [
            (format!("nobody-{round}"), "wrong horse"),
            (LOGIN.to_owned(), "wrong horse"),
            ("disabled-one".to_owned(), PASSWORD),
            (held.to_owned(), PASSWORD),
        ]
        .into_iter()
        .enumerate()
        {
            let t = Instant::now();
            let out = broker
                .login_password(&local_id, &name, &SecretString::from(password), &client(round), None)
                .await;
            let elapsed = t.elapsed();
            match (case, &out) {
                (3, Err(LoginError::Throttled { .. })) => {}
                (0..=2, Err(LoginError::Rejected(_))) => {}
                _ => return Err(format!("{}: unexpected answer {out:?}", CASES[case]).into()),
            }
            times[case].push(elapsed);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut medians = Vec::new();
    for (case, t) in times.iter_mut().enumerate() {
        t.sort();
        let at = |q: f64| ms(t[((t.len() - 1) as f64 * q) as usize]);
        medians.push(at(0.5));
        println!(
            "{:<17} median {:>8.3} ms   p10 {:>8.3}   p90 {:>8.3}   ({} attempts)",
            CASES[case],
            at(0.5),
            at(0.1),
            at(0.9),
            t.len()
        );
    }
    for (case, m) in medians.iter().enumerate() {
        println!("{:<17} / wrong password = {:.3}", CASES[case], m / medians[1]);
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> BenchResult<()> {
    run().await
}
