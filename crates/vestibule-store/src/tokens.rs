use sqlx::Row;
use vestibule_core::{AccountId, SourceId, Subject, Timestamp};

use crate::second_factor::{join_methods, split_methods};
use crate::{AccessToken, Store, StoreError};

const COLUMNS: &str =
    "id, token_hash, account_id, name, scopes, created_at, expires_at, last_used_at, source, subject, checked_at, methods";

fn token_from(row: &sqlx::any::AnyRow) -> Result<AccessToken, StoreError> {
    Ok(AccessToken {
        id: row.try_get("id")?,
        token_hash: row.try_get("token_hash")?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?)?,
        name: row.try_get("name")?,
        scopes: row.try_get("scopes")?,
        created_at: Timestamp(row.try_get("created_at")?),
        expires_at: Timestamp(row.try_get("expires_at")?),
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(Timestamp),
        created_by: match (
            row.try_get::<Option<String>, _>("source")?,
            row.try_get::<Option<String>, _>("subject")?,
        ) {
            (Some(source), Some(subject)) => Some((SourceId::new(source)?, Subject::new(subject)?)),
            _ => None,
        },
        checked_at: row.try_get::<Option<i64>, _>("checked_at")?.map(Timestamp),
        methods: split_methods(&row.try_get::<String, _>("methods")?),
    })
}

impl Store {
    /// Stores a new token.
    pub async fn insert_token(&self, t: &AccessToken) -> Result<(), StoreError> {
        let sql =
            format!("INSERT INTO access_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)");
        sqlx::query(&sql)
            .bind(&t.id)
            .bind(&t.token_hash)
            .bind(t.account_id.as_str())
            .bind(&t.name)
            .bind(&t.scopes)
            .bind(t.created_at.0)
            .bind(t.expires_at.0)
            .bind(t.last_used_at.map(|x| x.0))
            .bind(t.created_by.as_ref().map(|(s, _)| s.as_str()))
            .bind(t.created_by.as_ref().map(|(_, s)| s.as_str()))
            .bind(t.checked_at.map(|x| x.0))
            .bind(join_methods(&t.methods))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A token by the hash of its value.
    pub async fn find_token(&self, token_hash: &str) -> Result<Option<AccessToken>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM access_tokens WHERE token_hash = $1");
        let row = sqlx::query(&sql).bind(token_hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(token_from).transpose()
    }

    /// Every token of an account, newest first.
    pub async fn tokens_of(&self, account: &AccountId) -> Result<Vec<AccessToken>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM access_tokens WHERE account_id = $1 ORDER BY created_at DESC, id");
        let rows = sqlx::query(&sql).bind(account.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(token_from).collect()
    }

    /// Deletes one token of an account (never another account's); returns its hash when it existed.
    pub async fn delete_token(&self, account: &AccountId, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("DELETE FROM access_tokens WHERE id = $1 AND account_id = $2 RETURNING token_hash")
            .bind(id)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get::<String, _>("token_hash").map_err(StoreError::from))
            .transpose()
    }

    /// Records a use (only moves forward).
    pub async fn touch_token(&self, token_hash: &str, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE access_tokens SET last_used_at = $1 WHERE token_hash = $2 \
             AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(at.0)
        .bind(token_hash)
        .bind(at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes expired tokens.
    pub async fn purge_tokens(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM access_tokens WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }
}
