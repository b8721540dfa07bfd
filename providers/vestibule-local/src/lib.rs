//! Local password accounts for Vestibule: argon2id hashing with OWASP's minimum parameters by default, a password
//! policy (length only — no composition rules, per NIST and ASVS), and [`LocalSource`], the [`AuthSource`] that
//! checks a login name and password against a [`CredentialRepository`].
//!
//! ```
//! use std::sync::Arc;
//! use vestibule_local::{Argon2Settings, PasswordHasher};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Cheap parameters for the example; the default is m=19 MiB, t=2, p=1.
//! let hasher = Arc::new(PasswordHasher::new(Argon2Settings { memory_kib: 64, iterations: 1, parallelism: 1 }).unwrap());
//! let hash = hasher.hash("correct horse battery".into()).await.unwrap();
//! assert!(hash.starts_with("$argon2id$"));
//! assert!(hasher.verify("correct horse battery".into(), hash.clone()).await.unwrap().is_match());
//! # });
//! ```

mod hasher;
mod policy;
mod source;

pub use hasher::{Argon2Settings, HashError, PasswordHasher, Verification};
pub use policy::{PasswordPolicy, PolicyError};
pub use source::{LocalConfig, LocalSource};

#[doc(no_inline)]
pub use vestibule_core::AuthSource;
#[doc(no_inline)]
pub use vestibule_core::CredentialRepository;
