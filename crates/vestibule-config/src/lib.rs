//! Vestibule's TOML configuration file as a library: what it may contain (unknown keys are errors), its
//! defaults, the validation that `vestibule check-config` runs without starting anything (every problem names its
//! key with a line and column), and the [`Broker`], sources and [`HttpSettings`](vestibule_axum::HttpSettings) the file describes. The
//! `vestibule` server binary is a user of this crate; an axum app can build its broker from the same file.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = std::env::temp_dir().join(format!("vestibule-config-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! // What `vestibule serve --config vestibule.toml` reads; `load(path)` reads it from a file.
//! let toml = format!(
//!     "[server]\npublic_url = \"http://127.0.0.1:8080\"\n\
//!      [database]\nurl = \"sqlite://{}/vestibule.db\"\n\
//!      [[sources]]\nkind = \"local\"\nid = \"local\"\n",
//!     dir.display()
//! );
//! let config = vestibule_config::parse("vestibule.toml", &toml)?;
//! // Opens and migrates `[database]`, starts the `[email]` queue, builds every `[[sources]]` entry.
//! let broker = std::sync::Arc::new(config.broker().await?);
//! assert!(broker.source("local").is_some());
//! let app = vestibule_axum::Vestibule::new(broker, config.http_settings()).nest_into(axum::Router::new());
//! # let _ = app;
//! // A mistake names its key, line and column.
//! let err = vestibule_config::parse("vestibule.toml", "[server]\nbind = \"nowhere\"\n").unwrap_err();
//! assert!(err.to_string().contains("server.bind"), "{err}");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use vestibule::{
    AdminSettings, Broker, BrokerBuilder, PasskeyMode, SecondFactorKey, SecondFactorPolicy, SecondFactorSettings,
    SessionSettings, SourcePolicy, ThrottleSettings,
};
use vestibule_core::{ConfigIssue, SourceId};
use vestibule_ldap::LdapConfig;
use vestibule_local::LocalConfig;
use vestibule_mail::MailConfig;
use vestibule_oidc::{GithubConfig, GoogleConfig, OidcConfig};
use vestibule_store::StoreOptions;

/// The whole file, validated.
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub session: SessionSettings,
    pub throttle: ThrottleSettings,
    pub second_factor: SecondFactorConfig,
    pub admin: AdminSettings,
    pub email: MailConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    /// `[ui]`, with its logo and template overrides already read and compiled.
    pub ui: vestibule_axum::UiSettings,
    pub sources: Vec<SourceEntry>,
}

/// The file as serde reads it in one pass. The `[[sources]]` tables stay raw here and are read one by one in
/// [`source_entry`]: a source is picked by its `kind` tag, and serde reads tagged enums through a buffer that loses
/// both toml's positions and `serde_path_to_error`'s path, so a mistake inside a source could not be named.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    database: DatabaseConfig,
    #[serde(default)]
    session: SessionSettings,
    #[serde(default)]
    throttle: ThrottleSettings,
    #[serde(default)]
    second_factor: SecondFactorConfig,
    #[serde(default)]
    admin: AdminSettings,
    #[serde(default)]
    email: MailConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    ui: UiConfig,
    sources: Option<Vec<toml::Table>>,
}

/// One `[[sources]]` table: the broker's linking policy for the source (`provisioning`, `trust_email`, ...) and
/// the provider's own keys, which the provider crate validates (`deny_unknown_fields`).
#[derive(Debug, Clone)]
pub struct SourceEntry {
    pub policy: SourcePolicy,
    pub config: SourceConfig,
}

/// `[ui]`: the look of the built-in pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct UiConfig {
    /// In every page's title and header.
    product_name: String,
    /// A `.svg` or `.png` file, shown in every page's header and served at `{mount}/static/logo`.
    logo: Option<std::path::PathBuf>,
    /// A folder of files named like built-in templates, which replace them.
    templates: Option<std::path::PathBuf>,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            product_name: vestibule_axum::UiSettings::default().product_name,
            logo: None,
            templates: None,
        }
    }
}

/// Reads the logo and compiles the template overrides, so that `check-config` refuses what `serve` would.
fn ui_settings(ui: UiConfig) -> Result<vestibule_axum::UiSettings, ConfigIssue> {
    let name = ui.product_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ConfigIssue::new("ui.product_name", "must be 1 to 100 characters"));
    }
    let logo = match &ui.logo {
        Some(path) => Some(vestibule_axum::Logo::load(path).map_err(|e| ConfigIssue::new("ui.logo", e.to_string()))?),
        None => None,
    };
    let templates = match &ui.templates {
        Some(folder) => Some(
            vestibule_axum::TemplateOverrides::load(folder)
                .map_err(|e| ConfigIssue::new("ui.templates", e.to_string()))?,
        ),
        None => None,
    };
    Ok(vestibule_axum::UiSettings {
        product_name: name.to_owned(),
        logo,
        templates,
    })
}

/// `[log]`: how `serve` writes its log (to standard error).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (the default: one readable line per event) or `json` (one JSON object per line, for a log pipeline).
    pub format: LogFormat,
}

/// The log's line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`), and `span` /
    /// `spans` naming the request (`request_id`).
    Json,
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
    /// The longest the broker works on one request, in seconds, before answering 503 with `Retry-After`
    /// (default 30; between 1 and 3600).
    pub request_timeout_secs: u64,
    /// On SIGTERM or Ctrl-C: how long requests already being answered may still run, in seconds, before the
    /// process exits anyway (default 30; between 1 and 3600). New connections are refused at once.
    pub shutdown_grace_secs: u64,
    /// `[server.tls]`: the `vestibule` binary serves HTTPS itself (see [`TlsConfig`]).
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            behind_tls_proxy: false,
            trusted_proxies: Vec::new(),
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
            tls: None,
        }
    }
}

impl ServerConfig {
    /// The per-request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// `[server.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM: the server's certificate first, then the intermediates.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the two files are looked at for a change, in seconds (default 30; between 1 and 86400). A
    /// changed pair is loaded and used for new connections; a pair that does not load is logged and the running
    /// one kept.
    #[serde(default = "default_reload_secs")]
    pub reload_interval_secs: u64,
    /// An address for a plain-HTTP listener that answers every GET or HEAD with a redirect to the same path at
    /// `public_url` (and any other method with 400), so that `http://` bookmarks and typed addresses land on
    /// https. Off by default.
    #[serde(default)]
    pub redirect_http_bind: Option<SocketAddr>,
}

fn default_reload_secs() -> u64 {
    30
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where to serve `GET /metrics` (Prometheus text format), for example `127.0.0.1:9464`. Unset (the default):
    /// no metrics. Plain HTTP without authentication: keep it on loopback or a private network.
    pub bind: Option<SocketAddr>,
}

/// `[second_factor]`: the broker's [`SecondFactorSettings`] and the key that seals TOTP secrets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecondFactorConfig {
    /// `optional` (default), `required`, or `required_for_groups`.
    pub policy: SecondFactorPolicy,
    /// With `required_for_groups`: the short group names whose members must have a second factor.
    pub groups: Vec<String>,
    /// Lifetime of the half-signed-in state, in seconds (default 300).
    pub pending_timeout_secs: i64,
    /// Wrong codes one half-signed-in state allows (default 5).
    pub max_failures: u32,
    /// The name authenticator apps and passkey prompts show (default `Vestibule`).
    pub issuer: String,
    /// Passkeys: `auto` (default; on when public_url's host is a name), `on`, or `off`.
    pub passkeys: PasskeyMode,
    /// A file holding the 32-byte key (64 hex characters, or base64) that seals TOTP secrets and keys the
    /// recovery-code hashes. Without it (or `key_env`), a key is generated once and kept in the database.
    pub key_file: Option<std::path::PathBuf>,
    /// The environment variable holding that key.
    pub key_env: Option<String>,
}

impl Default for SecondFactorConfig {
    fn default() -> Self {
        let d = SecondFactorSettings::default();
        SecondFactorConfig {
            policy: d.policy,
            groups: d.groups,
            pending_timeout_secs: d.pending_timeout_secs,
            max_failures: d.max_failures,
            issuer: d.issuer,
            passkeys: d.passkeys,
            key_file: None,
            key_env: None,
        }
    }
}

