//! Account administration for operators (`vestibule user show|disable|enable TARGET`): finding an account from
//! what an operator knows about it, showing it, and disabling or enabling it with an audit row. The CLI is a thin
//! layer over these, so the rules (resolution order, never guessing between accounts) live here once.

use vestibule_core::storage::{Account, AuditEvent, AuditKind, AuditQuery, AuditRecord, NewLocalAccount};
use vestibule_core::{AccountId, SourceId, Subject};

use crate::{AccountView, Broker, BrokerError, PasskeyView, SessionView, TokenView};

/// Which rule of [`Broker::find_accounts`] matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The account id itself.
    AccountId,
    /// `source:subject` of one of the account's identities.
    Identity,
    /// The login name of the account's local password.
    LoginName,
    /// The account's own email address.
    Email,
}

impl std::fmt::Display for MatchedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MatchedBy::AccountId => "account id",
            MatchedBy::Identity => "source:subject",
            MatchedBy::LoginName => "login name",
            MatchedBy::Email => "email",
        })
    }
}

/// What a target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountLookup {
    /// Exactly one account.
    Found {
        /// The account's id.
        id: AccountId,
        /// How the target named it.
        matched_by: MatchedBy,
    },
    /// Several accounts match (an email address they share): none is chosen.
    Ambiguous {
        /// How the target named them.
        matched_by: MatchedBy,
        /// Their ids, oldest account first.
        candidates: Vec<AccountId>,
    },
    /// No account matches.
    NotFound,
}

/// One account as an operator sees it (`vestibule user show`): everything it holds, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountDetails {
    /// The account, its ways in and its assigned groups ([`AccountView::groups`] for all its groups).
    pub account: AccountView,
    /// Its sessions, newest first (ids as their SHA-256).
    pub sessions: Vec<SessionView>,
    /// Its personal access tokens, newest first (never their values).
    pub tokens: Vec<TokenView>,
    /// Its second factors.
    pub factors: FactorsView,
    /// Its latest audit events, newest first (at most [`RECENT_AUDIT`]).
    pub recent_audit: Vec<AuditRecord>,
}

/// How many of an account's audit events [`Broker::account_details`] includes.
pub const RECENT_AUDIT: i64 = 20;

/// An account's second factors, as an operator sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FactorsView {
    /// Whether a confirmed authenticator app (TOTP) is set up.
    pub totp: bool,
    /// Its passkeys, oldest first.
    pub passkeys: Vec<PasskeyView>,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

