//! The records of passkeys (WebAuthn credentials) and of the WebAuthn ceremonies under way.

use crate::{AccountId, Timestamp};

/// A passkey of an account. Nothing in it is secret: a passkey's secret half never leaves its authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// Our own random id, for the account page's "remove" form.
    pub id: String,
    /// Whose.
    pub account_id: AccountId,
    /// The credential id (base64url), unique across every account.
    pub cred_id: String,
    /// The WebAuthn user handle the credential was made for (a passwordless assertion hands it back).
    pub user_handle: String,
    /// What its owner called it.
    pub name: String,
    /// The relying-party library's record of the credential (public key, counter, flags), as JSON.
    pub credential: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last signed a sign-in.
    pub last_used_at: Option<Timestamp>,
}

/// A WebAuthn ceremony under way: the challenge and what checking the answer needs. Single use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCeremony {
    /// Hex SHA-256 of the ceremony id the page holds.
    pub id_hash: String,
    /// What it is for (`register`, `second_factor`, `passwordless`, `step_up`).
    pub purpose: String,
    /// Hex SHA-256 of what it belongs to: a session, a half-signed-in state, or a browser's pre-session cookie.
    pub bound_to: String,
    /// The account, when known at the start (all but a passwordless sign-in).
    pub account_id: Option<AccountId>,
    /// The library's ceremony state, as JSON.
    pub state: String,
    /// After this it is void.
    pub expires_at: Timestamp,
}
