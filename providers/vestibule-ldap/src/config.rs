//! The `[[sources]]` table of `kind = "ldap"`, and its validation.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use vestibule_core::{read_secret, ConfigIssue, SourceId};

use crate::template;

/// Configuration of one LDAP or Active Directory source.
///
/// Every key but `id`, `url` and one of `user_base` / `user_dn_template` has a default, given on each field.
/// Unknown keys are errors. The service account's password never sits in this struct: only where to read it
/// (`bind_password_file` or `bind_password_env`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// The source id: half of every identity key and the `{source}` in `/login/{source}`. Required.
    pub id: SourceId,
    /// The name on the login page. Default: "Directory".
    #[serde(default)]
    pub display_name: Option<String>,
    /// `ldap://host[:port]` or `ldaps://host[:port]`. Required. A plain `ldap://` URL to a host other than
    /// loopback needs `starttls = true`, so passwords never cross a network in clear.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything else is sent. Default: `false`. If the
    /// server refuses StartTLS the sign-in fails: there is no fallback to plaintext.
    #[serde(default)]
    pub starttls: bool,
    /// A PEM file of the CA certificate(s) to trust for this directory, instead of the system's roots.
    /// Default: none (the system's trust store).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A PEM file holding exactly one certificate: the directory's own. The server must present exactly this
    /// certificate (compared byte for byte); that replaces the chain and CA checks, and only those: its validity
    /// dates and the host name in `url` (against its subjectAltNames) are still checked. For a server with a
    /// self-signed certificate, which a `ca_file` cannot vouch for when it is marked a CA (the `openssl req -x509`
    /// default). Default: none. Cannot be combined with `ca_file` or `tls_verify = false`; needs TLS. Pin the new
    /// certificate before the server's is replaced.
    #[serde(default)]
    pub tls_pinned_cert_file: Option<PathBuf>,
    /// Verify the server's certificate and name. Default: `true`. `false` accepts any certificate (a
    /// man-in-the-middle can read every password); it is logged at warn each time the source is built.
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    /// The service account that searches for users (and reads groups). Default: none, which means anonymous
    /// searches in search mode (logged at warn when the source is built: the directory must then let anyone
    /// search it), and reads with the user's own connection in direct-bind mode.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// A file holding the service account's password (one trailing newline is dropped). Exactly one of this and
    /// `bind_password_env` is required when `bind_dn` is set.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// The name of an environment variable holding the service account's password.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// Search mode: the subtree (or level, see `user_scope`) to search for users. Required unless
    /// `user_dn_template` is set.
    #[serde(default)]
    pub user_base: Option<String>,
    /// Search mode: the filter finding one user; `{username}` is replaced by the escaped login name
    /// (RFC 4515). Default: `(uid={username})`; Active Directory: `(sAMAccountName={username})`.
    #[serde(default)]
    pub user_filter: Option<String>,
    /// Search mode: `sub` (the whole subtree under `user_base`) or `one` (its direct children). Default: `sub`.
    #[serde(default)]
    pub user_scope: Option<UserScope>,
    /// Direct-bind mode: the user's DN with `{username}` replaced by the escaped login name (RFC 4514), such as
    /// `uid={username},ou=people,dc=example,dc=org`. Default: none (search mode). Mutually exclusive with
    /// `user_base`, `user_filter` and `user_scope`. Search mode is preferred: it also works when people live in
    /// several branches, and refuses ambiguous matches.
    #[serde(default)]
    pub user_dn_template: Option<String>,
    /// The attribute holding the stable subject. Default: `entryUUID` (OpenLDAP, 389 DS); use `objectGUID` for
    /// Active Directory (binary, rendered as the canonical GUID string). Never the DN or a name: those change.
    #[serde(default = "default_subject_attribute")]
    pub subject_attribute: String,
    /// The attribute reported as the login name. Default: `uid` (Active Directory: `sAMAccountName`).
    #[serde(default = "default_login_attribute")]
    pub login_attribute: String,
    /// The attribute shown as the person's name. Default: `cn` (Active Directory: `displayName`).
    #[serde(default = "default_display_name_attribute")]
    pub display_name_attribute: String,
    /// The attribute holding the email address. Default: `mail`.
    #[serde(default = "default_email_attribute")]
    pub email_attribute: String,
    /// Whether the directory is authoritative for email addresses, so that they count as verified. Default:
    /// `false` (an unverified email never links accounts).
    #[serde(default)]
    pub email_verified: bool,
    /// The attribute of the user entry listing group DNs, read when `group_base` is not set. Default: `memberOf`.
    #[serde(default = "default_group_attribute")]
    pub group_attribute: String,
    /// Where to search for groups instead of reading `group_attribute`. Default: none.
    #[serde(default)]
    pub group_base: Option<String>,
    /// The group search filter; `{dn}` is the user's escaped DN and `{username}` the escaped login name.
    /// Default: `(member={dn})`. Needs `group_base`.
    #[serde(default)]
    pub group_filter: Option<String>,
    /// The attribute of a group entry that gives its short name. Default: `cn`.
    #[serde(default = "default_group_name_attribute")]
    pub group_name_attribute: String,
    /// Only members of this group may sign in: a short name (`admins`, compared case-insensitively) or a full DN
    /// (compared after DN normalization). Default: none (everyone who authenticates).
    #[serde(default)]
    pub require_group: Option<String>,
    /// Seconds to open a connection, including the TLS handshake and StartTLS. Default: 5.
    #[serde(default = "default_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds for each LDAP operation (bind, search). Default: 5. Also sent as the search time limit.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Service-account connections kept open and shared by sign-ins (each carries many operations at once).
    /// Default: 2.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How often the broker asks the directory again about a person signed in from it (a search by their
    /// subject with the service account, no password), so that someone deleted, disabled (Active Directory's
    /// ACCOUNTDISABLE), no longer matching `user_filter` or no longer in `require_group` loses their sessions,
    /// and groups, email and name stay current. Default: 300 (5 minutes); 1 to 86400. In search mode without
    /// `bind_dn` the search is anonymous, as it is at sign-in. Direct bind without `bind_dn` has no way to search,
    /// so it is not asked again: sessions from it end only when their lifetime does.
    #[serde(default = "default_recheck_secs")]
    pub recheck_secs: u64,
    /// Sign-ins that may talk to the directory at once; more wait up to `timeout_secs`, then get "unavailable",
    /// so a slow directory cannot tie up the whole broker. Default: 64.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
}

