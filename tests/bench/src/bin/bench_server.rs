//! Serves `/open` (no broker layer) and `/protected` (behind `vestibule.layer()` and `RequireUser`) on
//! 127.0.0.1 over a SQLite store holding `SESSIONS` sessions, and prints, one `key=value` per line on stdout:
//! `port`, `cookie` (a valid session for the `vestibule-session` cookie), `sessions` (rows in the table),
//! `load_secs`, `workers`, then `ready`. It serves until killed.
//!
//! ```text
//! bench_server DB_PATH [SESSIONS]
//! ```
//!
//! The filler sessions are inserted with one `INSERT ... SELECT` over a recursive CTE on a separate sqlx
//! connection (random 256-bit hashes, spread over 1 000 filler accounts); the session the load generator presents
//! is made by `Broker::create_session` like a real sign-in's.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::routing::get;
use axum::Router;
use sqlx::{Connection, SqliteConnection};
use vestibule::{Broker, ClientInfo};
use vestibule_axum::{HttpSettings, RequireUser, Vestibule};
use vestibule_bench::{arg, cpus, open_store, BenchResult, LOGIN, PASSWORD};
use vestibule_core::SourceId;
use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher};
use vestibule_store::NewLocalAccount;

const FILLER_ACCOUNTS: i64 = 1000;
const CHUNK: i64 = 100_000;

async fn open() -> &'static str {
    "ok"
}

async fn protected(RequireUser(_session): RequireUser) -> &'static str {
    "ok"
}

/// `n` sessions with random id hashes, in one transaction, on a connection of our own (the store's pool is
/// private). `synchronous = OFF` is set on this connection only, for the load.
async fn fill(path: &str, n: i64, now: i64) -> BenchResult<()> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{path}")).await?;
    sqlx::query("PRAGMA synchronous = OFF").execute(&mut conn).await?;
    sqlx::query("PRAGMA cache_size = -262144").execute(&mut conn).await?;
    let mut tx = conn.begin().await?;
    sqlx::query(
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < $1) \
         INSERT INTO accounts (id, display_name, email, email_verified, disabled, created_at) \
         SELECT printf('%032x', i), 'filler', NULL, 0, 0, $2 FROM c",
    )
    .bind(FILLER_ACCOUNTS)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let mut done = 0;
    while done < n {
        let k = CHUNK.min(n - done);
        sqlx::query(
            "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < $1) \
             INSERT INTO sessions (id_hash, account_id, source, created_at, last_seen_at, authenticated_at, \
                                   expires_at, user_agent, ip) \
             SELECT lower(hex(randomblob(32))), printf('%032x', (i + $2) % $3), 'local', $4, $4, $4, $5, \
                    'bench-filler', '127.0.0.1' FROM c",
        )
        .bind(k)
        .bind(done)
        .bind(FILLER_ACCOUNTS)
        .bind(now)
        .bind(now + 12 * 3600)
        .execute(&mut *tx)
        .await?;
        done += k;
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

async fn count_sessions(path: &str) -> BenchResult<i64> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{path}")).await?;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(n)
}

async fn run() -> BenchResult<()> {
    let path: String = arg(1, String::new())?;
    if path.is_empty() {
        return Err("usage: bench_server DB_PATH [SESSIONS]".into());
    }
    let sessions: i64 = arg(2, 1000)?;

    let store = open_store(&path).await?;
    let started = Instant::now();
    let now = vestibule_core::Clock::now(&vestibule_core::SystemClock).0;
    // One filler session fewer: the real one below makes the count exact.
    fill(&path, (sessions - 1).max(0), now).await?;
    let load_secs = started.elapsed().as_secs_f64();

    let local_id = SourceId::new("local")?;
    let hasher = Arc::new(PasswordHasher::new(Argon2Settings::default())?);
    let account = store
        .create_local_account(
            &NewLocalAccount {
                source: local_id.clone(),
                username: LOGIN.into(),
                display_name: Some("Bench".into()),
                email: None,
                email_verified: false,
                password_hash: hasher.hash(PASSWORD.into()).await?.into(),
            },
            vestibule_core::Timestamp(now),
        )
        .await?;
    let local = LocalSource::new(
        &LocalConfig {
            id: local_id.clone(),
            display_name: None,
            argon2: Argon2Settings::default(),
            password: Default::default(),
        },
        Arc::new(store.clone()),
        hasher,
    );
    let broker = Arc::new(
        Broker::builder(store, "http://127.0.0.1/auth")
            .source(Arc::new(local))
            .build()
            .await?,
    );
    let session = broker
        .create_session(&account, &local_id, &ClientInfo::default(), None)
        .await?;
    if broker.session(session.token.expose()).await?.is_none() {
        return Err("the session just created does not check".into());
    }
    let stored = count_sessions(&path).await?;

    let vestibule = Vestibule::new(
        broker,
        HttpSettings {
            mount: "/auth".into(),
            secure_cookies: false,
            landing: None,
            ..HttpSettings::default()
        },
    );
    // As an embedding app would: its own routes and the broker's under /auth, all behind the layer. `/open` is
    // merged from a router the layer never wraps.
    let guarded = Router::new()
        .route("/protected", get(protected))
        .nest("/auth", vestibule_axum::router(vestibule.clone()))
        .layer(vestibule.layer());
    let app = Router::new().route("/open", get(open)).merge(guarded);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "port={port}")?;
        writeln!(out, "cookie={}", session.token.expose())?;
        writeln!(out, "sessions={stored}")?;
        writeln!(out, "load_secs={load_secs:.2}")?;
        writeln!(out, "workers={}", cpus())?;
        writeln!(out, "ready")?;
        out.flush()?;
    }
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
