use serde::Deserialize;

/// Session lifetimes. The defaults are ASVS level 2's: re-authentication after 12 hours, or 30 minutes idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// A session unused for this long ends (default 1800 s).
    pub idle_timeout_secs: i64,
    /// A session ends this long after sign-in, used or not (default 43200 s = 12 h).
    pub absolute_timeout_secs: i64,
    /// How long another node may keep serving a session from its cache after it was revoked elsewhere
    /// (default 15 s). Revocations on the same node take effect at once.
    pub cache_ttl_secs: u64,
    /// A redirect sign-in must come back within this many seconds (default 600). Also the lifetime of a pending
    /// link waiting for proof of account ownership.
    pub redirect_timeout_secs: i64,
    /// Sensitive account changes (unlinking a way in) need a credential proven within this many seconds
    /// (default 600).
    pub fresh_secs: i64,
    /// Lifetime of a remember-me series in days (default 30).
    pub remember_days: i64,
    /// Seconds after a rotation during which the replaced remember-me token is still accepted (without rotating
    /// again), for parallel requests that raced the rotation (default 10). Past it, the old token is theft.
    pub remember_grace_secs: i64,
    /// What happens when a session is used from another client (user agent or coarse address):
    /// `basic` (default) marks it not fresh, `strong` ends it, `off` ignores it.
    pub protection: Protection,
}

/// Session protection, like Flask-Login's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// No check.
    Off,
    /// A changed client makes the session non-fresh: sensitive actions ask for a new sign-in.
    #[default]
    Basic,
    /// A changed client ends the session.
    Strong,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_timeout_secs: 30 * 60,
            absolute_timeout_secs: 12 * 60 * 60,
            cache_ttl_secs: 15,
            redirect_timeout_secs: 600,
            fresh_secs: 600,
            remember_days: 30,
            remember_grace_secs: 10,
            protection: Protection::Basic,
        }
    }
}

/// What happens the first time an identity from a source is seen. Per source, from its TOML table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provisioning {
    /// Just-in-time: a new account is created and linked (the default).
    #[default]
    Create,
    /// Only identities already linked to an account (or linked by proving ownership of one) may sign in.
    ExistingOnly,
}

/// The linking policy of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcePolicy {
    /// First sign-in of an unknown identity: create an account, or only use existing ones.
    pub provisioning: Provisioning,
    /// Link an unknown identity to the one account with the same email, silently — only when the source asserts
    /// the email as verified (a real boolean) and the account's own email is verified too. Off by default: an
    /// identity provider that lets people set any address would hand out accounts (nOAuth).
    pub trust_email: bool,
}
