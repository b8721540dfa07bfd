//! The CPU each route adds per request, in process: the app of [`vestibule_bench::app`] driven with
//! `tower::ServiceExt::oneshot` (no sockets, no HTTP parsing or writing), on a current-thread runtime.
//!
//! ```text
//! bench_inproc [SESSIONS] [ROUNDS] [BATCH]          # timed: ROUNDS rounds, each a batch of BATCH per route
//! bench_inproc callgrind ROUTE N [SESSIONS]         # N requests of one route inside `measured`, for callgrind
//! ```
//!
//! Timed mode: each round runs one batch of `BATCH` requests of every route in turn (open, floor, protected,
//! verify), timed with `Instant`; prints per route the median ns per request over the rounds and the median over
//! the rounds of its difference to `/open` in the same round (`added_ns`), as `key=value` lines.
//!
//! Callgrind mode: run under `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*'`;
//! instruction counts of the `N` requests only (after a warm-up of 1 000), deterministic up to the runtime's own
//! scheduling. Divide by `N` and subtract `/open`'s for the added instructions per request.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{COOKIE, HOST, USER_AGENT};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;
use vestibule_bench::app::{self, ROUTES, SESSION_COOKIE};
use vestibule_bench::{arg, BenchResult};

fn request(path: &str, cookie: &HeaderValue) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = path.parse().expect("a route's path");
    req.headers_mut().insert(HOST, HeaderValue::from_static("127.0.0.1"));
    req.headers_mut().insert(COOKIE, cookie.clone());
    req.headers_mut()
        .insert(USER_AGENT, HeaderValue::from_static(app::USER_AGENT));
    // What `into_make_service_with_connect_info` adds to every request over a socket.
    req.extensions_mut().insert(ConnectInfo(app::CLIENT));
    req
}

async fn batch(app: &Router, path: &str, cookie: &HeaderValue, n: usize) -> BenchResult<Duration> {
    let started = Instant::now();
    for i in 0..n {
        let res = app.clone().oneshot(request(path, cookie)).await?;
        if i == 0 && res.status() != StatusCode::OK {
            return Err(format!("{path}: {}", res.status()).into());
        }
        std::hint::black_box(res);
    }
    Ok(started.elapsed())
}

/// The requests callgrind counts: everything inside this function, the runtime's work included.
#[inline(never)]
fn measured(rt: &tokio::runtime::Runtime, app: &Router, path: &str, cookie: &HeaderValue, n: usize) -> BenchResult<()> {
    rt.block_on(batch(app, path, cookie, n)).map(|_| ())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run() -> BenchResult<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let callgrind = std::env::args().nth(1).as_deref() == Some("callgrind");
    let sessions: i64 = if callgrind { arg(4, 1000)? } else { arg(1, 1000)? };
    let dir = std::env::temp_dir().join(format!("vestibule-inproc-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("sessions.db");
    let result = (|| {
        let mut built = rt.block_on(app::build(db.to_str().ok_or("temp path is not UTF-8")?, sessions))?;
        // What `axum::serve` does once (`into_make_service`): turn every handler into a route now, not per request.
        built.app = built.app.with_state(());
        let cookie = HeaderValue::from_str(&format!("{SESSION_COOKIE}={}", built.cookie))?;
        if callgrind {
            let route: String = arg(2, String::new())?;
            let n: usize = arg(3, 10_000)?;
            let (_, path) = ROUTES
                .iter()
                .find(|(name, _)| *name == route)
                .ok_or("usage: bench_inproc callgrind open|floor|protected|verify N [SESSIONS]")?;
            rt.block_on(batch(&built.app, path, &cookie, 1000))?;
            measured(&rt, &built.app, path, &cookie, n)?;
            println!("route={route}");
            println!("requests={n}");
            return Ok(());
        }
        let rounds: usize = arg(2, 200)?;
        let size: usize = arg(3, 2000)?;
        for (_, path) in ROUTES {
            rt.block_on(batch(&built.app, path, &cookie, size))?;
        }
        let mut per_request = vec![Vec::with_capacity(rounds); ROUTES.len()];
        for _ in 0..rounds {
            for (i, (_, path)) in ROUTES.iter().enumerate() {
                let took = rt.block_on(batch(&built.app, path, &cookie, size))?;
                per_request[i].push(took.as_nanos() as f64 / size as f64);
            }
        }
        println!("sessions={}", built.sessions);
        println!("rounds={rounds}");
        println!("batch={size}");
        for (i, (name, _)) in ROUTES.iter().enumerate() {
            let mut added: Vec<f64> = per_request[i].iter().zip(&per_request[0]).map(|(r, o)| r - o).collect();
            let mut own = per_request[i].clone();
            println!("{name}_ns={:.0}", median(&mut own));
            if i > 0 {
                println!("{name}_added_ns={:.0}", median(&mut added));
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_inproc: {e}");
        std::process::exit(1);
    }
}