impl SecondFactorConfig {
    /// The broker's settings.
    pub fn settings(&self) -> SecondFactorSettings {
        SecondFactorSettings {
            policy: self.policy,
            groups: self.groups.clone(),
            pending_timeout_secs: self.pending_timeout_secs,
            max_failures: self.max_failures,
            issuer: self.issuer.clone(),
            passkeys: self.passkeys,
        }
    }

    /// The configured key, read and parsed; `None` when neither `key_file` nor `key_env` is set.
    pub fn key(&self) -> Result<Option<SecondFactorKey>, ConfigIssue> {
        if self.key_file.is_none() && self.key_env.is_none() {
            return Ok(None);
        }
        let text = vestibule_core::read_secret("key", self.key_file.as_ref(), self.key_env.as_deref())?;
        let which = if self.key_file.is_some() { "key_file" } else { "key_env" };
        SecondFactorKey::parse(vestibule_core::ExposeSecret::expose_secret(&text))
            .map(Some)
            .map_err(|why| ConfigIssue::new(which, why))
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://FILE` (created and migrated on start) or `postgres://...`. Shown with its password masked.
    pub url: vestibule_store::DatabaseUrl,
    /// The longest wait for a free pooled connection, in seconds (default 5).
    pub acquire_timeout_secs: u64,
    /// PostgreSQL: the longest one statement may run, lock waits included, and the longest a transaction may sit
    /// idle, in seconds (default 10; 0 turns both off).
    pub statement_timeout_secs: u64,
    /// SQLite: the longest a write waits for another connection's lock, in seconds (default 5).
    pub busy_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        let d = StoreOptions::default();
        DatabaseConfig {
            url: "sqlite://vestibule.db".into(),
            acquire_timeout_secs: d.acquire_timeout.as_secs(),
            statement_timeout_secs: d.statement_timeout.as_secs(),
            busy_timeout_secs: d.sqlite_busy_timeout.as_secs(),
        }
    }
}

impl DatabaseConfig {
    /// The store's timeouts.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            acquire_timeout: Duration::from_secs(self.acquire_timeout_secs),
            statement_timeout: Duration::from_secs(self.statement_timeout_secs),
            sqlite_busy_timeout: Duration::from_secs(self.busy_timeout_secs),
        }
    }
}

/// One `[[sources]]` entry; `kind` picks the provider, which owns the rest of the keys.
#[derive(Debug, Clone)]
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
    let (file, text) = read(path)?;
    parse(&file, &text)
}

/// The file's name as messages show it, and its text.
fn read(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        key: None,
        line: None,
        column: None,
        message: format!("cannot read the file: {e}"),
    })?;
    Ok((file, text))
}

/// A file that `vestibule check-config` accepts, with what it allows but is probably a mistake.
#[derive(Debug, Clone)]
pub struct Checked {
    pub config: FileConfig,
    /// [`FileConfig::warnings`], located in the file like errors are.
    pub warnings: Vec<ConfigError>,
}

/// What `vestibule check-config` runs: [`load`], then the transport rule for the file's own `[server] bind`
/// ([`FileConfig::transport`], which `vestibule serve` applies before it opens a socket), and
/// [`FileConfig::warnings`]. The transport rule is not part of [`parse`]: an app that embeds the broker serves on
/// its own listener, and `serve --bind` may replace the file's address.
pub fn check(path: &Path) -> Result<Checked, ConfigError> {
    let (file, text) = read(path)?;
    let config = parse(&file, &text)?;
    let at = |issue: ConfigIssue| located(&file, &text, &steps_of_key(&issue.key), None, issue.message);
    config.transport().map_err(at)?;
    let warnings = config.warnings().into_iter().map(at).collect();
    Ok(Checked { config, warnings })
}

