use sqlx::Row;
use vestibule_core::Timestamp;

use crate::{AuditEvent, AuditRecord, Store, StoreError};

impl Store {
    /// Appends an event. The table refuses updates and deletes (triggers in both migrations).
    pub async fn audit(&self, at: Timestamp, e: &AuditEvent<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, event, account_id, source, subject, ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(at.0)
        .bind(e.event.as_str())
        .bind(e.account_id)
        .bind(e.source)
        .bind(e.subject)
        .bind(e.ip)
        .bind(e.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest `limit` events, newest first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, event, account_id, source, subject, ip, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    at: Timestamp(r.try_get("at")?),
                    event: r.try_get("event")?,
                    account_id: r.try_get("account_id")?,
                    source: r.try_get("source")?,
                    subject: r.try_get("subject")?,
                    ip: r.try_get("ip")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
