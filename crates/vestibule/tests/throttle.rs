//! The limiter's counters in the database (issue #11): the same answers as in process, on SQLite and PostgreSQL,
//! and one limit for two nodes sharing a PostgreSQL database.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;

use vestibule::{Attempt, Limiter, ThrottleLayer, ThrottleSettings, Throttled};
use vestibule_core::storage::BrokerStore;
use vestibule_core::Timestamp;
use vestibule_store::Store;
use vestibule_tests::pg::TempDatabase;

const T0: i64 = 1_800_000_000;

fn small() -> ThrottleSettings {
    ThrottleSettings {
        address_burst: 4,
        address_refill_secs: 10,
        account_free_failures: 3,
        pair_free_failures: 2,
        first_delay_secs: 2,
        max_delay_secs: 60,
        account_failures_per_hour: 12,
        forget_after_secs: 600,
        ..ThrottleSettings::default()
    }
}

async fn sqlite() -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("vestibule-throttle-{}", vestibule_tests::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

async fn postgres(db: &TempDatabase) -> Store {
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn shared(store: &Store) -> Limiter {
    let store: Arc<dyn BrokerStore> = Arc::new(store.clone());
    let l = Limiter::new(small()).with_store(store);
    assert!(l.is_shared());
    l
}

/// xorshift64*: a reproducible sequence without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

async fn answer(l: &Limiter, a: &Attempt<'_>, now: Timestamp) -> Option<Throttled> {
    l.check(a, now).await.unwrap()
}

/// One random sequence of attempts, failures, successes and lifts, through every limiter; every check must get
/// the same answer from each. Returns how many checks were refused, to show the sequence exercised the layers.
async fn same_answers(limiters: &[&Limiter], seed: u64) -> usize {
    let names = ["local:ann", "local:bob", "ldap:nobody-by-this-name"];
    let ips: Vec<IpAddr> = ["192.0.2.1", "192.0.2.2", "2001:db8:1:2::1", "2001:db8:1:2::2"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let mut rng = Rng(seed);
    let mut now = T0;
    let mut refused = 0;
    for step in 0..500 {
        now += match rng.below(10) {
            0 => i64::try_from(rng.below(900)).unwrap(),
            1..=4 => i64::try_from(rng.below(5)).unwrap(),
            _ => 0,
        };
        let a = Attempt {
            account: names[usize::try_from(rng.below(3)).unwrap()],
            ip: Some(ips[usize::try_from(rng.below(4)).unwrap()]),
        };
        let at = Timestamp(now);
        let first = answer(limiters[0], &a, at).await;
        for other in &limiters[1..] {
            assert_eq!(
                answer(other, &a, at).await,
                first,
                "seed {seed}, step {step}, {a:?} at +{}",
                now - T0
            );
        }
        if first.is_some() {
            refused += 1;
            continue;
        }
        match rng.below(20) {
            0 => {
                for l in limiters {
                    l.succeeded(&a).await.unwrap();
                }
            }
            1 => {
                for l in limiters {
                    l.lift(a.account).await.unwrap();
                }
            }
            _ => {
                for l in limiters {
                    l.failed(&a, at).await.unwrap();
                }
            }
        }
    }
    refused
}

#[tokio::test]
async fn database_counters_answer_as_the_in_process_ones_on_sqlite_and_postgres() {
    let (lite, dir) = sqlite().await;
    let db = TempDatabase::create().await;
    let pg = postgres(&db).await;
    for seed in [1, 7, 2026, 0x5eed] {
        // Fresh counters for each sequence.
        let memory = Limiter::new(small());
        let (on_lite, on_pg) = (shared(&lite), shared(&pg));
        for store in [&lite, &pg] {
            store.purge_counters(Timestamp(i64::MAX)).await.unwrap();
        }
        let refused = same_answers(&[&memory, &on_lite, &on_pg], seed).await;
        assert!(
            refused > 20,
            "seed {seed}: the sequence should reach the limits ({refused} refusals)"
        );
    }
    lite.close().await;
    pg.close().await;
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn two_nodes_on_one_postgres_enforce_one_limit_and_lose_no_failure() {
    let db = TempDatabase::create().await;
    let (a, b) = (postgres(&db).await, postgres(&db).await);
    let (node_a, node_b) = (shared(&a), shared(&b));
    let now = Timestamp(T0);
    let ip: IpAddr = "198.51.100.20".parse().unwrap();
    let ann = Attempt {
        account: "local:ann",
        ip: Some(ip),
    };
    // Each node alone would allow the pair two free failures; together they have two.
    node_a.failed(&ann, now).await.unwrap();
    assert_eq!(answer(&node_b, &ann, now).await, None);
    node_b.failed(&ann, now).await.unwrap();
    assert_eq!(answer(&node_a, &ann, now).await, None, "two failures are free");
    node_a.failed(&ann, now).await.unwrap();
    let t = answer(&node_b, &ann, now)
        .await
        .expect("the third failure, counted on A, holds B back");
    assert_eq!((t.layer, t.retry_after_secs), (ThrottleLayer::Pair, 2));
    // Without the shared counters B would have let it through: what each node sees alone.
    let alone = Limiter::new(small());
    assert_eq!(answer(&alone, &ann, now).await, None);

    // Many failures at once from both nodes: every one is counted (the arithmetic runs in the UPDATE).
    let bob = |i: u8| Attempt {
        account: "local:bob",
        ip: Some(IpAddr::from([203, 0, 113, i])),
    };
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        let node = if i % 2 == 0 { shared(&a) } else { shared(&b) };
        tasks.push(tokio::spawn(async move { node.failed(&bob(i), Timestamp(T0)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let listed = node_a.current(now, 100).await.unwrap();
    let bob_hash = sha256_hex("local:bob");
    let account = listed
        .iter()
        .find(|e| e.layer == ThrottleLayer::Account && e.name_hash.as_deref() == Some(bob_hash.as_str()))
        .expect("bob's account counter is listed");
    assert_eq!(account.failures, 40, "{account:?}");
    // Both the account's delay (capped at 60 s) and the hourly ceiling hold it back; the longer wait is given.
    let refusing = account.refusing.expect("refusing");
    assert_eq!(refusing.layer, ThrottleLayer::Hourly);
    assert_eq!(refusing.retry_after_secs, 3600);

    // An operator lifts bob's delays on one node; both nodes let him try again.
    assert!(node_b.lift("local:bob").await.unwrap() >= 41);
    assert_eq!(answer(&node_a, &bob(1), now).await, None);
    assert_eq!(
        answer(&node_b, &ann, now).await.map(|t| t.layer),
        Some(ThrottleLayer::Pair),
        "others keep theirs"
    );

    // Expired counters are purged by the janitor's call.
    let purged = a.purge_counters(Timestamp(T0 + 10 * 3600)).await.unwrap();
    assert!(purged > 0);
    assert!(node_a.current(Timestamp(T0 + 10 * 3600), 100).await.unwrap().is_empty());
    a.close().await;
    b.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn counters_keep_no_name_as_typed() {
    let (lite, dir) = sqlite().await;
    let l = shared(&lite);
    // People type their password into the name field.
    let typed = "local:correct-horse-battery-staple";
    l.failed(
        &Attempt {
            account: typed,
            ip: Some("192.0.2.5".parse().unwrap()),
        },
        Timestamp(T0),
    )
    .await
    .unwrap();
    lite.close().await;
    // The database file and its write-ahead log, whichever holds the row now.
    let bytes = vestibule_tests::server::files_bytes(&dir);
    let needle = b"correct-horse";
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    let hash = sha256_hex(typed);
    assert!(
        bytes.windows(hash.len()).any(|w| w == hash.as_bytes()),
        "its hash is kept"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
