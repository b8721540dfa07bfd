//! Remember me, after Barry Jaspan's improved persistent login cookie: the cookie holds a random series id and a
//! random token, the database only their hashes. Using the cookie restores a **non-fresh** session and rotates the
//! token. Presenting an old token of a live series means the cookie was copied: the whole series and every
//! session and series of the account are revoked, and a theft event is recorded. The token before the last
//! rotation stays acceptable for a few seconds (without rotating again), so that parallel requests racing a
//! rotation — the concurrency that broke Miller's original scheme — are not mistaken for theft.

use subtle::ConstantTimeEq;
use vestibule_core::storage::{AuditEvent, AuditKind, RememberSeries};
use vestibule_core::{AccountId, SecretString, Timestamp};

use crate::secret::{hash_token, hex_of, plausible};
use crate::{AuthMethod, Broker, BrokerError, ClientInfo, NewSession, SecretToken};

/// What a remember-me cookie led to. `Debug` does not print the new cookie value.
#[derive(Debug)]
#[non_exhaustive]
pub enum Restored {
    /// A new, non-fresh session; `cookie` is the rotated remember-me value to set (`None` inside the grace
    /// window, where the racing request that rotated sets it).
    Session {
        /// The new session.
        session: NewSession,
        /// The new remember-me cookie value, when rotated.
        cookie: Option<SecretString>,
    },
    /// Unknown, expired or malformed: clear the cookie.
    Invalid,
    /// A stolen copy was presented: everything of the account was revoked; clear the cookie.
    Theft,
}

/// A restored session's methods: `remember`, then those of the sign-in that started the series — the assurance
/// it had and no more (a series from before this was recorded: a single proof).
fn restored_methods(series_methods: &[String]) -> Vec<AuthMethod> {
    let mut methods = vec![AuthMethod::RememberMe];
    methods.extend(
        crate::session::parse_methods(series_methods)
            .into_iter()
            .filter(|m| *m != AuthMethod::RememberMe),
    );
    methods
}

fn split(cookie: &str) -> Option<(&str, &str)> {
    let (series, token) = cookie.split_once('.')?;
    (plausible(series) && plausible(token)).then_some((series, token))
}

