//! The TOML file: what it may contain (unknown keys are errors), its defaults, and the validation that
//! `vestibule check-config` runs without starting anything. Every problem names its key with a line and column.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use vestibule::{SessionSettings, SourcePolicy};
use vestibule_core::{ConfigIssue, SourceId};
use vestibule_ldap::LdapConfig;
use vestibule_local::LocalConfig;
use vestibule_oidc::{GithubConfig, GoogleConfig, OidcConfig};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub session: SessionSettings,
    #[serde(default = "default_sources")]
    pub sources: Vec<SourceEntry>,
}

/// One `[[sources]]` table: the broker's linking policy for the source (`provisioning`, `trust_email`) and the
/// provider's own keys, which the provider crate validates (`deny_unknown_fields`).
#[derive(Debug, Clone)]
pub struct SourceEntry {
    pub policy: SourcePolicy,
    pub config: SourceConfig,
}

impl<'de> Deserialize<'de> for SourceEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // The policy keys belong to the broker, not the provider: split them off before the provider's strict
        // parsing, so each side owns its keys and unknown ones are still errors on both.
        let mut table = toml::Table::deserialize(d)?;
        let mut policy = toml::Table::new();
        for key in ["provisioning", "trust_email", "authoritative_email_domains"] {
            if let Some(v) = table.remove(key) {
                policy.insert(key.to_owned(), v);
            }
        }
        let policy =
            SourcePolicy::deserialize(toml::Value::Table(policy)).map_err(|e| D::Error::custom(e.message()))?;
        let config = SourceConfig::deserialize(toml::Value::Table(table)).map_err(|e| D::Error::custom(e.message()))?;
        Ok(SourceEntry { policy, config })
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// The URL people use to reach the broker; redirect callbacks are built from it. Default `http://{bind}`.
    pub public_url: Option<String>,
    /// Set when a TLS-terminating reverse proxy sits in front, so that a non-loopback bind over plain HTTP is
    /// allowed (the public URL must then be https).
    pub behind_tls_proxy: bool,
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed for the client address (default: none).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            behind_tls_proxy: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://FILE` (created and migrated on start) or `postgres://...`.
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://vestibule.db".into(),
        }
    }
}

/// One `[[sources]]` entry; `kind` picks the provider, which owns the rest of the keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    Local(LocalConfig),
    Ldap(LdapConfig),
    Oidc(OidcConfig),
    Google(GoogleConfig),
    Github(GithubConfig),
}

fn default_sources() -> Vec<SourceEntry> {
    vec![SourceEntry {
        policy: SourcePolicy::default(),
        config: SourceConfig::Local(embedded_local()),
    }]
}

/// The local source of the embedded defaults.
pub fn embedded_local() -> LocalConfig {
    LocalConfig {
        id: SourceId::new("local").unwrap_or_else(|_| unreachable!("`local` is a valid source id")),
        display_name: None,
        argon2: Default::default(),
        password: Default::default(),
    }
}

impl SourceConfig {
    pub fn id(&self) -> &SourceId {
        match self {
            SourceConfig::Local(c) => &c.id,
            SourceConfig::Ldap(c) => &c.id,
            SourceConfig::Oidc(c) => &c.id,
            SourceConfig::Google(c) => &c.id,
            SourceConfig::Github(c) => &c.id,
        }
    }

    fn check(&self) -> Result<(), ConfigIssue> {
        match self {
            SourceConfig::Local(_) => Ok(()),
            SourceConfig::Ldap(c) => c.check(),
            SourceConfig::Oidc(c) => c.check(),
            SourceConfig::Google(c) => c.check(),
            SourceConfig::Github(c) => c.check(),
        }
    }
}

/// A configuration problem, located in the file when it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub key: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        write!(f, ": ")?;
        if let Some(k) = &self.key {
            write!(f, "`{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// Reads and validates a file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        key: None,
        line: None,
        column: None,
        message: format!("cannot read the file: {e}"),
    })?;
    parse(&file, &text)
}

/// Parses and validates configuration text.
pub fn parse(file: &str, text: &str) -> Result<FileConfig, ConfigError> {
    let located = |key: Option<String>, span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = position(text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            file: file.to_owned(),
            key,
            line,
            column,
            message,
        }
    };
    let config: FileConfig = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_owned();
        let mut span = e.span();
        // serde buffers the tagged `[[sources]]` tables, so toml can only point at the whole table: find the
        // offending key inside it.
        let key = backticked(&message, "unknown field `").or_else(|| backticked(&message, "missing field `"));
        if let (Some(k), Some(s)) = (&key, &span) {
            if message.starts_with("unknown field") {
                if let Some(at) = find_key(&text[s.clone()], k) {
                    span = Some(s.start + at..s.start + at + k.len());
                }
            }
        }
        located(key, span, message)
    })?;
    validate(&config).map_err(|(index, issue)| {
        let span = index.and_then(|i| key_span(text, i, &issue.key));
        let key = match index {
            Some(i) => format!("sources[{i}].{}", issue.key),
            None => issue.key.clone(),
        };
        located(Some(key), span, issue.message)
    })?;
    Ok(config)
}

fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next().map(str::to_owned)
}

/// The offset of `key = ...` at the start of a line within `table`.
fn find_key(table: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in table.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(offset + (line.len() - trimmed.len()));
            }
        }
        offset += line.len();
    }
    None
}

/// Where `sources[index].key` is (or the table header when the key is absent).
fn key_span(text: &str, index: usize, key: &str) -> Option<std::ops::Range<usize>> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let tables = doc.get("sources")?.as_array_of_tables()?;
    let table = tables.get(index)?;
    table.key(key).and_then(|k| k.span()).or_else(|| table.span())
}

fn validate(config: &FileConfig) -> Result<(), (Option<usize>, ConfigIssue)> {
    if config.sources.is_empty() {
        return Err((None, ConfigIssue::new("sources", "at least one source is needed")));
    }
    let mut seen = std::collections::HashSet::new();
    let mut locals = 0;
    for (i, s) in config.sources.iter().map(|e| &e.config).enumerate() {
        if !seen.insert(s.id().clone()) {
            return Err((
                Some(i),
                ConfigIssue::new("id", format!("duplicate source id `{}`", s.id())),
            ));
        }
        if matches!(s, SourceConfig::Local(_)) {
            locals += 1;
            if locals > 1 {
                return Err((
                    Some(i),
                    ConfigIssue::new("kind", "only one `local` source is supported"),
                ));
            }
        }
        s.check().map_err(|issue| (Some(i), issue))?;
    }
    if let Some(url) = &config.server.public_url {
        let parsed = url::Url::parse(url)
            .map_err(|e| (None, ConfigIssue::new("server.public_url", format!("not a URL: {e}"))))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err((
                None,
                ConfigIssue::new("server.public_url", "must be an http:// or https:// URL"),
            ));
        }
    }
    let s = &config.session;
    if s.idle_timeout_secs <= 0 || s.absolute_timeout_secs <= 0 || s.redirect_timeout_secs <= 0 {
        return Err((None, ConfigIssue::new("session", "timeouts must be positive")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_file_means_embedded_defaults() {
        let c = parse("t.toml", "").unwrap();
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database.url, "sqlite://vestibule.db");
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.session.idle_timeout_secs, 1800);
    }

    #[test]
    fn unknown_keys_are_located() {
        let e = parse("t.toml", "[server]\nbind = \"127.0.0.1:1\"\nbnid = 3\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(1)), "{e}");
        assert!(e.message.contains("unknown field `bnid`"), "{e}");

        let text = "[[sources]]\nid = \"local\"\nkind = \"local\"\ndisplay_nmae = \"x\"\n";
        let e = parse("t.toml", text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("display_nmae"), "{e}");
        assert_eq!((e.line, e.column), (Some(4), Some(1)), "{e}");
    }

    #[test]
    fn wrong_types_are_located() {
        let e = parse("t.toml", "[session]\nidle_timeout_secs = \"soon\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn duplicate_ids_are_located() {
        let text = "[[sources]]\nid = \"a\"\nkind = \"local\"\n\n[[sources]]\nkind = \"local\"\nid = \"a\"\n";
        let e = parse("t.toml", text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources[1].id"));
        assert_eq!((e.line, e.column), (Some(7), Some(1)), "{e}");
        assert!(
            e.to_string()
                .starts_with("t.toml:7:1: `sources[1].id`: duplicate source id"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod reference_file {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn the_reference_file_is_valid_and_matches_the_defaults() {
        let text = include_str!("../../../examples/vestibule.reference.toml");
        let documented = super::parse("vestibule.reference.toml", text).unwrap();
        let defaults = super::parse("(embedded)", "").unwrap();
        assert_eq!(documented.server.bind, defaults.server.bind);
        assert_eq!(documented.database.url, defaults.database.url);
        assert_eq!(documented.session, defaults.session);
        let (super::SourceConfig::Local(a), super::SourceConfig::Local(b)) =
            (&documented.sources[0].config, &defaults.sources[0].config)
        else {
            panic!("local source expected")
        };
        assert_eq!((a.argon2, a.password), (b.argon2, b.password));
    }
}

#[cfg(test)]
mod policy_keys {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn linking_policy_keys_sit_in_the_source_table() {
        let text =
            "[[sources]]\nid = \"local\"\nkind = \"local\"\nprovisioning = \"existing_only\"\ntrust_email = true\n";
        let c = super::parse("t.toml", text).unwrap();
        assert_eq!(c.sources[0].policy.provisioning, vestibule::Provisioning::ExistingOnly);
        assert!(c.sources[0].policy.trust_email);
        let d = super::parse("t.toml", "[[sources]]\nid = \"local\"\nkind = \"local\"\n").unwrap();
        assert_eq!(d.sources[0].policy, vestibule::SourcePolicy::default());
        let e = super::parse(
            "t.toml",
            "[[sources]]\nid = \"local\"\nkind = \"local\"\nprovisioning = \"always\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("unknown variant `always`"), "{e}");
        assert_eq!(e.line, Some(1), "{e}");
    }
}
