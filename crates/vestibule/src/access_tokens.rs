//! Personal access tokens for APIs: created by a signed-in person (fresh sign-in), with a name, scopes and a
//! required expiry; shown once; only the hash is stored. `Authorization: Bearer vst_...` authenticates through the
//! same extractors as a session, from the same bounded cache; a revoked token is evicted on every node.

use std::sync::Arc;

use vestibule_core::storage::{AccessToken, AuditEvent, AuditKind, StorageError};
use vestibule_core::SecretString;

use crate::broker::Touch;
use crate::secret::{hash_token, hex_of, plausible};
use crate::session::Liveness;
use crate::{ActiveSession, ActiveToken, Broker, BrokerError, ClientInfo, Holder, Principal, SecretToken};

/// The prefix that marks a Vestibule access token (so secret scanners can find leaked ones).
pub const TOKEN_PREFIX: &str = "vst_";

/// A token just created: `secret` is shown to its owner once and never again (`Debug` prints neither it nor
/// `value`).
#[derive(Debug)]
pub struct NewToken {
    /// Public id, for the list and for revoking.
    pub id: String,
    /// The bearer value.
    pub secret: SecretToken,
    /// The full value with its prefix, to copy.
    pub value: SecretString,
}

/// Why a token could not be created or revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Creating a credential needs a recent sign-in.
    #[error("a recent sign-in is required")]
    NotFresh,
    /// A field is out of range; the message is safe to show.
    #[error("{0}")]
    Invalid(&'static str),
    /// No such token on this account.
    #[error("no such token")]
    NotFound,
    /// The `admin` scope asked for by an account in none of the `[admin] groups`.
    #[error("only administrators can create tokens with the admin scope")]
    NotAdmin,
    /// Something broke.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl From<StorageError> for TokenError {
    fn from(e: StorageError) -> Self {
        TokenError::Broker(e.into())
    }
}

/// The scopes of a stored token (space-separated).
pub(crate) fn split_scopes(stored: &str) -> Vec<String> {
    stored.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Scope names: short, lowercase, `:`/`_`/`-` separated words.
fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b':' | b'_' | b'-' | b'.'))
}

impl Broker {
    /// Creates a token for the signed-in account.
    pub async fn create_token(
        &self,
        session: &ActiveSession,
        name: &str,
        expires_in_days: i64,
        scopes: &str,
        client: &ClientInfo,
    ) -> Result<NewToken, TokenError> {
        if !self.is_fresh(session) {
            return Err(TokenError::NotFresh);
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(TokenError::Invalid("the name must be 1 to 64 characters"));
        }
        if !(1..=365).contains(&expires_in_days) {
            return Err(TokenError::Invalid("the expiry must be between 1 and 365 days"));
        }
        let scopes: Vec<&str> = scopes.split([' ', ',']).filter(|s| !s.is_empty()).collect();
        if scopes.is_empty() || scopes.len() > 16 || !scopes.iter().all(|s| valid_scope(s)) {
            return Err(TokenError::Invalid(
                "give one to 16 scopes of lowercase letters, digits, ':', '_', '-', '.'",
            ));
        }
        // Read from the store now, not from the session: a person removed from the group since signing in is not
        // an administrator any more.
        let admin = scopes.contains(&crate::ADMIN_SCOPE);
        if admin && !self.is_admin(&session.account_id).await? {
            return Err(TokenError::NotAdmin);
        }
        let secret = SecretToken::generate();
        let value = format!("{TOKEN_PREFIX}{}", secret.expose());
        let now = self.now();
        let id = crate::secret::random_id();
        self.store
            .insert_token(&AccessToken {
                id: id.clone(),
                token_hash: hex_of(&hash_token(&value)),
                account_id: session.account_id.clone(),
                name: name.to_owned(),
                scopes: scopes.join(" "),
                created_at: now,
                expires_at: now.plus_secs(expires_in_days * 86_400),
                last_used_at: None,
                // Unlinking the identity this session was opened through revokes the token with it.
                created_by: session.subject.clone().map(|subject| (session.source.clone(), subject)),
                checked_at: None,
                // What a policy requiring a second factor asks of the token too.
                methods: crate::session::method_names(&session.methods),
            })
            .await?;
        // An admin token is a way into every account: its row says so.
        let detail = if admin {
            format!("{id} (scope admin)")
        } else {
            id.clone()
        };
        self.audit(&AuditEvent {
            account_id: Some(session.account_id.as_str()),
            ip: client.ip.as_deref(),
            detail: Some(&detail),
            ..AuditEvent::of(AuditKind::TokenCreated)
        })
        .await;
        Ok(NewToken {
            id,
            secret,
            value: value.into(),
        })
    }

