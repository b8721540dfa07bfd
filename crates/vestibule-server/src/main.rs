//! The `vestibule` binary: a login portal configured in TOML, or run on embedded defaults (SQLite, local
//! passwords, loopback) with no file at all.

mod config;
mod serve;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vestibule", version, about = "A pluggable identity broker")]
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
    /// Apply database migrations.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage local accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Disable an account (by local username): every session, remember-me series and token ends at once.
    Disable {
        username: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Re-enable a disabled account.
    Enable {
        username: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create a local account.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from one line of standard input (its trailing newline dropped).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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

fn load(path: Option<&PathBuf>) -> Result<config::FileConfig, String> {
    match path {
        Some(p) => config::load(p).map_err(|e| e.to_string()),
        None => config::parse("(embedded defaults)", "").map_err(|e| e.to_string()),
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve { config, bind } => {
            let mut cfg = load(config.as_ref())?;
            if let Some(b) = bind {
                cfg.server.bind = b;
            }
            serve::serve(cfg).await
        }
        Command::CheckConfig { file } => {
            let cfg = config::load(&file).map_err(|e| e.to_string())?;
            println!("{}: ok ({} source(s))", file.display(), cfg.sources.len());
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
            let id = serve::add_user(&cfg, &username, email, display_name, password).await?;
            println!("created account {id} for {username}");
            Ok(())
        }
        Command::User {
            command: UserCommand::Disable { username, config },
        } => {
            let ended = serve::set_disabled(&load(config.as_ref())?, &username, true).await?;
            println!("disabled {username}; {ended} session(s) ended");
            Ok(())
        }
        Command::User {
            command: UserCommand::Enable { username, config },
        } => {
            serve::set_disabled(&load(config.as_ref())?, &username, false).await?;
            println!("enabled {username}");
            Ok(())
        }
    }
}
