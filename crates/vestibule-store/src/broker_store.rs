//! The store as the broker sees it: [`BrokerStore`](vestibule_core::storage::BrokerStore), each method the
//! inherent one of the same name, its [`StoreError`](crate::StoreError) mapped to a
//! [`StorageError`](vestibule_core::storage::StorageError).

use async_trait::async_trait;
use vestibule_core::storage::{
    self, AccessToken, Account, AuditEvent, BrokerStore, EmailToken, EmailTokenPurpose, IdentityRecord,
    NewLocalAccount, PendingLink, PendingRecord, PendingSecondFactor, RememberSeries, SessionRecord, StorageError,
    TotpFactor, Unlinked,
};
use vestibule_core::storage::{CounterKey, CounterRecord, FailureStep, ThrottleCounters};
use vestibule_core::storage::{PasskeyCeremony, PasskeyRecord};
use vestibule_core::{AccountId, ExternalIdentity, SourceId, Subject, Timestamp};

use crate::{RevocationListener, Store};

#[async_trait]
impl storage::RevocationListener for RevocationListener {
    async fn recv(&mut self) -> Result<String, StorageError> {
        Ok(RevocationListener::recv(self).await?)
    }
}

// Inherent methods win over trait methods of the same name, so `self.x(..)` below is the store's own.
#[async_trait]
impl BrokerStore for Store {
    fn throttle_counters(&self) -> Option<&dyn ThrottleCounters> {
        Some(self)
    }

    async fn create_local_account(&self, new: &NewLocalAccount, now: Timestamp) -> Result<AccountId, StorageError> {
        Ok(self.create_local_account(new, now).await?)
    }

    async fn create_account_for_identity(
        &self,
        identity: &ExternalIdentity,
        email_verified: bool,
        now: Timestamp,
    ) -> Result<AccountId, StorageError> {
        Ok(self.create_account_for_identity(identity, email_verified, now).await?)
    }

    async fn link_identity(
        &self,
        identity: &ExternalIdentity,
        account: &AccountId,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        Ok(self.link_identity(identity, account, now).await?)
    }

