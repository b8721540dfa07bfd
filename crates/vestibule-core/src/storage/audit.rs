//! The audit log's vocabulary: what happened ([`AuditKind`]), an event to append ([`AuditEvent`]) and a row read
//! back ([`AuditRecord`]).

use crate::Timestamp;

/// What happened, in the audit log's own words: the `event` column holds [`AuditKind::as_str`], names that stay
/// stable across versions (tools and operators search for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditKind {
    /// A sign-in proved a credential and opened a session. (`login_success`)
    LoginSuccess,
    /// A sign-in was refused (`detail` says why, in fixed words). (`login_failure`)
    LoginFailure,
    /// A session was signed out. (`logout`)
    Logout,
    /// An account was created (sign-in, link page, CLI or embedding app). (`account_created`)
    AccountCreated,
    /// An operator disabled an account. (`account_disabled`)
    AccountDisabled,
    /// An operator enabled an account again. (`account_enabled`)
    AccountEnabled,
    /// A sign-in found an account that may be the same person: ownership must be proven. (`link_required`)
    LinkRequired,
    /// An identity was linked to an account. (`identity_linked`)
    IdentityLinked,
    /// A link was refused (the identity belongs to another account). (`link_refused`)
    LinkRefused,
    /// An identity was removed from an account. (`identity_unlinked`)
    IdentityUnlinked,
    /// A source no longer admits an identity: what it opened was ended. (`identity_rechecked`)
    IdentityRechecked,
    /// A session was used from another client than the one that signed in. (`session_client_changed`)
    SessionClientChanged,
    /// A session was restored from a remember-me cookie. (`session_restored`)
    SessionRestored,
    /// The owner signed out sessions from the account page. (`sessions_revoked`)
    SessionsRevoked,
    /// A stolen remember-me cookie was presented: the account's sessions and series were ended. (`remember_theft`)
    RememberTheft,
    /// A password was changed. (`password_changed`)
    PasswordChanged,
    /// A password change was refused. (`password_change_failed`)
    PasswordChangeFailed,
    /// A personal access token was created. (`token_created`)
    TokenCreated,
    /// A personal access token was revoked. (`token_revoked`)
    TokenRevoked,
    /// An attempt was refused before its credential was checked: too many attempts. (`throttled`)
    Throttled,
    /// An operator lifted the throttling delays of a name. (`throttle_lifted`)
    ThrottleLifted,
    /// A second factor was added (a TOTP authenticator confirmed). (`second_factor_added`)
    SecondFactorAdded,
    /// A second factor was removed by its owner. (`second_factor_removed`)
    SecondFactorRemoved,
    /// An operator removed every second factor of an account (`vestibule user reset-2fa`). (`second_factor_reset`)
    SecondFactorReset,
    /// A wrong second-factor code (a replayed one included). (`second_factor_failed`)
    SecondFactorFailed,
    /// The recovery codes were regenerated; the old set no longer works. (`recovery_codes_regenerated`)
    RecoveryCodesRegenerated,
    /// A recovery code was spent. (`recovery_code_used`)
    RecoveryCodeUsed,
    /// A password reset was asked for an account (the request names one; requests naming none are not audited
    /// per account). (`password_reset_requested`)
    PasswordResetRequested,
    /// A password was set from a reset link: every session, series and token of the account ended.
    /// (`password_reset_completed`)
    PasswordResetCompleted,
    /// An account's own address was confirmed from a mailed link. (`email_verified`)
    EmailVerified,
    /// A passkey signed with a counter not above the one recorded (a cloned authenticator, or a replay): refused.
    /// (`passkey_counter_regressed`)
    PasskeyCounterRegressed,
    /// The owner asked, from the account page, to change the account's address: a link went to the new address
    /// (or, when another account has it verified, a message saying so), a notice to the old one.
    /// (`email_change_requested`)
    EmailChangeRequested,
    /// An address change was confirmed from the new address: the account's address is the new one, verified.
    /// (`email_changed`)
    EmailChanged,
    /// An operator deleted an account with its identities, sessions, tokens and factors; its audit rows stay.
    /// (`account_deleted`)
    AccountDeleted,
    /// An operator changed the groups assigned to an account (`detail` has them before and after).
    /// (`groups_changed`)
    GroupsChanged,
}

