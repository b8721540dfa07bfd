//! What the broker needs from its database, as a trait: [`BrokerStore`], the records it reads and writes, and a
//! [`StorageError`] that says only what the broker and its front ends act on (a conflict, a timeout). The sqlx
//! store (`vestibule-store`) implements it; the broker holds an `Arc<dyn BrokerStore>` and never sees SQL, so the
//! crates above the broker do not depend on the store.
//!
//! Every method is one step the broker takes, and the store makes each step atomic on its own (a transaction
//! where it touches several tables). Hashes are lowercase hex SHA-256 of the values a client holds; the values
//! themselves are never stored.

mod admin;
mod audit;
mod passkeys;
mod records;
mod throttle;

use async_trait::async_trait;

pub use admin::{AccountDeletion, AccountQuery};
pub use audit::{AuditEvent, AuditKind, AuditQuery, AuditRecord};
pub use passkeys::{PasskeyCeremony, PasskeyRecord};
pub use records::{
    AccessToken, Account, EmailToken, EmailTokenPurpose, IdentityRecord, NewLocalAccount, PendingLink, PendingRecord,
    PendingSecondFactor, RememberSeries, SessionRecord, TotpFactor, Unlinked,
};
pub use throttle::{CounterKey, CounterKind, CounterRecord, CounterValues, FailureStep, ThrottleCounters};

use crate::{AccountId, BoxError, ExternalIdentity, LoginError, SourceId, Subject, Timestamp};

