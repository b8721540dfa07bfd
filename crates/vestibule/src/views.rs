//! What the broker shows of its data: its own view types, so that front ends (vestibule-axum, the CLI, an
//! embedding app) never handle store rows, and the store can change behind the broker without breaking them.
//! None of them holds a secret: session ids appear only as their SHA-256, tokens without their hash.

use vestibule_core::storage::{AccessToken, Account, IdentityRecord, SessionRecord};
use vestibule_core::{AccountId, SourceId, Subject, Timestamp};

use crate::{ActiveSession, Broker, BrokerError};

/// An account and its ways in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountView {
    /// The account id.
    pub id: AccountId,
    /// A human name.
    pub display_name: Option<String>,
    /// The account's email.
    pub email: Option<String>,
    /// Whether that email is known to be the person's.
    pub email_verified: bool,
    /// Disabled accounts cannot sign in.
    pub disabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its ways in, oldest first.
    pub identities: Vec<IdentityView>,
    /// Groups an operator assigned (`vestibule user groups`; local accounts only), sorted: sign-ins keep them.
    pub assigned_groups: Vec<String>,
}

impl AccountView {
    /// Whether the account has a local password (its local identity's subject is the account id itself).
    pub fn has_password(&self) -> bool {
        self.identities.iter().any(|i| i.subject.as_str() == self.id.as_str())
    }

    /// The account's short group names — those of all its identities and those an operator assigned — sorted,
    /// without repeats: what `/me`, `/verify`, tokens and the second-factor policy see.
    pub fn groups(&self) -> Vec<String> {
        merge_groups(
            self.identities.iter().flat_map(|i| i.groups.iter().cloned()),
            &self.assigned_groups,
        )
    }
}

/// One way into an account: an identity at a source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityView {
    /// The source.
    pub source: SourceId,
    /// The stable id the source asserts.
    pub subject: Subject,
    /// The login name last used, for display.
    pub login: Option<String>,
    /// The email the source last asserted.
    pub email: Option<String>,
    /// Short group names, as of the last sign-in.
    pub groups: Vec<String>,
    /// When it was linked.
    pub created_at: Timestamp,
    /// The last sign-in through it.
    pub last_login_at: Option<Timestamp>,
}

/// One session of an account, as its owner sees it on the account page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionView {
    /// Hex SHA-256 of the session id: what revoking one session takes.
    pub id: String,
    /// The source that signed it in.
    pub source: SourceId,
    /// The client address at sign-in.
    pub ip: Option<String>,
    /// The browser at sign-in.
    pub user_agent: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its last request (to the minute).
    pub last_seen_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
}

impl SessionView {
    /// The first 16 hex digits of [`SessionView::id`]: enough to tell an account's sessions apart in what an
    /// operator reads, never enough to revoke or present one.
    pub fn id_prefix(&self) -> &str {
        self.id.get(..16).unwrap_or(&self.id)
    }
}

/// One personal access token, without its value or hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenView {
    /// Public id, for revoking.
    pub id: String,
    /// The owner's name for it.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Its last use (to the minute).
    pub last_used_at: Option<Timestamp>,
}

impl From<IdentityRecord> for IdentityView {
    fn from(i: IdentityRecord) -> Self {
        IdentityView {
            source: i.source,
            subject: i.subject,
            login: i.login,
            email: i.email,
            groups: i.groups,
            created_at: i.created_at,
            last_login_at: i.last_login_at,
        }
    }
}

/// Group names from identities and an operator's assignment, sorted, without repeats.
pub(crate) fn merge_groups(from_identities: impl Iterator<Item = String>, assigned: &[String]) -> Vec<String> {
    let mut groups: Vec<String> = from_identities.chain(assigned.iter().cloned()).collect();
    groups.sort();
    groups.dedup();
    groups
}

pub(crate) fn account_view(a: Account, identities: Vec<IdentityRecord>, assigned_groups: Vec<String>) -> AccountView {
    AccountView {
        assigned_groups,
        id: a.id,
        display_name: a.display_name,
        email: a.email,
        email_verified: a.email_verified,
        disabled: a.disabled,
        created_at: a.created_at,
        identities: identities.into_iter().map(IdentityView::from).collect(),
    }
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> Self {
        SessionView {
            id: s.id_hash,
            source: s.source,
            ip: s.ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
        }
    }
}

impl From<AccessToken> for TokenView {
    fn from(t: AccessToken) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            scopes: crate::access_tokens::split_scopes(&t.scopes),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

impl Broker {
    /// The account and its identities, for `/me` and `/account`.
    pub async fn account_view(&self, id: &AccountId) -> Result<Option<AccountView>, BrokerError> {
        let Some(account) = self.store.get_account(id).await? else {
            return Ok(None);
        };
        let identities = self.store.identities_of(id).await?;
        let assigned = self.store.assigned_groups_of(id).await?;
        Ok(Some(account_view(account, identities, assigned)))
    }

    /// The sessions of the signed-in account, newest first.
    pub async fn sessions(&self, session: &ActiveSession) -> Result<Vec<SessionView>, BrokerError> {
        let rows = self.store.sessions_of(&session.account_id).await?;
        Ok(rows.into_iter().map(SessionView::from).collect())
    }

    /// The signed-in account's tokens (without their values).
    pub async fn tokens(&self, session: &ActiveSession) -> Result<Vec<TokenView>, BrokerError> {
        let rows = self.store.tokens_of(&session.account_id).await?;
        Ok(rows.into_iter().map(TokenView::from).collect())
    }

    /// Whether the store answers (for health checks).
    pub async fn ping(&self) -> Result<(), BrokerError> {
        Ok(self.store.ping().await?)
    }

    /// Audit events matching `q`, newest first (the operator's `vestibule audit`).
    pub async fn audit_log(
        &self,
        q: &vestibule_core::storage::AuditQuery,
    ) -> Result<Vec<vestibule_core::storage::AuditRecord>, BrokerError> {
        Ok(self.store.query_audit(q).await?)
    }

    /// How many sessions are live now (in the store: every node's), for metrics.
    pub async fn active_sessions(&self) -> Result<u64, BrokerError> {
        let now = self.now();
        Ok(self
            .store
            .count_sessions(now, now.plus_secs(-self.settings.idle_timeout_secs))
            .await?)
    }

    /// Closes the store's connections (at shutdown, or at the end of a CLI command).
    pub async fn close(&self) {
        self.store.close().await;
    }
}