/// A problem at the key path `steps`: at `span` when toml knows it, else where the key (or the nearest table
/// holding it) is in `text`.
fn located(file: &str, text: &str, steps: &[Step], span: Option<Range<usize>>, message: String) -> ConfigError {
    let span = span.or_else(|| locate(text, steps, Aim::of(&message)));
    let (line, column) = match span {
        Some(s) => {
            let (l, c) = position(text, s.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    ConfigError {
        file: file.to_owned(),
        key: (!steps.is_empty()).then(|| key_path(steps)),
        line,
        column,
        message,
    }
}

/// Parses and validates configuration text.
pub fn parse(file: &str, text: &str) -> Result<FileConfig, ConfigError> {
    // toml knows where a mistake is for everything it read itself; inside a source table, and for what `validate`
    // finds, the key path is looked up in the text.
    let located =
        |steps: &[Step], span: Option<Range<usize>>, message: String| located(file, text, steps, span, message);
    let raw: RawFile = serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let message = e.inner().message().trim().to_owned();
        located(&steps_of(e.path(), &message), e.inner().span(), message)
    })?;
    let sources = match raw.sources {
        None => default_sources(),
        Some(tables) => tables
            .into_iter()
            .enumerate()
            .map(|(i, table)| {
                source_entry(table).map_err(|(inner, message)| {
                    let mut steps = vec![Step::Key("sources".into()), Step::Index(i)];
                    steps.extend(inner);
                    located(&steps, None, message)
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let ui = ui_settings(raw.ui).map_err(|issue| located(&steps_of_key(&issue.key), None, issue.message))?;
    let config = FileConfig {
        ui,
        server: raw.server,
        database: raw.database,
        session: raw.session,
        throttle: raw.throttle,
        second_factor: raw.second_factor,
        admin: raw.admin,
        email: raw.email,
        log: raw.log,
        metrics: raw.metrics,
        sources,
    };
    validate(&config).map_err(|(index, issue)| {
        let mut steps = match index {
            Some(i) => vec![Step::Key("sources".into()), Step::Index(i)],
            None => Vec::new(),
        };
        steps.extend(steps_of_key(&issue.key));
        located(&steps, None, issue.message)
    })?;
    Ok(config)
}

/// The kinds of source, as the `kind` key names them.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceKind {
    Local,
    Ldap,
    Oidc,
    Google,
    Github,
}

/// Reads one `[[sources]]` table; a problem comes back as the key path inside the table and the message.
fn source_entry(mut table: toml::Table) -> Result<SourceEntry, (Vec<Step>, String)> {
    // The policy keys belong to the broker, not the provider: split them off before the provider's strict
    // parsing, so each side owns its keys and unknown ones are still errors on both. `SourcePolicy` itself says
    // which keys are its, so a new policy key needs no change here.
    let mut policy = toml::Table::new();
    for key in struct_fields::<SourcePolicy>() {
        if let Some(v) = table.remove(*key) {
            policy.insert((*key).to_owned(), v);
        }
    }
    let policy: SourcePolicy = strict(toml::Value::Table(policy))?;
    let kind_key = || vec![Step::Key("kind".into())];
    let kind = match table.remove("kind") {
        Some(v) => SourceKind::deserialize(v).map_err(|e| (kind_key(), e.message().trim().to_owned()))?,
        None => return Err((kind_key(), "missing field `kind`".into())),
    };
    let rest = toml::Value::Table(table);
    let config = match kind {
        SourceKind::Local => SourceConfig::Local(strict(rest)?),
        SourceKind::Ldap => SourceConfig::Ldap(strict(rest)?),
        SourceKind::Oidc => SourceConfig::Oidc(strict(rest)?),
        SourceKind::Google => SourceConfig::Google(strict(rest)?),
        SourceKind::Github => SourceConfig::Github(strict(rest)?),
    };
    Ok(SourceEntry { policy, config })
}

/// Deserializes a value, keeping the key path of a failure.
fn strict<T: serde::de::DeserializeOwned>(value: toml::Value) -> Result<T, (Vec<Step>, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().message().trim().to_owned();
        (steps_of(e.path(), &message), message)
    })
}

/// The field names a struct's derived `Deserialize` announces (serde passes them to `deserialize_struct`).
fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names read")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &mut Fields {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields = Fields(None);
    // Always an error: the point is what `deserialize_struct` was told on the way.
    let _ = T::deserialize(&mut fields);
    fields.0.unwrap_or(&[])
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `server.trusted_proxies[1]`, `sources[0].argon2.memory_kib`.
fn key_path(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The steps of a key path written out (`server.bind`, `authoritative_email_domains[1]`).
fn steps_of_key(key: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in key.split('.') {
        let mut pieces = part.split('[');
        steps.push(Step::Key(pieces.next().unwrap_or_default().to_owned()));
        for index in pieces {
            match index.strip_suffix(']').and_then(|n| n.parse().ok()) {
                Some(i) => steps.push(Step::Index(i)),
                None => break,
            }
        }
    }
    steps
}

/// The steps of a serde path; a missing key is named by the message only, so it is added from there.
fn steps_of(path: &serde_path_to_error::Path, message: &str) -> Vec<Step> {
    use serde_path_to_error::Segment;
    let mut steps: Vec<Step> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Enum { variant } => Some(Step::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect();
    if let Some(missing) = backticked(message, "missing field `") {
        steps.push(Step::Key(missing));
    }
    steps
}

fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next().map(str::to_owned)
}

/// Whether a message is about a key's value (point at the value) or about the key itself (point at the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aim {
    Key,
    Value,
}

impl Aim {
    fn of(message: &str) -> Aim {
        // serde's wording for a value of the wrong type or shape, as toml itself points at the value for these.
        if ["invalid ", "unknown variant"].iter().any(|p| message.starts_with(p)) {
            Aim::Value
        } else {
            Aim::Key
        }
    }
}

/// Where the key path `steps` is in the text: its key or its value, or the nearest enclosing table found when the
/// key is absent (a missing key).
fn locate(text: &str, steps: &[Step], aim: Aim) -> Option<Range<usize>> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item = doc.as_item();
    let mut found = None;
    for (n, step) in steps.iter().enumerate() {
        let last = n + 1 == steps.len();
        match step {
            Step::Key(k) => {
                let Some((key, value)) = item.as_table_like().and_then(|t| t.get_key_value(k)) else {
                    break;
                };
                let span = if last && aim == Aim::Key {
                    key.span().or_else(|| value.span())
                } else {
                    value.span().or_else(|| key.span())
                };
                found = span.or(found);
                item = value;
            }
            Step::Index(i) => {
                let Some(element) = item.get(*i) else { break };
                found = element.span().or(found);
                item = element;
            }
        }
    }
    found
}

fn validate(config: &FileConfig) -> Result<(), (Option<usize>, ConfigIssue)> {
    if config.sources.is_empty() {
        return Err((None, ConfigIssue::new("sources", "at least one source is needed")));
    }
    let mut seen = std::collections::HashSet::new();
    let mut locals = 0;
    for (i, entry) in config.sources.iter().enumerate() {
        let s = &entry.config;
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
        if let SourceConfig::Google(google) = s {
            google_vouches_within_allowed_domains(google, &entry.policy).map_err(|issue| (Some(i), issue))?;
        }
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
        // Callback URLs are public_url + "/callback/{id}": a query, a fragment or credentials in it would make
        // URLs no provider can match (and a fragment never reaches the server).
        if parsed.query().is_some()
            || parsed.fragment().is_some()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err((
                None,
                ConfigIssue::new(
                    "server.public_url",
                    "must be scheme, host, port and path only (no ?query, #fragment or user@): callback URLs are \
                     built by appending /callback/{id} to it",
                ),
            ));
        }
        // Serving HTTPS while announcing http: callbacks registered at providers and cookies would not match.
        if config.server.tls.is_some() && parsed.scheme() != "https" {
            return Err((
                None,
                ConfigIssue::new("server.public_url", "must be https:// when [server.tls] is set"),
            ));
        }
    }
    let in_range = |key: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
        if range.contains(&value) {
            Ok(())
        } else {
            Err((
                None,
                ConfigIssue::new(
                    key,
                    format!("must be between {} and {} seconds", range.start(), range.end()),
                ),
            ))
        }
    };
    in_range(
        "server.request_timeout_secs",
        config.server.request_timeout_secs,
        1..=3600,
    )?;
    in_range(
        "server.shutdown_grace_secs",
        config.server.shutdown_grace_secs,
        1..=3600,
    )?;
    if let Some(tls) = &config.server.tls {
        in_range("server.tls.reload_interval_secs", tls.reload_interval_secs, 1..=86400)?;
    }
    let db = &config.database;
    in_range("database.acquire_timeout_secs", db.acquire_timeout_secs, 1..=3600)?;
    // 0 is PostgreSQL's own "no limit"; a busy timeout of 0 would make every concurrent write fail at once.
    in_range("database.statement_timeout_secs", db.statement_timeout_secs, 0..=3600)?;
    in_range("database.busy_timeout_secs", db.busy_timeout_secs, 1..=3600)?;
    let s = &config.session;
    if s.idle_timeout_secs <= 0 || s.absolute_timeout_secs <= 0 || s.redirect_timeout_secs <= 0 {
        return Err((None, ConfigIssue::new("session", "timeouts must be positive")));
    }
    validate_throttle(&config.throttle).map_err(|issue| (None, issue))?;
    let prefixed = |issue: ConfigIssue| {
        (
            None,
            ConfigIssue::new(format!("second_factor.{}", issue.key), issue.message),
        )
    };
    if let Some((key, message)) = config.second_factor.settings().problem() {
        return Err(prefixed(ConfigIssue::new(key, message)));
    }
    config.second_factor.key().map(|_| ()).map_err(prefixed)?;
    if let Some((key, message)) = config.admin.problem() {
        return Err((None, ConfigIssue::new(format!("admin.{key}"), message)));
    }
    if config.second_factor.passkeys == PasskeyMode::On {
        // WebAuthn takes the relying party id from the public URL's host and accepts no IP address; without a
        // public URL, the default one is the bind address, an IP address.
        let host_is_a_name = config
            .server
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| u.domain().is_some());
        if !host_is_a_name {
            return Err(prefixed(ConfigIssue::new(
                "passkeys",
                "\"on\" needs [server] public_url with a host name, not an IP address (WebAuthn accepts no IP \
                 address as relying party id); for development use public_url = \"http://localhost:PORT\"",
            )));
        }
    }
    config
        .email
        .check()
        .map_err(|issue| (None, ConfigIssue::new(format!("email.{}", issue.key), issue.message)))
}

/// `[throttle]`: every layer stays on; a value may tighten or loosen it within bounds, never switch it off.
fn validate_throttle(t: &ThrottleSettings) -> Result<(), ConfigIssue> {
    let within = |key: &str, value: u64, range: std::ops::RangeInclusive<u64>, what: &str| {
        if range.contains(&value) {
            Ok(())
        } else {
            Err(ConfigIssue::new(
                format!("throttle.{key}"),
                format!("must be between {} and {} {what}", range.start(), range.end()),
            ))
        }
    };
    within("address_burst", t.address_burst.into(), 1..=10_000, "attempts")?;
    within("address_refill_secs", t.address_refill_secs.into(), 1..=3600, "seconds")?;
    within(
        "account_free_failures",
        t.account_free_failures.into(),
        1..=100,
        "failures",
    )?;
    within("pair_free_failures", t.pair_free_failures.into(), 1..=100, "failures")?;
    within("first_delay_secs", t.first_delay_secs.into(), 1..=3600, "seconds")?;
    within(
        "max_delay_secs",
        t.max_delay_secs.into(),
        u64::from(t.first_delay_secs)..=86_400,
        "seconds",
    )?;
    // ASVS 2.2.1: no more than 100 failed attempts per hour on a single account.
    within(
        "account_failures_per_hour",
        t.account_failures_per_hour.into(),
        1..=100,
        "failures",
    )?;
    within(
        "forget_after_secs",
        t.forget_after_secs.into(),
        60..=86_400 * 7,
        "seconds",
    )?;
    within("max_tracked", t.max_tracked, 1_000..=100_000_000, "keys")
}

