//! The app's own user table, kept in step with the broker's accounts through [`vestibule::BrokerHooks`]: each
//! account gets an app user id when it is created, loses it when deleted, and the app may refuse a sign-in. A real
//! app keeps this in its database (`users(id, account_id UNIQUE, ...)`); a map is enough to show the calls.

use std::collections::HashMap;
use std::sync::Mutex;

use vestibule::core::{AccountId, SourceId};
use vestibule::{AccountView, BrokerHooks, HookError, HookRefusal};

/// Account id → the app's user id.
#[derive(Debug, Default)]
pub struct AppUsers {
    rows: Mutex<HashMap<AccountId, u64>>,
}

impl AppUsers {
    /// The app's user id of an account (`None`: no row, e.g. made while the app was down: reconcile).
    pub fn user_id(&self, account: &AccountId) -> Option<u64> {
        self.rows.lock().ok()?.get(account).copied()
    }
}

#[async_trait::async_trait]
impl BrokerHooks for AppUsers {
    async fn account_created(&self, account: &AccountView) -> Result<(), HookError> {
        let mut rows = self.rows.lock().map_err(|_| "the user table is poisoned")?;
        let next = rows.len() as u64 + 1;
        // Idempotent, as a hook should be: an existing row is kept.
        rows.entry(account.id.clone()).or_insert(next);
        Ok(())
    }

    async fn account_deleted(&self, account: &AccountId) -> Result<(), HookError> {
        self.rows
            .lock()
            .map_err(|_| "the user table is poisoned")?
            .remove(account);
        Ok(())
    }

    async fn after_sign_in(&self, account: &AccountView, _source: &SourceId) -> Result<(), HookRefusal> {
        // The app's own rule: no sign-in without an app user (fail closed).
        match self.user_id(&account.id) {
            Some(_) => Ok(()),
            None => Err(HookRefusal::new(
                "This account has no user in the app yet; please contact support.",
            )),
        }
    }
}
