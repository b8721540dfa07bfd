use sqlx::Row;
use vestibule_core::Timestamp;

use crate::{Store, StoreError};

/// A security event to append to the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent<'a> {
    /// `login_success`, `login_failure`, `logout`, `account_created`...
    pub event: &'a str,
    /// The account concerned, when known.
    pub account_id: Option<&'a str>,
    /// The source involved.
    pub source: Option<&'a str>,
    /// The subject at that source.
    pub subject: Option<&'a str>,
    /// The client address.
    pub ip: Option<&'a str>,
    /// A short reason (`invalid_credentials`), never a secret.
    pub detail: Option<&'a str>,
}

/// A row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Insertion order.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// What.
    pub event: String,
    /// Who.
    pub account_id: Option<String>,
    /// Through which source.
    pub source: Option<String>,
    /// As which subject.
    pub subject: Option<String>,
    /// From where.
    pub ip: Option<String>,
    /// Why.
    pub detail: Option<String>,
}

impl Store {
    /// Appends an event. The table refuses updates and deletes (triggers in both migrations).
    pub async fn audit(&self, at: Timestamp, e: &AuditEvent<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, event, account_id, source, subject, ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(at.0)
        .bind(e.event)
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
