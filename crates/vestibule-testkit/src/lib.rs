//! Test support for authors of Vestibule sources: [`conformance`] runs the contract every
//! [`AuthSource`](vestibule_core::AuthSource) must keep against any source, each check naming the rule a source
//! breaks. Every source of the Vestibule workspace passes it against its real backend. Use it as a
//! dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! vestibule-testkit = "0.1"
//! ```
//!
//! ```
//! use vestibule_core::{
//!     async_trait, AuthSource, ExposeSecret, ExternalIdentity, Flow, PasswordFlow, RejectReason, SecretString,
//!     SourceError, SourceId, Subject,
//! };
//! use vestibule_testkit::conformance::PasswordSourceKit;
//!
//! /// One person, "ann", with one password.
//! #[derive(Debug)]
//! struct OneUser(SourceId);
//!
//! impl AuthSource for OneUser {
//!     fn id(&self) -> &SourceId { &self.0 }
//!     fn display_name(&self) -> &str { "One user" }
//!     fn flow(&self) -> Flow<'_> { Flow::Password(self) }
//! }
//!
//! #[async_trait]
//! impl PasswordFlow for OneUser {
//!     async fn authenticate(&self, login: &str, password: &SecretString) -> Result<ExternalIdentity, SourceError> {
//!         if password.expose_secret().is_empty() {
//!             return Err(SourceError::Rejected(RejectReason::EmptyPassword));
//!         }
//!         if login == "ann" && password.expose_secret() == "correct horse" {
//!             return Ok(ExternalIdentity::new(self.0.clone(), Subject::new("ann-1")?).with_login("ann"));
//!         }
//!         Err(SourceError::Rejected(RejectReason::InvalidCredentials))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let source = OneUser(SourceId::new("one").unwrap());
//! // Panics, naming the rule, when the source breaks one.
//! let report = PasswordSourceKit::new(&source, "ann", "correct horse").run().await;
//! assert!(report.to_string().contains("conformance of source `one`"));
//! # });
//! ```

pub mod conformance;