/// How deep a user search goes under `user_base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserScope {
    /// The whole subtree.
    Sub,
    /// Direct children only.
    One,
}

fn default_true() -> bool {
    true
}
fn default_subject_attribute() -> String {
    "entryUUID".into()
}
fn default_login_attribute() -> String {
    "uid".into()
}
fn default_display_name_attribute() -> String {
    "cn".into()
}
fn default_email_attribute() -> String {
    "mail".into()
}
fn default_group_attribute() -> String {
    "memberOf".into()
}
fn default_group_name_attribute() -> String {
    "cn".into()
}
fn default_timeout() -> u64 {
    5
}
fn default_pool_size() -> usize {
    2
}
fn default_recheck_secs() -> u64 {
    300
}
fn default_max_concurrent() -> usize {
    64
}

/// The default `user_filter`.
pub(crate) const DEFAULT_USER_FILTER: &str = "(uid={username})";
/// The default `group_filter`.
pub(crate) const DEFAULT_GROUP_FILTER: &str = "(member={dn})";

/// How a user's DN is found.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    Search {
        base: String,
        filter: String,
        scope: UserScope,
    },
    Direct {
        template: String,
    },
}

/// Everything `check` proves, kept by the source so it never re-validates.
pub(crate) struct Validated {
    pub(crate) mode: Mode,
    pub(crate) service: Option<(String, SecretString)>,
    pub(crate) tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub(crate) group_search: Option<(String, String)>,
}

impl LdapConfig {
    /// A configuration with every default, for building one in code rather than from TOML. It is not valid
    /// until a user location is set (`user_base` or `user_dn_template`).
    pub fn new(id: SourceId, url: impl Into<String>) -> Self {
        LdapConfig {
            id,
            display_name: None,
            url: url.into(),
            starttls: false,
            ca_file: None,
            tls_pinned_cert_file: None,
            tls_verify: true,
            bind_dn: None,
            bind_password_file: None,
            bind_password_env: None,
            user_base: None,
            user_filter: None,
            user_scope: None,
            user_dn_template: None,
            subject_attribute: default_subject_attribute(),
            login_attribute: default_login_attribute(),
            display_name_attribute: default_display_name_attribute(),
            email_attribute: default_email_attribute(),
            email_verified: false,
            group_attribute: default_group_attribute(),
            group_base: None,
            group_filter: None,
            group_name_attribute: default_group_name_attribute(),
            require_group: None,
            connect_timeout_secs: default_timeout(),
            timeout_secs: default_timeout(),
            pool_size: default_pool_size(),
            recheck_secs: default_recheck_secs(),
            max_concurrent: default_max_concurrent(),
        }
    }

