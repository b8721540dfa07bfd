//! The rows the broker reads and writes, as plain values: what a [`BrokerStore`](super::BrokerStore) stores.

use crate::{AccountId, ExternalIdentity, SecretString, SourceId, Subject, Timestamp};

/// A local account: the thing sessions belong to and identities point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Opaque random id.
    pub id: AccountId,
    /// A human name.
    pub display_name: Option<String>,
    /// The account's own email.
    pub email: Option<String>,
    /// Whether that email was verified.
    pub email_verified: bool,
    /// A disabled account cannot sign in.
    pub disabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// One way into an account, as last seen from its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    /// The source.
    pub source: SourceId,
    /// The stable id at the source.
    pub subject: Subject,
    /// The account it leads to.
    pub account_id: AccountId,
    /// The login name at the last sign-in.
    pub login: Option<String>,
    /// The email the source asserted at the last sign-in.
    pub email: Option<String>,
    /// Whether the source asserted it as verified.
    pub email_verified: bool,
    /// Short group names from the last sign-in.
    pub groups: Vec<String>,
    /// When the link was made.
    pub created_at: Timestamp,
    /// The last sign-in through it.
    pub last_login_at: Option<Timestamp>,
}

/// What `vestibule user add` creates. `Debug` does not print the password hash (it could be cracked offline).
#[derive(Debug, Clone)]
pub struct NewLocalAccount {
    /// The local source's id; the account gets the identity `(source, account id)`.
    pub source: SourceId,
    /// The login name as typed, kept for display; unique among local accounts by its canonical form
    /// ([`canonical_login`](crate::canonical_login)), which is also what sign-in looks up.
    pub username: String,
    /// A human name (defaults to the username on pages).
    pub display_name: Option<String>,
    /// The account's email.
    pub email: Option<String>,
    /// Whether that email is known to be the person's.
    pub email_verified: bool,
    /// An argon2id PHC string.
    pub password_hash: SecretString,
}

/// A server-side session. `id_hash` is the hex SHA-256 of the cookie value; the value itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Hex SHA-256 of the session id.
    pub id_hash: String,
    /// Whose session.
    pub account_id: AccountId,
    /// The source that signed it in.
    pub source: SourceId,
    /// The identity (subject at `source`) that signed it in; `None` for sessions from before this was recorded,
    /// which count as opened by every identity of their source.
    pub subject: Option<Subject>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last request seen (persisted coarsely).
    pub last_seen_at: Timestamp,
    /// When a credential was last proven in it (freshness).
    pub authenticated_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
    /// The browser's user agent at sign-in.
    pub user_agent: Option<String>,
    /// The client address at sign-in.
    pub ip: Option<String>,
    /// Hex SHA-256 of the client's user agent and coarse address at sign-in (session protection).
    pub fingerprint: Option<String>,
    /// When the source last confirmed the identity still exists and is admitted (`None`: at `created_at`).
    pub checked_at: Option<Timestamp>,
    /// How the sign-in was proven, as RFC 8176 style `amr` names (`pwd`, `otp`, ...). Empty for sessions from
    /// before this was recorded: the broker derives them from the source then.
    pub methods: Vec<String>,
    /// When a second factor was last proven in the session (`None`: never); step-up compares against it.
    pub second_factor_at: Option<Timestamp>,
}

/// A remember-me series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberSeries {
    /// Hex SHA-256 of the series id.
    pub series_hash: String,
    /// Whose.
    pub account_id: AccountId,
    /// The source of the sign-in that created it.
    pub source: SourceId,
    /// The identity that signed in (`None` for series from before this was recorded: any identity of `source`).
    pub subject: Option<Subject>,
    /// Hex SHA-256 of the current token.
    pub token_hash: String,
    /// Hex SHA-256 of the token before the last rotation.
    pub previous_token_hash: Option<String>,
    /// When the token was last rotated.
    pub rotated_at: Timestamp,
    /// When a credential was proven (the sign-in that ticked "remember me").
    pub authenticated_at: Timestamp,
    /// After this the series is void.
    pub expires_at: Timestamp,
    /// How the sign-in that started the series was proven (`amr` names): a restored session has that assurance
    /// and no more. Empty for series from before this was recorded.
    pub methods: Vec<String>,
}

/// A personal access token as stored: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// Public id (shown on the account page, used to revoke).
    pub id: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Whose.
    pub account_id: AccountId,
    /// The owner's label.
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry (always set).
    pub expires_at: Timestamp,
    /// Last use, recorded coarsely.
    pub last_used_at: Option<Timestamp>,
    /// The identity whose session created it (`source`, `subject`): unlinking that identity revokes the token.
    /// `None` for tokens from before this was recorded: unlinking leaves those alone.
    pub created_by: Option<(SourceId, Subject)>,
    /// When the source last confirmed `created_by` still exists and is admitted (`None`: at creation).
    pub checked_at: Option<Timestamp>,
    /// How the session that created it was proven (RFC 8176 `amr` names): under a policy that requires a second
    /// factor of the account, a token from a session without one stops working. Empty for tokens from before this
    /// was recorded (treated as single-factor).
    pub methods: Vec<String>,
}