/// A Google source vouches for an address only within its Workspace domains: `allowed_domains` is checked against
/// the ID token's `hd`, so a personal Google account that uses a work address is refused there. A domain in
/// `authoritative_email_domains` that `allowed_domains` does not also list (or any domain, when `allowed_domains`
/// is empty and every Google account may sign in) would let such an account vouch for it.
fn google_vouches_within_allowed_domains(google: &GoogleConfig, policy: &SourcePolicy) -> Result<(), ConfigIssue> {
    let allowed: Vec<String> = google
        .allowed_domains
        .iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    for (j, domain) in policy.authoritative_email_domains.iter().enumerate() {
        let pattern = domain.trim().to_ascii_lowercase();
        if allowed.contains(&pattern) {
            continue;
        }
        let key = format!("authoritative_email_domains[{j}]");
        let message = if allowed.is_empty() {
            format!(
                "`{domain}`: a google source without `allowed_domains` admits every Google account, so it may vouch \
                 for no address; list your Workspace domains in `allowed_domains` first"
            )
        } else {
            format!(
                "`{domain}` is not one of this google source's `allowed_domains`: only a Workspace domain checked \
                 against the ID token's `hd` may be vouched for (wildcards never are)"
            )
        };
        return Err(ConfigIssue::new(key, message));
    }
    Ok(())
}

/// Why the broker the file describes could not be built: the database cannot be opened, a source or the mail
/// queue cannot start, or the key file cannot be read. The message names the key or the database (its password
/// masked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

/// The configured sources in order, and the local source again as the password changer when there is one.
pub type Sources = (
    Vec<Arc<dyn vestibule_core::AuthSource>>,
    Option<Arc<dyn vestibule_core::PasswordChanger>>,
);

impl FileConfig {
    /// `server.public_url`, or the URL of the bind address when it is not set (https when `[server.tls]` is).
    pub fn public_url(&self) -> String {
        let scheme = if self.server.tls.is_some() { "https" } else { "http" };
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", self.server.bind))
    }

    /// The `local` source, if the file has one (`vestibule user add` creates accounts in it).
    pub fn local_source(&self) -> Option<&LocalConfig> {
        self.sources.iter().find_map(|s| match &s.config {
            SourceConfig::Local(c) => Some(c),
            _ => None,
        })
    }

    /// Opens `[database]` with its timeouts and brings its schema up to date.
    pub async fn open_store(&self) -> Result<vestibule_store::Store, BuildError> {
        // The URL may carry a password: it is shown masked (`DatabaseUrl`'s `Display`).
        let url = &self.database.url;
        let store = vestibule_store::Store::connect_with(
            vestibule_core::ExposeSecret::expose_secret(url),
            self.database.store_options(),
        )
        .await
        .map_err(|e| {
            BuildError(format!(
                "cannot open the database {url}: {}",
                vestibule_core::error_chain(&e)
            ))
        })?;
        store.migrate().await.map_err(|e| {
            BuildError(format!(
                "cannot migrate the database {url}: {}",
                vestibule_core::error_chain(&e)
            ))
        })?;
        Ok(store)
    }

    /// Every `[[sources]]` entry as a running source, over `store` for the local one's credentials.
    pub fn sources(&self, store: &vestibule_store::Store) -> Result<Sources, BuildError> {
        use vestibule_core::{AuthSource, CredentialRepository, PasswordChanger};
        let mut out: Vec<Arc<dyn AuthSource>> = Vec::new();
        let mut changer: Option<Arc<dyn PasswordChanger>> = None;
        for (i, s) in self.sources.iter().map(|e| &e.config).enumerate() {
            let issue = |e: ConfigIssue| BuildError(format!("sources[{i}].{}: {}", e.key, e.message));
            let source: Arc<dyn AuthSource> = match s {
                SourceConfig::Local(c) => {
                    let hasher = vestibule_local::PasswordHasher::new(c.argon2)
                        .map_err(|e| BuildError(format!("sources[{i}].argon2: {e}")))?;
                    let repo: Arc<dyn CredentialRepository> = Arc::new(store.clone());
                    let local = Arc::new(vestibule_local::LocalSource::new(c, repo, Arc::new(hasher)));
                    changer = Some(local.clone());
                    local
                }
                SourceConfig::Ldap(c) => Arc::new(vestibule_ldap::LdapSource::new(c.clone()).map_err(issue)?),
                SourceConfig::Oidc(c) => Arc::new(vestibule_oidc::OidcSource::new(c.clone()).map_err(issue)?),
                SourceConfig::Google(c) => Arc::new(vestibule_oidc::OidcSource::google(c.clone()).map_err(issue)?),
                SourceConfig::Github(c) => Arc::new(vestibule_oidc::GithubSource::new(c.clone()).map_err(issue)?),
            };
            out.push(source);
        }
        Ok((out, changer))
    }

    /// The mail queue of `[email]`: SMTP when `smtp_url` is set, else the development outbox folder. Drain it
    /// before the process exits ([`vestibule_mail::MailQueue::drain`]) so that queued messages go out.
    pub fn start_mailer(&self) -> Result<Arc<vestibule_mail::MailQueue>, BuildError> {
        if self.email.smtp_url.is_none() {
            tracing::warn!(
                outbox = %self.email.outbox_dir.display(),
                "no [email] smtp_url: reset links and notices are written to the development outbox, not mailed"
            );
        }
        vestibule_mail::MailQueue::start(&self.email).map_err(|e| BuildError(format!("email: {e}")))
    }

    /// The `[second_factor]` key, read from its file or variable; `None` when neither is set (the broker then
    /// keeps a generated key in the database).
    pub fn second_factor_key(&self) -> Result<Option<SecondFactorKey>, BuildError> {
        self.second_factor
            .key()
            .map_err(|e| BuildError(format!("second_factor.{}: {}", e.key, e.message)))
    }

    /// A builder with everything the file says, over an opened `store` and a started `mailer`, with links built
    /// from `public_url`: the caller may add to it (hooks) before `build()`. [`FileConfig::broker`] when there is
    /// nothing to add.
    pub fn broker_builder(
        &self,
        store: vestibule_store::Store,
        mailer: Arc<vestibule_mail::MailQueue>,
        public_url: &str,
    ) -> Result<BrokerBuilder, BuildError> {
        let (sources, changer) = self.sources(&store)?;
        let mut builder = Broker::builder(store, public_url.trim_end_matches('/'))
            .settings(self.session)
            .throttle(self.throttle)
            .second_factor(self.second_factor.settings())
            .admin(self.admin.clone())
            .mailer(mailer)
            .mail_settings(self.email.link_settings());
        if let Some(key) = self.second_factor_key()? {
            builder = builder.second_factor_key(key);
        }
        if let Some(changer) = changer {
            builder = builder.password_changer(changer);
        }
        for (source, entry) in sources.into_iter().zip(&self.sources) {
            builder = builder.source_with_policy(source, entry.policy.clone());
        }
        Ok(builder)
    }

    /// The broker the file describes: the database opened and migrated, the mail queue started, every source
    /// built, links from [`FileConfig::public_url`]. Start its background work as the server does
    /// ([`Broker::spawn_janitor`], [`Broker::spawn_revocation_listener`]).
    pub async fn broker(&self) -> Result<Broker, BuildError> {
        let store = self.open_store().await?;
        let mailer = self.start_mailer()?;
        self.broker_builder(store, mailer, &self.public_url())?
            .build()
            .await
            .map_err(|e| BuildError(e.to_string()))
    }

    /// The HTTP settings for [`vestibule_axum::Vestibule`]: `[server]` trusted proxies and request timeout,
    /// `[ui]`, and `Secure` cookies when [`FileConfig::public_url`] is https.
    pub fn http_settings(&self) -> vestibule_axum::HttpSettings {
        vestibule_axum::HttpSettings {
            secure_cookies: self.public_url().starts_with("https://"),
            trusted_proxies: self.server.trusted_proxies.clone(),
            request_timeout: self.server.request_timeout(),
            ui: self.ui.clone(),
            ..vestibule_axum::HttpSettings::default()
        }
    }

