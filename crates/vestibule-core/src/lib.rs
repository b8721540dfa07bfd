//! The smallest crate of Vestibule: the [`AuthSource`] trait every way of signing in implements, the
//! [`ExternalIdentity`] a source proves, newtype ids, errors and an injectable [`Clock`]. No I/O lives here, so a
//! third-party source depends on this crate alone. [`storage`] holds the broker's storage trait and the records it
//! keeps, implemented by `vestibule-store`.
//!
//! # Implementing a source
//!
//! A source is built at run time (often from TOML) and held as `Arc<dyn AuthSource>`. It offers one of two flows:
//! a [`PasswordFlow`] (a login name and a password checked by the source) or a [`RedirectFlow`] (the browser is sent
//! to an identity provider and comes back to a callback). Here is a password source over an in-memory map:
//!
//! ```
//! use std::collections::HashMap;
//! use async_trait::async_trait;
//! use vestibule_core::{
//!     AuthSource, ExternalIdentity, Flow, PasswordFlow, RejectReason, SecretString, SourceError, SourceId,
//!     Subject, ExposeSecret,
//! };
//!
//! struct Fixed { id: SourceId, users: HashMap<String, String> }
//!
//! impl AuthSource for Fixed {
//!     fn id(&self) -> &SourceId { &self.id }
//!     fn display_name(&self) -> &str { "Fixed users" }
//!     fn flow(&self) -> Flow<'_> { Flow::Password(self) }
//! }
//!
//! #[async_trait]
//! impl PasswordFlow for Fixed {
//!     async fn authenticate(&self, login: &str, password: &SecretString) -> Result<ExternalIdentity, SourceError> {
//!         // A real source compares in constant time and spends the same effort on unknown users.
//!         match self.users.get(login) {
//!             Some(p) if p.as_str() == password.expose_secret() => {
//!                 Ok(ExternalIdentity::new(self.id.clone(), Subject::new(login)?).with_login(login))
//!             }
//!             _ => Err(SourceError::Rejected(RejectReason::InvalidCredentials)),
//!         }
//!     }
//! }
//!
//! # tokio_test_block(async {
//! let source = Fixed {
//!     id: SourceId::new("fixed").unwrap(),
//!     users: HashMap::from([("ann".into(), "correct horse".into())]),
//! };
//! let Flow::Password(flow) = source.flow() else { unreachable!() };
//! let who = flow.authenticate("ann", &SecretString::from("correct horse")).await.unwrap();
//! assert_eq!(who.subject.as_str(), "ann");
//! assert!(flow.authenticate("ann", &SecretString::from("nope")).await.is_err());
//! # });
//! # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod clock;
pub mod config;
mod error;
mod identity;
mod ids;
mod local;
mod login;
mod source;
pub mod storage;

pub use async_trait::async_trait;
pub use clock::{Clock, FixedClock, SystemClock, Timestamp};
pub use config::{read_secret, ConfigIssue};
pub use error::{error_chain, BoxError, IdError, RejectReason, SourceError};
pub use identity::ExternalIdentity;
pub use ids::{AccountId, SourceId, Subject};
pub use local::{CredentialRepository, NewPasswordHash, PasswordChangeError, PasswordChanger, StoredPassword};
pub use login::{canonical_login, LoginError, MAX_LOGIN_CHARS};
pub use secrecy::{ExposeSecret, SecretString};
pub use source::{
    AuthSource, CallbackParams, Flow, PasswordFlow, PendingRedirect, Probe, Recheck, RedirectFlow, RedirectStart,
    StartOptions,
};
