use sqlx::Row;
use vestibule_core::{AccountId, SourceId, Subject, Timestamp};

use crate::accounts::account_from;
use crate::{Account, PendingLink, Store, StoreError, Unlinked};

impl Store {
    /// Accounts whose own email equals `email`, ignoring ASCII case.
    pub async fn accounts_with_email(&self, email: &str) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, display_name, email, email_verified, disabled, created_at FROM accounts \
             WHERE lower(email) = lower($1) ORDER BY created_at, id",
        )
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account_from).collect()
    }

    /// Keeps an identity until its link is confirmed or refused.
    pub async fn insert_pending_link(&self, p: &PendingLink) -> Result<(), StoreError> {
        let json = serde_json::to_string(&p.identity).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO pending_links (token_hash, identity_json, may_create, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&p.token_hash)
        .bind(json)
        .bind(i64::from(p.may_create))
        .bind(p.expires_at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reads a pending link without using it up (to show the page asking for proof).
    pub async fn get_pending_link(&self, token_hash: &str) -> Result<Option<PendingLink>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, identity_json, may_create, expires_at FROM pending_links WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pending_link_from).transpose()
    }

    /// Removes and returns a pending link in one statement: single use even under concurrent requests.
    pub async fn take_pending_link(&self, token_hash: &str) -> Result<Option<PendingLink>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM pending_links WHERE token_hash = $1 RETURNING token_hash, identity_json, may_create, expires_at",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pending_link_from).transpose()
    }

    /// Deletes pending links that expired before `now`.
    pub async fn purge_pending_links(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM pending_links WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }

    /// Removes one identity from an account unless it is the account's last. The account row is locked first
    /// (an UPDATE), so two concurrent unlinks cannot each see "two left" and remove both. Removing the local
    /// identity (whose subject is the account id) also removes the password and the groups an operator assigned.
    pub async fn unlink_identity(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<Unlinked, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE accounts SET disabled = disabled WHERE id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM identities WHERE account_id = $1")
            .bind(account.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let exists =
            sqlx::query("SELECT 1 AS one FROM identities WHERE account_id = $1 AND source = $2 AND subject = $3")
                .bind(account.as_str())
                .bind(source.as_str())
                .bind(subject.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        if !exists {
            return Ok(Unlinked::NotFound);
        }
        if count <= 1 {
            return Ok(Unlinked::LastIdentity);
        }
        sqlx::query("DELETE FROM identities WHERE account_id = $1 AND source = $2 AND subject = $3")
            .bind(account.as_str())
            .bind(source.as_str())
            .bind(subject.as_str())
            .execute(&mut *tx)
            .await?;
        if subject.as_str() == account.as_str() {
            // Groups an operator assigned belong to the local account: without a password they would outlive the
            // reason they were given, and the remaining sources' own groups are what the account has.
            for table in ["local_credentials", "account_groups"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                    .bind(account.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // What the removed identity opened ends with it, in the same transaction: a way in that is gone must not
        // live on in a session, a remember-me series or a token.
        let ended = delete_grants(&mut tx, account, source, subject).await?;
        tx.commit().await?;
        Ok(Unlinked::Done { ended })
    }
}

impl Store {
    /// Ends everything an identity opened on an account — sessions, remember-me series, access tokens — in one
    /// transaction (its source no longer admits it). Returns the hashes of the ended sessions and tokens.
    pub async fn end_identity_grants(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ended = delete_grants(&mut tx, account, source, subject).await?;
        tx.commit().await?;
        Ok(ended)
    }
}

/// Deletes every session and remember-me series of an account inside `tx`, and on PostgreSQL announces the ended
/// sessions in the same transaction (`pg_notify` is delivered at commit, and not at all on rollback). Returns the
/// ended sessions' hashes.
pub(crate) async fn end_sessions_and_series(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    account: &AccountId,
    backend: crate::Backend,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("DELETE FROM sessions WHERE account_id = $1 RETURNING id_hash")
        .bind(account.as_str())
        .fetch_all(&mut **tx)
        .await?;
    let ended = rows
        .iter()
        .map(|r| r.try_get::<String, _>("id_hash").map_err(StoreError::from))
        .collect::<Result<Vec<_>, _>>()?;
    sqlx::query("DELETE FROM remember_series WHERE account_id = $1")
        .bind(account.as_str())
        .execute(&mut **tx)
        .await?;
    if backend == crate::Backend::Postgres {
        for hash in &ended {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(crate::REVOCATION_CHANNEL)
                .bind(hash)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(ended)
}

impl Store {
    /// Ends every session and remember-me series of an account in one transaction (a stolen remember-me cookie
    /// was used); returns the ended sessions' hashes.
    pub async fn end_sessions_and_series_of(&self, account: &AccountId) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ended = end_sessions_and_series(&mut tx, account, self.backend()).await?;
        tx.commit().await?;
        Ok(ended)
    }
}

/// Deletes the sessions, series and tokens an identity opened. Sessions and series from before the subject was
/// recorded count as opened by any identity of their source; such tokens are left alone (they name no source).
async fn delete_grants(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    account: &AccountId,
    source: &SourceId,
    subject: &Subject,
) -> Result<Vec<String>, StoreError> {
    let mut ended = Vec::new();
    for sql in [
        "DELETE FROM sessions WHERE account_id = $1 AND source = $2 AND (subject = $3 OR subject IS NULL) \
         RETURNING id_hash AS h",
        "DELETE FROM access_tokens WHERE account_id = $1 AND source = $2 AND subject = $3 RETURNING token_hash AS h",
    ] {
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .bind(source.as_str())
            .bind(subject.as_str())
            .fetch_all(&mut **tx)
            .await?;
        for r in &rows {
            ended.push(r.try_get::<String, _>("h")?);
        }
    }
    sqlx::query(
        "DELETE FROM remember_series WHERE account_id = $1 AND source = $2 AND (subject = $3 OR subject IS NULL)",
    )
    .bind(account.as_str())
    .bind(source.as_str())
    .bind(subject.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(ended)
}

fn pending_link_from(row: &sqlx::any::AnyRow) -> Result<PendingLink, StoreError> {
    let json: String = row.try_get("identity_json")?;
    Ok(PendingLink {
        token_hash: row.try_get("token_hash")?,
        identity: serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        may_create: row.try_get::<i64, _>("may_create")? != 0,
        expires_at: Timestamp(row.try_get("expires_at")?),
    })
}