impl Broker {
    /// Finds the account an operator means by `target`, trying in this order and stopping at the first rule that
    /// matches: an exact account id; `source:subject` when the part before the first `:` is a configured source
    /// id; the login name of a local password; the account's own email (ASCII case ignored). An email shared by
    /// several accounts is [`AccountLookup::Ambiguous`] with every candidate: the operator must pick by id, since
    /// disabling the wrong person is worse than asking.
    ///
    /// ```no_run
    /// # async fn demo(broker: vestibule::Broker) -> Result<(), vestibule::BrokerError> {
    /// use vestibule::AccountLookup;
    /// match broker.find_accounts("corp:5f0c2a7e-0d1b-4a1e-9c3f-2b6f1d8e7a90").await? {
    ///     AccountLookup::Found { id, matched_by } => println!("{id} by {matched_by}"),
    ///     AccountLookup::Ambiguous { candidates, .. } => println!("pick one of {candidates:?}"),
    ///     AccountLookup::NotFound => println!("no such account"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn find_accounts(&self, target: &str) -> Result<AccountLookup, BrokerError> {
        let found = |account: Account, matched_by: MatchedBy| AccountLookup::Found {
            id: account.id,
            matched_by,
        };
        if let Ok(id) = AccountId::new(target) {
            if let Some(account) = self.store.get_account(&id).await? {
                return Ok(found(account, MatchedBy::AccountId));
            }
        }
        // Only a configured source makes the text an identity key: a login name may contain ':' too.
        if let Some((source, subject)) = target.split_once(':') {
            if let (Some(_), Ok(source), Ok(subject)) =
                (self.source(source), SourceId::new(source), Subject::new(subject))
            {
                if let Some(identity) = self.store.find_identity(&source, &subject).await? {
                    if let Some(account) = self.store.get_account(&identity.account_id).await? {
                        return Ok(found(account, MatchedBy::Identity));
                    }
                }
            }
        }
        if let Some(id) = self.store.account_with_login(target).await? {
            if let Some(account) = self.store.get_account(&id).await? {
                return Ok(found(account, MatchedBy::LoginName));
            }
        }
        if target.contains('@') {
            let mut accounts = self.store.accounts_with_email(target).await?;
            if accounts.len() > 1 {
                return Ok(AccountLookup::Ambiguous {
                    matched_by: MatchedBy::Email,
                    candidates: accounts.into_iter().map(|a| a.id).collect(),
                });
            }
            if let Some(account) = accounts.pop() {
                return Ok(found(account, MatchedBy::Email));
            }
        }
        Ok(AccountLookup::NotFound)
    }

    /// The account with its identities, groups, sessions, tokens, second factors and latest audit events, or
    /// `None` when there is no such account. Reads only: nothing is audited.
    pub async fn account_details(&self, id: &AccountId) -> Result<Option<AccountDetails>, BrokerError> {
        let Some(account) = self.account_view(id).await? else {
            return Ok(None);
        };
        let sessions = self
            .store
            .sessions_of(id)
            .await?
            .into_iter()
            .map(SessionView::from)
            .collect();
        let tokens = self
            .store
            .tokens_of(id)
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect();
        let factors = FactorsView {
            totp: self.has_totp(id).await?,
            passkeys: self.passkeys(id).await?,
            recovery_codes_left: self.recovery_codes_left(id).await?,
        };
        let recent_audit = self
            .store
            .query_audit(&AuditQuery {
                account_id: Some(id.as_str().to_owned()),
                limit: RECENT_AUDIT,
                ..AuditQuery::default()
            })
            .await?;
        Ok(Some(AccountDetails {
            account,
            sessions,
            tokens,
            factors,
            recent_audit,
        }))
    }

    /// Disables or re-enables an account on an operator's order, through [`Broker::set_account_disabled`] (which
    /// ends every session, remember-me series and token of a disabled account and announces the ended sessions to
    /// the other nodes), and records `account_disabled` or `account_enabled` in the audit log with `detail` (who
    /// asked: `cli`). Returns how many sessions were ended, or `None` when there is no such account.
    pub async fn set_account_disabled_by_operator(
        &self,
        account: &AccountId,
        disabled: bool,
        detail: &str,
    ) -> Result<Option<usize>, BrokerError> {
        // Counted before, as they are gone afterwards. A session opened between the count and the update is still
        // ended (one transaction disables the account and deletes all its sessions); only the count misses it.
        let sessions = if disabled {
            self.store.sessions_of(account).await?.len()
        } else {
            0
        };
        if !self.set_account_disabled(account, disabled).await? {
            return Ok(None);
        }
        self.audit(&AuditEvent {
            account_id: Some(account.as_str()),
            detail: Some(detail),
            ..AuditEvent::of(if disabled {
                AuditKind::AccountDisabled
            } else {
                AuditKind::AccountEnabled
            })
        })
        .await;
        if disabled {
            self.notify(account, crate::Message::AccountDisabled).await;
        }
        Ok(Some(sessions))
    }

    /// Creates a local account with its password hash and its local identity (one transaction), and records
    /// `account_created` in the audit log with `detail` (who asked: `cli`, or the embedding app's own word). A
    /// login name already taken (compared in canonical form) is `BrokerError::Store(StorageError::Conflict)`.
    pub async fn create_local_account(&self, new: &NewLocalAccount, detail: &str) -> Result<AccountId, BrokerError> {
        let id = self.store.create_local_account(new, self.now()).await?;
        self.audit(&AuditEvent {
            account_id: Some(id.as_str()),
            source: Some(new.source.as_str()),
            subject: Some(id.as_str()),
            detail: Some(detail),
            ..AuditEvent::of(AuditKind::AccountCreated)
        })
        .await;
        self.changed(crate::hooks::Change::AccountCreated(&id)).await;
        Ok(id)
    }

    /// The throttling counters that counted a failure lately, most recent first, at most `limit`, each with whether
    /// it refuses attempts now (`vestibule throttle list`). Names appear as hashes; [`Broker::throttle_names`]
    /// gives the hashes of a name an operator knows.
    pub async fn throttles(&self, limit: u32) -> Result<Vec<crate::ThrottleEntry>, BrokerError> {
        Ok(self.limiter.current(self.now(), limit).await?)
    }

    /// The hashes under which attempts at `login` are counted, one per source (`source:canonical name`), and the
    /// account's own when `login` names an account (its password changes, its address change and password reset
    /// requests): what
    /// [`Broker::throttles`] lists.
    pub async fn throttle_names(&self, login: &str) -> Result<Vec<(String, String)>, BrokerError> {
        let mut keys: Vec<String> = self
            .sources
            .iter()
            .map(|s| crate::throttle::name_key(s.id().as_str(), login))
            // Reset requests for the name, counted apart from sign-ins.
            .chain(std::iter::once(crate::throttle::name_key(
                crate::reset::RESET_COUNTER,
                login,
            )))
            .collect();
        if let AccountLookup::Found { id, .. } = self.find_accounts(login).await? {
            keys.push(crate::throttle::account_key(&id));
            keys.push(crate::email_change::throttle_key(&id));
            keys.push(crate::reset::account_throttle_key(&id));
        }
        Ok(keys
            .into_iter()
            .map(|k| {
                let hash = crate::throttle::name_hash_hex(&k);
                (k, hash)
            })
            .collect())
    }

    /// Lifts every throttling delay of `login` (an operator's decision, `vestibule throttle lift`): its failures
    /// at every source, from every address, are forgotten, and the account's own when `login` names one. The
    /// address buckets stay (they count guesses from a place, not at a name). Audited as `throttle_lifted` with
    /// `detail` and the hashes lifted. Returns how many counters were removed.
    pub async fn lift_throttles(&self, login: &str, detail: &str) -> Result<u64, BrokerError> {
        let mut lifted = 0;
        let names = self.throttle_names(login).await?;
        for (key, _) in &names {
            lifted += self.limiter.lift(key).await?;
        }
        let hashes: Vec<&str> = names.iter().map(|(_, h)| &h[..16]).collect();
        let detail = format!("{detail}; {lifted} counter(s); names sha256:{}", hashes.join(","));
        self.audit(&AuditEvent {
            detail: Some(&detail),
            ..AuditEvent::of(AuditKind::ThrottleLifted)
        })
        .await;
        Ok(lifted)
    }
}