    /// The transport rule, for serving on `[server] bind`: HTTPS here (`[server.tls]`), or plain HTTP only on a
    /// loopback address or behind a TLS-terminating proxy (`behind_tls_proxy` with an https `public_url`), so that
    /// sessions and passwords never cross a network unencrypted. `vestibule serve` refuses to start on the `Err`
    /// (after `--bind` replaced the address), and `vestibule check-config` refuses the file.
    pub fn transport(&self) -> Result<Transport, ConfigIssue> {
        let bind = self.server.bind;
        let public_url = self.public_url();
        let https = url::Url::parse(&public_url).is_ok_and(|u| u.scheme() == "https");
        if self.server.tls.is_some() {
            if !https {
                return Err(ConfigIssue::new(
                    "server.public_url",
                    format!(
                        "[server.tls] serves HTTPS but server.public_url is {public_url}: links, redirect callbacks \
                         and cookies would name plain http. Set public_url = \"https://your.host\""
                    ),
                ));
            }
            return Ok(Transport::Tls);
        }
        if bind.ip().is_loopback() {
            return Ok(Transport::Loopback { https });
        }
        if https && self.server.behind_tls_proxy {
            return Ok(Transport::TlsProxy);
        }
        Err(ConfigIssue::new(
            "server.bind",
            format!(
                "refusing to serve plain HTTP on the non-loopback address {bind}: sessions and passwords would cross \
                 the network unencrypted. Serve HTTPS here with [server.tls] cert_file and key_file; or put a \
                 TLS-terminating reverse proxy in front and set, under [server], public_url = \"https://your.host\" \
                 and behind_tls_proxy = true; or bind to 127.0.0.1 for local development"
            ),
        ))
    }

    /// What the file allows but is probably a mistake, each naming its key: `vestibule check-config` prints them
    /// as warnings (and still exits 0), `vestibule serve` logs them at start.
    pub fn warnings(&self) -> Vec<ConfigIssue> {
        let mut found = Vec::new();
        let server = &self.server;
        let redirect_source = self.sources.iter().find_map(|s| match &s.config {
            SourceConfig::Oidc(c) => Some(&c.id),
            SourceConfig::Google(c) => Some(&c.id),
            SourceConfig::Github(c) => Some(&c.id),
            SourceConfig::Local(_) | SourceConfig::Ldap(_) => None,
        });
        let public_ip = server
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| match u.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            });
        if let (Some(id), Some(ip)) = (redirect_source, public_ip) {
            if ip.is_unspecified() {
                found.push(ConfigIssue::new(
                    "server.public_url",
                    format!(
                        "its host {ip} is no address a browser can reach, yet the callback URL of source `{id}` is \
                         built from it: set public_url to the https URL people type"
                    ),
                ));
            } else if !ip.is_loopback() {
                found.push(ConfigIssue::new(
                    "server.public_url",
                    format!(
                        "its host is the IP address {ip}, and the callback URL of source `{id}` is built from it: \
                         identity providers such as Google accept no IP address in a redirect URI (other than \
                         loopback), and an address changes; use the host name people type"
                    ),
                ));
            }
        }
        if server.tls.is_some() && server.public_url.is_none() && !server.bind.ip().is_loopback() {
            found.push(ConfigIssue::new(
                "server.tls",
                format!(
                    "no server.public_url: links, redirect callbacks and cookies will name {}, the bind address, \
                     which no browser or provider should be sent to. Set public_url = \"https://your.host\"",
                    self.public_url()
                ),
            ));
        }
        if server.behind_tls_proxy && server.trusted_proxies.is_empty() {
            // Every request then comes from the proxy's address: sign-in throttling counts all clients as one (one
            // bucket for everyone), and sessions, logs and the audit show the proxy.
            found.push(ConfigIssue::new(
                "server.behind_tls_proxy",
                "set, but server.trusted_proxies is empty: every client is seen as the proxy, so sign-in throttling \
                 treats all of them as one address and the audit names the proxy. List the proxy's address in \
                 trusted_proxies",
            ));
        }
        if let Some(bind) = self.metrics.bind.filter(|b| !b.ip().is_loopback()) {
            found.push(ConfigIssue::new(
                "metrics.bind",
                format!(
                    "{bind} is not a loopback address: /metrics is plain HTTP without authentication, so anyone who \
                     reaches it reads sign-in counts by source and result. Keep it on 127.0.0.1, or on a private \
                     network only the scraper reaches"
                ),
            ));
        }
        for (i, entry) in self.sources.iter().enumerate() {
            if let SourceConfig::Ldap(c) = &entry.config {
                if !c.tls_verify {
                    found.push(ConfigIssue::new(
                        format!("sources[{i}].tls_verify"),
                        "false: the directory's certificate is not verified, so anyone on the path can pose as the \
                         directory and read the passwords people type. Trust its CA with ca_file, or pin its \
                         certificate with tls_pinned_cert_file",
                    ));
                }
            }
        }
        found
    }
}

/// How `vestibule serve` may serve, by the transport rule ([`FileConfig::transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS served by this process (`[server.tls]`).
    Tls,
    /// Plain HTTP from a TLS-terminating proxy in front (`behind_tls_proxy`, an https `public_url`).
    TlsProxy,
    /// Plain HTTP on a loopback address. `https`: the public URL is https anyway (a proxy on the same machine);
    /// otherwise this is development mode.
    Loopback { https: bool },
}

impl Transport {
    /// Whether cookies get `Secure` (and the `__Host-` prefix): whenever people reach the broker over https.
    pub fn secure_cookies(self) -> bool {
        match self {
            Transport::Tls | Transport::TlsProxy => true,
            Transport::Loopback { https } => https,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_file_means_embedded_defaults() {
        let c = parse("t.toml", "").unwrap();
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database.url.to_string(), "sqlite://vestibule.db");
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.session.idle_timeout_secs, 1800);
    }