    async fn find_identity(
        &self,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<Option<IdentityRecord>, StorageError> {
        Ok(self.find_identity(source, subject).await?)
    }

    async fn record_identity_login(&self, identity: &ExternalIdentity, now: Timestamp) -> Result<(), StorageError> {
        Ok(self.record_identity_login(identity, now).await?)
    }

    async fn identities_of(&self, account: &AccountId) -> Result<Vec<IdentityRecord>, StorageError> {
        Ok(self.identities_of(account).await?)
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, StorageError> {
        Ok(self.get_account(id).await?)
    }

    async fn accounts_with_email(&self, email: &str) -> Result<Vec<Account>, StorageError> {
        Ok(self.accounts_with_email(email).await?)
    }

    async fn account_with_login(&self, login: &str) -> Result<Option<AccountId>, StorageError> {
        Ok(self.account_with_login(login).await?)
    }

    async fn set_account_disabled(&self, id: &AccountId, disabled: bool) -> Result<bool, StorageError> {
        Ok(self.set_account_disabled(id, disabled).await?)
    }

    async fn unlink_identity(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<Unlinked, StorageError> {
        Ok(self.unlink_identity(account, source, subject).await?)
    }

    async fn end_identity_grants(
        &self,
        account: &AccountId,
        source: &SourceId,
        subject: &Subject,
    ) -> Result<Vec<String>, StorageError> {
        Ok(self.end_identity_grants(account, source, subject).await?)
    }

    async fn end_sessions_and_series_of(&self, account: &AccountId) -> Result<Vec<String>, StorageError> {
        Ok(self.end_sessions_and_series_of(account).await?)
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StorageError> {
        Ok(self.insert_session(s).await?)
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StorageError> {
        Ok(self.get_session(id_hash).await?)
    }

    async fn touch_session(&self, id_hash: &str, seen: Timestamp) -> Result<(), StorageError> {
        Ok(self.touch_session(id_hash, seen).await?)
    }

    async fn mark_session_stale(&self, id_hash: &str) -> Result<(), StorageError> {
        Ok(self.mark_session_stale(id_hash).await?)
    }

    async fn record_recheck(&self, hash: &str, at: Timestamp) -> Result<(), StorageError> {
        Ok(self.record_recheck(hash, at).await?)
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StorageError> {
        Ok(self.delete_session(id_hash).await?)
    }

    async fn delete_session_of(&self, account: &AccountId, id_hash: &str) -> Result<bool, StorageError> {
        Ok(self.delete_session_of(account, id_hash).await?)
    }

    async fn sessions_of(&self, account: &AccountId) -> Result<Vec<SessionRecord>, StorageError> {
        Ok(self.sessions_of(account).await?)
    }

    async fn delete_sessions_of(&self, account: &AccountId, keep: Option<&str>) -> Result<Vec<String>, StorageError> {
        Ok(self.delete_sessions_of(account, keep).await?)
    }

    async fn purge_sessions(&self, now: Timestamp, idle_cutoff: Timestamp) -> Result<u64, StorageError> {
        Ok(self.purge_sessions(now, idle_cutoff).await?)
    }

    async fn count_sessions(&self, now: Timestamp, idle_cutoff: Timestamp) -> Result<u64, StorageError> {
        Ok(self.count_sessions(now, idle_cutoff).await?)
    }

    async fn publish_revoked(&self, hashes: &[String]) -> Result<(), StorageError> {
        Ok(self.publish_revoked(hashes).await?)
    }

    async fn revocation_listener(&self) -> Result<Option<Box<dyn storage::RevocationListener>>, StorageError> {
        Ok(self
            .revocation_listener()
            .await?
            .map(|l| Box::new(l) as Box<dyn storage::RevocationListener>))
    }

    async fn insert_remember(&self, s: &RememberSeries) -> Result<(), StorageError> {
        Ok(self.insert_remember(s).await?)
    }

    async fn get_remember(&self, series_hash: &str) -> Result<Option<RememberSeries>, StorageError> {
        Ok(self.get_remember(series_hash).await?)
    }

    async fn rotate_remember(
        &self,
        series_hash: &str,
        old_token_hash: &str,
        new_token_hash: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        Ok(self
            .rotate_remember(series_hash, old_token_hash, new_token_hash, now)
            .await?)
    }

    async fn delete_remember(&self, series_hash: &str) -> Result<bool, StorageError> {
        Ok(self.delete_remember(series_hash).await?)
    }

    async fn delete_remember_of(&self, account: &AccountId, keep: Option<&str>) -> Result<u64, StorageError> {
        Ok(self.delete_remember_of(account, keep).await?)
    }

    async fn purge_remember(&self, now: Timestamp) -> Result<u64, StorageError> {
        Ok(self.purge_remember(now).await?)
    }

    async fn insert_token(&self, t: &AccessToken) -> Result<(), StorageError> {
        Ok(self.insert_token(t).await?)
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<AccessToken>, StorageError> {
        Ok(self.find_token(token_hash).await?)
    }

    async fn tokens_of(&self, account: &AccountId) -> Result<Vec<AccessToken>, StorageError> {
        Ok(self.tokens_of(account).await?)
    }

    async fn delete_token(&self, account: &AccountId, id: &str) -> Result<Option<String>, StorageError> {
        Ok(self.delete_token(account, id).await?)
    }

    async fn touch_token(&self, token_hash: &str, at: Timestamp) -> Result<(), StorageError> {
        Ok(self.touch_token(token_hash, at).await?)
    }

    async fn purge_tokens(&self, now: Timestamp) -> Result<u64, StorageError> {
        Ok(self.purge_tokens(now).await?)
    }

    async fn insert_pending(&self, p: &PendingRecord) -> Result<(), StorageError> {
        Ok(self.insert_pending(p).await?)
    }

    async fn take_pending(&self, state_hash: &str) -> Result<Option<PendingRecord>, StorageError> {
        Ok(self.take_pending(state_hash).await?)
    }

    async fn purge_pending(&self, now: Timestamp) -> Result<u64, StorageError> {
        Ok(self.purge_pending(now).await?)
    }

    async fn insert_pending_link(&self, p: &PendingLink) -> Result<(), StorageError> {
        Ok(self.insert_pending_link(p).await?)
    }

    async fn get_pending_link(&self, token_hash: &str) -> Result<Option<PendingLink>, StorageError> {
        Ok(self.get_pending_link(token_hash).await?)
    }

    async fn take_pending_link(&self, token_hash: &str) -> Result<Option<PendingLink>, StorageError> {
        Ok(self.take_pending_link(token_hash).await?)
    }

    async fn purge_pending_links(&self, now: Timestamp) -> Result<u64, StorageError> {
        Ok(self.purge_pending_links(now).await?)
    }

    async fn put_totp(
        &self,
        account: &AccountId,
        sealed_secret: &str,
        begun_by: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        Ok(self.put_totp(account, sealed_secret, begun_by, now).await?)
    }

    async fn get_totp(&self, account: &AccountId) -> Result<Option<TotpFactor>, StorageError> {
        Ok(self.get_totp(account).await?)
    }

    async fn accept_totp_step(
        &self,
        account: &AccountId,
        step: i64,
        confirm: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        Ok(self.accept_totp_step(account, step, confirm, now).await?)
    }

    async fn delete_second_factors(&self, account: &AccountId) -> Result<bool, StorageError> {
        Ok(self.delete_second_factors(account).await?)
    }

    async fn replace_recovery_codes(
        &self,
        account: &AccountId,
        code_hashes: &[String],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        Ok(self.replace_recovery_codes(account, code_hashes, now).await?)
    }

    async fn use_recovery_code(
        &self,
        account: &AccountId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        Ok(self.use_recovery_code(account, code_hash, now).await?)
    }

    async fn recovery_codes_left(&self, account: &AccountId) -> Result<u32, StorageError> {
        Ok(self.recovery_codes_left(account).await?)
    }

    async fn insert_pending_second_factor(&self, p: &PendingSecondFactor) -> Result<(), StorageError> {
        Ok(self.insert_pending_second_factor(p).await?)
    }

    async fn get_pending_second_factor(&self, token_hash: &str) -> Result<Option<PendingSecondFactor>, StorageError> {
        Ok(self.get_pending_second_factor(token_hash).await?)
    }

    async fn fail_pending_second_factor(&self, token_hash: &str) -> Result<Option<u32>, StorageError> {
        Ok(self.fail_pending_second_factor(token_hash).await?)
    }

    async fn take_pending_second_factor(&self, token_hash: &str) -> Result<Option<PendingSecondFactor>, StorageError> {
        Ok(self.take_pending_second_factor(token_hash).await?)
    }

    async fn purge_pending_second_factor(&self, now: Timestamp) -> Result<u64, StorageError> {
        Ok(self.purge_pending_second_factor(now).await?)
    }

    async fn insert_passkey(&self, p: &PasskeyRecord) -> Result<(), StorageError> {
        Ok(self.insert_passkey(p).await?)
    }

    async fn passkeys_of(&self, account: &AccountId) -> Result<Vec<PasskeyRecord>, StorageError> {
        Ok(self.passkeys_of(account).await?)
    }

    async fn passkey_by_cred_id(&self, cred_id: &str) -> Result<Option<PasskeyRecord>, StorageError> {
        Ok(self.passkey_by_cred_id(cred_id).await?)
    }

    async fn record_passkey_use(
        &self,
        account: &AccountId,
        id: &str,
        previous: &str,
        credential: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        Ok(self.record_passkey_use(account, id, previous, credential, now).await?)
    }

    async fn delete_passkey(&self, account: &AccountId, id: &str) -> Result<bool, StorageError> {
        Ok(self.delete_passkey(account, id).await?)
    }

    async fn delete_totp(&self, account: &AccountId) -> Result<bool, StorageError> {
        Ok(self.delete_totp(account).await?)
    }

    async fn insert_passkey_ceremony(&self, c: &PasskeyCeremony) -> Result<(), StorageError> {
        Ok(self.insert_passkey_ceremony(c).await?)
    }

    async fn take_passkey_ceremony(&self, id_hash: &str) -> Result<Option<PasskeyCeremony>, StorageError> {
        Ok(self.take_passkey_ceremony(id_hash).await?)
    }

    async fn purge_passkey_ceremonies(&self, now: Timestamp) -> Result<u64, StorageError> {
        Ok(self.purge_passkey_ceremonies(now).await?)
    }

    async fn insert_email_token(&self, t: &EmailToken) -> Result<(), StorageError> {
        Ok(self.insert_email_token(t).await?)
    }

    async fn take_email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> Result<Option<EmailToken>, StorageError> {
        Ok(self.take_email_token(token_hash, purpose).await?)
    }

    async fn get_email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> Result<Option<EmailToken>, StorageError> {
        Ok(self.get_email_token(token_hash, purpose).await?)
    }

    async fn delete_email_tokens_of(
        &self,
        account: &AccountId,
        purpose: EmailTokenPurpose,
    ) -> Result<u64, StorageError> {
        Ok(self.delete_email_tokens_of(account, purpose).await?)
    }

    async fn confirm_email(&self, account: &AccountId, email: &str) -> Result<bool, StorageError> {
        Ok(self.confirm_email(account, email).await?)
    }

    async fn email_tokens_of(
        &self,
        account: &AccountId,
        purpose: EmailTokenPurpose,
    ) -> Result<Vec<EmailToken>, StorageError> {
        Ok(self.email_tokens_of(account, purpose).await?)
    }

    async fn change_email(&self, account: &AccountId, email: &str) -> Result<bool, StorageError> {
        Ok(self.change_email(account, email).await?)
    }

    async fn purge_email_tokens(&self, now: Timestamp) -> Result<u64, StorageError> {
        Ok(self.purge_email_tokens(now).await?)
    }

    async fn delete_tokens_of(&self, account: &AccountId) -> Result<Vec<String>, StorageError> {
        Ok(self.delete_tokens_of(account).await?)
    }

    async fn audit(&self, at: Timestamp, e: &AuditEvent<'_>) -> Result<(), StorageError> {
        Ok(self.audit(at, e).await?)
    }

    async fn list_accounts(&self, q: &vestibule_core::storage::AccountQuery) -> Result<Vec<Account>, StorageError> {
        Ok(self.list_accounts(q).await?)
    }

    async fn delete_account(
        &self,
        id: &AccountId,
    ) -> Result<Option<vestibule_core::storage::AccountDeletion>, StorageError> {
        Ok(self.delete_account(id).await?)
    }

    async fn assigned_groups_of(&self, id: &AccountId) -> Result<Vec<String>, StorageError> {
        Ok(self.assigned_groups_of(id).await?)
    }

    async fn set_assigned_groups(
        &self,
        id: &AccountId,
        groups: &[String],
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        Ok(self.set_assigned_groups(id, groups, now).await?)
    }

    async fn query_audit(
        &self,
        q: &vestibule_core::storage::AuditQuery,
    ) -> Result<Vec<vestibule_core::storage::AuditRecord>, StorageError> {
        Ok(self.query_audit(q).await?)
    }

    async fn get_or_insert_key(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String, StorageError> {
        Ok(self.get_or_insert_key(name, candidate, now).await?)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        Ok(self.ping().await?)
    }

    async fn close(&self) {
        self.close().await;
    }
}

#[async_trait]
impl ThrottleCounters for Store {
    async fn counters(&self, keys: &[CounterKey]) -> Result<Vec<CounterRecord>, StorageError> {
        Ok(self.counters(keys).await?)
    }

    async fn count_failure(&self, keys: &[CounterKey], step: &FailureStep) -> Result<(), StorageError> {
        Ok(self.count_failure(keys, step).await?)
    }

    async fn forget_counters(&self, keys: &[CounterKey]) -> Result<u64, StorageError> {
        Ok(self.forget_counters(keys).await?)
    }

    async fn forget_name(&self, name: &str) -> Result<u64, StorageError> {
        Ok(self.forget_name(name).await?)
    }

    async fn recent_counters(&self, since: Timestamp, limit: u32) -> Result<Vec<CounterRecord>, StorageError> {
        Ok(self.recent_counters(since, limit).await?)
    }

    async fn purge_counters(&self, now: Timestamp) -> Result<u64, StorageError> {
        Ok(self.purge_counters(now).await?)
    }
}
