//! Serves the routes of [`vestibule_bench::app`] on 127.0.0.1: `/open` (no broker layer), `/floor` (cookie →
//! SHA-256 → moka lookup, no broker), `/protected` (behind `vestibule.layer()` and `RequireUser`) and the broker's
//! router under `/auth` (`/auth/verify`), over a SQLite store holding `SESSIONS` sessions, and prints, one
//! `key=value` per line on stdout: `port`, `cookie` (a valid session for the `vestibule-session` cookie),
//! `user_agent` (the `User-Agent` the session was signed in with, for every request to send),
//! `sessions` (rows in the table), `load_secs`, `workers`, then `ready`. It serves until killed.
//!
//! ```text
//! bench_server DB_PATH [SESSIONS]
//! ```

use std::io::Write;

use vestibule_bench::{app, arg, cpus, BenchResult};

async fn run() -> BenchResult<()> {
    let path: String = arg(1, String::new())?;
    if path.is_empty() {
        return Err("usage: bench_server DB_PATH [SESSIONS]".into());
    }
    let sessions: i64 = arg(2, 1000)?;
    let built = app::build(&path, sessions).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "port={port}")?;
        writeln!(out, "cookie={}", built.cookie)?;
        writeln!(out, "user_agent={}", app::USER_AGENT)?;
        writeln!(out, "sessions={}", built.sessions)?;
        writeln!(out, "load_secs={:.2}", built.load_secs)?;
        writeln!(out, "workers={}", cpus())?;
        writeln!(out, "ready")?;
        out.flush()?;
    }
    // As `examples/embed` serves: the client's address reaches the session check (and its protection).
    let app = built.app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench_server: {e}");
        std::process::exit(1);
    }
}
