use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use vestibule_core::{
    AuthSource, CredentialRepository, ExternalIdentity, Flow, NewPasswordHash, PasswordChangeError, PasswordChanger,
    PasswordFlow, RejectReason, SourceError, SourceId, Subject,
};

use crate::{Argon2Settings, PasswordHasher, PasswordPolicy, Verification};

/// `kind = "local"` in the server's TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// The source id (default in the embedded configuration: `local`).
    pub id: SourceId,
    /// The heading of its form on the login page (default "Password").
    pub display_name: Option<String>,
    /// Argon2id cost for new hashes; older hashes are upgraded at the next successful sign-in.
    #[serde(default)]
    pub argon2: Argon2Settings,
    /// Length limits for new passwords.
    #[serde(default)]
    pub password: PasswordPolicy,
}

/// Local accounts: a login name and an argon2id password hash kept by the broker's store.
pub struct LocalSource {
    id: SourceId,
    display_name: String,
    repo: Arc<dyn CredentialRepository>,
    hasher: Arc<PasswordHasher>,
    policy: PasswordPolicy,
}

impl fmt::Debug for LocalSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSource")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl LocalSource {
    /// A source over `repo`, hashing with `hasher`.
    pub fn new(config: &LocalConfig, repo: Arc<dyn CredentialRepository>, hasher: Arc<PasswordHasher>) -> Self {
        LocalSource {
            id: config.id.clone(),
            display_name: config.display_name.clone().unwrap_or_else(|| "Password".to_owned()),
            repo,
            hasher,
            policy: config.password,
        }
    }

    /// The hasher, for setting passwords with the same parameters.
    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        &self.hasher
    }

    /// The policy new passwords must meet.
    pub fn policy(&self) -> PasswordPolicy {
        self.policy
    }
}

impl AuthSource for LocalSource {
    fn id(&self) -> &SourceId {
        &self.id
    }
    fn display_name(&self) -> &str {
        &self.display_name
    }
    fn flow(&self) -> Flow<'_> {
        Flow::Password(self)
    }
}

fn unavailable(e: impl Into<vestibule_core::BoxError>) -> SourceError {
    SourceError::Unavailable(e.into())
}

#[async_trait]
impl PasswordFlow for LocalSource {
    async fn authenticate(&self, login: &str, password: &SecretString) -> Result<ExternalIdentity, SourceError> {
        // An empty password is refused before the store is asked (nothing a store could answer changes that), at
        // the cost of one argon2 verification like every other refusal.
        if password.expose_secret().is_empty() {
            self.hasher
                .verify_dummy(SecretString::from(""))
                .await
                .map_err(unavailable)?;
            return Err(SourceError::Rejected(RejectReason::EmptyPassword));
        }
        // `Alice`, `alice` and `ＡＬＩＣＥ` are one account: names are looked up by their canonical form. A name
        // that has none (empty, invisible characters) cannot belong to anyone and is treated as unknown.
        let record = match vestibule_core::canonical_login(login) {
            Ok(canonical) => self.repo.find_password(&canonical).await.map_err(unavailable)?,
            Err(_) => None,
        };
        // Over-long and unknown cost one argon2 verification like a known name, so that neither the answer nor
        // its timing says which case it was. Over-long input is cut for the dummy only, to bound the work.
        let Some(record) =
            record.filter(|_| password.expose_secret().chars().count() <= self.policy.max_length.max(1024))
        else {
            let bounded: String = password.expose_secret().chars().take(1024).collect();
            self.hasher.verify_dummy(bounded.into()).await.map_err(unavailable)?;
            return Err(SourceError::Rejected(RejectReason::InvalidCredentials));
        };
        let outcome = self
            .hasher
            .verify(password.clone(), record.password_hash.clone())
            .await
            .map_err(unavailable)?;
        if !outcome.is_match() {
            return Err(SourceError::Rejected(RejectReason::InvalidCredentials));
        }
        if record.disabled {
            return Err(SourceError::Rejected(RejectReason::AccountDisabled));
        }
        if outcome == Verification::MatchNeedsRehash {
            self.upgrade(&record.account_id, &record.password_hash, password).await;
        }
        let mut identity = ExternalIdentity::new(self.id.clone(), Subject::new(record.account_id.as_str())?)
            .with_login(record.username);
        if let Some(name) = record.display_name {
            identity = identity.with_display_name(name);
        }
        if let Some(email) = record.email {
            identity = identity.with_email(email, record.email_verified);
        }
        Ok(identity)
    }
}

