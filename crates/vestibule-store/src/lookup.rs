//! Finding accounts by what an operator knows about them (`vestibule user disable alice`).

use vestibule_core::{AccountId, CredentialRepository};

use crate::{Store, StoreError};

impl Store {
    /// The account whose local password has this login name. It is the very lookup password sign-in makes, so an
    /// operator's `alice` finds exactly the account that `alice` signs in to, however names are compared.
    pub async fn account_with_login(&self, login: &str) -> Result<Option<AccountId>, StoreError> {
        match CredentialRepository::find_password(self, login).await {
            Ok(record) => Ok(record.map(|r| r.account_id)),
            // The repository trait boxes its errors; give the database's back its own variant.
            Err(e) => Err(match e.downcast::<StoreError>() {
                Ok(e) => *e,
                Err(e) => match e.downcast::<sqlx::Error>() {
                    Ok(e) => StoreError::Database(*e),
                    Err(e) => StoreError::Corrupt(e.to_string()),
                },
            }),
        }
    }
}
