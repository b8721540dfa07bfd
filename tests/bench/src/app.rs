//! The app `bench_server` serves and `bench_inproc` drives: the same routes, built in one place, so the figures
//! over sockets and in process are of the same thing.
//!
//! * `/open`: a trivial handler (`"ok"`) in a router no broker layer wraps;
//! * `/floor`: the least any session check can do, no broker: the session cookie parsed from the `Cookie` header,
//!   SHA-256 of its value, a lookup in a moka `sync::Cache` (the broker's crate and version) of `Arc<FloorUser>`,
//!   then `"ok"` (401 when absent);
//! * `/protected`: the same handler with `RequireUser`, behind `vestibule.layer()`;
//! * `/auth/verify` (and the rest of the broker's router, nested under `/auth` behind the same layer, as an
//!   embedding app would).
//!
//! Requests come as a browser's would to an app served like `examples/embed` (with `ConnectInfo`): from
//! 127.0.0.1 with a browser's `User-Agent` ([`USER_AGENT`]), the client the session was signed in with, so
//! session protection compares a real client on every request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::COOKIE;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use sqlx::{Connection, SqliteConnection};
use vestibule::{Broker, ClientInfo};
use vestibule_axum::{HttpSettings, RequireUser, Vestibule};
use vestibule_core::SourceId;
use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher};
use vestibule_store::NewLocalAccount;

use crate::{open_store, BenchResult, LOGIN, PASSWORD};

/// The name of the session cookie over plain http (what wrk and the in-process driver send).
pub const SESSION_COOKIE: &str = "vestibule-session";

/// The `User-Agent` every request sends, and the session was signed in with: a current desktop browser's.
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The address every request comes from (`ConnectInfo`), and the session was signed in from.
pub const CLIENT: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

const FILLER_ACCOUNTS: i64 = 1000;
const CHUNK: i64 = 100_000;

/// The routes measured, as `scripts/bench` names them, and their paths.
pub const ROUTES: &[(&str, &str)] = &[
    ("open", "/open"),
    ("floor", "/floor"),
    ("protected", "/protected"),
    ("verify", "/auth/verify"),
];

/// The served app and what a client needs to use it.
pub struct BenchApp {
    /// `/open`, `/floor`, `/protected` and the broker's routes under `/auth`.
    pub app: Router,
    /// A valid session id for the `vestibule-session` cookie.
    pub cookie: String,
    /// Rows in the sessions table.
    pub sessions: i64,
    /// Seconds spent inserting the filler sessions.
    pub load_secs: f64,
    /// The broker behind `/protected` and `/auth`.
    pub broker: Arc<Broker>,
}

impl std::fmt::Debug for BenchApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the cookie: it is a session id.
        f.debug_struct("BenchApp")
            .field("sessions", &self.sessions)
            .field("load_secs", &self.load_secs)
            .finish_non_exhaustive()
    }
}

async fn open() -> &'static str {
    "ok"
}

async fn protected(RequireUser(_session): RequireUser) -> &'static str {
    "ok"
}

/// What the floor's cache holds per session: a small user, behind an `Arc` like the broker's `ActiveSession`.
#[derive(Debug)]
pub struct FloorUser {
    /// Whose session.
    pub account_id: String,
    /// Shown name.
    pub display_name: Option<String>,
}

/// The floor's cache: SHA-256 of the session id → user. Configured like the broker's (100 000 entries, a time to
/// live), so that moka's read path does the same bookkeeping.
pub type FloorCache = moka::sync::Cache<[u8; 32], Arc<FloorUser>>;

async fn floor(State(cache): State<FloorCache>, req: Request) -> Result<&'static str, StatusCode> {
    let token = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == SESSION_COOKIE).then_some(v)
        })
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let user = cache.get(&key).ok_or(StatusCode::UNAUTHORIZED)?;
    drop(user);
    Ok("ok")
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

/// A store at `path` holding `sessions` sessions (one of them made by `Broker::create_session`, like a real
/// sign-in's, and already in the broker's cache), the broker over it, and the app. The filler sessions are
/// inserted with one `INSERT ... SELECT` over a recursive CTE on a separate sqlx connection (random 256-bit hashes,
/// spread over 1 000 filler accounts).
pub async fn build(path: &str, sessions: i64) -> BenchResult<BenchApp> {
    let store = open_store(path).await?;
    let started = Instant::now();
    let now = vestibule_core::Clock::now(&vestibule_core::SystemClock).0;
    // One filler session fewer: the real one below makes the count exact.
    fill(path, (sessions - 1).max(0), now).await?;
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
    let signed_in_from = ClientInfo::from_parts(Some(USER_AGENT), Some(CLIENT.ip()));
    let session = broker
        .create_session(&account, &local_id, &signed_in_from, None)
        .await?;
    let Some(active) = broker.session(session.token.expose()).await? else {
        return Err("the session just created does not check".into());
    };
    let stored = count_sessions(path).await?;

    let floor_cache: FloorCache = moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(3600))
        .build();
    floor_cache.insert(
        Sha256::digest(session.token.expose().as_bytes()).into(),
        Arc::new(FloorUser {
            account_id: active.account_id.to_string(),
            display_name: active.display_name.clone(),
        }),
    );

    let vestibule = Vestibule::new(
        broker.clone(),
        HttpSettings {
            secure_cookies: false,
            ..HttpSettings::default()
        },
    );
    // As an embedding app would: its own routes and the broker's under /auth, all behind the layer. `/open` and
    // `/floor` are merged from routers the layer never wraps.
    let guarded = vestibule
        .nest_into(Router::new().route("/protected", get(protected)))
        .layer(vestibule.layer());
    let app = Router::new()
        .route("/open", get(open))
        .merge(Router::new().route("/floor", get(floor)).with_state(floor_cache))
        .merge(guarded);
    Ok(BenchApp {
        app,
        cookie: session.token.expose().to_owned(),
        sessions: stored,
        load_secs,
        broker,
    })
}
