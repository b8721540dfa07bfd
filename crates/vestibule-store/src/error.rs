/// A store operation failed. Messages may name tables and constraints: they are for logs, never for responses.
#[derive(Debug, thiserror::Error)]
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
    /// Migrations could not be applied.
    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

impl StoreError {
    pub(crate) fn conflict_on(e: sqlx::Error, what: &'static str) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::Database(e),
        }
    }
}

impl From<vestibule_core::IdError> for StoreError {
    fn from(e: vestibule_core::IdError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
