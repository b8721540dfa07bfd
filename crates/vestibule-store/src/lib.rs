//! Persistence for Vestibule on sqlx, one code path for SQLite (the default) and PostgreSQL.
//!
//! Queries go through sqlx's `Any` driver with portable SQL (`$1` parameters, `ON CONFLICT`, `RETURNING`,
//! integer timestamps), so every query exists once; only the migrations differ per backend, in
//! `migrations/sqlite` and `migrations/postgres`. One contract test suite runs the same cases against both.
//!
//! [`Store`] implements the broker's storage trait, [`BrokerStore`](vestibule_core::storage::BrokerStore); the
//! records it keeps are defined there and re-exported here.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = std::env::temp_dir().join(format!("vestibule-store-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! // A file that does not exist yet is created; `postgres://…` URLs go to PostgreSQL.
//! let url = format!("sqlite://{}/vestibule.db", dir.display());
//! let store = vestibule_store::Store::connect(&url).await?;
//! store.migrate().await?; // the schema, up to date; safe to run at every start
//! store.ping().await?;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), vestibule_store::StoreError>(())
//! # }).unwrap();
//! ```
//!
//! Every wait on the database is bounded ([`StoreOptions`], [`Store::connect_with`]): a statement that runs too
//! long or waits too long for a lock is [`StoreError::Timeout`], not a hung request.

mod accounts;
mod admin;
mod audit;
mod broker_store;
mod database_url;
mod email_tokens;
mod error;
mod keys;
mod linking;
mod logins;
mod lookup;
mod notify;
mod options;
mod passkeys;
mod pending;
mod remember;
mod second_factor;
mod sessions;
mod throttle;
mod tokens;

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

pub use database_url::DatabaseUrl;
pub use error::StoreError;
pub use logins::LoginNameProblems;
pub use notify::{RevocationListener, REVOCATION_CHANNEL};
pub use options::StoreOptions;
// The records are the broker's (its storage trait's); re-exported so that they read as the store's own.
pub use vestibule_core::storage::{
    AccessToken, Account, AuditEvent, AuditKind, AuditRecord, IdentityRecord, NewLocalAccount, PendingLink,
    PendingRecord, PendingSecondFactor, RememberSeries, SessionRecord, TotpFactor, Unlinked,
};
pub use vestibule_core::storage::{PasskeyCeremony, PasskeyRecord};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (created on first use).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The broker's database: accounts, identities, local credentials, sessions, pending redirects, audit log, keys.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// `Debug` shows it with the password masked.
    url: DatabaseUrl,
    options: StoreOptions,
}

impl Store {
    /// Connects to `sqlite://path`, `sqlite::memory:`-less file URLs, or `postgres://...`, with the default
    /// [`StoreOptions`]. A SQLite file is created when missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, StoreOptions::default()).await
    }

    /// [`Store::connect`] with other timeouts.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let connect_options = AnyConnectOptions::from_str(&url).map_err(StoreError::Database)?;
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few connections serve concurrent reads under WAL.
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // Set on the connection itself, so that it holds for every statement and transaction on it.
                    for sql in options.session_statements(backend, false) {
                        sqlx::query(&sql).execute(&mut *conn).await?;
                    }
                    if backend == Backend::Sqlite {
                        // WAL (sqlx's default) with synchronous=NORMAL, SQLite's recommended pairing: a commit no
                        // longer waits for an fsync of the log, so a sign-in's few writes cost microseconds, not
                        // disk flushes; the database is never corrupted, and only the last commits can be lost on
                        // power loss or an OS crash (not on a process crash). Use PostgreSQL where that matters.
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await
            .map_err(StoreError::Database)?;
        Ok(Store {
            pool,
            backend,
            url: url.into(),
            options,
        })
    }

    /// The URL it was opened with (as given, plus `mode=rwc` for SQLite). May hold a password: do not log it (the
    /// store's `Debug` masks it, as [`DatabaseUrl`] does).
    pub fn url(&self) -> &str {
        vestibule_core::ExposeSecret::expose_secret(&self.url)
    }

    /// Which backend this is.
    /// The connection pool's size and how many of its connections are idle (for metrics).
    pub fn pool_usage(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the migrations that are not applied yet, then stores the canonical form of local login names
    /// written before it existed. Refuses, changing nothing, when two such names are one name in canonical form
    /// (`Alice` and `alice`) or a name has none: [`StoreError::LoginNames`] names them all. Runs on every start, so
    /// the server does not start until they are renamed.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        let mut conn = self.pool.acquire().await?;
        // Migrations may rewrite large tables: the statement timeout is lifted on this connection meanwhile, and
        // put back before the connection returns to the pool (or the connection is closed).
        let outcome = async {
            set_session(&mut conn, &self.options.session_statements(self.backend, true)).await?;
            migrator.run(&mut *conn).await.map_err(StoreError::Migrate)?;
            logins::fill_canonical_logins(&mut conn).await
        }
        .await;
        if set_session(&mut conn, &self.options.session_statements(self.backend, false))
            .await
            .is_err()
        {
            let _ = conn.close().await;
        }
        outcome
    }

    /// The integer value of a SQLite `PRAGMA` on one of the store's own connections (for checks and tests).
    pub async fn sqlite_pragma(&self, name: &str) -> Result<i64, StoreError> {
        if self.backend != Backend::Sqlite || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(StoreError::UnsupportedUrl);
        }
        Ok(sqlx::query_scalar(&format!("PRAGMA {name}"))
            .fetch_one(&self.pool)
            .await?)
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn set_session(conn: &mut sqlx::AnyConnection, statements: &[String]) -> Result<(), StoreError> {
    for sql in statements {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// 128 random bits as 32 lowercase hex characters: ids that reveal neither order nor count.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    hex::encode(bytes)
}

pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_masks_the_password_of_the_url() {
        sqlx::any::install_default_drivers();
        let url = "postgres://vestibule:hunter2@127.0.0.1:1/vestibule";
        // Lazy: nothing listens there, and the test needs no database.
        let pool = AnyPoolOptions::new().connect_lazy(url).expect("valid URL");
        let store = Store {
            pool,
            backend: Backend::Postgres,
            url: url.into(),
            options: StoreOptions::default(),
        };
        let shown = format!("{store:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://vestibule:***@127.0.0.1:1/vestibule"),
            "{shown}"
        );
        assert_eq!(store.url(), url);
    }
}
