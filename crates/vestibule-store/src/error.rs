/// A store operation failed. Messages may name tables and constraints: they are for logs, never for responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres://`.
    #[error("unsupported database URL: use sqlite://FILE or postgres://...")]
    UnsupportedUrl,
    /// A uniqueness rule was broken (a taken username, an identity already linked).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A row holds a value the code cannot read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database answered with an error or not at all.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The database did not answer in time: a PostgreSQL statement ran past `statement_timeout` (waiting for
    /// locks included), a SQLite write lock stayed taken past the busy timeout, or no pooled connection was free
    /// within the acquire timeout ([`StoreOptions`](crate::StoreOptions)). Worth a 503 with `Retry-After`.
    #[error("database timeout")]
    Timeout(#[source] sqlx::Error),
    /// A login name given to the store has no canonical form (empty, control or invisible characters...).
    #[error("invalid login name")]
    InvalidLogin(#[source] vestibule_core::LoginError),
    /// Existing local login names collide in canonical form, or have none: found right after migrating, before
    /// anything was changed. The message names them.
    #[error("{0}")]
    LoginNames(crate::LoginNameProblems),
    /// Migrations could not be applied.
    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_timeout(&e) {
            StoreError::Timeout(e)
        } else {
            StoreError::Database(e)
        }
    }
}

/// Whether the error is a bounded wait that ran out (see [`StoreError::Timeout`]).
fn is_timeout(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // PostgreSQL: query_canceled (what statement_timeout raises), lock_not_available (lock_timeout).
            Some("57014" | "55P03") => true,
            // SQLite reports extended result codes; SQLITE_BUSY (5) is what the busy timeout running out returns.
            // Its extended forms (BUSY_SNAPSHOT...) come at once, without waiting: they are not timeouts.
            Some(code) => code == "5",
            None => false,
        },
        _ => false,
    }
}

impl StoreError {
    pub(crate) fn conflict_on(e: sqlx::Error, what: &'static str) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::from(e),
        }
    }
}

impl From<vestibule_core::IdError> for StoreError {
    fn from(e: vestibule_core::IdError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// What the broker can tell apart: a conflict, a bad login name, a timeout (still a timeout, so front ends answer
/// "busy, retry"); the rest travels boxed, with its message and source chain.
impl From<StoreError> for vestibule_core::storage::StorageError {
    fn from(e: StoreError) -> Self {
        use vestibule_core::storage::StorageError;
        match e {
            StoreError::Conflict(what) => StorageError::Conflict(what),
            StoreError::InvalidLogin(e) => StorageError::InvalidLogin(e),
            StoreError::Timeout(e) => StorageError::Timeout(Box::new(e)),
            e => StorageError::Other(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use vestibule_core::storage::StorageError;

    use super::*;

    /// What the broker acts on survives the mapping; the rest keeps its message and cause.
    #[test]
    fn storage_errors_keep_conflicts_and_timeouts_apart() {
        let conflict = StorageError::from(StoreError::Conflict("username"));
        assert!(matches!(conflict, StorageError::Conflict("username")), "{conflict:?}");
        let timeout = StorageError::from(StoreError::Timeout(sqlx::Error::PoolTimedOut));
        assert!(matches!(timeout, StorageError::Timeout(_)), "{timeout:?}");
        let other = StorageError::from(StoreError::Database(sqlx::Error::PoolClosed));
        assert!(matches!(other, StorageError::Other(_)), "{other:?}");
        assert_eq!(other.to_string(), "database error");
        assert!(
            vestibule_core::error_chain(&other).contains("closed"),
            "{}",
            vestibule_core::error_chain(&other)
        );
    }
}