    /// Validates the configuration without touching the network: the URL and TLS settings, the search or
    /// direct-bind settings, filters and templates, attribute names, limits, and that the service password and
    /// the CA file can be read. The error names the offending key.
    pub fn check(&self) -> Result<(), ConfigIssue> {
        self.validate().map(|_| ())
    }

    pub(crate) fn validate(&self) -> Result<Validated, ConfigIssue> {
        if let Some(name) = &self.display_name {
            if name.trim().is_empty() {
                return Err(ConfigIssue::new("display_name", "must not be empty"));
            }
        }
        let uses_tls = self.check_url()?;
        if self.tls_pinned_cert_file.is_some() {
            if self.ca_file.is_some() {
                return Err(ConfigIssue::new(
                    "tls_pinned_cert_file",
                    "cannot be combined with ca_file: a pinned certificate is trusted instead of any CA; keep one",
                ));
            }
            if !self.tls_verify {
                return Err(ConfigIssue::new(
                    "tls_pinned_cert_file",
                    "cannot be combined with tls_verify = false: pinning is a way to verify; remove tls_verify",
                ));
            }
        }
        let tls = if uses_tls {
            Some(crate::tls::client_config(self)?)
        } else {
            for (key, set) in [
                ("ca_file", self.ca_file.is_some()),
                ("tls_pinned_cert_file", self.tls_pinned_cert_file.is_some()),
            ] {
                if set {
                    return Err(ConfigIssue::new(
                        key,
                        "has no effect without TLS: use an ldaps:// URL or starttls = true",
                    ));
                }
            }
            None
        };
        let service = self.check_service()?;
        let mode = self.check_mode()?;
        for (key, value) in [
            ("subject_attribute", &self.subject_attribute),
            ("login_attribute", &self.login_attribute),
            ("display_name_attribute", &self.display_name_attribute),
            ("email_attribute", &self.email_attribute),
            ("group_attribute", &self.group_attribute),
            ("group_name_attribute", &self.group_name_attribute),
        ] {
            if !is_attribute_name(value) {
                return Err(ConfigIssue::new(
                    key,
                    format!("`{value}` is not an LDAP attribute name"),
                ));
            }
        }
        let group_search = self.check_groups()?;
        if let Some(g) = &self.require_group {
            if g.trim().is_empty() {
                return Err(ConfigIssue::new("require_group", "must not be empty"));
            }
            if g.contains('=') && crate::dn::parse(g).is_none() {
                return Err(ConfigIssue::new("require_group", "not a valid DN"));
            }
        }
        for (key, value) in [
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("timeout_secs", self.timeout_secs),
        ] {
            if !(1..=300).contains(&value) {
                return Err(ConfigIssue::new(key, "must be between 1 and 300 seconds"));
            }
        }
        if !(1..=86_400).contains(&self.recheck_secs) {
            return Err(ConfigIssue::new("recheck_secs", "must be between 1 and 86400 seconds"));
        }
        if !(1..=64).contains(&self.pool_size) {
            return Err(ConfigIssue::new("pool_size", "must be between 1 and 64"));
        }
        if !(1..=10_000).contains(&self.max_concurrent) {
            return Err(ConfigIssue::new("max_concurrent", "must be between 1 and 10000"));
        }
        Ok(Validated {
            mode,
            service,
            tls,
            group_search,
        })
    }

    /// Checks `url` and `starttls`; says whether TLS is used.
    fn check_url(&self) -> Result<bool, ConfigIssue> {
        let url = url::Url::parse(&self.url).map_err(|e| ConfigIssue::new("url", format!("not a URL: {e}")))?;
        let host = match url.host() {
            Some(h) => h,
            None => return Err(ConfigIssue::new("url", "has no host")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigIssue::new(
                "url",
                "must not carry credentials: use bind_dn and bind_password_file",
            ));
        }
        if url.query().is_some() || !matches!(url.path(), "" | "/") {
            return Err(ConfigIssue::new(
                "url",
                "only scheme, host and port are used: put the search base in user_base",
            ));
        }
        match url.scheme() {
            "ldaps" => {
                if self.starttls {
                    return Err(ConfigIssue::new(
                        "starttls",
                        "ldaps:// is already TLS; StartTLS is for ldap:// URLs",
                    ));
                }
                Ok(true)
            }
            "ldap" => {
                if !self.starttls && !is_loopback(&host) {
                    return Err(ConfigIssue::new(
                        "starttls",
                        "a plain ldap:// URL to a non-loopback host would send passwords in clear: set \
                         starttls = true or use ldaps://",
                    ));
                }
                Ok(self.starttls)
            }
            other => Err(ConfigIssue::new(
                "url",
                format!("scheme `{other}` is not supported: use ldap:// or ldaps://"),
            )),
        }
    }