fn hash_hex(value: &str) -> String {
    hex_of(&hash_token(value))
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Broker {
    /// Starts a remember-me series for a sign-in that just proved a credential; returns the cookie value.
    pub async fn remember(&self, session: &NewSession) -> Result<SecretString, BrokerError> {
        let (series, token) = (SecretToken::generate(), SecretToken::generate());
        let now = self.now();
        self.store
            .insert_remember(&RememberSeries {
                series_hash: series.hash_hex(),
                account_id: session.account_id.clone(),
                source: session.source.clone(),
                subject: session.subject.clone(),
                token_hash: token.hash_hex(),
                previous_token_hash: None,
                rotated_at: now,
                authenticated_at: now,
                expires_at: now.plus_secs(self.settings.remember_days.saturating_mul(86_400)),
                methods: crate::session::method_names(&session.methods),
            })
            .await?;
        Ok(format!("{}.{}", series.expose(), token.expose()).into())
    }

    /// Uses a remember-me cookie.
    pub async fn restore(&self, cookie: &str, client: &ClientInfo) -> Result<Restored, BrokerError> {
        let Some((series, token)) = split(cookie) else {
            return Ok(Restored::Invalid);
        };
        let series_hash = hash_hex(series);
        let Some(rec) = self.store.get_remember(&series_hash).await? else {
            return Ok(Restored::Invalid);
        };
        let now = self.now();
        let allowed = self.policy_allows(&restored_methods(&rec.methods), &self.groups_of(&rec.account_id).await?);
        if rec.expires_at <= now || !allowed {
            // Expired, or single-factor for an account that now must have a second factor: sign in again.
            self.store.delete_remember(&series_hash).await?;
            return Ok(Restored::Invalid);
        }
        let presented = hash_hex(token);
        if same(&presented, &rec.token_hash) {
            let next = SecretToken::generate();
            if self
                .store
                .rotate_remember(&series_hash, &rec.token_hash, &next.hash_hex(), now)
                .await?
            {
                let session = self.restored_session(&rec, client).await?;
                return Ok(Restored::Session {
                    session,
                    cookie: Some(format!("{series}.{}", next.expose()).into()),
                });
            }
            // Another request rotated it a moment ago: the same as presenting the previous token in the grace.
            let session = self.restored_session(&rec, client).await?;
            return Ok(Restored::Session { session, cookie: None });
        }
        let in_grace = rec.previous_token_hash.as_deref().is_some_and(|p| same(&presented, p))
            && now.0 - rec.rotated_at.0 < self.settings.remember_grace_secs;
        if in_grace {
            let session = self.restored_session(&rec, client).await?;
            return Ok(Restored::Session { session, cookie: None });
        }
        self.remember_theft(&rec, client).await?;
        Ok(Restored::Theft)
    }

    /// Ends the series behind a cookie (sign-out).
    pub async fn forget_remember(&self, cookie: &str) -> Result<(), BrokerError> {
        if let Some((series, _)) = split(cookie) {
            self.store.delete_remember(&hash_hex(series)).await?;
        }
        Ok(())
    }

    /// Ends every series of an account except the one behind `keep_cookie`.
    pub async fn forget_remember_of(&self, account: &AccountId, keep_cookie: Option<&str>) -> Result<(), BrokerError> {
        let keep = keep_cookie.and_then(split).map(|(series, _)| hash_hex(series));
        self.store.delete_remember_of(account, keep.as_deref()).await?;
        Ok(())
    }

    async fn restored_session(&self, rec: &RememberSeries, client: &ClientInfo) -> Result<NewSession, BrokerError> {
        let proven = crate::broker::Proven {
            source: &rec.source,
            subject: rec.subject.as_ref(),
            // A cookie is not a credential: the restored session carries no proof time, so it is never fresh (as
            // Flask-Login's restored sessions), however recently the series began.
            at: Timestamp(0),
            // Never confirmed by the source since the series began, perhaps weeks ago: the first check of the new
            // session asks the source again (an LDAP search) before the session is used.
            checked_at: Some(Timestamp(0)),
            methods: restored_methods(&rec.methods),
            // Whatever the series began with, no second factor was proven now: step-up asks again.
            second_factor_at: None,
        };
        let session = self
            .create_session_proven(&rec.account_id, proven, client, None)
            .await?;
        self.audit(&AuditEvent {
            account_id: Some(rec.account_id.as_str()),
            source: Some(rec.source.as_str()),
            ip: client.ip.as_deref(),
            detail: Some("remember_me"),
            ..AuditEvent::of(AuditKind::SessionRestored)
        })
        .await;
        Ok(session)
    }

    async fn remember_theft(&self, rec: &RememberSeries, client: &ClientInfo) -> Result<(), BrokerError> {
        // One transaction: a theft response must not stop halfway.
        let ended = self.store.end_sessions_and_series_of(&rec.account_id).await?;
        for hash in &ended {
            self.evict(hash);
        }
        // A thief with a session may have asked to move the address.
        self.cancel_email_change(&rec.account_id).await?;
        tracing::warn!(account = %rec.account_id, ip = ?client.ip, "remember-me token reuse: cookie theft assumed");
        self.audit(&AuditEvent {
            account_id: Some(rec.account_id.as_str()),
            source: Some(rec.source.as_str()),
            ip: client.ip.as_deref(),
            detail: Some("old token of a live series; all sessions and series revoked"),
            ..AuditEvent::of(AuditKind::RememberTheft)
        })
        .await;
        self.notify(&rec.account_id, crate::Message::RememberTheft).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use vestibule_core::SourceId;

    use super::*;

    #[test]
    fn restored_debug_hides_the_cookie() {
        let (series, token) = (SecretToken::generate(), SecretToken::generate());
        let cookie = format!("{}.{}", series.expose(), token.expose());
        let session = NewSession {
            token: SecretToken::generate(),
            account_id: AccountId::new("acct-42").expect("valid id"),
            source: SourceId::new("local").expect("valid id"),
            subject: None,
            expires_at: Timestamp(3600),
            methods: vec![AuthMethod::Password],
        };
        let restored = Restored::Session {
            session,
            cookie: Some(cookie.clone().into()),
        };
        let shown = format!("{restored:?}");
        assert!(!shown.contains(series.expose()), "{shown}");
        assert!(!shown.contains(token.expose()), "{shown}");
        assert!(shown.contains("acct-42"), "{shown}");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// Whatever a browser sends: no panic, and a split is two well-formed halves that make up the input.
            #[test]
            fn split_never_panics_and_keeps_the_input(raw in any::<String>()) {
                if let Some((series, token)) = split(&raw) {
                    prop_assert!(plausible(series) && plausible(token));
                    prop_assert_eq!(format!("{series}.{token}"), raw);
                }
            }

            /// Near misses: one character too many or too few, a padding `=`, a second dot, an empty half.
            #[test]
            fn near_misses_are_refused(
                series in "[A-Za-z0-9_-]{43}",
                token in "[A-Za-z0-9_-]{43}",
                damage in 0usize..6,
            ) {
                let good = format!("{series}.{token}");
                prop_assert_eq!(split(&good), Some((series.as_str(), token.as_str())));
                let bad = match damage {
                    0 => format!("{series}x.{token}"),
                    1 => format!("{series}.{}", &token[1..]),
                    2 => format!("{series}.{token}="),
                    3 => format!("{series}.{token}.x"),
                    4 => format!(".{token}"),
                    _ => format!("{series}{token}"),
                };
                prop_assert_eq!(split(&bad), None, "{}", bad);
            }
        }

        /// `Broker::restore` answers a malformed cookie `Invalid` before any lookup: with the store closed
        /// under it, every malformed value still answers, while a well-formed one reaches the store (and fails).
        #[test]
        fn malformed_cookies_never_reach_the_store() {
            use proptest::test_runner::{Config, TestRunner};

            let rt = crate::test_support::runtime();
            let (broker, _dir) = crate::test_support::broker_over_closed_store(&rt);
            let client = ClientInfo::default();
            let sample = format!(
                "{}.{}",
                SecretToken::generate().expose(),
                SecretToken::generate().expose()
            );
            assert!(
                rt.block_on(broker.restore(&sample, &client)).is_err(),
                "a well-formed cookie is looked up"
            );

            let values = prop_oneof![
                any::<String>(),
                "[A-Za-z0-9_-]{40,46}(\\.|\\.\\.|=|)[A-Za-z0-9_-]{40,46}",
                "[A-Za-z0-9_.=+/ %-]{87}",
            ];
            let mut runner = TestRunner::new(Config::with_cases(2048));
            runner
                .run(&values, |value| {
                    prop_assume!(split(&value).is_none());
                    let found = rt.block_on(broker.restore(&value, &client));
                    prop_assert!(matches!(found, Ok(Restored::Invalid)), "{:?} gave {:?}", value, found);
                    Ok(())
                })
                .expect("property");
        }

        /// What `remember` produces splits back into the series and token it was made of.
        #[test]
        fn what_remember_writes_splits_back() {
            for _ in 0..256 {
                let (series, token) = (SecretToken::generate(), SecretToken::generate());
                let cookie = format!("{}.{}", series.expose(), token.expose());
                assert_eq!(split(&cookie), Some((series.expose(), token.expose())));
            }
        }
    }
}
