use sqlx::Row;
use vestibule_core::{AccountId, SourceId, Subject, Timestamp};

use crate::second_factor::{join_methods, split_methods};
use crate::{RememberSeries, Store, StoreError};

const COLUMNS: &str =
    "series_hash, account_id, source, token_hash, previous_token_hash, rotated_at, authenticated_at, \
     expires_at, subject, methods";

fn series_from(row: &sqlx::any::AnyRow) -> Result<RememberSeries, StoreError> {
    Ok(RememberSeries {
        series_hash: row.try_get("series_hash")?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?)?,
        source: SourceId::new(row.try_get::<String, _>("source")?)?,
        token_hash: row.try_get("token_hash")?,
        previous_token_hash: row.try_get("previous_token_hash")?,
        rotated_at: Timestamp(row.try_get("rotated_at")?),
        authenticated_at: Timestamp(row.try_get("authenticated_at")?),
        expires_at: Timestamp(row.try_get("expires_at")?),
        subject: row
            .try_get::<Option<String>, _>("subject")?
            .map(Subject::new)
            .transpose()?,
        methods: split_methods(&row.try_get::<String, _>("methods")?),
    })
}

impl Store {
    /// Stores a new series.
    pub async fn insert_remember(&self, s: &RememberSeries) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO remember_series ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
        sqlx::query(&sql)
            .bind(&s.series_hash)
            .bind(s.account_id.as_str())
            .bind(s.source.as_str())
            .bind(&s.token_hash)
            .bind(s.previous_token_hash.as_deref())
            .bind(s.rotated_at.0)
            .bind(s.authenticated_at.0)
            .bind(s.expires_at.0)
            .bind(s.subject.as_ref().map(|x| x.as_str()))
            .bind(join_methods(&s.methods))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A series by the hash of its id.
    pub async fn get_remember(&self, series_hash: &str) -> Result<Option<RememberSeries>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM remember_series WHERE series_hash = $1");
        let row = sqlx::query(&sql).bind(series_hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(series_from).transpose()
    }

    /// Rotates the token if it is still `old_token_hash` (compare-and-swap: of two racing requests one rotates).
    pub async fn rotate_remember(
        &self,
        series_hash: &str,
        old_token_hash: &str,
        new_token_hash: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE remember_series SET previous_token_hash = token_hash, token_hash = $1, rotated_at = $2 \
             WHERE series_hash = $3 AND token_hash = $4",
        )
        .bind(new_token_hash)
        .bind(now.0)
        .bind(series_hash)
        .bind(old_token_hash)
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Deletes one series.
    pub async fn delete_remember(&self, series_hash: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM remember_series WHERE series_hash = $1")
            .bind(series_hash)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Deletes series past their expiry.
    pub async fn purge_remember(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM remember_series WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }

    /// Deletes every series of an account except `keep`; returns how many.
    pub async fn delete_remember_of(&self, account: &AccountId, keep: Option<&str>) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM remember_series WHERE account_id = $1 AND series_hash <> $2")
            .bind(account.as_str())
            .bind(keep.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }
}
