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
    /// A redirect sign-in must come back within this many seconds (default 600).
    pub redirect_timeout_secs: i64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_timeout_secs: 30 * 60,
            absolute_timeout_secs: 12 * 60 * 60,
            cache_ttl_secs: 15,
            redirect_timeout_secs: 600,
        }
    }
}