impl LocalSource {
    /// Re-hashes with the current parameters. A failure here must not fail the sign-in that triggered it.
    async fn upgrade(&self, account: &vestibule_core::AccountId, old: &str, password: &SecretString) {
        match self.hasher.hash(password.clone()).await {
            Ok(new) => {
                match self.repo.replace_password_hash(account, old, &new).await {
                    Ok(true) => {
                        tracing::info!(account = %account, "password hash upgraded to current argon2 parameters")
                    }
                    // Changed meanwhile (a password change won the race): nothing to upgrade.
                    Ok(false) => {}
                    Err(e) => tracing::warn!(account = %account, error = %e, "could not store upgraded password hash"),
                }
            }
            Err(e) => tracing::warn!(account = %account, error = %e, "could not re-hash password"),
        }
    }
}

#[async_trait]
impl PasswordChanger for LocalSource {
    async fn change_password(
        &self,
        account: &vestibule_core::AccountId,
        current: &SecretString,
        new: &SecretString,
    ) -> Result<(), PasswordChangeError> {
        let unavailable = |e: vestibule_core::BoxError| PasswordChangeError::Unavailable(e);
        let record = self.repo.find_password_of(account).await.map_err(unavailable)?;
        let Some(record) = record else {
            return Err(PasswordChangeError::NoPassword);
        };
        let check = self.hasher.verify(current.clone(), record.password_hash.clone()).await;
        if !check.map_err(|e| unavailable(Box::new(e)))?.is_match() {
            return Err(PasswordChangeError::WrongCurrent);
        }
        match self.replace_checked(account, &record.password_hash, new).await? {
            true => Ok(()),
            false => Err(PasswordChangeError::WrongCurrent),
        }
    }

    async fn has_password(&self, account: &vestibule_core::AccountId) -> Result<bool, PasswordChangeError> {
        let record = self.repo.find_password_of(account).await;
        Ok(record.map_err(PasswordChangeError::Unavailable)?.is_some())
    }

    async fn reset_password(
        &self,
        account: &vestibule_core::AccountId,
        new: &SecretString,
    ) -> Result<(), PasswordChangeError> {
        let unavailable = |e: vestibule_core::BoxError| PasswordChangeError::Unavailable(e);
        let record = self.repo.find_password_of(account).await.map_err(unavailable)?;
        let Some(record) = record else {
            return Err(PasswordChangeError::NoPassword);
        };
        // A change that won a race since the record was read makes this one fail rather than be overwritten.
        match self.replace_checked(account, &record.password_hash, new).await? {
            true => Ok(()),
            false => Err(PasswordChangeError::Unavailable(
                "the password changed meanwhile".into(),
            )),
        }
    }

    async fn hash_new_password(&self, new: &SecretString) -> Result<NewPasswordHash, PasswordChangeError> {
        Ok(NewPasswordHash {
            source: self.id.clone(),
            hash: self.checked_hash(new).await?.into(),
        })
    }
}

impl LocalSource {
    /// Applies the policy to `new` and hashes it.
    async fn checked_hash(&self, new: &SecretString) -> Result<String, PasswordChangeError> {
        self.policy
            .check(new.expose_secret())
            .map_err(|e| PasswordChangeError::Policy(e.to_string()))?;
        self.hasher
            .hash(new.clone())
            .await
            .map_err(|e| PasswordChangeError::Unavailable(Box::new(e)))
    }