    fn check_service(&self) -> Result<Option<(String, SecretString)>, ConfigIssue> {
        match &self.bind_dn {
            Some(dn) => {
                if crate::dn::parse(dn).is_none() {
                    return Err(ConfigIssue::new("bind_dn", "not a valid DN"));
                }
                let secret = read_secret(
                    "bind_password",
                    self.bind_password_file.as_ref(),
                    self.bind_password_env.as_deref(),
                )?;
                Ok(Some((dn.clone(), secret)))
            }
            None => {
                if self.bind_password_file.is_some() || self.bind_password_env.is_some() {
                    return Err(ConfigIssue::new(
                        "bind_dn",
                        "a bind password is set but no bind_dn to use it with",
                    ));
                }
                Ok(None)
            }
        }
    }

    fn check_mode(&self) -> Result<Mode, ConfigIssue> {
        if let Some(t) = &self.user_dn_template {
            for (key, set) in [
                ("user_base", self.user_base.is_some()),
                ("user_filter", self.user_filter.is_some()),
                ("user_scope", self.user_scope.is_some()),
            ] {
                if set {
                    return Err(ConfigIssue::new(
                        key,
                        "search settings cannot be combined with user_dn_template (direct bind): use one mode",
                    ));
                }
            }
            if !t.contains("{username}") {
                return Err(ConfigIssue::new("user_dn_template", "must contain {username}"));
            }
            let sample =
                template::expand(t, &[("username", "x")]).map_err(|m| ConfigIssue::new("user_dn_template", m))?;
            if crate::dn::parse(&sample).is_none() {
                return Err(ConfigIssue::new("user_dn_template", "does not make a DN"));
            }
            return Ok(Mode::Direct { template: t.clone() });
        }
        let base = match &self.user_base {
            Some(b) => b.clone(),
            None => {
                return Err(ConfigIssue::new(
                    "user_base",
                    "missing: set user_base (search mode) or user_dn_template (direct bind)",
                ))
            }
        };
        if crate::dn::parse(&base).is_none() {
            return Err(ConfigIssue::new("user_base", "not a valid DN"));
        }
        let filter = self
            .user_filter
            .clone()
            .unwrap_or_else(|| DEFAULT_USER_FILTER.to_owned());
        check_filter("user_filter", &filter, &["username"], "username")?;
        Ok(Mode::Search {
            base,
            filter,
            scope: self.user_scope.unwrap_or(UserScope::Sub),
        })
    }

    fn check_groups(&self) -> Result<Option<(String, String)>, ConfigIssue> {
        match (&self.group_base, &self.group_filter) {
            (None, Some(_)) => Err(ConfigIssue::new(
                "group_filter",
                "needs group_base (where to search for groups)",
            )),
            (None, None) => Ok(None),
            (Some(base), filter) => {
                if crate::dn::parse(base).is_none() {
                    return Err(ConfigIssue::new("group_base", "not a valid DN"));
                }
                let filter = filter.clone().unwrap_or_else(|| DEFAULT_GROUP_FILTER.to_owned());
                if !filter.contains("{dn}") && !filter.contains("{username}") {
                    return Err(ConfigIssue::new("group_filter", "must contain {dn} or {username}"));
                }
                check_filter("group_filter", &filter, &["dn", "username"], "dn")?;
                Ok(Some((base.clone(), filter)))
            }
        }
    }
}

