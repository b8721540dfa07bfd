use sqlx::Row;
use vestibule_core::{AccountId, SourceId, Subject, Timestamp};

use crate::second_factor::{join_methods, split_methods};
use crate::{SessionRecord, Store, StoreError};

const COLUMNS: &str =
    "id_hash, account_id, source, created_at, last_seen_at, authenticated_at, expires_at, user_agent, \
     ip, fingerprint, subject, checked_at, methods, second_factor_at";

fn session_from(row: &sqlx::any::AnyRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id_hash: row.try_get("id_hash")?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?)?,
        source: SourceId::new(row.try_get::<String, _>("source")?)?,
        created_at: Timestamp(row.try_get("created_at")?),
        last_seen_at: Timestamp(row.try_get("last_seen_at")?),
        authenticated_at: Timestamp(row.try_get("authenticated_at")?),
        expires_at: Timestamp(row.try_get("expires_at")?),
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
        fingerprint: row.try_get("fingerprint")?,
        subject: row
            .try_get::<Option<String>, _>("subject")?
            .map(Subject::new)
            .transpose()?,
        checked_at: row.try_get::<Option<i64>, _>("checked_at")?.map(Timestamp),
        methods: split_methods(&row.try_get::<String, _>("methods")?),
        second_factor_at: row.try_get::<Option<i64>, _>("second_factor_at")?.map(Timestamp),
    })
}

impl Store {
    /// Stores a new session.
    pub async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        sqlx::query(&sql)
            .bind(&s.id_hash)
            .bind(s.account_id.as_str())
            .bind(s.source.as_str())
            .bind(s.created_at.0)
            .bind(s.last_seen_at.0)
            .bind(s.authenticated_at.0)
            .bind(s.expires_at.0)
            .bind(s.user_agent.as_deref())
            .bind(s.ip.as_deref())
            .bind(s.fingerprint.as_deref())
            .bind(s.subject.as_ref().map(|x| x.as_str()))
            .bind(s.checked_at.map(|t| t.0))
            .bind(join_methods(&s.methods))
            .bind(s.second_factor_at.map(|t| t.0))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::conflict_on(e, "session"))?;
        Ok(())
    }

    /// A session by the hash of its id.
    pub async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id_hash = $1");
        let row = sqlx::query(&sql).bind(id_hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(session_from).transpose()
    }

    /// Records activity; only moves `last_seen_at` forward.
    pub async fn touch_session(&self, id_hash: &str, seen: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $3")
            .bind(seen.0)
            .bind(id_hash)
            .bind(seen.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a session as not fresh (its client changed under `basic` protection).
    pub async fn mark_session_stale(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET authenticated_at = 0 WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that the source confirmed the identity behind a session or an access token (by its hash) at `at`.
    pub async fn record_recheck(&self, hash: &str, at: Timestamp) -> Result<(), StoreError> {
        for sql in [
            "UPDATE sessions SET checked_at = $1 WHERE id_hash = $2",
            "UPDATE access_tokens SET checked_at = $1 WHERE token_hash = $2",
        ] {
            sqlx::query(sql).bind(at.0).bind(hash).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Deletes one session; `true` when it existed.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Every session of an account, newest first (through the per-account index).
    pub async fn sessions_of(&self, account: &AccountId) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE account_id = $1 ORDER BY created_at DESC, id_hash");
        let rows = sqlx::query(&sql).bind(account.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(session_from).collect()
    }

    /// Deletes every session of an account except `keep`; returns the deleted hashes (for cache eviction).
    pub async fn delete_sessions_of(&self, account: &AccountId, keep: Option<&str>) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id_hash <> $2 RETURNING id_hash")
            .bind(account.as_str())
            .bind(keep.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id_hash").map_err(StoreError::from))
            .collect()
    }

    /// Deletes sessions past their absolute expiry or idle since before `idle_cutoff`.
    /// How many sessions are live (see `BrokerStore::count_sessions`).
    pub async fn count_sessions(&self, now: Timestamp, idle_cutoff: Timestamp) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE expires_at > $1 AND last_seen_at >= $2")
            .bind(now.0)
            .bind(idle_cutoff.0)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub async fn purge_sessions(&self, now: Timestamp, idle_cutoff: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2")
            .bind(now.0)
            .bind(idle_cutoff.0)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }
}
