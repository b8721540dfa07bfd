//! Mailed single-use tokens: password reset links and address confirmations.

use sqlx::Row;
use vestibule_core::storage::{EmailToken, EmailTokenPurpose};
use vestibule_core::{AccountId, Timestamp};

use crate::{Store, StoreError};

const COLUMNS: &str = "token_hash, purpose, account_id, email, created_at, expires_at";

fn email_token_from(row: &sqlx::any::AnyRow, purpose: EmailTokenPurpose) -> Result<EmailToken, StoreError> {
    Ok(EmailToken {
        token_hash: row.try_get("token_hash")?,
        purpose,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?)?,
        email: row.try_get("email")?,
        created_at: Timestamp(row.try_get("created_at")?),
        expires_at: Timestamp(row.try_get("expires_at")?),
    })
}

impl Store {
    /// Stores a new mailed token.
    pub async fn insert_email_token(&self, t: &EmailToken) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO email_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
        sqlx::query(&sql)
            .bind(&t.token_hash)
            .bind(t.purpose.as_str())
            .bind(t.account_id.as_str())
            .bind(&t.email)
            .bind(t.created_at.0)
            .bind(t.expires_at.0)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::conflict_on(e, "email token"))?;
        Ok(())
    }

    /// Removes and returns a token in one statement: of two requests racing with one link, one gets it.
    pub async fn take_email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> Result<Option<EmailToken>, StoreError> {
        let sql = format!("DELETE FROM email_tokens WHERE token_hash = $1 AND purpose = $2 RETURNING {COLUMNS}");
        self.one_email_token(&sql, token_hash, purpose).await
    }

    /// Reads a token without using it up.
    pub async fn get_email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> Result<Option<EmailToken>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM email_tokens WHERE token_hash = $1 AND purpose = $2");
        self.one_email_token(&sql, token_hash, purpose).await
    }

    /// Runs `sql` (a statement over `token_hash` = $1 and `purpose` = $2 that yields at most one row).
    async fn one_email_token(
        &self,
        sql: &str,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> Result<Option<EmailToken>, StoreError> {
        let row = sqlx::query(sql)
            .bind(token_hash)
            .bind(purpose.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| email_token_from(&r, purpose)).transpose()
    }

    /// Deletes every token of this purpose of an account.
    pub async fn delete_email_tokens_of(
        &self,
        account: &AccountId,
        purpose: EmailTokenPurpose,
    ) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM email_tokens WHERE account_id = $1 AND purpose = $2")
            .bind(account.as_str())
            .bind(purpose.as_str())
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }

    /// Marks the account's address verified if it is still `email`.
    pub async fn confirm_email(&self, account: &AccountId, email: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE accounts SET email_verified = 1 WHERE id = $1 AND lower(email) = lower($2)")
            .bind(account.as_str())
            .bind(email)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Every token of this purpose of an account, newest first.
    pub async fn email_tokens_of(
        &self,
        account: &AccountId,
        purpose: EmailTokenPurpose,
    ) -> Result<Vec<EmailToken>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM email_tokens WHERE account_id = $1 AND purpose = $2 \
             ORDER BY created_at DESC, token_hash"
        );
        let rows = sqlx::query(&sql)
            .bind(account.as_str())
            .bind(purpose.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| email_token_from(r, purpose)).collect()
    }

    /// Sets the account's address to `email`, verified, unless another account has it verified; deletes every
    /// mailed token of the account in the same transaction. `false` when refused or the account is gone.
    pub async fn change_email(&self, account: &AccountId, email: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One statement checks and writes, so an address confirmed by another account in between is not taken.
        let n = sqlx::query(
            "UPDATE accounts SET email = $1, email_verified = 1 WHERE id = $2 AND NOT EXISTS \
             (SELECT 1 FROM accounts other WHERE other.id <> $2 AND other.email_verified = 1 \
              AND lower(other.email) = lower($1))",
        )
        .bind(email)
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        // Reset and confirmation links went to the old address, and a change link to this or an older request.
        sqlx::query("DELETE FROM email_tokens WHERE account_id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes expired tokens.
    pub async fn purge_email_tokens(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM email_tokens WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }

    /// Deletes every personal access token of an account; returns their hashes.
    pub async fn delete_tokens_of(&self, account: &AccountId) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("DELETE FROM access_tokens WHERE account_id = $1 RETURNING token_hash")
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("token_hash").map_err(StoreError::from))
            .collect()
    }
}

/// Inside the transaction of a password change or of disabling an account: deletes the account's password reset
/// links and pending address changes. Both are ways into the account that need no session — a reset link sets
/// the password, a change link makes its mailbox the verified address that reset mail goes to — so neither may
/// outlive what ends a thief's hold on the account (a reset link mailed before the change must not undo it, and a
/// hijacked session's change request must not survive the owner's new password). A confirmation of the account's
/// current address opens no way in and stays.
pub(crate) async fn void_takeover_links(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    account: &AccountId,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM email_tokens WHERE account_id = $1 AND purpose IN ($2, $3)")
        .bind(account.as_str())
        .bind(EmailTokenPurpose::PasswordReset.as_str())
        .bind(EmailTokenPurpose::ChangeEmail.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
