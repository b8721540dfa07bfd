use sqlx::Row;
use vestibule_core::Timestamp;

use crate::{AuditEvent, AuditRecord, Store, StoreError};
use vestibule_core::storage::AuditQuery;

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
        self.query_audit(&AuditQuery {
            limit,
            ..AuditQuery::default()
        })
        .await
    }

    /// Events matching `q`, newest first. The SQL is built from fixed fragments only; every value is bound.
    pub async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from("SELECT id, at, event, account_id, source, subject, ip, detail FROM audit_log");
        let mut n = 0;
        let mut next = |column: &str, op: &str, sql: &mut String| {
            n += 1;
            sql.push_str(if n == 1 { " WHERE " } else { " AND " });
            sql.push_str(&format!("{column} {op} ${n}"));
        };
        if q.account_id.is_some() {
            next("account_id", "=", &mut sql);
        }
        if q.event.is_some() {
            next("event", "=", &mut sql);
        }
        if q.ip.is_some() {
            next("ip", "=", &mut sql);
        }
        if q.since.is_some() {
            next("at", ">=", &mut sql);
        }
        if q.before_id.is_some() {
            next("id", "<", &mut sql);
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql);
        for text in [&q.account_id, &q.event, &q.ip].into_iter().flatten() {
            query = query.bind(text.clone());
        }
        if let Some(t) = q.since {
            query = query.bind(t.0);
        }
        if let Some(id) = q.before_id {
            query = query.bind(id);
        }
        let rows = query.bind(q.limit.clamp(0, 10_000)).fetch_all(&self.pool).await?;
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
