//! The Vestibule broker: it holds the configured [`AuthSource`](vestibule_core::AuthSource)s, turns what they prove into local accounts and
//! sessions, protects forms with CSRF tokens, and writes every security event to the audit log. It knows nothing of
//! HTTP (that is `vestibule-axum`), so all of it can be used and tested without a web server. It knows no SQL either:
//! it keeps its data through a [`BrokerStore`] (`vestibule_store::Store` on SQLite or PostgreSQL).
//!
//! ```
//! use std::sync::Arc;
//! use vestibule::{Broker, ClientInfo};
//! use vestibule_core::{CredentialRepository, SecretString, SourceId};
//! use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher};
//! use vestibule_store::{NewLocalAccount, Store};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = std::env::temp_dir().join(format!("vestibule-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let store = Store::connect(&format!("sqlite://{}/vestibule.db", dir.display())).await?;
//! store.migrate().await?;
//! // A local password source over the same store (cheap argon2 for the example; the default is OWASP's).
//! let config = LocalConfig { id: SourceId::new("local")?, display_name: None, argon2: Default::default(), password: Default::default() };
//! let hasher = Arc::new(PasswordHasher::new(Argon2Settings { memory_kib: 64, iterations: 1, parallelism: 1 })?);
//! let repo: Arc<dyn CredentialRepository> = Arc::new(store.clone());
//! let local = Arc::new(LocalSource::new(&config, repo, hasher.clone()));
//!
//! let broker = Broker::builder(store, "http://127.0.0.1:8080").source(local).build().await?;
//! broker
//!     .create_local_account(
//!         &NewLocalAccount {
//!             source: config.id.clone(),
//!             username: "alice".into(),
//!             display_name: Some("Alice".into()),
//!             email: None,
//!             email_verified: false,
//!             password_hash: hasher.hash("correct horse".into()).await?.into(),
//!         },
//!         "example",
//!     )
//!     .await?;
//! let outcome = broker
//!     .login_password(&SourceId::new("local")?, "alice", &SecretString::from("correct horse"), &ClientInfo::default(), None)
//!     .await?;
//! let Some(session) = outcome.session() else { return Ok(()) };
//! // `session.token` goes into the session cookie; only its SHA-256 is stored.
//! assert!(broker.session(session.token.expose()).await?.is_some());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod access_tokens;
mod admin;
mod admin_api;
mod admin_ops;
mod authenticate;
mod broker;
mod csrf;
mod email_change;
mod error;
mod hooks;
mod linking;
mod login;
mod mail;
mod metrics;
mod passkey;
mod readiness;
mod remember;
mod reset;
mod second_factor;
mod secret;
mod self_service;
mod session;
mod settings;
#[cfg(test)]
mod test_support;
mod throttle;
mod totp;
mod views;

pub use access_tokens::{NewToken, TokenError, TOKEN_PREFIX};
pub use admin::{AccountDetails, AccountLookup, FactorsView, MatchedBy, RECENT_AUDIT};
pub use admin_api::{AdminGrant, AdminRefusal, CreateAccountError, CreatedAccount, PasswordAccount, ADMIN_SCOPE};
pub use admin_ops::{valid_group_name, AdminError, DeletedAccount, EndedGrants, GroupChange, GroupsChanged};
pub use authenticate::{Authentication, Credentials, RememberCookie};
pub use broker::{Broker, BrokerBuilder, ClientInfo};
pub use email_change::{mask_address, EmailChangeStarted};
pub use error::{is_store_timeout, BrokerError, LoginError};
pub use hooks::{BrokerHooks, HookError, HookRefusal};
pub use linking::{LinkRequired, PendingLinkView, UnlinkError};
pub use login::{LoginOutcome, RedirectBegin, RedirectFinish};
pub use mail::{FactorChange, Mail, MailError, MailLink, Mailer, Message};
pub use passkey::{PasskeyAdded, PasskeyChallenge, PasskeyView, PasswordlessDone};
pub use readiness::{CheckState, Readiness, SourceCheck, FRESH_FOR, PROBE_DEADLINE};
pub use remember::Restored;
pub use reset::{MailSettings, ResetDone, ResetError, ResetRequested};
pub use second_factor::{
    FactorAdded, RecoveryCodes, SecondFactorChallenge, SecondFactorError, SecondFactorPrompt, SecondStepDone,
    TotpEnrolment,
};
pub use secret::{hash_token, SecretToken};
pub use self_service::{PasswordChanged, Revoke, SelfServiceError};
pub use session::{ActiveSession, ActiveToken, Assurance, AuthMethod, Holder, NewSession, Principal};
pub use settings::{
    AdminSettings, PasskeyMode, Protection, Provisioning, SecondFactorPolicy, SecondFactorSettings, SessionSettings,
    SourcePolicy, UPSTREAM_MFA_AMR,
};
pub use throttle::{Attempt, Limiter, ThrottleEntry, ThrottleLayer, ThrottleSettings, Throttled};
pub use totp::SecondFactorKey;
pub use views::{AccountView, IdentityView, SessionView, TokenView};

pub use vestibule_core as core;
/// The broker's storage trait and its error (in [`vestibule_core::storage`], with the records it stores).
pub use vestibule_core::storage::{BrokerStore, StorageError};
