//! Second factors: TOTP authenticators (sealed secrets and the last accepted step), recovery codes (keyed hashes),
//! and the half-signed-in state between a primary proof and the second step.

use sqlx::Row;
use vestibule_core::{AccountId, SourceId, Subject, Timestamp};

use crate::{PendingSecondFactor, Store, StoreError, TotpFactor};

/// `amr` names are stored space-separated: they never contain spaces (RFC 8176 names are short tokens).
pub(crate) fn join_methods(methods: &[String]) -> String {
    methods.join(" ")
}

pub(crate) fn split_methods(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

const PENDING_COLUMNS: &str =
    "token_hash, account_id, source, subject, methods, next_path, remember, enrol, failures, expires_at";

fn pending_from(row: &sqlx::any::AnyRow) -> Result<PendingSecondFactor, StoreError> {
    Ok(PendingSecondFactor {
        token_hash: row.try_get("token_hash")?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?)?,
        source: SourceId::new(row.try_get::<String, _>("source")?)?,
        subject: Subject::new(row.try_get::<String, _>("subject")?)?,
        methods: split_methods(&row.try_get::<String, _>("methods")?),
        next_path: row.try_get("next_path")?,
        remember: row.try_get::<i64, _>("remember")? != 0,
        enrol: row.try_get::<i64, _>("enrol")? != 0,
        failures: u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
        expires_at: Timestamp(row.try_get("expires_at")?),
    })
}

impl Store {
    /// Stores an unconfirmed TOTP factor begun by `begun_by` (a hash of the session or half-signed-in state that
    /// started it), replacing an unconfirmed one; `false` when a confirmed one exists.
    pub async fn put_totp(
        &self,
        account: &AccountId,
        sealed_secret: &str,
        begun_by: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "INSERT INTO totp_factors (account_id, sealed_secret, confirmed_at, last_step, created_at, begun_by) \
             VALUES ($1, $2, NULL, 0, $3, $4) \
             ON CONFLICT (account_id) DO UPDATE SET sealed_secret = $5, last_step = 0, created_at = $6, begun_by = $7 \
             WHERE totp_factors.confirmed_at IS NULL",
        )
        .bind(account.as_str())
        .bind(sealed_secret)
        .bind(now.0)
        .bind(begun_by)
        .bind(sealed_secret)
        .bind(now.0)
        .bind(begun_by)
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    /// The account's TOTP factor, confirmed or not.
    pub async fn get_totp(&self, account: &AccountId) -> Result<Option<TotpFactor>, StoreError> {
        let row = sqlx::query(
            "SELECT account_id, sealed_secret, confirmed_at, last_step, created_at, begun_by FROM totp_factors \
             WHERE account_id = $1",
        )
        .bind(account.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(TotpFactor {
            account_id: AccountId::new(row.try_get::<String, _>("account_id")?)?,
            sealed_secret: row.try_get("sealed_secret")?,
            confirmed_at: row.try_get::<Option<i64>, _>("confirmed_at")?.map(Timestamp),
            last_step: row.try_get("last_step")?,
            created_at: Timestamp(row.try_get("created_at")?),
            begun_by: row.try_get("begun_by")?,
        }))
    }

    /// Moves `last_step` forward to `step` if it is later (and confirms the factor when `confirm`), in one
    /// statement: of two requests presenting the same code, one wins.
    pub async fn accept_totp_step(
        &self,
        account: &AccountId,
        step: i64,
        confirm: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = match confirm {
            Some(sealed_secret) => {
                sqlx::query(
                    "UPDATE totp_factors SET last_step = $1, confirmed_at = $2 \
                     WHERE account_id = $3 AND last_step < $4 AND confirmed_at IS NULL AND sealed_secret = $5",
                )
                .bind(step)
                .bind(now.0)
                .bind(account.as_str())
                .bind(step)
                .bind(sealed_secret)
                .execute(&self.pool)
                .await?
            }
            // A confirmed factor keeps its confirmation time.
            None => {
                sqlx::query(
                    "UPDATE totp_factors SET last_step = $1 \
                     WHERE account_id = $2 AND last_step < $3 AND confirmed_at IS NOT NULL",
                )
                .bind(step)
                .bind(account.as_str())
                .bind(step)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(n.rows_affected() > 0)
    }

    /// Removes the account's TOTP factor, passkeys and recovery codes in one transaction.
    pub async fn delete_second_factors(&self, account: &AccountId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let totp = sqlx::query("DELETE FROM totp_factors WHERE account_id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        let codes = sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        let passkeys = sqlx::query("DELETE FROM passkeys WHERE account_id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(totp.rows_affected() + codes.rows_affected() + passkeys.rows_affected() > 0)
    }

    /// Replaces the account's recovery codes, in one transaction.
    pub async fn replace_recovery_codes(
        &self,
        account: &AccountId,
        code_hashes: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        for hash in code_hashes {
            sqlx::query("INSERT INTO recovery_codes (account_id, code_hash, created_at) VALUES ($1, $2, $3)")
                .bind(account.as_str())
                .bind(hash)
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict_on(e, "recovery code"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Spends one recovery code in one statement.
    pub async fn use_recovery_code(
        &self,
        account: &AccountId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE account_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now.0)
        .bind(account.as_str())
        .bind(code_hash)
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    /// How many unused recovery codes the account has.
    pub async fn recovery_codes_left(&self, account: &AccountId) -> Result<u32, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL")
            .bind(account.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(u32::try_from(row.try_get::<i64, _>("n")?).unwrap_or(u32::MAX))
    }

    /// Stores a half-signed-in state.
    pub async fn insert_pending_second_factor(&self, p: &PendingSecondFactor) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO pending_second_factor ({PENDING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        sqlx::query(&sql)
            .bind(&p.token_hash)
            .bind(p.account_id.as_str())
            .bind(p.source.as_str())
            .bind(p.subject.as_str())
            .bind(join_methods(&p.methods))
            .bind(p.next_path.as_deref())
            .bind(i64::from(p.remember))
            .bind(i64::from(p.enrol))
            .bind(i64::from(p.failures))
            .bind(p.expires_at.0)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::conflict_on(e, "pending second factor"))?;
        Ok(())
    }

    /// Reads a half-signed-in state without using it up.
    pub async fn get_pending_second_factor(&self, token_hash: &str) -> Result<Option<PendingSecondFactor>, StoreError> {
        let sql = format!("SELECT {PENDING_COLUMNS} FROM pending_second_factor WHERE token_hash = $1");
        let row = sqlx::query(&sql).bind(token_hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(pending_from).transpose()
    }

    /// Counts one wrong code; returns the failures so far.
    pub async fn fail_pending_second_factor(&self, token_hash: &str) -> Result<Option<u32>, StoreError> {
        let row = sqlx::query(
            "UPDATE pending_second_factor SET failures = failures + 1 WHERE token_hash = $1 RETURNING failures",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(
            u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
        ))
    }

    /// Removes and returns a half-signed-in state in one statement.
    pub async fn take_pending_second_factor(
        &self,
        token_hash: &str,
    ) -> Result<Option<PendingSecondFactor>, StoreError> {
        let sql = format!("DELETE FROM pending_second_factor WHERE token_hash = $1 RETURNING {PENDING_COLUMNS}");
        let row = sqlx::query(&sql).bind(token_hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(pending_from).transpose()
    }

    /// Deletes half-signed-in states that expired before `now`.
    pub async fn purge_pending_second_factor(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM pending_second_factor WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }
}