    /// Revokes one of the account's tokens, on every node.
    pub async fn revoke_token(&self, session: &ActiveSession, id: &str, client: &ClientInfo) -> Result<(), TokenError> {
        let Some(hash) = self.store.delete_token(&session.account_id, id).await? else {
            return Err(TokenError::NotFound);
        };
        self.forget(&[hash]).await;
        self.audit(&AuditEvent {
            account_id: Some(session.account_id.as_str()),
            ip: client.ip.as_deref(),
            detail: Some(id),
            ..AuditEvent::of(AuditKind::TokenRevoked)
        })
        .await;
        Ok(())
    }

    /// The per-request check for `Authorization: Bearer`: the token in use, or `None` when unknown, revoked or
    /// expired. Served from the same cache as sessions.
    pub async fn bearer(&self, value: &str) -> Result<Option<Arc<ActiveToken>>, BrokerError> {
        let Some(rest) = value.strip_prefix(TOKEN_PREFIX) else {
            return Ok(None);
        };
        if !plausible(rest) {
            return Ok(None);
        }
        let key = hash_token(value);
        let now = self.now();
        let active = match self.cache.get(&key) {
            Some(Principal::Token(a)) => a,
            Some(_) => return Ok(None),
            None => {
                let Some(t) = self.store.find_token(&hex_of(&key)).await? else {
                    return Ok(None);
                };
                let Some(account) = self.store.get_account(&t.account_id).await? else {
                    return Ok(None);
                };
                if account.disabled {
                    return Ok(None);
                }
                let groups = self.groups_of(&t.account_id).await?;
                if !self.policy_allows(&crate::session::parse_methods(&t.methods), &groups) {
                    // Minted by a session without a second factor, which policy now requires of this account: it
                    // ends here, as that session did.
                    self.store.delete_token(&t.account_id, &t.id).await?;
                    return Ok(None);
                }
                let a = Arc::new(ActiveToken {
                    holder: Holder {
                        account_id: t.account_id,
                        display_name: account.display_name,
                        email: account.email,
                        email_verified: account.email_verified,
                        groups,
                    },
                    id: t.id,
                    scopes: split_scopes(&t.scopes),
                    created_by: t.created_by,
                    created_at: t.created_at,
                    expires_at: t.expires_at,
                    live: Liveness::new(
                        t.last_used_at.unwrap_or(t.created_at),
                        t.checked_at.unwrap_or(t.created_at),
                    ),
                });
                self.cache.insert(key, Principal::Token(a.clone()));
                a
            }
        };
        if now >= active.expires_at {
            self.cache.invalidate(&key);
            return Ok(None);
        }
        let identity = active.created_by.as_ref().map(|(source, subject)| (source, subject));
        if !self
            .still_admitted(&key, &active.holder, identity, &active.live, Touch::Token, now)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(active))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_token_debug_hides_the_value() {
        let secret = SecretToken::generate();
        let value = format!("{TOKEN_PREFIX}{}", secret.expose());
        let token = NewToken {
            id: "0f3a9c".into(),
            secret: secret.clone(),
            value: value.clone().into(),
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains(&value), "{shown}");
        assert!(!shown.contains(secret.expose()), "{shown}");
        assert!(shown.contains("0f3a9c"), "{shown}");
    }

    /// `Broker::bearer` refuses a malformed value before any lookup: with the store closed under it, every
    /// malformed value still answers `Ok(None)`, while a well-formed one reaches the store (and fails).
    #[test]
    fn malformed_bearer_values_never_reach_the_store() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};

        let rt = crate::test_support::runtime();
        let (broker, _dir) = crate::test_support::broker_over_closed_store(&rt);
        let well_formed = |v: &str| v.strip_prefix(TOKEN_PREFIX).is_some_and(plausible);
        let sample = format!("{TOKEN_PREFIX}{}", SecretToken::generate().expose());
        assert!(well_formed(&sample));
        assert!(
            rt.block_on(broker.bearer(&sample)).is_err(),
            "a well-formed value is looked up"
        );

        let values = prop_oneof![
            any::<String>(),
            "(vst_|VST_|vst-|vst|_vst_|)[A-Za-z0-9_-]{40,46}",
            "vst_[A-Za-z0-9_=+/. %-]{43}",
            "vst_[A-Za-z0-9_-]{0,43}( |\\.|=|\\n|\u{e9})[A-Za-z0-9_-]{0,43}",
        ];
        let mut runner = TestRunner::new(Config::with_cases(2048));
        runner
            .run(&values, |value| {
                prop_assume!(!well_formed(&value));
                let found = rt.block_on(broker.bearer(&value));
                prop_assert!(
                    matches!(found, Ok(None)),
                    "{:?} gave {:?}",
                    value,
                    found.map(|s| s.is_some())
                );
                Ok(())
            })
            .expect("property");
    }
}
