//! Passkeys (WebAuthn credentials) and the ceremonies under way.

use sqlx::Row;
use vestibule_core::{AccountId, Timestamp};

use crate::{PasskeyCeremony, PasskeyRecord, Store, StoreError};

const PASSKEY_COLUMNS: &str = "id, account_id, cred_id, user_handle, name, credential, created_at, last_used_at";
const CEREMONY_COLUMNS: &str = "id_hash, purpose, bound_to, account_id, state, expires_at";

fn passkey_from(row: &sqlx::any::AnyRow) -> Result<PasskeyRecord, StoreError> {
    Ok(PasskeyRecord {
        id: row.try_get("id")?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?)?,
        cred_id: row.try_get("cred_id")?,
        user_handle: row.try_get("user_handle")?,
        name: row.try_get("name")?,
        credential: row.try_get("credential")?,
        created_at: Timestamp(row.try_get("created_at")?),
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(Timestamp),
    })
}

fn ceremony_from(row: &sqlx::any::AnyRow) -> Result<PasskeyCeremony, StoreError> {
    Ok(PasskeyCeremony {
        id_hash: row.try_get("id_hash")?,
        purpose: row.try_get("purpose")?,
        bound_to: row.try_get("bound_to")?,
        account_id: row
            .try_get::<Option<String>, _>("account_id")?
            .map(AccountId::new)
            .transpose()?,
        state: row.try_get("state")?,
        expires_at: Timestamp(row.try_get("expires_at")?),
    })
}

/// Deletes the account's recovery codes when it has no second factor left: codes stand in for a factor, so they
/// go with the last one. Part of the caller's transaction.
async fn drop_codes_without_factor(tx: &mut sqlx::AnyConnection, account: &AccountId) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM recovery_codes WHERE account_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM passkeys WHERE account_id = $2) \
         AND NOT EXISTS (SELECT 1 FROM totp_factors WHERE account_id = $3 AND confirmed_at IS NOT NULL)",
    )
    .bind(account.as_str())
    .bind(account.as_str())
    .bind(account.as_str())
    .execute(tx)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a new passkey; a credential id already registered is a conflict.
    pub async fn insert_passkey(&self, p: &PasskeyRecord) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO passkeys ({PASSKEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        sqlx::query(&sql)
            .bind(&p.id)
            .bind(p.account_id.as_str())
            .bind(&p.cred_id)
            .bind(&p.user_handle)
            .bind(&p.name)
            .bind(&p.credential)
            .bind(p.created_at.0)
            .bind(p.last_used_at.map(|t| t.0))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::conflict_on(e, "passkey credential id"))?;
        Ok(())
    }

    /// Every passkey of an account, oldest first.
    pub async fn passkeys_of(&self, account: &AccountId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let sql = format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE account_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(&sql).bind(account.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(passkey_from).collect()
    }

    /// The passkey with this credential id.
    pub async fn passkey_by_cred_id(&self, cred_id: &str) -> Result<Option<PasskeyRecord>, StoreError> {
        let sql = format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE cred_id = $1");
        let row = sqlx::query(&sql).bind(cred_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(passkey_from).transpose()
    }

    /// Records a use (compare-and-set on the stored credential).
    pub async fn record_passkey_use(
        &self,
        account: &AccountId,
        id: &str,
        previous: &str,
        credential: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE passkeys SET credential = $1, last_used_at = $2 \
             WHERE account_id = $3 AND id = $4 AND credential = $5",
        )
        .bind(credential)
        .bind(now.0)
        .bind(account.as_str())
        .bind(id)
        .bind(previous)
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Removes one passkey of an account, and the recovery codes with the last factor, in one transaction.
    pub async fn delete_passkey(&self, account: &AccountId, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM passkeys WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        drop_codes_without_factor(&mut tx, account).await?;
        tx.commit().await?;
        Ok(n.rows_affected() > 0)
    }

    /// Removes the TOTP factor, and the recovery codes with the last factor, in one transaction.
    pub async fn delete_totp(&self, account: &AccountId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let totp = sqlx::query("DELETE FROM totp_factors WHERE account_id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        drop_codes_without_factor(&mut tx, account).await?;
        tx.commit().await?;
        Ok(totp.rows_affected() > 0)
    }

    /// Stores a ceremony under way.
    pub async fn insert_passkey_ceremony(&self, c: &PasskeyCeremony) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO passkey_ceremonies ({CEREMONY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
        sqlx::query(&sql)
            .bind(&c.id_hash)
            .bind(&c.purpose)
            .bind(&c.bound_to)
            .bind(c.account_id.as_ref().map(AccountId::as_str))
            .bind(&c.state)
            .bind(c.expires_at.0)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::conflict_on(e, "passkey ceremony"))?;
        Ok(())
    }

    /// Removes and returns a ceremony in one statement.
    pub async fn take_passkey_ceremony(&self, id_hash: &str) -> Result<Option<PasskeyCeremony>, StoreError> {
        let sql = format!("DELETE FROM passkey_ceremonies WHERE id_hash = $1 RETURNING {CEREMONY_COLUMNS}");
        let row = sqlx::query(&sql).bind(id_hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(ceremony_from).transpose()
    }

    /// Deletes ceremonies that expired before `now`.
    pub async fn purge_passkey_ceremonies(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }
}
