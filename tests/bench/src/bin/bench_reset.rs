//! Timing of `POST /reset`'s work (issue #13): asking for a reset must take the same time whether the name is an
//! account with a verified address (a link is mailed), an unknown name, an account whose address is not verified,
//! or a verified address typed instead of the name. Through `Broker::request_password_reset` with the local source
//! on a SQLite store (the limiter's counters in the database, as the server runs) and a mailer that only counts;
//! the four cases interleaved in every round, each round from a new address, allowances raised so that nothing is
//! throttled. The answer is timed; the background lookup and mail it starts are awaited after the clock stops, so
//! that one case's background work does not land in the next case's time.
//!
//! ```text
//! bench_reset DB_PATH [ROUNDS]
//! ```
//!
//! Prints, per case, the median and the 10th and 90th percentiles in milliseconds, and each median over the
//! unknown-name median, and how many messages were queued (one per round for the two cases naming the verified
//! account).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vestibule::{Broker, ClientInfo, Mail, MailError, Mailer, ThrottleSettings};
use vestibule_bench::{arg, open_store, BenchResult, PASSWORD};
use vestibule_core::{PasswordChanger, SourceId, Timestamp};
use vestibule_local::{Argon2Settings, PasswordHasher};
use vestibule_store::NewLocalAccount;

const CASES: [&str; 4] = [
    "verified account",
    "unknown name",
    "unverified account",
    "verified address",
];

/// Counts what it is given: the bench measures the broker, not a mail server.
#[derive(Debug, Default)]
struct Counting(AtomicUsize);

impl Mailer for Counting {
    fn queue(&self, _: Mail) -> Result<(), MailError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn has_room(&self) -> bool {
        true
    }
}

async fn run() -> BenchResult<()> {
    let path: String = arg(1, String::new())?;
    if path.is_empty() {
        return Err("usage: bench_reset DB_PATH [ROUNDS]".into());
    }
    let rounds: usize = arg(2, 200)?;
    let settings = Argon2Settings::default();
    let store = open_store(&path).await?;
    let local_id = SourceId::new("local")?;
    let hasher = Arc::new(PasswordHasher::new(settings)?);
    let now = Timestamp(vestibule_core::Clock::now(&vestibule_core::SystemClock).0);
    for (name, verified) in [("verified-one", true), ("unverified-one", false)] {
        let hash = hasher.hash(PASSWORD.into()).await?;
        store
            .create_local_account(
                &NewLocalAccount {
                    source: local_id.clone(),
                    username: name.into(),
                    display_name: None,
                    email: Some(format!("{name}@example.org")),
                    email_verified: verified,
                    password_hash: hash.into(),
                },
                now,
            )
            .await?;
    }
    let local = Arc::new(vestibule_bench::local_source(&store, hasher.clone(), settings)?);
    let mailer = Arc::new(Counting::default());
    let broker = Arc::new(
        Broker::builder(store, "http://127.0.0.1/auth")
            .source(local.clone())
            .password_changer(local as Arc<dyn PasswordChanger>)
            .mailer(mailer.clone())
            .throttle(ThrottleSettings {
                // Out of the way: this measures the work behind the limiter, every request a counted failure.
                address_burst: 100_000,
                account_free_failures: 100_000,
                pair_free_failures: 100_000,
                account_failures_per_hour: 100_000,
                ..ThrottleSettings::default()
            })
            .build()
            .await?,
    );
    let client = |i: usize| {
        ClientInfo::from_parts(
            None,
            Some(std::net::IpAddr::from([10, 2, (i / 250) as u8, (i % 250) as u8 + 1])),
        )
    };

    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); CASES.len()];
    for round in 0..rounds {
        for (case, login) in [
            "verified-one".to_owned(),
            format!("nobody-{round}"),
            "unverified-one".to_owned(),
            "verified-one@example.org".to_owned(),
        ]
        .into_iter()
        .enumerate()
        {
            let t = Instant::now();
            let requested = broker.request_password_reset(&login, &client(round)).await;
            let elapsed = t.elapsed();
            match requested {
                Ok(r) => r.delivered().await,
                Err(e) => return Err(format!("{}: unexpected answer {e:?}", CASES[case]).into()),
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
            "{:<19} median {:>8.3} ms   p10 {:>8.3}   p90 {:>8.3}   ({} requests)",
            CASES[case],
            at(0.5),
            at(0.1),
            at(0.9),
            t.len()
        );
    }
    for (case, m) in medians.iter().enumerate() {
        println!("{:<19} / unknown name = {:.3}", CASES[case], m / medians[1]);
    }
    println!("messages queued: {}", mailer.0.load(Ordering::Relaxed));
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> BenchResult<()> {
    run().await
}
