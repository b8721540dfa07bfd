//! Local login names in canonical form ([`vestibule_core::canonical_login`]): `Alice`, `alice` and `ＡＬＩＣＥ`
//! are one name. SQL has no NFKC, so the form is computed here: on every write, and once for rows written before
//! the `username_canonical` column existed, right after migrating.

use std::collections::BTreeMap;
use std::fmt;

use sqlx::Row;
use vestibule_core::{canonical_login, LoginError};

use crate::StoreError;

/// Why existing local login names could not be canonicalised. Nothing was changed: the operator renames the
/// names (`local_credentials.username`) and starts again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoginNameProblems {
    /// Groups of names (as stored, sorted) that share one canonical form, which is the first item of each pair.
    pub collisions: Vec<(String, Vec<String>)>,
    /// Names that have no canonical form, with the reason.
    pub invalid: Vec<(String, LoginError)>,
}

impl fmt::Display for LoginNameProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names are printed with Rust's escaping, so invisible characters show as `\u{200b}`.
        let mut parts = Vec::new();
        if !self.collisions.is_empty() {
            let groups: Vec<String> = self
                .collisions
                .iter()
                .map(|(canonical, names)| {
                    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
                    format!("{} (all {canonical:?})", names.join(", "))
                })
                .collect();
            parts.push(format!(
                "local login names that are one name once case and Unicode width are ignored: {}",
                groups.join("; ")
            ));
        }
        if !self.invalid.is_empty() {
            let names: Vec<String> = self.invalid.iter().map(|(n, e)| format!("{n:?} ({e})")).collect();
            parts.push(format!("local login names that cannot be used: {}", names.join("; ")));
        }
        write!(
            f,
            "{}; rename them (local_credentials.username) so that each is unique and valid, then start again",
            parts.join("; ")
        )
    }
}

/// The canonical form to look a typed name up by, or `None` when it has none (no account can have that name).
pub(crate) fn lookup_key(typed: &str) -> Option<String> {
    canonical_login(typed).ok()
}

/// Fills `username_canonical` where it is missing (rows from before migration 0006, or written by an older node),
/// in one transaction, after checking every name: when two names collide or one has no canonical form, nothing
/// is written and the error names them all. Cheap when there is nothing to fill: one indexed count.
pub(crate) async fn fill_canonical_logins(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    let missing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM local_credentials WHERE username_canonical IS NULL")
        .fetch_one(&mut *conn)
        .await?;
    if missing == 0 {
        return Ok(());
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let rows = sqlx::query("SELECT account_id, username, username_canonical FROM local_credentials")
        .fetch_all(&mut *tx)
        .await?;
    let mut by_canonical: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = LoginNameProblems::default();
    let mut to_fill = Vec::new();
    for row in &rows {
        let account: String = row.try_get("account_id")?;
        let name: String = row.try_get("username")?;
        let stored: Option<String> = row.try_get("username_canonical")?;
        match canonical_login(&name) {
            Ok(canonical) => {
                if stored.is_none() {
                    to_fill.push((account, canonical.clone()));
                }
                by_canonical.entry(canonical).or_default().push(name);
            }
            Err(e) => problems.invalid.push((name, e)),
        }
    }
    problems.collisions = by_canonical
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(canonical, mut names)| {
            names.sort();
            (canonical, names)
        })
        .collect();
    problems.invalid.sort_by(|a, b| a.0.cmp(&b.0));
    if !problems.collisions.is_empty() || !problems.invalid.is_empty() {
        return Err(StoreError::LoginNames(problems));
    }
    for (account, canonical) in &to_fill {
        sqlx::query("UPDATE local_credentials SET username_canonical = $1 WHERE account_id = $2")
            .bind(canonical)
            .bind(account)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(count = to_fill.len(), "local login names stored in canonical form");
    Ok(())
}
