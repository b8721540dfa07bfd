use sqlx::Row;
use vestibule_core::Timestamp;

use crate::{Store, StoreError};

impl Store {
    /// The key stored under `name`, inserting `candidate` first if there is none. Every node sharing the database
    /// ends up with the same key, whichever inserted first.
    pub async fn get_or_insert_key(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO broker_keys (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(now.0)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM broker_keys WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }
}
