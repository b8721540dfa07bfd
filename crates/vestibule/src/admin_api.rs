//! What the HTTP admin API needs of the broker beyond the operator operations of `admin.rs`: the `admin` scope
//! (who may hold a token with it, and the check every use of one makes) and creating a local account from a
//! password rather than a hash.
//!
//! An admin token is an ordinary personal access token whose scopes include [`ADMIN_SCOPE`]. What makes it an
//! administrator's is checked against the store when it is created and again at every use, never answered from
//! the session cache: an owner who left every admin group, a disabled account, a revoked or expired token stops
//! working on the admin API with the next request, on every node, whatever the cache still holds.

use vestibule_core::storage::NewLocalAccount;
use vestibule_core::{AccountId, PasswordChangeError, SecretString};

use crate::access_tokens::split_scopes;
use crate::{ActiveToken, Broker, BrokerError, StorageError};

/// The scope that opens the admin API to a personal access token of an administrator.
pub const ADMIN_SCOPE: &str = "admin";

/// An admin token that passed every check of [`Broker::admin_grant`]: who acts, with which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminGrant {
    /// The administrator's account.
    pub account_id: AccountId,
    /// The token's public id.
    pub token_id: String,
}

impl AdminGrant {
    /// The audit log's `detail` for a change made with this grant: `api:<token id> by <account id>`, so the row
    /// names both the token and the account acting (the row's own `account_id` is the account acted on).
    pub fn audit_detail(&self) -> String {
        format!("api:{} by {}", self.token_id, self.account_id)
    }
}

/// Why an authenticated token may not use the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminRefusal {
    /// The token no longer works: revoked, expired, or its account disabled or deleted (an API answers 401, as for
    /// a token it does not know).
    TokenGone,
    /// The token does not carry the `admin` scope (403).
    MissingScope,
    /// The token's account is in none of the `[admin] groups` now (403).
    NotAdmin,
}

/// What an operator gives to create a local account with a password.
#[derive(Debug, Clone)]
pub struct PasswordAccount {
    /// The login name (unique by its canonical form).
    pub username: String,
    /// A human name; the login name when `None`.
    pub display_name: Option<String>,
    /// The account's email.
    pub email: Option<String>,
    /// The operator vouches for the address: nothing is mailed, and it counts as verified.
    pub email_verified: bool,
    /// The password, checked against the local source's policy (redacted in `Debug`).
    pub password: SecretString,
}

/// A local account just created by [`Broker::create_password_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedAccount {
    /// The new account's id.
    pub id: AccountId,
    /// Whether a confirmation link was mailed to its (unverified) address.
    pub confirmation_sent: bool,
}

/// Why [`Broker::create_password_account`] created nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateAccountError {
    /// A field is not acceptable; the message is safe to show to the operator.
    #[error("{0}")]
    Invalid(String),
    /// The login name is taken (compared in canonical form).
    #[error("the username is taken")]
    Taken,
    /// No local password source is configured.
    #[error("no local password source is configured")]
    NoPasswords,
    /// The password could not be hashed.
    #[error("the password could not be hashed")]
    Unavailable(#[source] vestibule_core::BoxError),
    /// Something broke.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl Broker {
    /// Whether the account is, now, in one of the `[admin] groups` (its groups read from the store, not from a
    /// cached credential).
    pub async fn is_admin(&self, account: &AccountId) -> Result<bool, BrokerError> {
        if self.admin.groups.is_empty() {
            return Ok(false);
        }
        Ok(self.admin.admits(&self.groups_of(account).await?))
    }

    /// The check each request to the admin API makes of the token that authenticated it (see the module's
    /// notes): the token still stored and unexpired, its account still there and enabled, the `admin` scope, and
    /// the account in an admin group now. Reads the store every time.
    pub async fn admin_grant(&self, token: &ActiveToken) -> Result<Result<AdminGrant, AdminRefusal>, BrokerError> {
        let now = self.now();
        let stored = self
            .store
            .tokens_of(&token.account_id)
            .await?
            .into_iter()
            .find(|t| t.id == token.id && now < t.expires_at);
        let Some(stored) = stored else {
            return Ok(Err(AdminRefusal::TokenGone));
        };
        match self.store.get_account(&token.account_id).await? {
            Some(account) if !account.disabled => {}
            _ => return Ok(Err(AdminRefusal::TokenGone)),
        }
        if !split_scopes(&stored.scopes).iter().any(|s| s == ADMIN_SCOPE) {
            return Ok(Err(AdminRefusal::MissingScope));
        }
        if !self.is_admin(&token.account_id).await? {
            return Ok(Err(AdminRefusal::NotAdmin));
        }
        Ok(Ok(AdminGrant {
            account_id: token.account_id.clone(),
            token_id: token.id.clone(),
        }))
    }

    /// Creates a local account with a password: the login name and address are checked as `vestibule user add`
    /// checks them, the password against the local source's policy, then [`Broker::create_local_account`]
    /// stores it and writes `account_created` with `detail`. An address the operator does not vouch for is
    /// mailed a confirmation link (a mail that cannot be queued is logged; the account stays).
    pub async fn create_password_account(
        &self,
        new: &PasswordAccount,
        detail: &str,
    ) -> Result<CreatedAccount, CreateAccountError> {
        let username = new.username.as_str();
        if username.is_empty()
            || username.chars().count() > 128
            || username.chars().any(|c| c.is_control() || c.is_whitespace())
            || vestibule_core::canonical_login(username).is_err()
        {
            return Err(CreateAccountError::Invalid(
                "the username must be 1 to 128 characters without spaces, control or invisible characters".into(),
            ));
        }
        if let Some(e) = &new.email {
            if !e.contains('@') || e.len() > 254 || e.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(CreateAccountError::Invalid("the email address is not valid".into()));
            }
        }
        let changer = self.password_changer.as_ref().ok_or(CreateAccountError::NoPasswords)?;
        let hashed = match changer.hash_new_password(&new.password).await {
            Ok(h) => h,
            Err(PasswordChangeError::Policy(why)) => return Err(CreateAccountError::Invalid(why)),
            Err(PasswordChangeError::NoPassword) => return Err(CreateAccountError::NoPasswords),
            Err(e) => return Err(CreateAccountError::Unavailable(Box::new(e))),
        };
        let created = self
            .create_local_account(
                &NewLocalAccount {
                    source: hashed.source,
                    username: username.to_owned(),
                    display_name: new.display_name.clone().or_else(|| Some(username.to_owned())),
                    email: new.email.clone(),
                    email_verified: new.email_verified && new.email.is_some(),
                    password_hash: hashed.hash,
                },
                detail,
            )
            .await;
        let id = match created {
            Ok(id) => id,
            Err(BrokerError::Store(StorageError::Conflict(_))) => return Err(CreateAccountError::Taken),
            Err(e) => return Err(e.into()),
        };
        let confirmation_sent = match self.send_email_verification(&id).await {
            Ok(sent) => sent,
            Err(e) => {
                tracing::warn!(account = %id, error = %e, "the confirmation link could not be queued");
                false
            }
        };
        Ok(CreatedAccount { id, confirmation_sent })
    }
}
