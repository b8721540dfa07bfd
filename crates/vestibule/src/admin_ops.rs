//! What an operator does to accounts besides disabling them (`vestibule user list|delete|unlink|end-sessions|
//! groups`, and the admin API over the same methods): list and search, delete with everything the account holds,
//! remove one way in, end every session, and assign groups to local accounts. Every change is audited with a
//! `detail` naming who asked (`cli`, `api:<token id>`); the threat model is in the README.

use vestibule_core::storage::{AccountQuery, AuditEvent, AuditKind, Unlinked};
use vestibule_core::{AccountId, SourceId, Subject};

use crate::{AccountView, Broker, BrokerError};

/// Why an operator's change was refused. [`AdminError::code`] is a stable word for programs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No account has this id.
    #[error("no such account")]
    NoSuchAccount,
    /// The account has no identity with this `source:subject`.
    #[error("the account has no such identity")]
    NoSuchIdentity,
    /// It is the account's last way in: delete the account instead.
    #[error("it is the account's last way in")]
    LastIdentity,
    /// The account has no local password: its groups come from its sources.
    #[error("the account has no local password; its groups come from its sources")]
    NotLocal,
    /// A group name breaks the rule of [`valid_group_name`].
    #[error("invalid group name `{0}`: use 1 to 64 ASCII letters, digits, '.', '_' or '-'")]
    InvalidGroup(String),
    /// Something broke.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl AdminError {
    /// A stable code for the error (`no_such_account`, `no_such_identity`, `last_identity`, `not_local`,
    /// `invalid_group`, `internal`).
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NoSuchAccount => "no_such_account",
            AdminError::NoSuchIdentity => "no_such_identity",
            AdminError::LastIdentity => "last_identity",
            AdminError::NotLocal => "not_local",
            AdminError::InvalidGroup(_) => "invalid_group",
            AdminError::Broker(_) => "internal",
        }
    }
}

impl From<vestibule_core::storage::StorageError> for AdminError {
    fn from(e: vestibule_core::storage::StorageError) -> Self {
        AdminError::Broker(e.into())
    }
}

/// How to change the groups an operator assigns to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Exactly these (repeats ignored).
    Set(Vec<String>),
    /// These as well.
    Add(Vec<String>),
    /// Not these.
    Remove(Vec<String>),
    /// None.
    Clear,
}

/// The assigned groups before and after a change, each sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupsChanged {
    /// Before.
    pub before: Vec<String>,
    /// After.
    pub after: Vec<String>,
}

/// What ending an account's sessions ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndedGrants {
    /// Sessions ended (remember-me series end with them, uncounted).
    pub sessions: usize,
    /// Personal access tokens revoked.
    pub tokens: usize,
}

/// What deleting an account removed: rows per table, in the order deleted (tables with none included).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeletedAccount {
    /// `(table, rows)`.
    pub rows: Vec<(&'static str, u64)>,
}

impl DeletedAccount {
    /// `identities 2, sessions 1, ...`: the tables that had rows, for messages and the audit detail.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .rows
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        parts.join(", ")
    }
}

