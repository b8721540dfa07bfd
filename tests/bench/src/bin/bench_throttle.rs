//! The limiter's cost (see BENCHMARKS.md, "Throttling"): the CPU added to one sign-in attempt by
//! `Limiter::check` + `Limiter::failed` (what a failed password sign-in costs it), next to one argon2id verification
//! at the default parameters measured in the same run (the work it sits in front of), and the resident memory of
//! the limiter holding one million distinct client addresses (`max_tracked` raised to a million for it). Then the
//! same attempt with the counters in the database (how the server runs: shared by every node): a SQLite file, and
//! PostgreSQL when `VESTIBULE_BENCH_PG` names a database to use (its `throttle_counters` table is written to).
//!
//! `cargo run --release -p vestibule-bench --bin bench_throttle` (or `scripts/bench` with `BENCH_PARTS=throttle`).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use vestibule::{Attempt, Limiter, ThrottleSettings};
use vestibule_core::Timestamp;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn address(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = Timestamp(1_800_000_000);
    // Per attempt: check then failed, for distinct names from a few addresses (the pattern of a guessing script),
    // with allowances large enough that nothing is refused (a refusal is cheaper: it stops at the first layer).
    let limiter = Limiter::new(ThrottleSettings {
        address_burst: 10_000,
        account_free_failures: 100,
        pair_free_failures: 100,
        ..ThrottleSettings::default()
    });
    let names: Vec<String> = (0..100_000).map(|i| format!("local:user{i}")).collect();
    let rounds = 5;
    let mut per_attempt = Vec::new();
    for _ in 0..rounds {
        per_attempt.push(rt.block_on(attempts(&limiter, &names, now)));
    }
    per_attempt.sort_by(f64::total_cmp);

    // The counters in the database: fewer attempts, each a round trip or two.
    let dir = std::env::temp_dir().join(format!("vestibule-bench-throttle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    let sqlite_url = format!("sqlite://{}", dir.join("bench.db").display());
    let mut shared = vec![("SQLite file".to_owned(), sqlite_url)];
    if let Ok(pg) = std::env::var("VESTIBULE_BENCH_PG") {
        shared.push(("PostgreSQL".to_owned(), pg));
    }
    let mut shared_rows = Vec::new();
    for (label, url) in shared {
        let per = rt.block_on(async {
            let store = vestibule_store::Store::connect(&url).await.expect("store");
            store.migrate().await.expect("migrate");
            let limiter = Limiter::new(ThrottleSettings {
                address_burst: 10_000,
                account_free_failures: 100,
                pair_free_failures: 100,
                ..ThrottleSettings::default()
            })
            .with_store(std::sync::Arc::new(store));
            assert!(limiter.is_shared());
            let mut per = Vec::new();
            for _ in 0..rounds {
                per.push(attempts(&limiter, &names[..2_000], now).await);
            }
            per.sort_by(f64::total_cmp);
            per
        });
        shared_rows.push((label, per));
    }
    let _ = std::fs::remove_dir_all(&dir);

    // The work it sits in front of: one argon2id verification at the defaults (m=19456 KiB, t=2, p=1).
    let hasher = vestibule_local::PasswordHasher::new(vestibule_local::Argon2Settings::default()).expect("hasher");
    let hash = rt.block_on(hasher.hash("correct horse".into())).expect("hash");
    let mut argon = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let _ = rt.block_on(hasher.verify("wrong horse".into(), hash.clone()));
        argon.push(start.elapsed().as_nanos() as f64);
    }
    argon.sort_by(f64::total_cmp);

    // Memory: one million distinct addresses, one attempt each (each holds one bucket entry).
    drop(limiter);
    let before = rss_kib();
    let limiter = Limiter::new(ThrottleSettings {
        max_tracked: 1_000_000,
        ..ThrottleSettings::default()
    });
    for i in 0..1_000_000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 | i));
        // A failure from each: what fills the address buckets (a look alone stores nothing).
        limiter.address_failed(ip, now);
    }
    let after = rss_kib();

    let median = |v: &[f64]| v[v.len() / 2];
    println!(
        "limiter check+failed per attempt: median {:.0} ns (min {:.0}, max {:.0}) over {rounds} rounds of {} attempts",
        median(&per_attempt),
        per_attempt[0],
        per_attempt[per_attempt.len() - 1],
        names.len()
    );
    println!(
        "argon2id verification (default parameters): median {:.1} ms",
        median(&argon) / 1e6
    );
    println!(
        "limiter / argon2 = {:.4} %",
        100.0 * median(&per_attempt) / median(&argon)
    );
    for (label, per) in &shared_rows {
        println!(
            "counters in a {label}: check+failed per attempt: median {:.0} µs (min {:.0}, max {:.0}); / argon2 = {:.1} %",
            median(per) / 1e3,
            per[0] / 1e3,
            per[per.len() - 1] / 1e3,
            100.0 * median(per) / median(&argon)
        );
    }
    println!(
        "resident memory for 1 000 000 addresses: {:.0} MiB ({} KiB before, {} KiB after; {:?})",
        (after.saturating_sub(before)) as f64 / 1024.0,
        before,
        after,
        limiter
    );
}

/// Nanoseconds per attempt of `check` then `failed` for each name, from 64 addresses.
async fn attempts(limiter: &Limiter, names: &[String], now: Timestamp) -> f64 {
    let start = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let attempt = Attempt {
            account: name,
            ip: Some(address(u32::try_from(i % 64).unwrap_or(0))),
        };
        let _ = black_box(limiter.check(&attempt, now).await.expect("counters"));
        limiter.failed(&attempt, now).await.expect("counted");
    }
    start.elapsed().as_nanos() as f64 / names.len() as f64
}