/// A storage operation failed. Messages may name tables and constraints: they are for logs, never for responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A uniqueness rule was broken (a taken username, an identity already linked); the argument names the rule.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A login name has no canonical form (empty, control or invisible characters...).
    #[error("invalid login name")]
    InvalidLogin(#[source] LoginError),
    /// The database did not answer in time (a statement, a lock or a free connection): worth a "busy, retry"
    /// answer rather than a failure.
    #[error("database timeout")]
    Timeout(#[source] BoxError),
    /// Anything else: the database failed, or a row could not be read back.
    #[error(transparent)]
    Other(BoxError),
}

/// Receives the hashes of sessions revoked by any node (see [`BrokerStore::revocation_listener`]).
#[async_trait]
pub trait RevocationListener: Send {
    /// The next revoked session hash. An error means the connection broke: ask the store for a new listener.
    async fn recv(&mut self) -> Result<String, StorageError>;
}

/// The broker's persistence: accounts and their identities, sessions, remember-me series, access tokens, pending
/// sign-ins and links, the audit log and server keys. Held as `Arc<dyn BrokerStore>`.
#[async_trait]
pub trait BrokerStore: Send + Sync {
    // Accounts and identities.

    /// Creates a local account with its password and its local identity `(source, account id)`, in one
    /// transaction. A taken username (compared in canonical form) is [`StorageError::Conflict`]; a name with no
    /// canonical form is [`StorageError::InvalidLogin`].
    async fn create_local_account(&self, new: &NewLocalAccount, now: Timestamp) -> Result<AccountId, StorageError>;

    /// Creates an account for an identity seen for the first time, linked to it, in one transaction. When the same
    /// identity was linked concurrently, the loser gets [`StorageError::Conflict`] and nothing is left behind.
    /// `email_verified` is the account's own flag, decided by the broker; what the source asserted stays on the
    /// identity.
    async fn create_account_for_identity(
        &self,
        identity: &ExternalIdentity,
        email_verified: bool,
        now: Timestamp,
    ) -> Result<AccountId, StorageError>;

    /// Links an identity to an existing account. An identity already linked anywhere is
    /// [`StorageError::Conflict`]: never moved silently.
    async fn link_identity(
        &self,
        identity: &ExternalIdentity,
        account: &AccountId,
        now: Timestamp,
    ) -> Result<(), StorageError>;

    /// The identity with this key, if linked.
    async fn find_identity(&self, source: &SourceId, subject: &Subject)
        -> Result<Option<IdentityRecord>, StorageError>;

    /// Refreshes what the source said about an identity at a sign-in (login name, email, groups, time).
    async fn record_identity_login(&self, identity: &ExternalIdentity, now: Timestamp) -> Result<(), StorageError>;

    /// Every identity of an account, oldest first.
    async fn identities_of(&self, account: &AccountId) -> Result<Vec<IdentityRecord>, StorageError>;

    /// An account by id.
    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, StorageError>;

    /// Accounts whose own email equals `email`, ignoring ASCII case, oldest first.
    async fn accounts_with_email(&self, email: &str) -> Result<Vec<Account>, StorageError>;

    /// The account whose local password has this login name: the very lookup password sign-in makes.
    async fn account_with_login(&self, login: &str) -> Result<Option<AccountId>, StorageError>;

    /// Disables or re-enables an account; `false` when there is no such account. Disabling also deletes its
    /// sessions, remember-me series, access tokens, password reset links and pending address changes, in the
    /// same transaction.
    async fn set_account_disabled(&self, id: &AccountId, disabled: bool) -> Result<bool, StorageError>;

    /// Removes one identity from an account unless it is the account's last, with the sessions, series and tokens
    /// it opened, in one transaction; two concurrent unlinks cannot both remove "one of two". Removing the local
    /// identity also removes the password and the groups an operator assigned.
    async fn unlink_identity(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<Unlinked, StorageError>;

    /// Ends everything an identity opened on an account (sessions, remember-me series, access tokens) in one
    /// transaction; returns the hashes of the ended sessions and tokens.
    async fn end_identity_grants(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<Vec<String>, StorageError>;

    /// Ends every session and remember-me series of an account in one transaction, announcing the ended sessions
    /// to other nodes; returns their hashes.
    async fn end_sessions_and_series_of(&self, account: &AccountId) -> Result<Vec<String>, StorageError>;

    // Operator administration.

    /// Accounts matching `q`, in account id order.
    async fn list_accounts(&self, q: &AccountQuery) -> Result<Vec<Account>, StorageError>;

    /// Deletes an account with everything that belongs to it — identities, local password, sessions, remember-me
    /// series, access tokens, second factors, mailed tokens, pending sign-ins and ceremonies, assigned groups — in
    /// one transaction, announcing the ended sessions and tokens to other nodes. The audit log keeps its rows. `None` when
    /// there is no such account.
    async fn delete_account(&self, id: &AccountId) -> Result<Option<AccountDeletion>, StorageError>;

    /// The groups an operator assigned to the account, sorted.
    async fn assigned_groups_of(&self, id: &AccountId) -> Result<Vec<String>, StorageError>;

    /// Replaces the groups an operator assigned to the account, in one transaction; `false` when there is no such
    /// account. Sign-ins never change them.
    async fn set_assigned_groups(
        &self,
        id: &AccountId,
        groups: &[String],
        now: Timestamp,
    ) -> Result<bool, StorageError>;

    // Sessions.

    /// Stores a new session; a hash already taken is [`StorageError::Conflict`].
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StorageError>;

    /// A session by the hash of its id.
    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StorageError>;

    /// Records activity; only moves `last_seen_at` forward.
    async fn touch_session(&self, id_hash: &str, seen: Timestamp) -> Result<(), StorageError>;

    /// Marks a session as not fresh (its client changed under `basic` protection).
    async fn mark_session_stale(&self, id_hash: &str) -> Result<(), StorageError>;

    /// Records that the source confirmed the identity behind a session or an access token (by its hash) at `at`.
    async fn record_recheck(&self, hash: &str, at: Timestamp) -> Result<(), StorageError>;

    /// Deletes one session; `true` when it existed.
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StorageError>;

    /// Deletes one session of an account (never another account's); `true` when it existed.
    async fn delete_session_of(&self, account: &AccountId, id_hash: &str) -> Result<bool, StorageError>;

    /// Every session of an account, newest first.
    async fn sessions_of(&self, account: &AccountId) -> Result<Vec<SessionRecord>, StorageError>;

    /// Deletes every session of an account except `keep`; returns the deleted hashes.
    async fn delete_sessions_of(&self, account: &AccountId, keep: Option<&str>) -> Result<Vec<String>, StorageError>;

    /// Deletes sessions past their absolute expiry or idle since before `idle_cutoff`; returns how many.
    async fn purge_sessions(&self, now: Timestamp, idle_cutoff: Timestamp) -> Result<u64, StorageError>;

    /// How many sessions are live: not past their absolute expiry and seen since `idle_cutoff` (for metrics).
    async fn count_sessions(&self, now: Timestamp, idle_cutoff: Timestamp) -> Result<u64, StorageError>;

    /// Announces revoked sessions to every node sharing the database (nothing to do for a single node).
    async fn publish_revoked(&self, hashes: &[String]) -> Result<(), StorageError>;

    /// A listener for revocations announced by any node, or `None` when the store serves a single node.
    async fn revocation_listener(&self) -> Result<Option<Box<dyn RevocationListener>>, StorageError>;

    // Remember-me series.

    /// Stores a new series.
    async fn insert_remember(&self, s: &RememberSeries) -> Result<(), StorageError>;

    /// A series by the hash of its id.
    async fn get_remember(&self, series_hash: &str) -> Result<Option<RememberSeries>, StorageError>;

    /// Rotates the token if it is still `old_token_hash` (compare-and-swap: of two racing requests one rotates).
    async fn rotate_remember(
        &self,
        series_hash: &str,
        old_token_hash: &str,
        new_token_hash: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError>;

    /// Deletes one series; `true` when it existed.
    async fn delete_remember(&self, series_hash: &str) -> Result<bool, StorageError>;

    /// Deletes every series of an account except `keep`; returns how many.
    async fn delete_remember_of(&self, account: &AccountId, keep: Option<&str>) -> Result<u64, StorageError>;

    /// Deletes series past their expiry; returns how many.
    async fn purge_remember(&self, now: Timestamp) -> Result<u64, StorageError>;

    // Personal access tokens.

    /// Stores a new token.
    async fn insert_token(&self, t: &AccessToken) -> Result<(), StorageError>;

    /// A token by the hash of its value.
    async fn find_token(&self, token_hash: &str) -> Result<Option<AccessToken>, StorageError>;

    /// Every token of an account, newest first.
    async fn tokens_of(&self, account: &AccountId) -> Result<Vec<AccessToken>, StorageError>;

    /// Deletes one token of an account (never another account's); returns its hash when it existed.
    async fn delete_token(&self, account: &AccountId, id: &str) -> Result<Option<String>, StorageError>;

    /// Records a use (only moves forward).
    async fn touch_token(&self, token_hash: &str, at: Timestamp) -> Result<(), StorageError>;

    /// Deletes expired tokens; returns how many.
    async fn purge_tokens(&self, now: Timestamp) -> Result<u64, StorageError>;

    // Redirect sign-ins and pending links.

    /// Stores a pending redirect flow; a `state` already taken is [`StorageError::Conflict`].
    async fn insert_pending(&self, p: &PendingRecord) -> Result<(), StorageError>;

    /// Removes and returns a pending flow at once, so two callbacks racing with the same `state` cannot both get
    /// it. Expiry is the caller's to check.
    async fn take_pending(&self, state_hash: &str) -> Result<Option<PendingRecord>, StorageError>;

    /// Deletes flows that expired before `now`; returns how many.
    async fn purge_pending(&self, now: Timestamp) -> Result<u64, StorageError>;

    /// Keeps an identity until its link is confirmed or refused.
    async fn insert_pending_link(&self, p: &PendingLink) -> Result<(), StorageError>;

    /// Reads a pending link without using it up.
    async fn get_pending_link(&self, token_hash: &str) -> Result<Option<PendingLink>, StorageError>;

    /// Removes and returns a pending link at once: single use even under concurrent requests.
    async fn take_pending_link(&self, token_hash: &str) -> Result<Option<PendingLink>, StorageError>;

    /// Deletes pending links that expired before `now`; returns how many.
    async fn purge_pending_links(&self, now: Timestamp) -> Result<u64, StorageError>;

    // Second factors.

    /// Stores an unconfirmed TOTP factor for an account, begun by `begun_by` (an opaque hash of the session or
    /// half-signed-in state that started the enrolment, returned as [`TotpFactor::begun_by`]), replacing an
    /// unconfirmed one; `false` (nothing written) when the account already has a confirmed one, which must be
    /// removed first.
    async fn put_totp(
        &self,
        account: &AccountId,
        sealed_secret: &str,
        begun_by: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError>;

    /// The account's TOTP factor, confirmed or not.
    async fn get_totp(&self, account: &AccountId) -> Result<Option<TotpFactor>, StorageError>;

    /// Records that a code of time step `step` was accepted: confirms the factor when `confirm` names the sealed
    /// secret the code was checked against (enrolment) and moves `last_step` forward — only if `step` is later than
    /// it (compare-and-set), so of two requests with the same code one wins, and, when confirming, only if the
    /// unconfirmed secret is still that one (a concurrent re-enrolment cannot slip another secret in). `false`
    /// when the step was already used (replay), the factor is gone or replaced, or is not in the state asked for
    /// (confirmed for a sign-in, unconfirmed for enrolment).
    async fn accept_totp_step(
        &self,
        account: &AccountId,
        step: i64,
        confirm: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StorageError>;

    /// Removes every second factor of an account (its TOTP factor, passkeys and recovery codes) in one
    /// transaction; `true` when there was something to remove.
    async fn delete_second_factors(&self, account: &AccountId) -> Result<bool, StorageError>;

    /// Replaces the account's recovery codes with these (keyed hashes), in one transaction.
    async fn replace_recovery_codes(
        &self,
        account: &AccountId,
        code_hashes: &[String],
        now: Timestamp,
    ) -> Result<(), StorageError>;

    /// Spends one recovery code: `true` when it was the account's and unused (and is now used), in one statement,
    /// so two requests cannot both spend it.
    async fn use_recovery_code(
        &self,
        account: &AccountId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError>;

    /// How many unused recovery codes the account has.
    async fn recovery_codes_left(&self, account: &AccountId) -> Result<u32, StorageError>;

    /// Stores a half-signed-in state.
    async fn insert_pending_second_factor(&self, p: &PendingSecondFactor) -> Result<(), StorageError>;

    /// Reads a half-signed-in state without using it up.
    async fn get_pending_second_factor(&self, token_hash: &str) -> Result<Option<PendingSecondFactor>, StorageError>;

    /// Counts one wrong code; returns the failures so far (`None`: no such state).
    async fn fail_pending_second_factor(&self, token_hash: &str) -> Result<Option<u32>, StorageError>;

    /// Removes and returns a half-signed-in state at once: single use even under concurrent requests.
    async fn take_pending_second_factor(&self, token_hash: &str) -> Result<Option<PendingSecondFactor>, StorageError>;

    /// Deletes half-signed-in states that expired before `now`; returns how many.
    async fn purge_pending_second_factor(&self, now: Timestamp) -> Result<u64, StorageError>;

    // Passkeys (WebAuthn).

    /// Stores a new passkey; a credential id already registered (to any account) is [`StorageError::Conflict`].
    async fn insert_passkey(&self, p: &PasskeyRecord) -> Result<(), StorageError>;

    /// Every passkey of an account, oldest first.
    async fn passkeys_of(&self, account: &AccountId) -> Result<Vec<PasskeyRecord>, StorageError>;

    /// The passkey with this credential id (base64url), whoever's it is.
    async fn passkey_by_cred_id(&self, cred_id: &str) -> Result<Option<PasskeyRecord>, StorageError>;

    /// Records a use of an account's passkey: its updated credential (counter, backup flags) and the time, only
    /// if the stored credential is still `previous` (compare-and-set: of two assertions racing with one counter
    /// value, one is recorded). `false` when it changed meanwhile or is gone.
    async fn record_passkey_use(
        &self,
        account: &AccountId,
        id: &str,
        previous: &str,
        credential: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError>;

    /// Removes one passkey of an account (never another account's) and, when the account has no second factor
    /// left (no confirmed TOTP, no passkey), its recovery codes, in one transaction; `false` when there was no
    /// such passkey.
    async fn delete_passkey(&self, account: &AccountId, id: &str) -> Result<bool, StorageError>;

    /// Removes the account's TOTP factor and, when it has no passkey left, its recovery codes, in one transaction;
    /// `false` when there was nothing to remove.
    async fn delete_totp(&self, account: &AccountId) -> Result<bool, StorageError>;

    /// Stores a ceremony under way.
    async fn insert_passkey_ceremony(&self, c: &PasskeyCeremony) -> Result<(), StorageError>;

    /// Removes and returns a ceremony at once: single use even under concurrent requests. Expiry and binding are
    /// the caller's to check.
    async fn take_passkey_ceremony(&self, id_hash: &str) -> Result<Option<PasskeyCeremony>, StorageError>;

    /// Deletes ceremonies that expired before `now`; returns how many.
    async fn purge_passkey_ceremonies(&self, now: Timestamp) -> Result<u64, StorageError>;
    // Mailed tokens (password reset, address confirmation).

    /// Stores a new mailed token.
    async fn insert_email_token(&self, t: &EmailToken) -> Result<(), StorageError>;

    /// Removes and returns a token of this purpose at once: single use even under concurrent requests. Expiry is
    /// the caller's to check.
    async fn take_email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> Result<Option<EmailToken>, StorageError>;

    /// Reads a token of this purpose without using it up (to show the form it opens).
    async fn get_email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> Result<Option<EmailToken>, StorageError>;

    /// Deletes every token of this purpose of an account; returns how many. (A local password change also deletes
    /// the account's reset and address change tokens in its own transaction: see
    /// [`CredentialRepository::change_password_hash`](crate::CredentialRepository::change_password_hash).)
    async fn delete_email_tokens_of(
        &self,
        account: &AccountId,
        purpose: EmailTokenPurpose,
    ) -> Result<u64, StorageError>;

    /// Marks the account's own address as verified if it is still `email` (ignoring ASCII case); `false` when the
    /// account has another address now (or is gone).
    async fn confirm_email(&self, account: &AccountId, email: &str) -> Result<bool, StorageError>;

    /// Every token of this purpose of an account, newest first (the account page shows a pending address change).
    async fn email_tokens_of(
        &self,
        account: &AccountId,
        purpose: EmailTokenPurpose,
    ) -> Result<Vec<EmailToken>, StorageError>;

    /// Sets the account's own address to `email`, verified, unless another account has `email` (ignoring ASCII
    /// case) as its verified address; deletes every mailed token of the account in the same transaction (links
    /// mailed to the old address, or for an older change, open nothing afterwards). `false` when refused or when
    /// the account is gone.
    async fn change_email(&self, account: &AccountId, email: &str) -> Result<bool, StorageError>;

    /// Deletes tokens that expired before `now`; returns how many.
    async fn purge_email_tokens(&self, now: Timestamp) -> Result<u64, StorageError>;

    /// Deletes every personal access token of an account (after a password reset); returns their hashes.
    async fn delete_tokens_of(&self, account: &AccountId) -> Result<Vec<String>, StorageError>;

    // The audit log, keys and the connection.

    /// Appends an event to the audit log, which is never updated or deleted from.
    async fn audit(&self, at: Timestamp, e: &AuditEvent<'_>) -> Result<(), StorageError>;

    /// Audit events matching `q`, newest first.
    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StorageError>;

    /// The key stored under `name`, inserting `candidate` first if there is none: every node sharing the database
    /// ends up with the same key, whichever inserted first.
    async fn get_or_insert_key(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String, StorageError>;

    /// The throttling counters kept in this database, shared by every node using it; `None` when the store
    /// cannot keep them (the broker's limiter then counts in process, per node).
    fn throttle_counters(&self) -> Option<&dyn ThrottleCounters> {
        None
    }

    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StorageError>;

    /// Closes the connections (at shutdown, or at the end of a CLI command).
    async fn close(&self);
}
