use sqlx::Row;
use vestibule_core::{AccountId, ExposeSecret, SecretString, SourceId, Timestamp};

use crate::{Store, StoreError};

/// A redirect sign-in waiting for its callback. `data` holds the flow's secrets, so `Debug` does not print it.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    /// Hex SHA-256 of the `state` value.
    pub state_hash: String,
    /// The source the flow was started for.
    pub source: SourceId,
    /// Hex SHA-256 of the browser-binding cookie set when the flow started.
    pub browser_hash: String,
    /// The source's own per-flow data (nonce, PKCE verifier...).
    pub data: SecretString,
    /// Where to land afterwards (already checked to be a safe relative path).
    pub next_path: Option<String>,
    /// After this the flow is void.
    pub expires_at: Timestamp,
    /// Set when the flow was started from the account page: link to this account instead of signing in.
    pub link_account: Option<AccountId>,
}

impl Store {
    /// Stores a pending flow.
    pub async fn insert_pending(&self, p: &PendingRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_redirects \
             (state_hash, source, browser_hash, data, next_path, expires_at, link_account) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&p.state_hash)
        .bind(p.source.as_str())
        .bind(&p.browser_hash)
        .bind(p.data.expose_secret())
        .bind(p.next_path.as_deref())
        .bind(p.expires_at.0)
        .bind(p.link_account.as_ref().map(AccountId::as_str))
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
             RETURNING state_hash, source, browser_hash, data, next_path, expires_at, link_account",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_flow_data() {
        let record = PendingRecord {
            state_hash: "5fa3c0".into(),
            source: SourceId::new("google").expect("valid id"),
            browser_hash: "b1".into(),
            data: r#"{"nonce":"nonce-77ab","pkce_verifier":"verifier-1c9e"}"#.into(),
            next_path: Some("/after".into()),
            expires_at: Timestamp(600),
            link_account: None,
        };
        let shown = format!("{record:?}");
        assert!(!shown.contains("nonce-77ab"), "{shown}");
        assert!(!shown.contains("verifier-1c9e"), "{shown}");
        assert!(shown.contains("5fa3c0") && shown.contains("google"), "{shown}");
    }
}