/// The rule for group names an operator assigns: 1 to 64 ASCII letters, digits, `.`, `_` or `-`. Short names,
/// as sources report them (`admins`, not a DN), that survive the comma-separated `X-Vestibule-Groups` header
/// and a shell unquoted.
pub fn valid_group_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Broker {
    /// Accounts matching `q` (a search over display name, email, local login name and identity subject or
    /// login, case ignored, wildcards taken literally), in account id order: page with `after` set to the last id
    /// of the page before. Each with its identities and assigned groups. Reads only: nothing is audited.
    pub async fn list_accounts(&self, q: &AccountQuery) -> Result<Vec<AccountView>, BrokerError> {
        let accounts = self.store.list_accounts(q).await?;
        let mut views = Vec::with_capacity(accounts.len());
        for a in accounts {
            let identities = self.store.identities_of(&a.id).await?;
            let assigned = self.store.assigned_groups_of(&a.id).await?;
            views.push(crate::views::account_view(a, identities, assigned));
        }
        Ok(views)
    }

    /// Deletes an account with its identities, local password, sessions, remember-me series, tokens, second
    /// factors, mailed links, pending sign-ins and assigned groups, in one transaction; the ended sessions and
    /// tokens stop working on every node at once. Its audit rows stay (they are the record), and
    /// `account_deleted` is added with `detail` (who asked) and what went.
    pub async fn delete_account(&self, id: &AccountId, detail: &str) -> Result<DeletedAccount, AdminError> {
        let deletion = self.store.delete_account(id).await?.ok_or(AdminError::NoSuchAccount)?;
        for hash in &deletion.ended {
            self.evict(hash);
        }
        let deleted = DeletedAccount { rows: deletion.rows };
        let detail = format!("{detail}; {}", deleted.summary());
        self.audit(&AuditEvent {
            account_id: Some(id.as_str()),
            detail: Some(&detail),
            ..AuditEvent::of(AuditKind::AccountDeleted)
        })
        .await;
        self.changed(crate::hooks::Change::AccountDeleted(id)).await;
        Ok(deleted)
    }

    /// Removes one way in (`source:subject`) from an account on an operator's order, with the sessions,
    /// remember-me series and tokens it opened (ended on every node); never the last one
    /// ([`AdminError::LastIdentity`]: delete the account instead). Removing the local identity removes the
    /// password and the assigned groups too. Audited as `identity_unlinked` with `detail`; the account's verified
    /// address gets a notice, as when its owner unlinks. Returns how many sessions and tokens ended.
    pub async fn unlink_identity_by_operator(
        &self,
        id: &AccountId,
        source: &str,
        subject: &str,
        detail: &str,
    ) -> Result<usize, AdminError> {
        if self.store.get_account(id).await?.is_none() {
            return Err(AdminError::NoSuchAccount);
        }
        let (Ok(source), Ok(subject)) = (SourceId::new(source), Subject::new(subject)) else {
            return Err(AdminError::NoSuchIdentity);
        };
        match self.store.unlink_identity(id, &source, &subject).await? {
            Unlinked::Done { ended } => {
                self.forget(&ended).await;
                self.audit(&AuditEvent {
                    account_id: Some(id.as_str()),
                    source: Some(source.as_str()),
                    subject: Some(subject.as_str()),
                    detail: Some(detail),
                    ..AuditEvent::of(AuditKind::IdentityUnlinked)
                })
                .await;
                self.changed(crate::hooks::Change::IdentityUnlinked(id, &source, &subject))
                    .await;
                let name = self.source_name(&source);
                self.notify(id, crate::Message::IdentityUnlinked { source: name }).await;
                Ok(ended.len())
            }
            Unlinked::NotFound => Err(AdminError::NoSuchIdentity),
            Unlinked::LastIdentity => Err(AdminError::LastIdentity),
        }
    }

    /// Ends every session and remember-me series of an account, and with `tokens` every personal access token,
    /// on every node at once (a lost laptop, a suspected theft); a pending address change is cancelled with them.
    /// The account stays usable: its owner signs in again. Audited as `sessions_revoked` with `detail` and what ended.
    pub async fn end_sessions_by_operator(
        &self,
        id: &AccountId,
        tokens: bool,
        detail: &str,
    ) -> Result<EndedGrants, AdminError> {
        if self.store.get_account(id).await?.is_none() {
            return Err(AdminError::NoSuchAccount);
        }
        // Announced to the other nodes by the store, in its transaction.
        let sessions = self.store.end_sessions_and_series_of(id).await?;
        for hash in &sessions {
            self.evict(hash);
        }
        self.cancel_email_change(id).await?;
        let revoked = if tokens {
            self.store.delete_tokens_of(id).await?
        } else {
            Vec::new()
        };
        self.forget(&revoked).await;
        let ended = EndedGrants {
            sessions: sessions.len(),
            tokens: revoked.len(),
        };
        let what = if tokens {
            format!("{detail}; all sessions and {} token(s)", ended.tokens)
        } else {
            format!("{detail}; all sessions")
        };
        self.audit(&AuditEvent {
            account_id: Some(id.as_str()),
            detail: Some(&what),
            ..AuditEvent::of(AuditKind::SessionsRevoked)
        })
        .await;
        Ok(ended)
    }

    /// Changes the groups an operator assigns to an account that has a local password ([`AdminError::NotLocal`]
    /// otherwise: a source's groups are the source's to say). They are merged with the identities' groups
    /// everywhere groups count (`/me`, `/verify`, tokens, the second-factor policy) and no sign-in overwrites
    /// them. Names must pass [`valid_group_name`]. Cached sessions and tokens of the account are dropped on every
    /// node so the next request sees the new groups. Audited as `groups_changed` with `detail` and the groups
    /// before and after (also when nothing changed: the operator asked).
    pub async fn change_assigned_groups(
        &self,
        id: &AccountId,
        change: &GroupChange,
        detail: &str,
    ) -> Result<GroupsChanged, AdminError> {
        let account = self.account_view(id).await?.ok_or(AdminError::NoSuchAccount)?;
        if !account.has_password() {
            return Err(AdminError::NotLocal);
        }
        let named = match change {
            GroupChange::Set(g) | GroupChange::Add(g) | GroupChange::Remove(g) => g.as_slice(),
            GroupChange::Clear => &[],
        };
        if let Some(bad) = named.iter().find(|g| !valid_group_name(g)) {
            return Err(AdminError::InvalidGroup(bad.clone()));
        }
        let before = account.assigned_groups;
        let mut after: Vec<String> = match change {
            GroupChange::Set(g) => g.clone(),
            GroupChange::Add(g) => before.iter().chain(g).cloned().collect(),
            GroupChange::Remove(g) => before.iter().filter(|b| !g.contains(b)).cloned().collect(),
            GroupChange::Clear => Vec::new(),
        };
        after.sort();
        after.dedup();
        if !self.store.set_assigned_groups(id, &after, self.now()).await? {
            return Err(AdminError::NoSuchAccount);
        }
        // Sessions and tokens carry their groups in every node's cache: dropped there, they are read again with
        // the new ones at their next use (they stay valid).
        self.reload_cached(id, true).await?;
        let text = format!("{detail}; before [{}]; after [{}]", before.join(","), after.join(","));
        self.audit(&AuditEvent {
            account_id: Some(id.as_str()),
            detail: Some(&text),
            ..AuditEvent::of(AuditKind::GroupsChanged)
        })
        .await;
        Ok(GroupsChanged { before, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_short_names() {
        for ok in ["admins", "team-a", "ops_2", "v1.2", &"x".repeat(64)] {
            assert!(valid_group_name(ok), "{ok:?} refused");
        }
        for bad in ["", "a,b", "a b", "cn=admins,dc=x", "é", "a\n", &"x".repeat(65)] {
            assert!(!valid_group_name(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_deletion_summary_names_the_tables_that_had_rows() {
        let d = DeletedAccount {
            rows: vec![("sessions", 2), ("passkeys", 0), ("accounts", 1)],
        };
        assert_eq!(d.summary(), "sessions 2, accounts 1");
    }
}