/// A filter must have only known placeholders, and parse once they are filled.
fn check_filter(key: &str, filter: &str, names: &[&str], required: &str) -> Result<(), ConfigIssue> {
    if key == "user_filter" && !filter.contains(&format!("{{{required}}}")) {
        return Err(ConfigIssue::new(key, format!("must contain {{{required}}}")));
    }
    let values: Vec<(&str, &str)> = names.iter().map(|n| (*n, "x")).collect();
    let sample = template::expand(filter, &values).map_err(|m| ConfigIssue::new(key, m))?;
    if !sample.starts_with('(') || ldap3::parse_filter(&sample).is_err() {
        return Err(ConfigIssue::new(
            key,
            "not a valid LDAP filter (RFC 4515), such as (uid={username})",
        ));
    }
    Ok(())
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        // ldap:// is not a "special" scheme to the url crate, so IP addresses arrive as opaque domain text.
        url::Host::Domain(d) => {
            let d = d.trim_start_matches('[').trim_end_matches(']');
            d.eq_ignore_ascii_case("localhost") || d.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An attribute description: a name or an OID, optionally with options (`userCertificate;binary`).
fn is_attribute_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b';' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> LdapConfig {
        let mut c = LdapConfig::new(SourceId::new("corp").expect("id"), "ldap://127.0.0.1:389");
        c.user_base = Some("ou=people,dc=example,dc=org".into());
        c
    }

    fn key_of(c: &LdapConfig) -> String {
        c.check().expect_err("should be refused").key
    }

    #[test]
    fn minimal_search_config_is_valid() {
        base().check().expect("valid");
    }

    #[test]
    fn toml_defaults_and_unknown_keys() {
        let c: LdapConfig = toml::from_str(
            r#"
            id = "corp"
            url = "ldaps://ldap.example.com"
            user_base = "ou=people,dc=example,dc=com"
            "#,
        )
        .expect("parse");
        assert!(c.tls_verify);
        assert!(!c.starttls);
        assert!(!c.email_verified);
        assert_eq!(c.subject_attribute, "entryUUID");
        assert_eq!(c.group_attribute, "memberOf");
        assert_eq!(c.timeout_secs, 5);
        assert_eq!(c.recheck_secs, 300);
        assert!(c.tls_pinned_cert_file.is_none());
        let bad = toml::from_str::<LdapConfig>(
            r#"
            id = "corp"
            url = "ldaps://ldap.example.com"
            user_base = "ou=people,dc=example,dc=com"
            bind_password = "inline"
            "#,
        );
        assert!(bad.is_err(), "unknown key accepted");
    }

    #[test]
    fn inside_an_internally_tagged_enum_unknown_keys_are_still_refused() {
        // The server will read `[[sources]]` as an enum tagged by `kind`; the tag must not count as unknown.
        #[derive(Debug, Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        #[allow(dead_code)]
        enum Source {
            Ldap(LdapConfig),
        }
        let ok: Result<Source, _> =
            toml::from_str("kind = \"ldap\"\nid = \"corp\"\nurl = \"ldaps://h\"\nuser_base = \"dc=x\"\n");
        assert!(ok.is_ok(), "{ok:?}");
        let bad: Result<Source, _> =
            toml::from_str("kind = \"ldap\"\nid = \"corp\"\nurl = \"ldaps://h\"\nuser_base = \"dc=x\"\nnope = 1\n");
        assert!(bad.is_err());
    }

    #[test]
    fn plaintext_to_remote_hosts_is_refused() {
        let mut c = base();
        c.url = "ldap://ldap.example.com".into();
        assert_eq!(key_of(&c), "starttls");
        c.url = "ldap://10.0.0.1".into();
        assert_eq!(key_of(&c), "starttls");
        for loopback in ["ldap://localhost", "ldap://127.0.0.1:3389", "ldap://[::1]:389"] {
            c.url = loopback.into();
            c.check().expect("loopback plain is allowed");
        }
        c.url = "ldaps://ldap.example.com".into();
        c.starttls = true;
        assert_eq!(key_of(&c), "starttls");
        c.url = "http://ldap.example.com".into();
        c.starttls = false;
        assert_eq!(key_of(&c), "url");
        c.url = "ldaps://ldap.example.com/dc=example?uid".into();
        assert_eq!(key_of(&c), "url");
    }

    #[test]
    fn missing_secret_names_bind_password_file() {
        let mut c = base();
        c.bind_dn = Some("cn=svc,dc=example,dc=org".into());
        assert_eq!(key_of(&c), "bind_password_file");
        c.bind_password_env = Some("VESTIBULE_LDAP_SURELY_UNSET".into());
        assert_eq!(key_of(&c), "bind_password_env");
        let mut c = base();
        c.bind_password_env = Some("X".into());
        assert_eq!(key_of(&c), "bind_dn");
    }

    #[test]
    fn modes_are_exclusive_and_templates_checked() {
        let mut c = base();
        c.user_dn_template = Some("uid={username},ou=people,dc=example,dc=org".into());
        assert_eq!(key_of(&c), "user_base");
        c.user_base = None;
        c.check().expect("direct bind alone is valid");
        c.user_dn_template = Some("uid=fixed,dc=example,dc=org".into());
        assert_eq!(key_of(&c), "user_dn_template");
        let mut c = base();
        c.user_base = None;
        assert_eq!(key_of(&c), "user_base");
        let mut c = base();
        c.user_filter = Some("uid={username}".into());
        assert_eq!(key_of(&c), "user_filter");
        c.user_filter = Some("(uid=admin)".into());
        assert_eq!(key_of(&c), "user_filter");
        c.user_filter = Some("(uid={user})".into());
        assert_eq!(key_of(&c), "user_filter");
        c.user_filter = Some("(&(objectClass=person)(sAMAccountName={username}))".into());
        c.check().expect("valid filter");
    }

    #[test]
    fn group_settings_are_checked() {
        let mut c = base();
        c.group_filter = Some("(member={dn})".into());
        assert_eq!(key_of(&c), "group_filter");
        c.group_base = Some("ou=groups,dc=example,dc=org".into());
        c.check().expect("valid");
        c.group_filter = Some("(objectClass=groupOfNames)".into());
        assert_eq!(key_of(&c), "group_filter");
        let mut c = base();
        c.group_name_attribute = "c n".into();
        assert_eq!(key_of(&c), "group_name_attribute");
        let mut c = base();
        c.require_group = Some(" ".into());
        assert_eq!(key_of(&c), "require_group");
    }

    #[test]
    fn pinning_excludes_ca_file_and_tls_verify_false_and_needs_tls() {
        let dir = vestibule_tests::server::TempDir::new("vestibule-ldap-pin");
        let pem = dir.0.join("pinned.pem");
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ])
            .args(["-days", "1", "-subj", "/CN=localhost", "-keyout"])
            .arg(dir.0.join("key.pem"))
            .arg("-out")
            .arg(&pem)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (tests/ldap/install.sh installs it)");
        assert!(status.success());
        let mut c = base();
        c.url = "ldaps://ldap.example.com".into();
        c.tls_pinned_cert_file = Some(pem.clone());
        c.check().expect("pinning alone is valid");
        c.ca_file = Some(pem.clone());
        assert_eq!(key_of(&c), "tls_pinned_cert_file", "with ca_file");
        c.ca_file = None;
        c.tls_verify = false;
        assert_eq!(key_of(&c), "tls_pinned_cert_file", "with tls_verify = false");
        c.tls_verify = true;
        c.url = "ldap://127.0.0.1".into();
        assert_eq!(key_of(&c), "tls_pinned_cert_file", "without TLS");
        c.url = "ldaps://ldap.example.com".into();
        c.tls_pinned_cert_file = Some(dir.0.join("missing.pem"));
        assert_eq!(key_of(&c), "tls_pinned_cert_file", "unreadable");
        // Exactly one certificate: not none, not a chain.
        let two = dir.0.join("two.pem");
        let one = std::fs::read_to_string(&pem).expect("read");
        std::fs::write(&two, format!("{one}{one}")).expect("write");
        c.tls_pinned_cert_file = Some(two);
        assert_eq!(key_of(&c), "tls_pinned_cert_file", "two certificates");
        c.tls_pinned_cert_file = Some(dir.0.join("key.pem"));
        assert_eq!(key_of(&c), "tls_pinned_cert_file", "a key, no certificate");
    }

    #[test]
    fn limits_and_files() {
        let mut c = base();
        c.timeout_secs = 0;
        assert_eq!(key_of(&c), "timeout_secs");
        let mut c = base();
        c.connect_timeout_secs = 0;
        assert_eq!(key_of(&c), "connect_timeout_secs");
        let mut c = base();
        c.pool_size = 0;
        assert_eq!(key_of(&c), "pool_size");
        for bad in [0, 86_401] {
            let mut c = base();
            c.recheck_secs = bad;
            assert_eq!(key_of(&c), "recheck_secs");
        }
        let mut c = base();
        c.ca_file = Some("/nonexistent/ca.pem".into());
        assert_eq!(key_of(&c), "ca_file", "ca_file without TLS");
        c.url = "ldaps://127.0.0.1".into();
        assert_eq!(key_of(&c), "ca_file", "unreadable ca_file");
    }
}
