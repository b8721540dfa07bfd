//! Operator administration: listing and searching accounts, deleting one with everything it holds, and the
//! groups an operator assigns (`account_groups`, which sign-ins never touch).

use sqlx::Row;
use vestibule_core::storage::{AccountDeletion, AccountQuery};
use vestibule_core::{AccountId, Timestamp};

use crate::accounts::account_from;
use crate::{Account, Store, StoreError};

/// `text` as a LIKE pattern matching it anywhere, literally: the pattern's own wildcards (`%`, `_`) and the escape
/// character are escaped with `\` (the queries say `ESCAPE '\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The tables holding an account's rows, children first, each with the column naming the account. Every table
/// of the migrations that refers to an account is here except `audit_log` (the record of what happened stays)
/// and `throttle_counters` (keyed by hashes; they expire on their own). `pending_links` holds an identity, not
/// an account.
const ACCOUNT_TABLES: [(&str, &str); 14] = [
    ("passkey_ceremonies", "account_id"),
    ("passkeys", "account_id"),
    ("pending_second_factor", "account_id"),
    ("recovery_codes", "account_id"),
    ("totp_factors", "account_id"),
    ("email_tokens", "account_id"),
    ("pending_redirects", "link_account"),
    ("access_tokens", "account_id"),
    ("remember_series", "account_id"),
    ("sessions", "account_id"),
    ("account_groups", "account_id"),
    ("local_credentials", "account_id"),
    ("identities", "account_id"),
    ("accounts", "id"),
];

impl Store {
    /// Accounts matching `q`, in account id order. Every value is bound; the search text is matched literally.
    pub async fn list_accounts(&self, q: &AccountQuery) -> Result<Vec<Account>, StoreError> {
        let mut sql = String::from(
            "SELECT a.id, a.display_name, a.email, a.email_verified, a.disabled, a.created_at FROM accounts a \
             WHERE 1 = 1",
        );
        let mut n = 0;
        if q.after.is_some() {
            n += 1;
            sql.push_str(&format!(" AND a.id > ${n}"));
        }
        if q.search.is_some() {
            n += 1;
            // lower() on both sides, so each engine compares with its own notion of case.
            let like = |column: &str| format!("lower({column}) LIKE lower(${n}) ESCAPE '\\'");
            sql.push_str(&format!(
                " AND ({} OR {} OR EXISTS (SELECT 1 FROM local_credentials c WHERE c.account_id = a.id AND {}) \
                 OR EXISTS (SELECT 1 FROM identities i WHERE i.account_id = a.id AND ({} OR {})))",
                like("a.display_name"),
                like("a.email"),
                like("c.username"),
                like("i.subject"),
                like("i.login"),
            ));
        }
        sql.push_str(&format!(" ORDER BY a.id LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql);
        if let Some(after) = &q.after {
            query = query.bind(after.as_str().to_owned());
        }
        if let Some(text) = &q.search {
            query = query.bind(contains_pattern(text));
        }
        let rows = query.bind(q.limit.clamp(0, 10_000)).fetch_all(&self.pool).await?;
        rows.iter().map(account_from).collect()
    }

    /// Deletes an account and every row that belongs to it, in one transaction; on PostgreSQL the ended sessions
    /// and tokens are announced in it (delivered at commit, and not at all on rollback). The audit log keeps its rows. `None` when there is no such
    /// account.
    pub async fn delete_account(&self, id: &AccountId) -> Result<Option<AccountDeletion>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Taken first, so that nothing of the account changes under the deletes that follow.
        let found = sqlx::query("UPDATE accounts SET disabled = 1 WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found == 0 {
            return Ok(None);
        }
        let mut deletion = AccountDeletion::default();
        for (table, column) in ACCOUNT_TABLES {
            let returning = match table {
                "sessions" => " RETURNING id_hash AS h",
                "access_tokens" => " RETURNING token_hash AS h",
                _ => "",
            };
            let sql = format!("DELETE FROM {table} WHERE {column} = $1{returning}");
            let count = if returning.is_empty() {
                sqlx::query(&sql)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            } else {
                let rows = sqlx::query(&sql).bind(id.as_str()).fetch_all(&mut *tx).await?;
                for r in &rows {
                    let hash: String = r.try_get("h")?;
                    if self.backend() == crate::Backend::Postgres {
                        sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(crate::REVOCATION_CHANNEL)
                            .bind(&hash)
                            .execute(&mut *tx)
                            .await?;
                    }
                    deletion.ended.push(hash);
                }
                rows.len() as u64
            };
            deletion.rows.push((table, count));
        }
        tx.commit().await?;
        Ok(Some(deletion))
    }

    /// The groups an operator assigned to the account, sorted.
    pub async fn assigned_groups_of(&self, id: &AccountId) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM account_groups WHERE account_id = $1 ORDER BY name")
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("name").map_err(StoreError::from))
            .collect()
    }

    /// Replaces the groups an operator assigned to the account, in one transaction; `false` when there is no such
    /// account.
    pub async fn set_assigned_groups(
        &self,
        id: &AccountId,
        groups: &[String],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Also the lock that orders two concurrent replacements: the later one wins whole, never a mix.
        let found = sqlx::query("UPDATE accounts SET disabled = disabled WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM account_groups WHERE account_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let mut unique: Vec<&String> = groups.iter().collect();
        unique.sort();
        unique.dedup();
        for name in unique {
            sqlx::query("INSERT INTO account_groups (account_id, name, created_at) VALUES ($1, $2, $3)")
                .bind(id.as_str())
                .bind(name.as_str())
                .bind(now.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern("ali"), "%ali%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
