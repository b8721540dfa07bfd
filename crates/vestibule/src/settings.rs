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

/// Who administers the broker: `[admin]` in the server's TOML.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Short group names (as in `/me`) whose members may create personal access tokens with the `admin` scope
    /// and use them on the admin API. Empty (the default): nobody can, and the admin API answers every token with
    /// 403 — an operator turns it on by naming a group.
    pub groups: Vec<String>,
}

impl AdminSettings {
    /// Whether an account with these groups is an administrator.
    pub fn admits(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.groups.contains(g))
    }

    /// What is wrong with these settings, as (key, message).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.groups.iter().any(|g| g.trim().is_empty() || g.trim() != g) {
            return Some(("groups", "group names must be non-empty, without spaces at either end"));
        }
        None
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcePolicy {
    /// First sign-in of an unknown identity: create an account, or only use existing ones.
    pub provisioning: Provisioning,
    /// Link an unknown identity to the one account with the same email, silently — only when the address is one
    /// this source is authoritative for (`authoritative_email_domains`), the source asserts it as verified (a real
    /// boolean), and the account's own email is verified too. Off by default: an identity provider that lets people
    /// set any address would hand out accounts (nOAuth).
    pub trust_email: bool,
    /// The addresses this source may vouch for: an email it asserts as verified counts as verified (for the
    /// account it creates, and for `trust_email`) only when its domain is listed here. `"example.com"` is that
    /// domain exactly, `"*.example.com"` its subdomains, `"*"` any address (only for a source whose addresses the
    /// operator controls, such as the company directory). Empty (the default): this source vouches for nothing,
    /// and every address it asserts is stored as unverified.
    pub authoritative_email_domains: Vec<String>,
    /// Accept the identity provider's own multi-factor sign-in as the second factor: when the identity's `amr`
    /// names one of [`UPSTREAM_MFA_AMR`], no code is asked for and the session counts as multi-factor. Off by
    /// default (the provider's word is then not enough); only for a provider you trust to enforce its MFA.
    pub trust_upstream_mfa: bool,
}

/// The `amr` values (RFC 8176) from an identity provider that count as a second factor under
/// `trust_upstream_mfa`: `mfa` (several factors), `otp` (a one-time code), `hwk` (a hardware key), `swk` (a
/// software-held key, such as a passkey), `sc` (a smart card). A password (`pwd`), a knowledge question (`kba`),
/// `sms`, `tel` and biometrics alone do not.
pub const UPSTREAM_MFA_AMR: [&str; 5] = ["mfa", "otp", "hwk", "swk", "sc"];

/// Who must have a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactorPolicy {
    /// Nobody must; whoever enrols one is asked for it (the default).
    #[default]
    Optional,
    /// Everyone: a person without one is sent to enrolment right after the primary proof.
    Required,
    /// Members of [`SecondFactorSettings::groups`] (short group names, as in `/me`).
    RequiredForGroups,
}

/// Second factors: who needs one and how the second step behaves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecondFactorSettings {
    /// `optional` (default), `required`, or `required_for_groups`.
    pub policy: SecondFactorPolicy,
    /// The groups whose members must have a second factor, with `required_for_groups` (and only with it).
    pub groups: Vec<String>,
    /// How long the half-signed-in state between the primary proof and the second step lives (default 300 s).
    pub pending_timeout_secs: i64,
    /// Wrong codes one half-signed-in state allows; the next one discards it, and the person signs in again
    /// (default 5). Attempts are throttled per account as well, across states.
    pub max_failures: u32,
    /// The name authenticator apps show for the account (`issuer` of the `otpauth://` URI; default `Vestibule`).
    /// Passkey prompts show it too (the WebAuthn relying party's name).
    pub issuer: String,
    /// Passkeys (WebAuthn): `auto` (default: on when the public URL's host is a name, off with a logged note when
    /// it is an IP address, which WebAuthn does not accept as a relying party id), `on` (an IP address is then a
    /// configuration error), or `off`.
    pub passkeys: PasskeyMode,
}

/// Whether passkeys are offered ([`SecondFactorSettings::passkeys`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyMode {
    /// On when the public URL's host is a domain name (`localhost` included), else off.
    #[default]
    Auto,
    /// On; a public URL whose host is an IP address is refused at start-up.
    On,
    /// Off: no passkey is registered or accepted (existing ones still count as factors, so their accounts keep
    /// asking for a second step, which a TOTP or recovery code then answers).
    Off,
}