    #[test]
    fn debug_masks_the_database_password() {
        let c = parse(
            "t.toml",
            "[database]\nurl = \"postgres://vestibule:hunter2@db/vestibule\"\n",
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://vestibule:***@db/vestibule"), "{shown}");
    }

    #[test]
    fn unknown_keys_are_located() {
        let e = parse("t.toml", "[server]\nbind = \"127.0.0.1:1\"\nbnid = 3\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(1)), "{e}");
        assert_eq!(e.key.as_deref(), Some("server.bnid"), "{e}");
        assert!(e.message.contains("unknown field `bnid`"), "{e}");

        let text = "[[sources]]\nid = \"local\"\nkind = \"local\"\ndisplay_nmae = \"x\"\n";
        let e = parse("t.toml", text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources[0].display_nmae"), "{e}");
        assert_eq!((e.line, e.column), (Some(4), Some(1)), "{e}");
    }

    #[test]
    fn wrong_types_are_located() {
        let e = parse("t.toml", "[session]\nidle_timeout_secs = \"soon\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    /// Every message names the key path, at every depth, whatever the mistake.
    #[test]
    fn wrong_types_name_the_key_path_at_every_depth() {
        let e = parse("vestibule.toml", "[server]\nbind = 8080\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("vestibule.toml:2:8: `server.bind`: invalid type: integer `8080`, expected"),
            "{e}"
        );

        let e = parse("t.toml", "[session]\nidle_timeout_secs = \"x\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("session.idle_timeout_secs"), "{e}");
        assert_eq!((e.line, e.column), (Some(2), Some(21)), "{e}");
        assert!(e.message.starts_with("invalid type: string \"x\""), "{e}");

        let e = parse("t.toml", "[server]\ntrusted_proxies = [\"10.0.0.0/8\", 3]\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.trusted_proxies[1]"), "{e}");
        assert_eq!((e.line, e.column), (Some(2), Some(34)), "{e}");

        let text = "[[sources]]\nid = \"local\"\nkind = \"local\"\n\n[[sources]]\nid = \"corp\"\nkind = \"ldap\"\n\
                    url = 3\nuser_base = \"dc=example,dc=org\"\n";
        let e = parse("t.toml", text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources[1].url"), "{e}");
        assert_eq!((e.line, e.column), (Some(8), Some(7)), "{e}");
        assert!(e.message.starts_with("invalid type: integer `3`"), "{e}");

        let text = "[[sources]]\nid = \"local\"\nkind = \"local\"\n[sources.argon2]\nmemory_kib = \"lots\"\n";
        let e = parse("t.toml", text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources[0].argon2.memory_kib"), "{e}");
        assert_eq!((e.line, e.column), (Some(5), Some(14)), "{e}");

        let e = parse("t.toml", "[[sources]]\nid = \"corp\"\nkind = \"ldap\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources[0].url"), "{e}");
        assert!(e.message.starts_with("missing field `url`"), "{e}");
        assert_eq!(e.line, Some(1), "the table that lacks it: {e}");

        let e = parse("t.toml", "[[sources]]\nid = \"x\"\nkind = 3\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources[0].kind"), "{e}");
        assert_eq!((e.line, e.column), (Some(3), Some(8)), "{e}");

        let e = parse(
            "t.toml",
            "[[sources]]\nid = \"local\"\nkind = \"local\"\ntrust_email = \"yes\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources[0].trust_email"), "{e}");
        assert_eq!((e.line, e.column), (Some(4), Some(15)), "{e}");

        let e = parse("t.toml", "sources = 3\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources"), "{e}");

        let e = parse(
            "t.toml",
            "[server]\npublic_url = \"http://id.example.com\"\n[server.tls]\ncert_file = \"c\"\nkey_file = \"k\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.public_url"), "{e}");
        assert!(e.message.contains("https"), "{e}");
        for bad in [
            "https://id.example.com/?x=1",
            "https://id.example.com/#f",
            "https://u@id.example.com",
        ] {
            let e = parse("t.toml", &format!("[server]\npublic_url = \"{bad}\"\n")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("server.public_url"), "{bad}: {e}");
            assert!(e.message.contains("/callback/"), "{e}");
        }
        let e = parse("t.toml", "[server]\npublic_url = \"ftp://x\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.public_url"), "{e}");
        assert_eq!(e.line, Some(2), "validation problems are located too: {e}");
    }

    #[test]
    fn throttle_limits_are_tunable_within_bounds_and_never_off() {
        let c = parse("t.toml", "").unwrap();
        assert_eq!(c.throttle, vestibule::ThrottleSettings::default());
        let c = parse("t.toml", "[throttle]\npair_free_failures = 3\nmax_delay_secs = 60\n").unwrap();
        assert_eq!((c.throttle.pair_free_failures, c.throttle.max_delay_secs), (3, 60));
        for (text, key) in [
            // ASVS 2.2.1: a ceiling above 100 failures an hour is refused, and so is switching a layer off.
            (
                "[throttle]\naccount_failures_per_hour = 500\n",
                "throttle.account_failures_per_hour",
            ),
            ("[throttle]\naddress_burst = 0\n", "throttle.address_burst"),
            (
                "[throttle]\nfirst_delay_secs = 60\nmax_delay_secs = 10\n",
                "throttle.max_delay_secs",
            ),
        ] {
            let e = parse("t.toml", text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert_eq!(e.line, Some(text.lines().count()), "{e}");
        }
        let e = parse("t.toml", "[throttle]\nenabled = false\n").unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("throttle.enabled"),
            "no switch to turn it off: {e}"
        );
    }

    #[test]
    fn database_and_request_timeouts() {
        let c = parse("t.toml", "").unwrap();
        assert_eq!(c.database.store_options(), StoreOptions::default());
        assert_eq!(c.server.request_timeout(), Duration::from_secs(30));

        let text = "[server]\nrequest_timeout_secs = 7\n[database]\nacquire_timeout_secs = 2\n\
                    statement_timeout_secs = 0\nbusy_timeout_secs = 1\n";
        let c = parse("t.toml", text).unwrap();
        assert_eq!(c.server.request_timeout(), Duration::from_secs(7));
        assert_eq!(
            c.database.store_options(),
            StoreOptions {
                acquire_timeout: Duration::from_secs(2),
                statement_timeout: Duration::ZERO,
                sqlite_busy_timeout: Duration::from_secs(1),
            }
        );

        let e = parse("t.toml", "[database]\nstatment_timeout_secs = 3\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("database.statment_timeout_secs"), "{e}");
        assert_eq!((e.line, e.column), (Some(2), Some(1)), "{e}");

        let e = parse("t.toml", "[database]\nbusy_timeout_secs = \"5s\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("database.busy_timeout_secs"), "{e}");
        assert_eq!((e.line, e.column), (Some(2), Some(21)), "{e}");

        for (text, key, line) in [
            ("[database]\nbusy_timeout_secs = 0\n", "database.busy_timeout_secs", 2),
            (
                "[database]\nacquire_timeout_secs = 0\n",
                "database.acquire_timeout_secs",
                2,
            ),
            (
                "[database]\nstatement_timeout_secs = 3601\n",
                "database.statement_timeout_secs",
                2,
            ),
            (
                "[server]\nbind = \"127.0.0.1:1\"\nrequest_timeout_secs = 0\n",
                "server.request_timeout_secs",
                3,
            ),
        ] {
            let e = parse("t.toml", text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.message.starts_with("must be between"), "{e}");
        }
    }

    fn google(allowed: &str, authoritative: &str) -> String {
        format!(
            "[[sources]]\nid = \"google\"\nkind = \"google\"\nclient_id = \"x.apps.googleusercontent.com\"\n\
             client_secret_env = \"GOOGLE_SECRET\"\nallowed_domains = {allowed}\n\
             authoritative_email_domains = {authoritative}\n"
        )
    }

    /// The README's rule: a google source may only vouch for domains that are also in its `allowed_domains`.
    #[test]
    fn google_vouches_only_for_allowed_domains() {
        for ok in [
            google("[]", "[]"),
            google("[\"corp.example\"]", "[\"corp.example\"]"),
            google("[\"corp.example\", \"eu.corp.example\"]", "[\"EU.corp.example\"]"),
        ] {
            parse("t.toml", &ok).unwrap();
        }

        let e = parse(
            "t.toml",
            &google("[\"corp.example\"]", "[\"corp.example\", \"gmail.com\"]"),
        )
        .unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("sources[0].authoritative_email_domains[1]"),
            "{e}"
        );
        assert_eq!((e.line, e.column), (Some(7), Some(48)), "points at the domain: {e}");
        assert!(
            e.message
                .contains("`gmail.com` is not one of this google source's `allowed_domains`"),
            "{e}"
        );

        for wildcard in ["\"*\"", "\"*.corp.example\""] {
            let e = parse("t.toml", &google("[\"corp.example\"]", &format!("[{wildcard}]"))).unwrap_err();
            assert_eq!(
                e.key.as_deref(),
                Some("sources[0].authoritative_email_domains[0]"),
                "{e}"
            );
        }

        let e = parse("t.toml", &google("[]", "[\"corp.example\"]")).unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("sources[0].authoritative_email_domains[0]"),
            "{e}"
        );
        assert!(e.message.contains("without `allowed_domains`"), "{e}");
        assert!(
            e.to_string()
                .starts_with("t.toml:7:32: `sources[0].authoritative_email_domains[0]`: `corp.example`"),
            "{e}"
        );

        // Other kinds keep their own judgement: an OIDC directory may vouch for what the operator says.
        let oidc = "[[sources]]\nid = \"corp\"\nkind = \"oidc\"\nissuer = \"https://idp.corp.example\"\n\
                    client_id = \"v\"\nclient_secret_env = \"S\"\nauthoritative_email_domains = [\"*\"]\n";
        parse("t.toml", oidc).unwrap();
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
        assert_eq!(documented.database.url.to_string(), defaults.database.url.to_string());
        assert_eq!(documented.database.store_options(), defaults.database.store_options());
        assert_eq!(documented.server.request_timeout(), defaults.server.request_timeout());
        assert_eq!(documented.session, defaults.session);
        assert_eq!(documented.throttle, defaults.throttle);
        assert_eq!(documented.second_factor.settings(), defaults.second_factor.settings());
        assert_eq!(documented.admin, defaults.admin);
        assert_eq!(format!("{:?}", documented.email), format!("{:?}", defaults.email));
        assert_eq!(format!("{:?}", documented.ui), format!("{:?}", defaults.ui));
        let (super::SourceConfig::Local(a), super::SourceConfig::Local(b)) =
            (&documented.sources[0].config, &defaults.sources[0].config)
        else {
            panic!("local source expected")
        };
        assert_eq!((a.argon2, a.password), (b.argon2, b.password));
    }
}

#[cfg(test)]
mod admin_keys {
    #![allow(clippy::unwrap_used)]

