use sqlx::Row;
use vestibule_core::{AccountId, ExposeSecret, SecretString, SourceId, Timestamp};

use crate::{PendingRecord, Store, StoreError};

impl Store {
    /// Stores a pending flow.
    pub async fn insert_pending(&self, p: &PendingRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_redirects \
             (state_hash, source, browser_hash, data, next_path, expires_at, link_account, started_at, \
              step_up_session) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&p.state_hash)
        .bind(p.source.as_str())
        .bind(&p.browser_hash)
        .bind(p.data.expose_secret())
        .bind(p.next_path.as_deref())
        .bind(p.expires_at.0)
        .bind(p.link_account.as_ref().map(AccountId::as_str))
        .bind(p.started_at.0)
        .bind(p.step_up_session.as_deref())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_on(e, "state"))?;
        Ok(())
    }

    /// Removes and returns a pending flow in one statement, so two callbacks racing with the same `state` cannot
    /// both get it. Expiry is the caller's to check.
    pub async fn take_pending(&self, state_hash: &str) -> Result<Option<PendingRecord>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM pending_redirects WHERE state_hash = $1 \
             RETURNING state_hash, source, browser_hash, data, next_path, expires_at, link_account, started_at, \
             step_up_session",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(PendingRecord {
            state_hash: row.try_get("state_hash")?,
            source: SourceId::new(row.try_get::<String, _>("source")?)?,
            browser_hash: row.try_get("browser_hash")?,
            data: SecretString::from(row.try_get::<String, _>("data")?),
            next_path: row.try_get("next_path")?,
            expires_at: Timestamp(row.try_get("expires_at")?),
            link_account: row
                .try_get::<Option<String>, _>("link_account")?
                .map(AccountId::new)
                .transpose()?,
            started_at: Timestamp(row.try_get("started_at")?),
            step_up_session: row.try_get("step_up_session")?,
        }))
    }

    /// Deletes flows that expired before `now`.
    pub async fn purge_pending(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM pending_redirects WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }
}
