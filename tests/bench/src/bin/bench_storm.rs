//! A sign-in storm: `CONCURRENCY` clients each send bad passwords for the benchmark's local account through the
//! login form (`POST /auth/login/local`, with a CSRF token and cookie from `GET /auth/login`), back to back, for
//! `SECONDS`. Every attempt costs the server one argon2id verification on its blocking pool. `scripts/bench`
//! (part `storm`) runs it against `bench_server` while wrk measures `/protected`.
//!
//! ```text
//! bench_storm BASE_URL [CONCURRENCY] [SECONDS]
//! ```
//!
//! Prints `key=value` lines: `attempts`, `per_sec`, `p50_ms`, `p99_ms` (of one attempt) and `unexpected` (answers
//! other than 401).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use vestibule_bench::{arg, BenchResult, LOGIN};

/// The `value` of `<input ... name="NAME" value="...">`.
fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

async fn run() -> BenchResult<()> {
    let base: String = arg(1, String::new())?;
    if base.is_empty() {
        return Err("usage: bench_storm BASE_URL [CONCURRENCY] [SECONDS]".into());
    }
    let concurrency: usize = arg(2, 32)?;
    let seconds: f64 = arg(3, 10.0)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let res = client.get(format!("{base}/auth/login")).send().await?;
    let cookies = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|line| line.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    let token = hidden_value(&res.text().await?, "csrf_token").ok_or("no csrf_token on the login page")?;
    let unexpected = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let (client, cookies, token, base, unexpected) = (
            client.clone(),
            cookies.clone(),
            token.clone(),
            base.clone(),
            unexpected.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let res = client
                    .post(format!("{base}/auth/login/local"))
                    .header(COOKIE, &cookies)
                    .form(&[
                        ("csrf_token", token.as_str()),
                        ("username", LOGIN),
                        ("password", &format!("wrong-{i}")),
                    ])
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                        let _ = r.bytes().await;
                        took.push(t.elapsed());
                    }
                    _ => {
                        unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            took
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    println!("attempts={}", all.len());
    println!("per_sec={:.1}", all.len() as f64 / wall);
    println!("p50_ms={:.1}", pct(0.50));
    println!("p99_ms={:.1}", pct(0.99));
    println!("unexpected={}", unexpected.load(Ordering::Relaxed));
    Ok(())
}

fn main() {
    // One worker: the client mostly waits; the CPU is for the server's hashing and wrk.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_storm: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run()) {
        eprintln!("bench_storm: {e}");
        std::process::exit(1);
    }
}
