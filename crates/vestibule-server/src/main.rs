//! The `vestibule` binary: a login portal configured in TOML, or run on embedded defaults (SQLite, local
//! passwords, loopback) with no file at all.

mod admin_cli;
mod metrics;
mod serve;
mod tls;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use vestibule::{AccountLookup, Broker, MatchedBy};
use vestibule_core::{
    async_trait, AccountId, AuthSource, ExternalIdentity, Flow, PasswordFlow, SecretString, SourceError, SourceId,
};

/// The version and the commit it was built from (see build.rs), as `vestibule --version` prints it.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("VESTIBULE_COMMIT"), ")");

#[derive(Parser)]
#[command(name = "vestibule", version = VERSION, about = "A pluggable identity broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded defaults without --config).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides `[server] bind`.
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
    /// Validate a configuration file without starting anything.
    CheckConfig { file: PathBuf },
    /// Ask the running server's `/healthz` on this machine (a container's HEALTHCHECK): exit 0 when it answers
    /// 200, 1 otherwise.
    Healthcheck {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where the server listens, when not the configuration's `[server] bind` (`HOST:PORT`).
        #[arg(long)]
        address: Option<std::net::SocketAddr>,
    },
    /// Apply database migrations.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// See and lift the brute-force throttling (counters kept in the database, shared by every node).
    Throttle {
        #[command(subcommand)]
        command: ThrottleCommand,
    },
    /// Read the audit log, newest first (filters combine; page with --before the last id shown).
    Audit {
        #[command(flatten)]
        filters: AuditFilters,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ThrottleCommand {
    /// List the counters that counted a failure lately, most recent first, and whether each holds attempts back.
    /// Names are shown as the first 16 hex digits of their SHA-256 (as in the audit log), never as typed.
    List {
        /// Only the counters of this login name (at every source, and its account's own).
        #[arg(long)]
        name: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// At most this many counters.
        #[arg(long, default_value_t = 200)]
        limit: u32,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Lift every delay of a login name, at every source and from every address (audited). Address buckets stay.
    Lift {
        login: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// TARGET, for the commands that act on one account.
const TARGET_HELP: &str = "The account: its id, `source:subject` of one of its identities, a local login name, or \
                           its email (refused when several accounts share it)";

#[derive(Subcommand)]
enum UserCommand {
    /// Disable an account: every session, remember-me series and token ends at once.
    Disable {
        #[arg(help = TARGET_HELP)]
        target: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Re-enable a disabled account.
    Enable {
        #[arg(help = TARGET_HELP)]
        target: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove every second factor of an account (authenticator, passkeys and recovery codes), for a person locked out;
    /// its sessions and remember-me series end too.
    #[command(name = "reset-2fa")]
    Reset2fa {
        #[arg(help = TARGET_HELP)]
        target: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print an account: identities, groups, sessions, tokens, second factors and its latest audit events.
    Show(admin_cli::ShowArgs),
    /// List accounts in account id order, optionally searching (page with --after the last id shown).
    List(admin_cli::ListArgs),
    /// Delete an account with its identities, sessions, tokens and factors (the audit log keeps its rows).
    Delete(admin_cli::DeleteArgs),
    /// Remove one identity (way in) from an account, with the sessions and tokens it opened.
    Unlink(admin_cli::UnlinkArgs),
    /// End every session and remember-me series of an account (and with --tokens every access token).
    EndSessions(admin_cli::EndSessionsArgs),
    /// Print or change the groups an operator assigns to a local account.
    Groups(admin_cli::GroupsArgs),
    /// Create a local account.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// The operator vouches for the address (the person owns it): it counts as verified for linking.
        #[arg(long, requires = "email")]
        email_verified: bool,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from one line of standard input (its trailing newline dropped).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Starts the log on standard error: `RUST_LOG` (default `info`) picks what is written, `format` how. Called once
/// the command knows its format (`serve` reads it from `[log]`; the other commands write text).
fn init_logging(format: vestibule_config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        vestibule_config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // The request's span (its `request_id`) on every line, so one request's lines can be found together.
        vestibule_config::LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&PathBuf>) -> Result<vestibule_config::FileConfig, String> {
    match path {
        Some(p) => vestibule_config::load(p).map_err(|e| e.to_string()),
        None => vestibule_config::parse("(embedded defaults)", "").map_err(|e| e.to_string()),
    }
}

async fn run(command: Command) -> Result<(), String> {
    if !matches!(command, Command::Serve { .. }) {
        init_logging(vestibule_config::LogFormat::Text);
    }
    match command {
        Command::Serve { config, bind } => {
            // A file that cannot be read is reported on standard error before any log exists (main prints it).
            let mut cfg = load(config.as_ref())?;
            init_logging(cfg.log.format);
            if let Some(b) = bind {
                cfg.server.bind = b;
            }
            serve::serve(cfg).await
        }
        Command::Healthcheck { config, address } => {
            let cfg = load(config.as_ref())?;
            serve::healthcheck(&cfg, address).await
        }
        Command::CheckConfig { file } => {
            // What `serve` refuses before it opens a socket: the file, the transport rule, the certificate.
            let checked = vestibule_config::check(&file).map_err(|e| e.to_string())?;
            if let Some(t) = &checked.config.server.tls {
                tls::load(t)?;
            }
            for warning in &checked.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{}: ok ({} source(s))", file.display(), checked.config.sources.len());
            Ok(())
        }
        Command::Migrate { config } => {
            let cfg = load(config.as_ref())?;
            let store = serve::open_store(&cfg).await?;
            println!("database is up to date");
            store.close().await;
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    username,
                    email,
                    email_verified,
                    display_name,
                    password_stdin,
                    config,
                },
        } => {
            let cfg = load(config.as_ref())?;
            if !password_stdin {
                return Err("give the password on standard input with --password-stdin".into());
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
            let (id, note) = serve::add_user(&cfg, &username, email, email_verified, display_name, password).await?;
            println!("created account {id} for {username}");
            if let Some(note) = note {
                println!("{note}");
            }
            Ok(())
        }
        Command::User {
            command: UserCommand::Disable { target, config },
        } => set_disabled(&load(config.as_ref())?, &target, true).await,
        Command::User {
            command: UserCommand::Enable { target, config },
        } => set_disabled(&load(config.as_ref())?, &target, false).await,
        Command::User {
            command: UserCommand::Show(args),
        } => admin_cli::show(args).await,
        Command::User {
            command: UserCommand::List(args),
        } => admin_cli::list(args).await,
        Command::User {
            command: UserCommand::Delete(args),
        } => admin_cli::delete(args).await,
        Command::User {
            command: UserCommand::Unlink(args),
        } => admin_cli::unlink(args).await,
        Command::User {
            command: UserCommand::EndSessions(args),
        } => admin_cli::end_sessions(args).await,
        Command::User {
            command: UserCommand::Groups(args),
        } => admin_cli::groups(args).await,
        Command::Throttle {
            command:
                ThrottleCommand::List {
                    name,
                    json,
                    limit,
                    config,
                },
        } => list_throttles(&load(config.as_ref())?, name.as_deref(), json, limit).await,
        Command::Throttle {
            command: ThrottleCommand::Lift { login, config },
        } => lift_throttles(&load(config.as_ref())?, &login).await,
        Command::User {
            command: UserCommand::Reset2fa { target, config },
        } => reset_2fa(&load(config.as_ref())?, &target).await,
        Command::Audit { filters, json, config } => audit(&load(config.as_ref())?, filters, json).await,
    }
}

/// The filters of `vestibule audit`, as typed.
#[derive(clap::Args)]
struct AuditFilters {
    /// Only this account's events (an account id, `source:subject`, a login name or an email, as for `user`).
    #[arg(long)]
    account: Option<String>,
    /// Only events of this name (`login_failure`, `account_disabled`, ...).
    #[arg(long)]
    event: Option<String>,
    /// Only events from this client address.
    #[arg(long)]
    ip: Option<String>,
    /// Only events of the last N hours.
    #[arg(long)]
    since_hours: Option<u32>,
    /// Only events older than this id (the next page).
    #[arg(long)]
    before: Option<i64>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// `vestibule audit`.
async fn audit(cfg: &vestibule_config::FileConfig, f: AuditFilters, json: bool) -> Result<(), String> {
    if let Some(e) = &f.event {
        if vestibule_core::storage::AuditKind::parse(e).is_none() {
            let names: Vec<&str> = vestibule_core::storage::AuditKind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect();
            return Err(format!("unknown event `{e}`; events are: {}", names.join(", ")));
        }
    }
    let broker = operator_broker(cfg).await?;
    let result = async {
        let account_id = match &f.account {
            Some(target) => Some(resolve(&broker, target).await?.0.to_string()),
            None => None,
        };
        let now = vestibule_core::Clock::now(&vestibule_core::SystemClock);
        let q = vestibule_core::storage::AuditQuery {
            account_id,
            event: f.event.clone(),
            ip: f.ip.clone(),
            since: f.since_hours.map(|h| now.plus_secs(-i64::from(h) * 3600)),
            before_id: f.before,
            limit: i64::from(f.limit),
        };
        let rows = broker
            .audit_log(&q)
            .await
            .map_err(|e| format!("cannot read the audit log: {}", vestibule_core::error_chain(&e)))?;
        for r in &rows {
            if json {
                println!("{}", admin_cli::audit_json(r));
            } else {
                println!("{}", admin_cli::audit_line(r));
            }
        }
        if !json && rows.is_empty() {
            println!("no audit event matches");
        }
        Ok(())
    }
    .await;
    broker.close().await;
    result
}

/// `vestibule throttle list`.
async fn list_throttles(
    cfg: &vestibule_config::FileConfig,
    name: Option<&str>,
    json: bool,
    limit: u32,
) -> Result<(), String> {
    let broker = operator_broker(cfg).await?;
    let result = async {
        let failed =
            |e: vestibule::BrokerError| format!("cannot read the counters: {}", vestibule_core::error_chain(&e));
        // A name's own hashes, to pick its counters out and to show them with the name the operator typed.
        let names = match name {
            Some(n) => broker.throttle_names(n).await.map_err(failed)?,
            None => Vec::new(),
        };
        let mut entries = broker.throttles(limit).await.map_err(failed)?;
        if name.is_some() {
            entries.retain(|e| names.iter().any(|(_, h)| e.name_hash.as_deref() == Some(h.as_str())));
        }
        let known = |hash: &Option<String>| -> Option<&str> {
            let hash = hash.as_deref()?;
            names.iter().find(|(_, h)| h == hash).map(|(k, _)| k.as_str())
        };
        if json {
            for e in &entries {
                let line = serde_json::json!({
                    "layer": e.layer.as_str(),
                    "name_sha256": e.name_hash,
                    "name": known(&e.name_hash),
                    "address": e.address,
                    "failures": e.failures,
                    "refusing": e.refusing.map(|t| t.layer.as_str()),
                    "retry_after_secs": e.refusing.map(|t| t.retry_after_secs),
                });
                println!("{line}");
            }
            return Ok(());
        }
        if entries.is_empty() {
            println!("no counter has counted a failure lately");
            return Ok(());
        }
        println!(
            "{:<8} {:<24} {:<28} {:>8}  state",
            "layer", "name", "address", "failures"
        );
        for e in &entries {
            let shown = known(&e.name_hash)
                .map(str::to_owned)
                .or_else(|| {
                    e.name_hash
                        .as_ref()
                        .map(|h| format!("sha256:{}", &h[..16.min(h.len())]))
                })
                .unwrap_or_else(|| "-".into());
            let state = match e.refusing {
                Some(t) => format!("refusing ({}) for {} s", t.layer.as_str(), t.retry_after_secs),
                None => "counting".into(),
            };
            println!(
                "{:<8} {:<24} {:<28} {:>8}  {state}",
                e.layer.as_str(),
                shown,
                e.address.as_deref().unwrap_or("-"),
                e.failures
            );
        }
        Ok(())
    }
    .await;
    broker.close().await;
    result
}

/// `vestibule throttle lift LOGIN`.
async fn lift_throttles(cfg: &vestibule_config::FileConfig, login: &str) -> Result<(), String> {
    let broker = operator_broker(cfg).await?;
    let result = broker
        .lift_throttles(login, "cli")
        .await
        .map(|n| println!("lifted {n} counter(s) of `{login}`"))
        .map_err(|e| format!("cannot lift: {}", vestibule_core::error_chain(&e)));
    broker.close().await;
    result
}

/// A configured source known by its id only. The operator commands' broker never signs anyone in: it needs the
/// ids to read `source:subject`, and nothing else of a source. Building the real ones would read their secrets and
/// certificates, set up HTTP clients and LDAP pools and log their start-up warnings, all for nothing.
struct NamedSource(SourceId);

impl AuthSource for NamedSource {
    fn id(&self) -> &SourceId {
        &self.0
    }
    fn display_name(&self) -> &str {
        self.0.as_str()
    }
    fn flow(&self) -> Flow<'_> {
        Flow::Password(self)
    }
}

#[async_trait]
impl PasswordFlow for NamedSource {
    async fn authenticate(&self, _: &str, _: &SecretString) -> Result<ExternalIdentity, SourceError> {
        Err(SourceError::Unavailable(
            "the command line does not sign anyone in".into(),
        ))
    }
}

/// The broker over the configured database, for the operator commands.
pub(crate) async fn operator_broker(cfg: &vestibule_config::FileConfig) -> Result<Broker, String> {
    operator_broker_with(cfg, None).await
}

/// The operator broker with the configured mailer, for commands that mail (a confirmation, a notice). Drain the
/// queue before exiting: [`mail_and_close`].
pub(crate) async fn operator_broker_mailing(
    cfg: &vestibule_config::FileConfig,
) -> Result<(Broker, Arc<vestibule_mail::MailQueue>), String> {
    let mailer = serve::start_mailer(cfg)?;
    Ok((operator_broker_with(cfg, Some(mailer.clone())).await?, mailer))
}

/// Lets the queued messages go out (at most 30 s), then closes the broker's store.
pub(crate) async fn mail_and_close(broker: Broker, mailer: &vestibule_mail::MailQueue) {
    mailer.drain(std::time::Duration::from_secs(30)).await;
    broker.close().await;
}

async fn operator_broker_with(
    cfg: &vestibule_config::FileConfig,
    mailer: Option<Arc<vestibule_mail::MailQueue>>,
) -> Result<Broker, String> {
    let store = serve::open_store(cfg).await?;
    // Never used for a redirect here; the configured public URL keeps the broker what `serve` would build.
    let mut builder = Broker::builder(store, cfg.public_url())
        .settings(cfg.session)
        .second_factor(cfg.second_factor.settings())
        .mail_settings(cfg.email.link_settings());
    if let Some(mailer) = mailer {
        builder = builder.mailer(mailer);
    }
    if let Some(key) = cfg.second_factor_key().map_err(|e| e.to_string())? {
        builder = builder.second_factor_key(key);
    }
    for entry in &cfg.sources {
        builder = builder.source(Arc::new(NamedSource(entry.config.id().clone())));
    }
    builder
        .build()
        .await
        .map_err(|e| format!("cannot open the broker: {}", vestibule_core::error_chain(&e)))
}

/// The one account `target` names, or a message saying why there is none (never a guess between several).
async fn resolve(broker: &Broker, target: &str) -> Result<(AccountId, MatchedBy), String> {
    let lookup = broker
        .find_accounts(target)
        .await
        .map_err(|e| format!("cannot read the accounts: {}", vestibule_core::error_chain(&e)))?;
    match lookup {
        AccountLookup::Found { id, matched_by } => Ok((id, matched_by)),
        AccountLookup::Ambiguous { matched_by, candidates } => {
            let ids: Vec<&str> = candidates.iter().map(AccountId::as_str).collect();
            Err(format!(
                "`{target}` is the {matched_by} of {} accounts; nothing was changed. Name one by its id: {}",
                ids.len(),
                ids.join(", ")
            ))
        }
        AccountLookup::NotFound => Err(format!(
            "no account matches `{target}` (as an account id, source:subject, local login name or email)"
        )),
    }
}

/// `vestibule user disable|enable TARGET`. Disabling ends the account's sessions, remember-me series and tokens in
/// one transaction and announces the sessions to running nodes (PostgreSQL NOTIFY); with SQLite a running server
/// stops honouring them within `session.cache_ttl_secs`.
async fn set_disabled(cfg: &vestibule_config::FileConfig, target: &str, disabled: bool) -> Result<(), String> {
    // Disabling mails a notice to the account's verified address.
    let (broker, mailer) = operator_broker_mailing(cfg).await?;
    let result = async {
        let (id, matched_by) = resolve(&broker, target).await?;
        let ended = broker
            .set_account_disabled_by_operator(&id, disabled, "cli")
            .await
            .map_err(|e| format!("cannot update the account: {}", vestibule_core::error_chain(&e)))?
            .ok_or_else(|| format!("account {id} is gone"))?;
        if disabled {
            println!("disabled account {id} ({matched_by} `{target}`); {ended} session(s) ended");
        } else {
            println!("enabled account {id} ({matched_by} `{target}`)");
        }
        Ok(())
    }
    .await;
    mail_and_close(broker, &mailer).await;
    result
}

/// `vestibule user reset-2fa TARGET`: every second factor of the account goes, audited (`second_factor_reset`,
/// detail `cli`), with its sessions and remember-me series; the person signs in with their primary proof next
/// (and is sent to enrolment if policy requires a factor).
async fn reset_2fa(cfg: &vestibule_config::FileConfig, target: &str) -> Result<(), String> {
    let broker = operator_broker(cfg).await?;
    let result = async {
        let (id, matched_by) = resolve(&broker, target).await?;
        let removed = broker
            .reset_second_factors(&id, "cli")
            .await
            .map_err(|e| format!("cannot update the account: {}", vestibule_core::error_chain(&e)))?;
        if removed {
            println!("removed every second factor of account {id} ({matched_by} `{target}`); its sessions ended");
        } else {
            println!("account {id} ({matched_by} `{target}`) had no second factor; its sessions ended");
        }
        Ok(())
    }
    .await;
    broker.close().await;
    result
}