/// A redirect sign-in waiting for its callback. `data` holds the flow's secrets, so `Debug` does not print it.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    /// Hex SHA-256 of the `state` value.
    pub state_hash: String,
    /// The source the flow was started for.
    pub source: SourceId,
    /// Hex SHA-256 of the browser-binding cookie set when the flow started.
    pub browser_hash: String,
    /// The source's own per-flow data (nonce, PKCE verifier...).
    pub data: SecretString,
    /// Where to land afterwards (already checked to be a safe relative path).
    pub next_path: Option<String>,
    /// After this the flow is void.
    pub expires_at: Timestamp,
    /// Set when the flow was started from the account page: link to this account instead of signing in.
    pub link_account: Option<AccountId>,
    /// When the flow started: a step-up's provider must report an authentication (`auth_time`) from after it.
    /// `Timestamp(0)` for flows from before this was recorded.
    pub started_at: Timestamp,
    /// Set when the flow is a step-up of a signed-in session (the hex SHA-256 of its id): it renews that session
    /// with the provider's second factor instead of signing in, and only for that session.
    pub step_up_session: Option<String>,
}

/// An identity waiting for its owner to prove they own the account it would join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLink {
    /// Hex SHA-256 of the token in the browser's link cookie.
    pub token_hash: String,
    /// What the source proved.
    pub identity: ExternalIdentity,
    /// Whether the person may instead get a new account of its own (the source provisions).
    pub may_create: bool,
    /// After this the link is void.
    pub expires_at: Timestamp,
}

/// A TOTP authenticator of an account. `sealed_secret` is the secret encrypted by the broker (never the secret
/// itself); the store does not interpret it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// Whose.
    pub account_id: AccountId,
    /// The sealed secret, as the broker wrote it.
    pub sealed_secret: String,
    /// When a correct code confirmed it; `None`: enrolment not finished, so it does not count.
    pub confirmed_at: Option<Timestamp>,
    /// The last accepted time step (0: none): a code of this step or an earlier one is refused (replay).
    pub last_step: i64,
    /// When enrolment started.
    pub created_at: Timestamp,
    /// Who started the enrolment (the hash the broker passed to `put_totp`): only the same session or
    /// half-signed-in state may see the unconfirmed secret again or confirm it. `None` for rows from before it
    /// was recorded.
    pub begun_by: Option<String>,
}

/// The half-signed-in state: a primary proof succeeded and the second step is due. Not a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSecondFactor {
    /// Hex SHA-256 of the token in the browser's cookie.
    pub token_hash: String,
    /// The account the primary proof resolved to.
    pub account_id: AccountId,
    /// The source of the primary proof.
    pub source: SourceId,
    /// The identity that proved it.
    pub subject: Subject,
    /// How the primary proof was made (`amr` names).
    pub methods: Vec<String>,
    /// Where to land afterwards (already checked to be a safe relative path).
    pub next_path: Option<String>,
    /// Whether "remember me" was asked for.
    pub remember: bool,
    /// The account has no factor and policy requires one: the second step is enrolment.
    pub enrol: bool,
    /// Wrong codes so far.
    pub failures: u32,
    /// After this it is void.
    pub expires_at: Timestamp,
}

/// What a mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTokenPurpose {
    /// A password reset link (`/reset/{token}`).
    PasswordReset,
    /// An address confirmation link (`/email/verify/{token}`).
    VerifyEmail,
    /// A link confirming a change of the account's address, mailed to the new address (also
    /// `/email/verify/{token}`); the token's `email` is the new address. Until it is used the account keeps its
    /// old address for everything.
    ChangeEmail,
}

impl EmailTokenPurpose {
    /// The name stored in the `purpose` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTokenPurpose::PasswordReset => "reset",
            EmailTokenPurpose::VerifyEmail => "verify",
            EmailTokenPurpose::ChangeEmail => "change",
        }
    }
}

/// A single-use token mailed to an account's address. Only the hash of the token is stored; the link in the mail
/// carries the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailToken {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// What it may be used for (a reset token cannot confirm an address, nor the other way round).
    pub purpose: EmailTokenPurpose,
    /// Whose.
    pub account_id: AccountId,
    /// The address it was mailed to: a confirmation confirms this address only, not one changed since.
    pub email: String,
    /// When it was mailed.
    pub created_at: Timestamp,
    /// After this it is void.
    pub expires_at: Timestamp,
}

/// What an unlink did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlinked {
    /// Removed, with the sessions, series and tokens it had opened.
    Done {
        /// Hex hashes of the ended sessions and tokens, to evict from caches on every node.
        ended: Vec<String>,
    },
    /// The account has no such identity (or it belongs to someone else).
    NotFound,
    /// It is the account's last way in.
    LastIdentity,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_local_account_debug_hides_the_password_hash() {
        let hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA";
        let new = NewLocalAccount {
            source: SourceId::new("local").expect("valid id"),
            username: "ann".into(),
            display_name: None,
            email: None,
            email_verified: false,
            password_hash: hash.into(),
        };
        let shown = format!("{new:?}");
        assert!(!shown.contains("aGFzaA"), "{shown}");
        assert!(shown.contains("ann"), "{shown}");
    }

    #[test]
    fn debug_hides_the_flow_data() {
        let record = PendingRecord {
            state_hash: "5fa3c0".into(),
            source: SourceId::new("google").expect("valid id"),
            browser_hash: "b1".into(),
            data: r#"{"nonce":"nonce-77ab","pkce_verifier":"verifier-1c9e"}"#.into(),
            next_path: Some("/after".into()),
            expires_at: Timestamp(600),
            link_account: None,
            started_at: Timestamp(300),
            step_up_session: None,
        };
        let shown = format!("{record:?}");
        assert!(!shown.contains("nonce-77ab"), "{shown}");
        assert!(!shown.contains("verifier-1c9e"), "{shown}");
        assert!(shown.contains("5fa3c0") && shown.contains("google"), "{shown}");
    }
}