impl AuditKind {
    /// Every kind, in no particular order.
    pub const ALL: [AuditKind; 35] = [
        AuditKind::LoginSuccess,
        AuditKind::LoginFailure,
        AuditKind::Logout,
        AuditKind::AccountCreated,
        AuditKind::AccountDisabled,
        AuditKind::AccountEnabled,
        AuditKind::LinkRequired,
        AuditKind::IdentityLinked,
        AuditKind::LinkRefused,
        AuditKind::IdentityUnlinked,
        AuditKind::IdentityRechecked,
        AuditKind::SessionClientChanged,
        AuditKind::SessionRestored,
        AuditKind::SessionsRevoked,
        AuditKind::RememberTheft,
        AuditKind::PasswordChanged,
        AuditKind::PasswordChangeFailed,
        AuditKind::TokenCreated,
        AuditKind::TokenRevoked,
        AuditKind::Throttled,
        AuditKind::ThrottleLifted,
        AuditKind::SecondFactorAdded,
        AuditKind::SecondFactorRemoved,
        AuditKind::SecondFactorReset,
        AuditKind::SecondFactorFailed,
        AuditKind::RecoveryCodesRegenerated,
        AuditKind::RecoveryCodeUsed,
        AuditKind::PasswordResetRequested,
        AuditKind::PasswordResetCompleted,
        AuditKind::EmailVerified,
        AuditKind::PasskeyCounterRegressed,
        AuditKind::EmailChangeRequested,
        AuditKind::EmailChanged,
        AuditKind::AccountDeleted,
        AuditKind::GroupsChanged,
    ];

    /// The name written to the `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSuccess => "login_success",
            AuditKind::LoginFailure => "login_failure",
            AuditKind::Logout => "logout",
            AuditKind::AccountCreated => "account_created",
            AuditKind::AccountDisabled => "account_disabled",
            AuditKind::AccountEnabled => "account_enabled",
            AuditKind::LinkRequired => "link_required",
            AuditKind::IdentityLinked => "identity_linked",
            AuditKind::LinkRefused => "link_refused",
            AuditKind::IdentityUnlinked => "identity_unlinked",
            AuditKind::IdentityRechecked => "identity_rechecked",
            AuditKind::SessionClientChanged => "session_client_changed",
            AuditKind::SessionRestored => "session_restored",
            AuditKind::SessionsRevoked => "sessions_revoked",
            AuditKind::RememberTheft => "remember_theft",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::PasswordChangeFailed => "password_change_failed",
            AuditKind::TokenCreated => "token_created",
            AuditKind::TokenRevoked => "token_revoked",
            AuditKind::Throttled => "throttled",
            AuditKind::ThrottleLifted => "throttle_lifted",
            AuditKind::SecondFactorAdded => "second_factor_added",
            AuditKind::SecondFactorRemoved => "second_factor_removed",
            AuditKind::SecondFactorReset => "second_factor_reset",
            AuditKind::SecondFactorFailed => "second_factor_failed",
            AuditKind::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            AuditKind::RecoveryCodeUsed => "recovery_code_used",
            AuditKind::PasswordResetRequested => "password_reset_requested",
            AuditKind::PasswordResetCompleted => "password_reset_completed",
            AuditKind::EmailVerified => "email_verified",
            AuditKind::PasskeyCounterRegressed => "passkey_counter_regressed",
            AuditKind::EmailChangeRequested => "email_change_requested",
            AuditKind::EmailChanged => "email_changed",
            AuditKind::AccountDeleted => "account_deleted",
            AuditKind::GroupsChanged => "groups_changed",
        }
    }

    /// The kind with this name, if any.
    pub fn parse(name: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A security event to append to the audit log: `AuditEvent { account_id: Some(..), ..AuditEvent::of(kind) }`.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// What happened.
    pub event: AuditKind,
    /// The account concerned, when known.
    pub account_id: Option<&'a str>,
    /// The source involved.
    pub source: Option<&'a str>,
    /// The subject at that source.
    pub subject: Option<&'a str>,
    /// The client address.
    pub ip: Option<&'a str>,
    /// A short reason (`invalid_credentials`), never a secret.
    pub detail: Option<&'a str>,
}

impl AuditEvent<'_> {
    /// An event of `kind` with nothing else known yet.
    pub fn of(kind: AuditKind) -> Self {
        AuditEvent {
            event: kind,
            account_id: None,
            source: None,
            subject: None,
            ip: None,
            detail: None,
        }
    }
}

/// A row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Insertion order.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// What ([`AuditKind::as_str`]; kept as text, since older or newer versions may have written other names).
    pub event: String,
    /// Who.
    pub account_id: Option<String>,
    /// Through which source.
    pub source: Option<String>,
    /// As which subject.
    pub subject: Option<String>,
    /// From where.
    pub ip: Option<String>,
    /// Why.
    pub detail: Option<String>,
}

/// Which audit events to read back, newest first: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this account's events.
    pub account_id: Option<String>,
    /// Only events of this name ([`AuditKind::as_str`]).
    pub event: Option<String>,
    /// Only events from this client address.
    pub ip: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events older than this id: the next page after a page whose last row had this id.
    pub before_id: Option<i64>,
    /// At most this many (the store caps it at 10 000).
    pub limit: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_distinct_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for k in AuditKind::ALL {
            assert!(seen.insert(k.as_str()), "{k} twice");
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
            assert!(k.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{k}");
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }
}
