use async_trait::async_trait;
use sqlx::Row;
use vestibule_core::{
    AccountId, BoxError, CredentialRepository, ExposeSecret, ExternalIdentity, SourceId, StoredPassword, Subject,
    Timestamp,
};

use crate::{flag, random_id, Account, IdentityRecord, NewLocalAccount, Store, StoreError};

const ACCOUNT_COLUMNS: &str = "id, display_name, email, email_verified, disabled, created_at";
const IDENTITY_COLUMNS: &str =
    "source, subject, account_id, login, email, email_verified, groups_json, created_at, last_login_at";

pub(crate) fn account_from(row: &sqlx::any::AnyRow) -> Result<Account, StoreError> {
    Ok(Account {
        id: AccountId::new(row.try_get::<String, _>("id")?)?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn identity_from(row: &sqlx::any::AnyRow) -> Result<IdentityRecord, StoreError> {
    let groups: String = row.try_get("groups_json")?;
    Ok(IdentityRecord {
        source: SourceId::new(row.try_get::<String, _>("source")?)?,
        subject: Subject::new(row.try_get::<String, _>("subject")?)?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?)?,
        login: row.try_get("login")?,
        email: row.try_get("email")?,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        groups: serde_json::from_str(&groups).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: Timestamp(row.try_get("created_at")?),
        last_login_at: row.try_get::<Option<i64>, _>("last_login_at")?.map(Timestamp),
    })
}

fn groups_json(groups: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(groups).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    /// Creates a local account with its password and its local identity, in one transaction.
    /// A taken username (`alice` when `Alice` exists: names are compared in canonical form) is
    /// [`StoreError::Conflict`]; a name with no canonical form is [`StoreError::InvalidLogin`].
    pub async fn create_local_account(&self, new: &NewLocalAccount, now: Timestamp) -> Result<AccountId, StoreError> {
        let canonical = vestibule_core::canonical_login(&new.username).map_err(StoreError::InvalidLogin)?;
        let id = AccountId::new(random_id())?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, display_name, email, email_verified, disabled, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(id.as_str())
        .bind(new.display_name.as_deref())
        .bind(new.email.as_deref())
        .bind(flag(new.email_verified))
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO local_credentials (account_id, username, username_canonical, password_hash, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_str())
        .bind(&new.username)
        .bind(&canonical)
        .bind(new.password_hash.expose_secret())
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on(e, "username"))?;
        sqlx::query(
            "INSERT INTO identities (source, subject, account_id, login, email, email_verified, groups_json, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, '[]', $7)",
        )
        .bind(new.source.as_str())
        .bind(id.as_str())
        .bind(id.as_str())
        .bind(&new.username)
        .bind(new.email.as_deref())
        .bind(flag(new.email_verified))
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Creates an account for an identity seen for the first time, linked to it, in one transaction. When the
    /// same identity was linked concurrently, the loser gets [`StoreError::Conflict`] and nothing is left behind.
    /// `email_verified` is the account's own flag, decided by the broker (whether the source may vouch for the
    /// address), not what the source asserted: that stays on the identity row.
    pub async fn create_account_for_identity(
        &self,
        identity: &ExternalIdentity,
        email_verified: bool,
        now: Timestamp,
    ) -> Result<AccountId, StoreError> {
        let id = AccountId::new(random_id())?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, display_name, email, email_verified, disabled, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(id.as_str())
        .bind(identity.display_name.as_deref().or(identity.login.as_deref()))
        .bind(identity.email.as_deref())
        .bind(flag(identity.email.is_some() && email_verified))
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        insert_identity(&mut tx, identity, &id, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Links an identity to an existing account. An identity already linked anywhere is [`StoreError::Conflict`]
    /// — never moved silently.
    pub async fn link_identity(
        &self,
        identity: &ExternalIdentity,
        account: &AccountId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_identity(&mut tx, identity, account, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The identity with this key, if linked.
    pub async fn find_identity(
        &self,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let sql = format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE source = $1 AND subject = $2");
        let row = sqlx::query(&sql)
            .bind(source.as_str())
            .bind(subject.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(identity_from).transpose()
    }

    /// Refreshes what the source said about an identity at a sign-in (login name, email, groups, time).
    pub async fn record_identity_login(&self, identity: &ExternalIdentity, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE identities SET login = $1, email = $2, email_verified = $3, groups_json = $4, last_login_at = $5 \
             WHERE source = $6 AND subject = $7",
        )
        .bind(identity.login.as_deref())
        .bind(identity.email.as_deref())
        .bind(flag(identity.email_verified))
        .bind(groups_json(&identity.groups)?)
        .bind(now.0)
        .bind(identity.source.as_str())
        .bind(identity.subject.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every identity of an account, oldest first.
    pub async fn identities_of(&self, account: &AccountId) -> Result<Vec<IdentityRecord>, StoreError> {
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS} FROM identities WHERE account_id = $1 ORDER BY created_at, source, subject"
        );
        let rows = sqlx::query(&sql).bind(account.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(identity_from).collect()
    }

    /// An account by id.
    pub async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(account_from).transpose()
    }

    /// Disables or re-enables an account. Disabling also deletes its sessions, remember-me series, access tokens,
    /// password reset links and pending address changes, in the same transaction.
    pub async fn set_account_disabled(&self, id: &AccountId, disabled: bool) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE accounts SET disabled = $1 WHERE id = $2")
            .bind(flag(disabled))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if disabled {
            // Every credential the account was handed goes with it: sessions, remember-me series, API tokens.
            for table in ["sessions", "remember_series", "access_tokens"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            // And the mailed links that open it without a session: enabling it again must not revive them.
            crate::email_tokens::void_takeover_links(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(done > 0)
    }

    /// Sets a local password hash (a password change or reset).
    pub async fn set_password_hash(&self, id: &AccountId, hash: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE local_credentials SET password_hash = $1, updated_at = $2 WHERE account_id = $3")
                .bind(hash)
                .bind(now.0)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(done > 0)
    }
}

async fn insert_identity(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    identity: &ExternalIdentity,
    account: &AccountId,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO identities \
         (source, subject, account_id, login, email, email_verified, groups_json, created_at, last_login_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(identity.source.as_str())
    .bind(identity.subject.as_str())
    .bind(account.as_str())
    .bind(identity.login.as_deref())
    .bind(identity.email.as_deref())
    .bind(flag(identity.email_verified))
    .bind(groups_json(&identity.groups)?)
    .bind(now.0)
    .bind(now.0)
    .execute(&mut **tx)
    .await
    .map_err(|e| StoreError::conflict_on(e, "identity"))?;
    Ok(())
}

impl Store {
    /// One password record, selected by `condition` on `c` (local_credentials) with `value` as `$1`.
    async fn password_where(&self, condition: &str, value: &str) -> Result<Option<StoredPassword>, BoxError> {
        let sql = format!(
            "SELECT c.account_id, c.username, c.password_hash, a.display_name, a.email, a.email_verified, a.disabled \
             FROM local_credentials c JOIN accounts a ON a.id = c.account_id WHERE {condition}"
        );
        let row = sqlx::query(&sql).bind(value).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(StoredPassword {
            account_id: AccountId::new(row.try_get::<String, _>("account_id")?)?,
            username: row.try_get("username")?,
            display_name: row.try_get("display_name")?,
            email: row.try_get("email")?,
            email_verified: row.try_get::<i64, _>("email_verified")? != 0,
            password_hash: row.try_get("password_hash")?,
            disabled: row.try_get::<i64, _>("disabled")? != 0,
        }))
    }
}

#[async_trait]
impl CredentialRepository for Store {
    async fn find_password(&self, username: &str) -> Result<Option<StoredPassword>, BoxError> {
        match crate::logins::lookup_key(username) {
            Some(canonical) => self.password_where("c.username_canonical = $1", &canonical).await,
            // No canonical form: no account can have this name.
            None => Ok(None),
        }
    }

    async fn find_password_of(&self, account: &AccountId) -> Result<Option<StoredPassword>, BoxError> {
        self.password_where("c.account_id = $1", account.as_str()).await
    }

    async fn replace_password_hash(
        &self,
        account: &AccountId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<bool, BoxError> {
        let done =
            sqlx::query("UPDATE local_credentials SET password_hash = $1 WHERE account_id = $2 AND password_hash = $3")
                .bind(new_hash)
                .bind(account.as_str())
                .bind(old_hash)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(done > 0)
    }

    async fn change_password_hash(
        &self,
        account: &AccountId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<bool, BoxError> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE local_credentials SET password_hash = $1 WHERE account_id = $2 AND password_hash = $3")
                .bind(new_hash)
                .bind(account.as_str())
                .bind(old_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if done == 0 {
            return Ok(false);
        }
        let ended = crate::linking::end_sessions_and_series(&mut tx, account, self.backend()).await?;
        crate::email_tokens::void_takeover_links(&mut tx, account).await?;
        tx.commit().await?;
        tracing::debug!(account = %account, sessions = ended.len(), "password changed; sessions and series ended");
        Ok(true)
    }
}
