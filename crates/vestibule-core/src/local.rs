use async_trait::async_trait;

use crate::{AccountId, BoxError};

/// A local account's password record, as the local source reads it.
#[derive(Clone)]
pub struct StoredPassword {
    /// The account the password belongs to; also the subject of its local identity.
    pub account_id: AccountId,
    /// The login name.
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
    /// The record for a login name, compared exactly as stored.
    async fn find_password(&self, username: &str) -> Result<Option<StoredPassword>, BoxError>;
    /// Replaces a hash, only if it is still `old_hash` (a concurrent change wins). Used to upgrade parameters.
    async fn replace_password_hash(&self, account: &AccountId, old_hash: &str, new_hash: &str) -> Result<(), BoxError>;
}
