use async_trait::async_trait;

use secrecy::SecretString;

use crate::{AccountId, BoxError, SourceId};

/// A local account's password record, as the local source reads it.
#[derive(Clone)]
pub struct StoredPassword {
    /// The account the password belongs to; also the subject of its local identity.
    pub account_id: AccountId,
    /// The login name as it was given when the account was created, for display; lookups and uniqueness use its
    /// canonical form ([`canonical_login`](crate::canonical_login)).
    pub username: String,
    /// A human name.
    pub display_name: Option<String>,
    /// The account's email and whether it was verified.
    pub email: Option<String>,
    /// Whether the email was verified.
    pub email_verified: bool,
    /// The PHC string (`$argon2id$v=19$m=...`).
    pub password_hash: String,
    /// A disabled account never signs in.
    pub disabled: bool,
}

impl std::fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPassword")
            .field("account_id", &self.account_id)
            .field("username", &self.username)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Where local password records live. Defined here, implemented by the store, so that the local source depends on
/// this crate only and can be tested over an in-memory map.
#[async_trait]
pub trait CredentialRepository: Send + Sync {
    /// The record for a login name. Names are one account exactly when their canonical forms
    /// ([`canonical_login`](crate::canonical_login)) are equal: implementations compare canonical forms (the local
    /// source passes one already), never the bytes as typed.
    async fn find_password(&self, username: &str) -> Result<Option<StoredPassword>, BoxError>;
    /// The record of an account, for a password change.
    async fn find_password_of(&self, account: &AccountId) -> Result<Option<StoredPassword>, BoxError>;
    /// Replaces a hash, only if it is still `old_hash` (a concurrent change wins); `true` when it was replaced.
    async fn replace_password_hash(
        &self,
        account: &AccountId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<bool, BoxError>;
    /// A password change: [`replace_password_hash`](Self::replace_password_hash) and, in the same transaction,
    /// the end of every session and remember-me series of the account, of its password reset links (a link
    /// mailed before the change must not undo it) and of its pending address change (a hijacked session's request
    /// must not outlive the owner's new password) — a change made because a password was stolen must not half
    /// happen. The default only replaces the hash (for repositories that keep no sessions).
    async fn change_password_hash(
        &self,
        account: &AccountId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<bool, BoxError> {
        self.replace_password_hash(account, old_hash, new_hash).await
    }
}

/// Why a password change was refused. The messages are safe to show to the account's owner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordChangeError {
    /// The current password given is not right.
    #[error("the current password is not right")]
    WrongCurrent,
    /// The new password breaks the policy; the message says how.
    #[error("{0}")]
    Policy(String),
    /// The account has no local password to change.
    #[error("this account has no password here")]
    NoPassword,
    /// The store or the hasher failed.
    #[error("password change unavailable")]
    Unavailable(#[source] BoxError),
}

/// A new account's password, checked against the policy and hashed by the source that will verify it.
#[derive(Debug)]
pub struct NewPasswordHash {
    /// The source the account's password belongs to (its identity is `(source, account id)`).
    pub source: SourceId,
    /// The PHC string to store (redacted in `Debug`).
    pub hash: SecretString,
}

/// Changes a local password after checking the current one. Implemented by the local source, used by the broker,
/// which then ends the account's other sessions.
#[async_trait]
pub trait PasswordChanger: Send + Sync {
    /// Checks `current`, applies the policy to `new`, stores the new hash.
    async fn change_password(
        &self,
        account: &AccountId,
        current: &SecretString,
        new: &SecretString,
    ) -> Result<(), PasswordChangeError>;

    /// Whether the account has a password here (only such accounts may reset one). The default: none.
    async fn has_password(&self, account: &AccountId) -> Result<bool, PasswordChangeError> {
        let _ = account;
        Ok(false)
    }

    /// Sets a new password without the current one, for a reset whose emailed token the broker has already
    /// checked: applies the same policy as [`change_password`](Self::change_password) and ends the account's
    /// sessions the same way. The default refuses ([`PasswordChangeError::NoPassword`]).
    async fn reset_password(&self, account: &AccountId, new: &SecretString) -> Result<(), PasswordChangeError> {
        let _ = (account, new);
        Err(PasswordChangeError::NoPassword)
    }

    /// For an account an operator creates with a password (the admin API): applies the same policy as
    /// [`change_password`](Self::change_password) to `new` and hashes it. The default refuses
    /// ([`PasswordChangeError::NoPassword`]): this changer keeps no passwords for new accounts.
    async fn hash_new_password(&self, new: &SecretString) -> Result<NewPasswordHash, PasswordChangeError> {
        let _ = new;
        Err(PasswordChangeError::NoPassword)
    }
}
