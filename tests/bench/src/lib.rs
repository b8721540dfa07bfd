//! Load benchmarks for Vestibule, run by `scripts/bench` (results in `BENCHMARKS.md`):
//!
//! * `bench_server` serves the routes of [`app`]: a trivial route bare (`/open`), behind the least a session check
//!   can do (`/floor`: cookie, SHA-256, moka lookup, no broker), behind the session layer and
//!   [`vestibule_axum::RequireUser`] (`/protected`), and the broker's forward auth (`/auth/verify`), over a SQLite
//!   store filled with N sessions; an external load generator (wrk) measures them in the same rounds, so each ratio
//!   has its limits beside it;
//! * `bench_inproc` drives the same app in process with `tower::ServiceExt::oneshot` (no sockets): the CPU each
//!   route adds per request, timed or counted by callgrind;
//! * `bench_storm` sends bad passwords through the login form, many at a time, while wrk measures `/protected`;
//! * `bench_login` measures password sign-ins per second through [`vestibule::Broker::login_password`] next to
//!   raw argon2 verifications, at the default argon2 parameters;
//! * `bench_revocation` starts two real `vestibule serve` processes on one fresh PostgreSQL database and measures
//!   the time from a sign-out on one to refusal on the other (`/verify` → 401).
//! * `bench_throttle` and `bench_timing` measure the sign-in limiter's cost per attempt and memory, and that
//!   refused sign-ins take the same time with it in front;
//! * `bench_ldap` measures LDAP sign-ins per second through `Broker::login_password` with an `LdapSource`, next
//!   to the source alone and the bare ldap3 operations, against a throwaway local slapd.
//!
//! Nothing here runs in CI except compilation and clippy.

use std::error::Error;

pub mod app;

/// What the binaries return: any error, printed by `main`.
pub type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The password of the benchmark's local account.
pub const PASSWORD: &str = "bench-password-correct-horse";

/// The login name of the benchmark's local account.
pub const LOGIN: &str = "bench";

/// A fresh store over the SQLite file at `path`, migrated.
pub async fn open_store(path: &str) -> BenchResult<vestibule_store::Store> {
    let store = vestibule_store::Store::connect(&format!("sqlite://{path}")).await?;
    store.migrate().await?;
    Ok(store)
}

/// Argument `i` of the command line parsed as `T`, or `default` when absent.
pub fn arg<T: std::str::FromStr>(i: usize, default: T) -> BenchResult<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::args().nth(i) {
        None => Ok(default),
        Some(a) => a.parse().map_err(|e| format!("argument {i} ({a:?}): {e}").into()),
    }
}

/// The number of CPUs this process may run on (after `taskset`).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The local password source `local` over `store`, with `hasher` at `settings`.
pub fn local_source(
    store: &vestibule_store::Store,
    hasher: std::sync::Arc<vestibule_local::PasswordHasher>,
    settings: vestibule_local::Argon2Settings,
) -> BenchResult<vestibule_local::LocalSource> {
    Ok(vestibule_local::LocalSource::new(
        &vestibule_local::LocalConfig {
            id: vestibule_core::SourceId::new("local")?,
            display_name: None,
            argon2: settings,
            password: Default::default(),
        },
        std::sync::Arc::new(store.clone()),
        hasher,
    ))
}
