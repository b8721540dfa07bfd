use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Semaphore;

/// Argon2id cost parameters. The defaults are OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Settings {
    /// Memory in KiB (default 19456 = 19 MiB).
    pub memory_kib: u32,
    /// Passes over memory (default 2).
    pub iterations: u32,
    /// Lanes (default 1).
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Argon2Settings {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashing or verification could not run (bad parameters, a panicked worker). Never "wrong password".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The configured parameters are outside what argon2 accepts.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// The hashing itself failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking worker was cancelled or panicked.
    #[error("password hashing worker failed")]
    Worker,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Wrong password, or a stored hash that cannot be parsed.
    Mismatch,
    /// Right password, and the hash has the current parameters.
    Match,
    /// Right password, but the hash was made with other parameters: store a new one.
    MatchNeedsRehash,
}

impl Verification {
    /// Whether the password was right.
    pub fn is_match(self) -> bool {
        !matches!(self, Verification::Mismatch)
    }
}

/// Argon2id hashing off the async threads: every hash runs in `spawn_blocking`, and a semaphore sized to the cores
/// bounds how many run at once, so a burst of sign-ins queues instead of starving the runtime or the memory
/// (each hash holds `memory_kib`). A hash keeps its place until it ends, even when the request that started it was
/// cancelled (its future dropped): the bound is on hashes running, not on requests waiting for them.
#[derive(Debug)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    settings: Argon2Settings,
    permits: Arc<Semaphore>,
    dummy_hash: String,
    load: Arc<HashLoad>,
}

/// Hashes running on blocking threads right now, and the most seen at once: what the permits are meant to bound;
/// and how many verifications were ever asked for. A few atomic operations per hash, next to milliseconds of argon2.
#[derive(Debug, Default)]
struct HashLoad {
    running: AtomicUsize,
    peak: AtomicUsize,
    verifications: AtomicU64,
}

impl HashLoad {
    fn start(&self) -> Running<'_> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Running(self)
    }
}

/// One hash counted in [`HashLoad::running`] until dropped.
struct Running<'a>(&'a HashLoad);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordHasher {
    /// A hasher with these parameters; also computes the dummy hash that unknown login names are checked against.
    pub fn new(settings: Argon2Settings) -> Result<Self, HashError> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| HashError::Params(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        // The dummy's password is random and thrown away: nothing can ever match it.
        let mut random = [0u8; 32];
        rand::RngCore::fill_bytes(&mut OsRng, &mut random);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_hash = argon2
            .hash_password(&random, &salt)
            .map_err(|e| HashError::Hash(e.to_string()))?
            .to_string();
        Ok(PasswordHasher {
            argon2,
            settings,
            permits: Arc::new(Semaphore::new(cores)),
            dummy_hash,
            load: Arc::default(),
        })
    }

    /// The parameters new hashes get.
    pub fn settings(&self) -> Argon2Settings {
        self.settings
    }

    /// How many verifications (real or [dummy](PasswordHasher::verify_dummy)) this hasher was asked for since it
    /// was made. It shows, without timing anything, that a sign-in for an unknown name costs a verification like
    /// one for a known name: the source conformance kit counts with it.
    pub fn verifications(&self) -> u64 {
        self.load.verifications.load(Ordering::Relaxed)
    }

    /// Hashes a password into a PHC string with a fresh 128-bit salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let argon2 = self.argon2.clone();
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Hash(e.to_string()))
        })
        .await?
    }

    /// Checks a password against a stored PHC string.
    pub async fn verify(&self, password: SecretString, stored: String) -> Result<Verification, HashError> {
        self.load.verifications.fetch_add(1, Ordering::Relaxed);
        let argon2 = self.argon2.clone();
        let settings = self.settings;
        self.blocking(move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Verification::Mismatch;
            };
            // The stored hash carries its own parameters; verify with those, then compare with ours.
            if argon2
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_err()
            {
                return Verification::Mismatch;
            }
            if has_settings(&parsed, settings) {
                Verification::Match
            } else {
                Verification::MatchNeedsRehash
            }
        })
        .await
    }

    /// Spends the same effort as a real verification, for a login name that does not exist, so that timing does
    /// not tell which names are taken.
    pub async fn verify_dummy(&self, password: SecretString) -> Result<(), HashError> {
        self.verify(password, self.dummy_hash.clone()).await.map(|_| ())
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Worker)?;
        let load = self.load.clone();
        // The permit moves into the blocking task and is released when the hash ends, not when this future is
        // dropped: a cancelled request cannot stop a running hash, so it must not free its place either, or aborted
        // sign-ins would stack up hashes (and their memory) past the limit.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Dropped before the permit (reverse order), even if the hash panics.
            let _running = load.start();
            f()
        })
        .await
        .map_err(|_| HashError::Worker)
    }
}

#[cfg(test)]
impl PasswordHasher {
    /// A hasher that runs at most `limit` hashes at once, whatever the number of cores.
    pub(crate) fn limited(settings: Argon2Settings, limit: usize) -> Result<Self, HashError> {
        Ok(PasswordHasher {
            permits: Arc::new(Semaphore::new(limit)),
            ..PasswordHasher::new(settings)?
        })
    }

    /// Hashes running right now.
    pub(crate) fn hashes_running(&self) -> usize {
        self.load.running.load(Ordering::SeqCst)
    }

    /// The most hashes that ever ran at once.
    pub(crate) fn peak_hashes(&self) -> usize {
        self.load.peak.load(Ordering::SeqCst)
    }
}

fn has_settings(hash: &PasswordHash<'_>, want: Argon2Settings) -> bool {
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.version != Some(Version::V0x13.into()) {
        return false;
    }
    match Params::try_from(hash) {
        Ok(p) => p.m_cost() == want.memory_kib && p.t_cost() == want.iterations && p.p_cost() == want.parallelism,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn defaults_are_owasp_minimum_argon2id() {
        let d = Argon2Settings::default();
        assert_eq!((d.memory_kib, d.iterations, d.parallelism), (19456, 2, 1));
        let h = PasswordHasher::new(d).expect("hasher");
        let hash = h.hash("a password".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    }

    #[tokio::test]
    async fn salts_differ_and_verification_is_exact() {
        let h = PasswordHasher::new(cheap()).expect("hasher");
        let a = h.hash("same password".into()).await.expect("hash");
        let b = h.hash("same password".into()).await.expect("hash");
        assert_ne!(a, b);
        assert_eq!(
            h.verify("same password".into(), a.clone()).await.expect("verify"),
            Verification::Match
        );
        assert!(!h
            .verify("same passwor".into(), a.clone())
            .await
            .expect("verify")
            .is_match());
        assert!(!h
            .verify("Same password".into(), a.clone())
            .await
            .expect("verify")
            .is_match());
        assert!(!h
            .verify("same password".into(), "garbage".into())
            .await
            .expect("verify")
            .is_match());
    }

    #[tokio::test]
    async fn old_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(cheap()).expect("hasher");
        let hash = old.hash("upgrade me please".into()).await.expect("hash");
        let new = PasswordHasher::new(Argon2Settings {
            memory_kib: 128,
            ..cheap()
        })
        .expect("hasher");
        assert_eq!(
            new.verify("upgrade me please".into(), hash).await.expect("verify"),
            Verification::MatchNeedsRehash
        );
    }

    #[tokio::test]
    async fn dummy_never_matches() {
        let h = PasswordHasher::new(cheap()).expect("hasher");
        h.verify_dummy("anything".into()).await.expect("dummy");
        assert!(!h
            .verify("".into(), h.dummy_hash.clone())
            .await
            .expect("verify")
            .is_match());
    }
}