    /// `[admin] groups` reaches the settings; nobody is an administrator without it; a blank name is refused by
    /// key, and so is a key `[admin]` does not have.
    #[test]
    fn admin_groups_are_read_and_checked() {
        let c = super::parse("t.toml", "[admin]\ngroups = [\"admins\", \"ops\"]\n").unwrap();
        assert!(c.admin.admits(&["ops".into()]));
        assert!(!c.admin.admits(&["staff".into()]));
        assert!(!super::parse("t.toml", "").unwrap().admin.admits(&["admins".into()]));
        let e = super::parse("t.toml", "[admin]\ngroups = [\" admins\"]\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("admin.groups"), "{e}");
        let e = super::parse("t.toml", "[admin]\nusers = [\"root\"]\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("admin.users"), "{e}");
    }
}

#[cfg(test)]
mod second_factor_keys {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn the_policy_is_validated_and_named_by_key() {
        let c = super::parse(
            "t.toml",
            "[second_factor]\npolicy = \"required_for_groups\"\ngroups = [\"admins\"]\n",
        )
        .unwrap();
        assert!(c.second_factor.settings().required_for(&["admins".into()]));
        assert!(!c.second_factor.settings().required_for(&["staff".into()]));
        let e = super::parse("t.toml", "[second_factor]\npolicy = \"required_for_groups\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("second_factor.groups"), "{e}");
        let e = super::parse("t.toml", "[second_factor]\npasskeys = \"on\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("second_factor.passkeys"), "{e}");
        assert!(e.to_string().contains("localhost"), "{e}");
        let ip = "[server]\npublic_url = \"http://127.0.0.1:8080\"\n[second_factor]\npasskeys = \"on\"\n";
        assert!(super::parse("t.toml", ip).is_err());
        let named = "[server]\npublic_url = \"http://localhost:8080\"\n[second_factor]\npasskeys = \"on\"\n";
        assert!(super::parse("t.toml", named).is_ok());
        assert!(super::parse("t.toml", "[second_factor]\npasskeys = \"maybe\"\n").is_err());
        let e = super::parse("t.toml", "[second_factor]\npolicy = \"sometimes\"\n").unwrap_err();
        assert!(e.message.contains("unknown variant `sometimes`"), "{e}");
        let e = super::parse("t.toml", "[second_factor]\nissuer = \"x\"\nperiod = 60\n").unwrap_err();
        assert!(e.message.contains("unknown field `period`"), "{e}");
        assert_eq!((e.line, e.column), (Some(3), Some(1)), "{e}");
        let e = super::parse(
            "t.toml",
            "[second_factor]\nkey_env = \"VESTIBULE_TEST_NO_SUCH_VAR_2FA\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("second_factor.key_env"), "{e}");
    }

    #[test]
    fn the_key_comes_from_a_file_and_must_be_32_bytes() {
        let dir = std::env::temp_dir().join(format!("vestibule-2fa-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, format!("{}\n", "ab".repeat(32))).unwrap();
        let bad = dir.join("bad");
        std::fs::write(&bad, "too short\n").unwrap();
        let text = |p: &std::path::Path| format!("[second_factor]\nkey_file = {:?}\n", p.display().to_string());
        let c = super::parse("t.toml", &text(&good)).unwrap();
        assert!(c.second_factor.key().unwrap().is_some());
        let e = super::parse("t.toml", &text(&bad)).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("second_factor.key_file"), "{e}");
        assert!(
            !e.message.contains("too short"),
            "the message never shows the secret: {e}"
        );
        let _ = std::fs::remove_dir_all(dir);
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
        assert_eq!(e.key.as_deref(), Some("sources[0].provisioning"), "{e}");
        assert_eq!((e.line, e.column), (Some(4), Some(16)), "{e}");
    }
}

#[cfg(test)]
mod email_keys {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn email_mistakes_name_their_key() {
        let e = super::parse("t.toml", "[email]\nfrom = \"not an address\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("email.from"), "{e}");
        assert_eq!(e.line, Some(2), "{e}");
        let e = super::parse("t.toml", "[email]\nsmtp_password = \"inline\"\n").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
        let e = super::parse("t.toml", "[email]\nsmtp_url = \"smtps://u:pw@mail.example.com\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("email.smtp_url"), "{e}");
        let ok = super::parse(
            "t.toml",
            "[email]\nsmtp_url = \"smtps://vestibule@mail.example.com\"\npassword_env = \"SMTP_PW\"\n\
             reset_link_minutes = 15\n",
        )
        .unwrap();
        assert_eq!(ok.email.link_settings().reset_ttl_secs, 900);
        // Clear text only to a relay on this machine, and only a `tls` mode that exists.
        let e = super::parse(
            "t.toml",
            "[email]\nfrom = \"id@example.org\"\nsmtp_url = \"smtp://mail.example.com:25?tls=none\"\n",
        )
        .unwrap_err();
        assert_eq!((e.key.as_deref(), e.line), (Some("email.smtp_url"), Some(3)), "{e}");
        assert!(e.message.contains("loopback"), "{e}");
        let e = super::parse("t.toml", "[email]\nsmtp_url = \"smtp://127.0.0.1:25?tls=off\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("email.smtp_url"), "{e}");
        assert!(e.message.contains("unknown `tls=off`"), "{e}");
        assert!(super::parse("t.toml", "[email]\nsmtp_url = \"smtp://127.0.0.1:25?tls=none\"\n").is_ok());
        // The outbox must keep a bound: both limits off is refused, naming the key and its line.
        let e = super::parse("t.toml", "[email]\noutbox_max_age_hours = 0\noutbox_max_files = 0\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("email.outbox_max_age_hours"), "{e}");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("without bound"), "{e}");
        let e = super::parse("t.toml", "[email]\noutbox_max_files = -1\n").unwrap_err();
        assert!(
            e.message.contains("outbox_max_files") || e.key.as_deref() == Some("email.outbox_max_files"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod building {
    #![allow(clippy::unwrap_used)]

    use vestibule::{ClientInfo, LoginOutcome};
    use vestibule_core::{SecretString, SourceId};
    use vestibule_store::NewLocalAccount;

    fn file(dir: &std::path::Path) -> String {
        format!(
            "[server]\npublic_url = \"https://id.example.com/auth/\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n\
             [database]\nurl = \"sqlite://{}/b.db\"\n\
             [session]\nidle_timeout_secs = 1234\n\
             [admin]\ngroups = [\"ops\"]\n\
             [email]\noutbox_dir = \"{}/outbox\"\n\
             [[sources]]\nkind = \"local\"\nid = \"staff\"\n",
            dir.display(),
            dir.display()
        )
    }

    /// The broker is the one the file describes: its links, its settings, and a local source over the file's
    /// database that signs in an account created in it.
    #[tokio::test]
    async fn the_broker_is_built_from_the_file() {
        let dir = vestibule_tests::server::TempDir::new("vestibule-config");
        let config = super::parse("t.toml", &file(&dir.0)).unwrap();
        let broker = config.broker().await.unwrap();
        assert_eq!(broker.base_url(), "https://id.example.com/auth");
        assert_eq!(broker.settings().idle_timeout_secs, 1234);
        assert!(broker.admin_settings().admits(&["ops".into()]));
        let ids: Vec<String> = broker.sources().iter().map(|s| s.id().to_string()).collect();
        assert_eq!(ids, ["staff"]);

        let local = config.local_source().unwrap();
        let hasher = vestibule_local::PasswordHasher::new(local.argon2).unwrap();
        let hash = hasher.hash("correct horse battery".to_owned().into()).await.unwrap();
        let staff = SourceId::new("staff").unwrap();
        broker
            .create_local_account(
                &NewLocalAccount {
                    source: staff.clone(),
                    username: "ann".into(),
                    display_name: None,
                    email: None,
                    email_verified: false,
                    password_hash: hash.into(),
                },
                "test",
            )
            .await
            .unwrap();
        let client = ClientInfo {
            ip: Some("127.0.0.1".into()),
            user_agent: None,
        };
        let wrong = broker
            .login_password(&staff, "ann", &SecretString::from("wrong".to_owned()), &client, None)
            .await;
        assert!(wrong.is_err());
        let right = broker
            .login_password(
                &staff,
                "ann",
                &SecretString::from("correct horse battery".to_owned()),
                &client,
                None,
            )
            .await
            .unwrap();
        assert!(matches!(right, LoginOutcome::SignedIn(_)));
        broker.close().await;
    }

    /// The HTTP settings carry `[server]` and `[ui]`; cookies are `Secure` exactly when the public URL is https.
    #[test]
    fn http_settings_follow_the_file() {
        let dir = vestibule_tests::server::TempDir::new("vestibule-config");
        let https = super::parse("t.toml", &file(&dir.0)).unwrap().http_settings();
        assert!(https.secure_cookies);
        assert_eq!(
            https.trusted_proxies,
            vec!["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]
        );
        let plain = super::parse(
            "t.toml",
            "[server]\nrequest_timeout_secs = 7\n[ui]\nproduct_name = \"Acme\"\n",
        )
        .unwrap()
        .http_settings();
        assert!(!plain.secure_cookies);
        assert_eq!(plain.request_timeout, std::time::Duration::from_secs(7));
        assert_eq!(plain.ui.product_name, "Acme");
    }

    /// A source that cannot start is named by its place in the file.
    #[tokio::test]
    async fn a_source_that_cannot_start_is_named() {
        let dir = vestibule_tests::server::TempDir::new("vestibule-config");
        let mut config = super::parse("t.toml", &file(&dir.0)).unwrap();
        let super::SourceConfig::Local(local) = &mut config.sources[0].config else {
            panic!("local source expected")
        };
        local.argon2.memory_kib = 1;
        let store = config.open_store().await.unwrap();
        let e = config.sources(&store).err().unwrap();
        assert!(e.to_string().starts_with("sources[0].argon2: "), "{e}");
        store.close().await;
    }
}

#[cfg(test)]
mod transport_rule {
    #![allow(clippy::unwrap_used)]

    use super::Transport;

    fn transport(text: &str) -> Result<Transport, String> {
        let config = super::parse("t.toml", text).unwrap();
        config
            .transport()
            .map_err(|issue| format!("{}: {}", issue.key, issue.message))
    }

    const TLS: &str = "[server.tls]\ncert_file = \"/etc/vestibule/tls/fullchain.pem\"\n\
                       key_file = \"/etc/vestibule/tls/privkey.pem\"\n";

    /// The accepting side: HTTPS served here is accepted on any address, with or without a public URL; plain HTTP
    /// off loopback only behind a TLS proxy announcing https; loopback always, Secure cookies only with https.
    #[test]
    fn a_non_loopback_bind_is_accepted_with_tls_here_or_behind_a_tls_proxy() {
        for bind in ["0.0.0.0:8443", "[::]:8443", "192.0.2.10:443"] {
            let text = format!("[server]\nbind = \"{bind}\"\npublic_url = \"https://id.example.com\"\n{TLS}");
            assert_eq!(transport(&text), Ok(Transport::Tls), "{bind}");
            let text = format!("[server]\nbind = \"{bind}\"\n{TLS}");
            assert_eq!(transport(&text), Ok(Transport::Tls), "{bind}, default public_url");
        }
        assert!(Transport::Tls.secure_cookies());
        let proxied = "[server]\nbind = \"0.0.0.0:8080\"\npublic_url = \"https://id.example.com\"\n\
                       behind_tls_proxy = true\ntrusted_proxies = [\"10.0.0.0/8\"]\n";
        assert_eq!(transport(proxied), Ok(Transport::TlsProxy));
        assert!(Transport::TlsProxy.secure_cookies());
        assert_eq!(transport(""), Ok(Transport::Loopback { https: false }));
        assert!(!Transport::Loopback { https: false }.secure_cookies());
        let local_proxy = "[server]\nbind = \"[::1]:8080\"\npublic_url = \"https://id.example.com\"\n";
        assert_eq!(transport(local_proxy), Ok(Transport::Loopback { https: true }));
        assert!(Transport::Loopback { https: true }.secure_cookies());
    }

    /// The refusing side: plain HTTP off loopback without a TLS proxy, or with one but an http public URL.
    #[test]
    fn plain_http_off_loopback_is_refused_naming_the_bind() {
        for text in [
            "[server]\nbind = \"0.0.0.0:8080\"\n",
            "[server]\nbind = \"0.0.0.0:8080\"\nbehind_tls_proxy = true\npublic_url = \"http://id.example.com\"\n",
            "[server]\nbind = \"192.0.2.10:80\"\npublic_url = \"https://id.example.com\"\n",
        ] {
            let e = transport(text).unwrap_err();
            assert!(
                e.starts_with("server.bind: refusing to serve plain HTTP"),
                "{text}: {e}"
            );
            assert!(
                e.contains("behind_tls_proxy = true") && e.contains("[server.tls]"),
                "{e}"
            );
        }
        // `serve --bind` replaces the address: the rule is asked again for the address actually used.
        let mut config = super::parse("t.toml", "").unwrap();
        config.server.bind = "0.0.0.0:8080".parse().unwrap();
        assert!(config.transport().is_err());
    }

    /// `check` applies the rule to the file's own bind and locates the refusal at the key.
    #[test]
    fn check_locates_the_transport_refusal() {
        let dir = vestibule_tests::server::TempDir::new("vestibule-config-check");
        let path = dir.0.join("v.toml");
        std::fs::write(&path, "[server]\nbind = \"0.0.0.0:8080\"\n").unwrap();
        let e = super::check(&path).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.bind"), "{e}");
        assert_eq!((e.line, e.column), (Some(2), Some(1)), "{e}");
        std::fs::write(&path, "[server]\nbind = \"127.0.0.1:8080\"\n").unwrap();
        let checked = super::check(&path).unwrap();
        assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    }

    fn warnings(text: &str) -> Vec<String> {
        super::parse("t.toml", text)
            .unwrap()
            .warnings()
            .into_iter()
            .map(|issue| format!("{}: {}", issue.key, issue.message))
            .collect()
    }

    const GOOGLE: &str = "[[sources]]\nid = \"google\"\nkind = \"google\"\n\
                          client_id = \"x.apps.googleusercontent.com\"\nclient_secret_env = \"GOOGLE_SECRET\"\n";

    /// Each warning fires on its mistake and only there; the embedded defaults and a careful file have none.
    #[test]
    fn warnings_name_what_is_probably_a_mistake() {
        assert_eq!(warnings(""), Vec::<String>::new());
        let careful = format!(
            "[server]\nbind = \"0.0.0.0:8443\"\npublic_url = \"https://id.example.com\"\n{TLS}\
             [metrics]\nbind = \"127.0.0.1:9464\"\n{GOOGLE}"
        );
        assert_eq!(warnings(&careful), Vec::<String>::new());

        let ip = format!("[server]\npublic_url = \"http://192.0.2.10:8080\"\n{GOOGLE}");
        let found = warnings(&ip);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("server.public_url: its host is the IP address 192.0.2.10")
                && found[0].contains("`google`"),
            "{found:?}"
        );
        // Without a redirect source no callback is built from it; a loopback address is for development.
        assert!(warnings("[server]\npublic_url = \"http://192.0.2.10:8080\"\n").is_empty());
        assert!(warnings(&format!("[server]\npublic_url = \"http://127.0.0.1:8080\"\n{GOOGLE}")).is_empty());
        let unspecified = format!("[server]\npublic_url = \"http://0.0.0.0:8080\"\n{GOOGLE}");
        assert!(
            warnings(&unspecified)[0].contains("0.0.0.0 is no address a browser can reach"),
            "{:?}",
            warnings(&unspecified)
        );

        let found = warnings(&format!("[server]\nbind = \"0.0.0.0:8443\"\n{TLS}"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("server.tls: no server.public_url") && found[0].contains("https://0.0.0.0:8443"),
            "{found:?}"
        );
        assert!(warnings(&format!("[server]\nbind = \"127.0.0.1:8443\"\n{TLS}")).is_empty());

        let found = warnings("[server]\npublic_url = \"https://id.example.com\"\nbehind_tls_proxy = true\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("server.behind_tls_proxy: set, but server.trusted_proxies is empty"),
            "{found:?}"
        );

        let found = warnings("[metrics]\nbind = \"0.0.0.0:9464\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("metrics.bind: 0.0.0.0:9464 is not a loopback address"),
            "{found:?}"
        );

        let ldap = "[[sources]]\nid = \"local\"\nkind = \"local\"\n[[sources]]\nid = \"corp\"\nkind = \"ldap\"\n\
                    url = \"ldaps://ldap.example.com\"\nuser_dn_template = \"uid={username},dc=example,dc=com\"\n";
        assert!(warnings(ldap).is_empty());
        let found = warnings(&format!("{ldap}tls_verify = false\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("sources[1].tls_verify: false: the directory's certificate is not verified"),
            "{found:?}"
        );
    }
}