    /// Applies the policy to `new`, hashes it, and swaps it for `old_hash` in the transaction that also ends the
    /// account's sessions ([`CredentialRepository::change_password_hash`]): compare-and-swap on the hash that was
    /// read, so two concurrent changes cannot both win. `false` when the hash is no longer `old_hash`.
    async fn replace_checked(
        &self,
        account: &vestibule_core::AccountId,
        old_hash: &str,
        new: &SecretString,
    ) -> Result<bool, PasswordChangeError> {
        let hash = self.checked_hash(new).await?;
        self.repo
            .change_password_hash(account, old_hash, &hash)
            .await
            .map_err(PasswordChangeError::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use vestibule_core::{AccountId, BoxError, StoredPassword};

    use super::*;

    #[derive(Default)]
    struct MapRepo(Mutex<HashMap<String, StoredPassword>>);

    #[async_trait]
    impl CredentialRepository for MapRepo {
        async fn find_password(&self, username: &str) -> Result<Option<StoredPassword>, BoxError> {
            Ok(self.0.lock().map_err(|_| "poisoned")?.get(username).cloned())
        }
        async fn find_password_of(&self, account: &AccountId) -> Result<Option<StoredPassword>, BoxError> {
            Ok(self
                .0
                .lock()
                .map_err(|_| "poisoned")?
                .values()
                .find(|r| &r.account_id == account)
                .cloned())
        }
        async fn replace_password_hash(&self, account: &AccountId, old: &str, new: &str) -> Result<bool, BoxError> {
            let mut m = self.0.lock().map_err(|_| "poisoned")?;
            let mut done = false;
            for r in m.values_mut() {
                if &r.account_id == account && r.password_hash == old {
                    r.password_hash = new.to_owned();
                    done = true;
                }
            }
            Ok(done)
        }
    }

    fn settings(m: u32) -> Argon2Settings {
        Argon2Settings {
            memory_kib: m,
            iterations: 1,
            parallelism: 1,
        }
    }

    async fn setup(hash_m: u32, source_m: u32, disabled: bool) -> (Arc<MapRepo>, LocalSource) {
        let repo = Arc::new(MapRepo::default());
        let old = PasswordHasher::new(settings(hash_m)).expect("hasher");
        let hash = old.hash("correct horse".into()).await.expect("hash");
        repo.0.lock().expect("lock").insert(
            "alice".into(),
            StoredPassword {
                account_id: AccountId::new("acc1").expect("id"),
                username: "alice".into(),
                display_name: Some("Alice".into()),
                email: Some("alice@example.org".into()),
                email_verified: false,
                password_hash: hash,
                disabled,
            },
        );
        let config = LocalConfig {
            id: SourceId::new("local").expect("id"),
            display_name: None,
            argon2: settings(source_m),
            password: PasswordPolicy::default(),
        };
        let hasher = Arc::new(PasswordHasher::new(settings(source_m)).expect("hasher"));
        let source = LocalSource::new(&config, repo.clone(), hasher);
        (repo, source)
    }

    fn reason(r: Result<ExternalIdentity, SourceError>) -> RejectReason {
        match r {
            Err(SourceError::Rejected(r)) => r,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn right_password_proves_the_account() {
        let (_, s) = setup(64, 64, false).await;
        let id = s.authenticate("alice", &"correct horse".into()).await.expect("ok");
        assert_eq!(id.subject.as_str(), "acc1");
        assert_eq!(id.login.as_deref(), Some("alice"));
        assert_eq!(id.email.as_deref(), Some("alice@example.org"));
        assert!(!id.email_verified);
    }

    #[tokio::test]
    async fn every_failure_is_a_rejection() {
        let (_, s) = setup(64, 64, false).await;
        assert_eq!(
            reason(s.authenticate("alice", &"wrong horse".into()).await),
            RejectReason::InvalidCredentials
        );
        assert_eq!(
            reason(s.authenticate("bob", &"correct horse".into()).await),
            RejectReason::InvalidCredentials
        );
        // A name that has no canonical form is just another unknown name.
        assert_eq!(
            reason(s.authenticate("al\u{200B}ice", &"correct horse".into()).await),
            RejectReason::InvalidCredentials
        );
        assert_eq!(
            reason(s.authenticate("alice", &"".into()).await),
            RejectReason::EmptyPassword
        );
        let huge = "x".repeat(100_000);
        assert_eq!(
            reason(s.authenticate("alice", &huge.into()).await),
            RejectReason::InvalidCredentials
        );
    }

    #[tokio::test]
    async fn login_names_match_in_canonical_form() {
        let (repo, s) = setup(64, 64, false).await;
        // The repository is keyed by the canonical form; the record keeps the name as it was typed at creation.
        if let Some(r) = repo.0.lock().expect("lock").get_mut("alice") {
            r.username = "Alice".into();
        }
        for typed in ["alice", "Alice", "ALICE", "ＡＬＩＣＥ", "ａｌｉｃｅ"] {
            let id = s.authenticate(typed, &"correct horse".into()).await;
            let id = id.unwrap_or_else(|e| panic!("{typed:?}: {e:?}"));
            assert_eq!(id.subject.as_str(), "acc1");
            assert_eq!(
                id.login.as_deref(),
                Some("Alice"),
                "the display form, whatever was typed"
            );
        }
        assert_eq!(
            reason(s.authenticate("alice2", &"correct horse".into()).await),
            RejectReason::InvalidCredentials
        );
    }

    #[tokio::test]
    async fn disabled_accounts_are_refused_after_the_hash_check() {
        let (_, s) = setup(64, 64, true).await;
        assert_eq!(
            reason(s.authenticate("alice", &"correct horse".into()).await),
            RejectReason::AccountDisabled
        );
        // A wrong password on a disabled account says "invalid", not "disabled": no oracle for the password.
        assert_eq!(
            reason(s.authenticate("alice", &"wrong horse".into()).await),
            RejectReason::InvalidCredentials
        );
    }

    #[tokio::test]
    async fn old_hashes_are_upgraded_on_success() {
        let (repo, s) = setup(64, 96, false).await;
        s.authenticate("alice", &"correct horse".into()).await.expect("ok");
        let stored = repo.0.lock().expect("lock")["alice"].password_hash.clone();
        assert!(stored.contains("m=96,"), "{stored}");
        // And the upgraded hash still verifies.
        s.authenticate("alice", &"correct horse".into())
            .await
            .expect("ok after upgrade");
    }

    /// A sign-in whose request goes away (client gone, deadline hit) while its hash runs must keep its place in
    /// the hash limit until the hash ends: otherwise cancelled requests pile up argon2 work (and memory) without
    /// bound, which is exactly what a flood of aborted sign-ins would do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_sign_ins_never_run_more_hashes_than_the_limit() {
        const LIMIT: usize = 2;
        // 32 MiB, 2 passes: tens of milliseconds per hash, far longer than a cancelled sign-in lives below.
        let slow = Argon2Settings {
            memory_kib: 32 * 1024,
            iterations: 2,
            parallelism: 1,
        };
        let (repo, _) = setup(64, 64, false).await;
        let hasher = Arc::new(PasswordHasher::limited(slow, LIMIT).expect("hasher"));
        let slow_hash = hasher.hash("correct horse".into()).await.expect("hash");
        if let Some(r) = repo.0.lock().expect("lock").get_mut("alice") {
            r.password_hash = slow_hash;
        }
        let config = LocalConfig {
            id: SourceId::new("local").expect("id"),
            display_name: None,
            argon2: slow,
            password: PasswordPolicy::default(),
        };
        let source = LocalSource::new(&config, repo, hasher.clone());
        let password: SecretString = "correct horse".into();
        for i in 0..8 {
            // A known name (real hash) and an unknown one (dummy hash) in turn: both paths hold the limit.
            let login = if i % 2 == 0 { "alice" } else { "nobody" };
            let started = source.authenticate(login, &password);
            let cancelled = tokio::time::timeout(Duration::from_millis(2), started).await;
            assert!(
                cancelled.is_err(),
                "sign-in {i} ended before it was cancelled: make the hash slower"
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while hasher.hashes_running() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "hashes still running after a minute"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let peak = hasher.peak_hashes();
        assert!(
            (1..=LIMIT).contains(&peak),
            "{peak} hashes ran at once after cancelled sign-ins; the limit is {LIMIT}"
        );
    }

    #[tokio::test]
    async fn password_change_checks_the_current_password_and_the_policy() {
        let (repo, s) = setup(64, 64, false).await;
        let acc = AccountId::new("acc1").expect("id");
        let r = s
            .change_password(&acc, &"wrong horse".into(), &"a brand new password".into())
            .await;
        assert!(matches!(r, Err(PasswordChangeError::WrongCurrent)), "{r:?}");
        let r = s.change_password(&acc, &"correct horse".into(), &"short".into()).await;
        assert!(
            matches!(r, Err(PasswordChangeError::Policy(ref m)) if m.contains("at least 8")),
            "{r:?}"
        );
        let r = s
            .change_password(&AccountId::new("nobody").expect("id"), &"x".into(), &"y".into())
            .await;
        assert!(matches!(r, Err(PasswordChangeError::NoPassword)), "{r:?}");
        s.change_password(&acc, &"correct horse".into(), &"a brand new password".into())
            .await
            .expect("changed");
        assert!(
            s.authenticate("alice", &"correct horse".into()).await.is_err(),
            "old password dead"
        );
        s.authenticate("alice", &"a brand new password".into())
            .await
            .expect("new password works");
        drop(repo);
    }
}