impl Default for SecondFactorSettings {
    fn default() -> Self {
        SecondFactorSettings {
            policy: SecondFactorPolicy::Optional,
            groups: Vec::new(),
            pending_timeout_secs: 300,
            max_failures: 5,
            issuer: "Vestibule".into(),
            passkeys: PasskeyMode::Auto,
        }
    }
}

impl SecondFactorSettings {
    /// Whether an account with these groups must have a second factor.
    pub fn required_for(&self, groups: &[String]) -> bool {
        match self.policy {
            SecondFactorPolicy::Optional => false,
            SecondFactorPolicy::Required => true,
            SecondFactorPolicy::RequiredForGroups => groups.iter().any(|g| self.groups.contains(g)),
        }
    }

    /// What is wrong with these settings, as (key, message).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.policy == SecondFactorPolicy::RequiredForGroups && self.groups.is_empty() {
            return Some(("groups", "`required_for_groups` needs at least one group"));
        }
        if self.policy != SecondFactorPolicy::RequiredForGroups && !self.groups.is_empty() {
            return Some(("groups", "`groups` is only read with policy = \"required_for_groups\""));
        }
        if !(30..=3600).contains(&self.pending_timeout_secs) {
            return Some(("pending_timeout_secs", "must be between 30 and 3600"));
        }
        if !(1..=100).contains(&self.max_failures) {
            return Some(("max_failures", "must be between 1 and 100"));
        }
        if self.issuer.trim().is_empty() || self.issuer.len() > 64 {
            return Some(("issuer", "must be 1 to 64 characters"));
        }
        None
    }
}

impl SourcePolicy {
    /// Whether this source may vouch for `email`: its domain (after the last `@`, compared without regard to ASCII
    /// case) is one of `authoritative_email_domains`.
    pub fn vouches_for(&self, email: &str) -> bool {
        let Some((local, domain)) = email.rsplit_once('@') else {
            return false;
        };
        if local.is_empty() || domain.is_empty() {
            return false;
        }
        let domain = domain.to_ascii_lowercase();
        self.authoritative_email_domains.iter().any(|pattern| {
            let pattern = pattern.trim().to_ascii_lowercase();
            if pattern == "*" {
                return true;
            }
            match pattern.strip_prefix("*.") {
                Some(parent) => domain.len() > parent.len() + 1 && domain.ends_with(&format!(".{parent}")),
                None => domain == pattern,
            }
        })
    }

    /// Whether the identity provider's sign-in counts as the second factor: trusted by configuration, and its
    /// `amr` names one of [`UPSTREAM_MFA_AMR`].
    pub fn upstream_mfa(&self, identity: &vestibule_core::ExternalIdentity) -> bool {
        self.trust_upstream_mfa && identity.amr.iter().any(|a| UPSTREAM_MFA_AMR.contains(&a.as_str()))
    }

    /// Whether `identity`'s email counts as verified: asserted as verified by this source, and within what the
    /// operator lets this source vouch for.
    pub fn vouched_email(&self, identity: &vestibule_core::ExternalIdentity) -> bool {
        identity.email_verified && identity.email.as_deref().is_some_and(|e| self.vouches_for(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(domains: &[&str]) -> SourcePolicy {
        SourcePolicy {
            authoritative_email_domains: domains.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_source_vouches_only_for_its_domains() {
        let p = policy(&["corp.example", "*.eu.corp.example"]);
        assert!(p.vouches_for("ann@corp.example"));
        assert!(p.vouches_for("ann@CORP.Example"));
        assert!(p.vouches_for("ann@paris.eu.corp.example"));
        assert!(!p.vouches_for("ann@eu.corp.example"));
        assert!(!p.vouches_for("ann@evilcorp.example"));
        assert!(!p.vouches_for("ann@corp.example.evil"));
        assert!(!p.vouches_for("ann@x.corp.example"));
        assert!(!p.vouches_for("corp.example"));
        assert!(!p.vouches_for("@corp.example"));
        assert!(!SourcePolicy::default().vouches_for("ann@corp.example"));
        assert!(policy(&["*"]).vouches_for("anyone@anywhere.example"));
        // The last `@` decides: a quoted local part cannot smuggle a domain.
        assert!(!p.vouches_for("\"ann@corp.example\"@evil.example"));
    }
}
