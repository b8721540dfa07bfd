//! How long the store waits on its database, per backend.

use std::time::Duration;

use crate::Backend;

/// How a [`Store`](crate::Store) waits on its database. Every wait is bounded, so a stuck database or a lock held
/// by a dead client turns into an error ([`StoreError::Timeout`](crate::StoreError::Timeout)) instead of a hung
/// request. `StoreOptions::default()` gives the values documented on each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// The longest wait for a free connection from the pool (default 5 s).
    pub acquire_timeout: Duration,
    /// PostgreSQL: the longest one statement may run, waiting for locks included, before the server cancels it
    /// (`statement_timeout`); also the longest a transaction may sit idle holding its locks
    /// (`idle_in_transaction_session_timeout`), so a client that died mid-transaction cannot block the others
    /// until TCP notices. Default 10 s; zero turns both off. Migrations run without it.
    pub statement_timeout: Duration,
    /// SQLite: the longest a statement waits for another connection's write lock (`busy_timeout`, default 5 s).
    /// SQLite statements do not otherwise wait on anything outside the process.
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            acquire_timeout: Duration::from_secs(5),
            // Every query of a request takes milliseconds; ten seconds leaves room for purges of large tables and
            // a loaded server, and still ends a stuck request long before a person gives up on it.
            statement_timeout: Duration::from_secs(10),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

impl StoreOptions {
    /// The statements that set the per-connection limits, run on every new connection. `unlimited`: the
    /// PostgreSQL limits off, for migrations, which may rewrite large tables.
    pub(crate) fn session_statements(&self, backend: Backend, unlimited: bool) -> Vec<String> {
        match backend {
            Backend::Sqlite => vec![format!("PRAGMA busy_timeout = {}", millis(self.sqlite_busy_timeout))],
            Backend::Postgres => {
                let ms = if unlimited { 0 } else { millis(self.statement_timeout) };
                // SET takes no bind parameters; the value is an integer formatted here, never outside input.
                vec![
                    format!("SET statement_timeout = {ms}"),
                    format!("SET idle_in_transaction_session_timeout = {ms}"),
                ]
            }
        }
    }
}

/// Whole milliseconds, at least 1 for a non-zero duration (0 means "no limit" to both databases), saturated to
/// what PostgreSQL accepts (a 32-bit integer).
fn millis(d: Duration) -> u128 {
    let ms = d.as_millis().min(i32::MAX as u128);
    if ms == 0 && !d.is_zero() {
        1
    } else {
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_whole_milliseconds_within_range() {
        assert_eq!(millis(Duration::from_secs(10)), 10_000);
        assert_eq!(millis(Duration::from_micros(10)), 1, "a tiny limit is not 'no limit'");
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::from_secs(u64::MAX)), i32::MAX as u128);
    }

    #[test]
    fn statements_per_backend() {
        let o = StoreOptions::default();
        assert_eq!(
            o.session_statements(Backend::Postgres, false),
            [
                "SET statement_timeout = 10000",
                "SET idle_in_transaction_session_timeout = 10000"
            ]
        );
        assert_eq!(
            o.session_statements(Backend::Postgres, true),
            [
                "SET statement_timeout = 0",
                "SET idle_in_transaction_session_timeout = 0"
            ]
        );
        assert_eq!(
            o.session_statements(Backend::Sqlite, false),
            ["PRAGMA busy_timeout = 5000"]
        );
    }
}
