//! Revocation latency across two nodes: two real `vestibule serve` processes share one fresh PostgreSQL database,
//! with `cache_ttl_secs = 3600` so that only the LISTEN/NOTIFY push can make node B refuse a session soon after
//! node A revoked it. Each round signs in on A (the login form, with its CSRF token and cookie), warms B's cache
//! with the session cookie (`GET /verify` → 200), then signs out on A (`POST /logout` with the token from
//! `/account`) while another task polls B's `/verify` back to back, and records the time from sending the logout to
//! B's first 401.
//!
//! ```text
//! bench_revocation VESTIBULE_BIN [ROUNDS]
//! ```
//!
//! The admin connection is `VESTIBULE_BENCH_PG_ADMIN` or `postgres://postgres@127.0.0.1:5432/postgres` (trust
//! auth). The database `vestibule_bench_<pid>_<nanos>` is created, and dropped at the end together with the
//! temporary folder and both server processes, also when a round fails. Prints one `round=` line per round, then
//! `key=value` summary lines (milliseconds).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Client, StatusCode};
use sqlx::{Connection, Executor, PgConnection};
use vestibule_bench::{arg, BenchResult, PASSWORD};

const USER: &str = "bench";
/// A round where B still answers 200 this long after the logout is a failure, not a figure.
const GIVE_UP: Duration = Duration::from_secs(10);

/// A running `vestibule serve`, killed on drop.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn start(bin: &Path, dir: &Path, config: &Path) -> BenchResult<Node> {
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .args(["--bind", "127.0.0.1:0"])
            .current_dir(dir)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout of vestibule serve")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("vestibule listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let mut node = Node {
            child,
            base: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(100)) {
                node.base = format!("http://{addr}");
                return Ok(node);
            }
            if let Some(status) = node.child.try_wait()? {
                return Err(format!("vestibule serve exited before listening: {status}").into());
            }
            if Instant::now() > deadline {
                return Err("vestibule serve did not start within 60 s".into());
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary folder, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn admin_url() -> String {
    std::env::var("VESTIBULE_BENCH_PG_ADMIN").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The `value` of `<input ... name="NAME" value="...">`.
fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// `name=value` of every `Set-Cookie` of a response, added to (or replacing in) `jar`.
fn keep_cookies(jar: &mut Vec<(String, String)>, res: &reqwest::Response) {
    for line in res.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
        let pair = line.split(';').next().unwrap_or("");
        if let Some((k, v)) = pair.split_once('=') {
            jar.retain(|(name, _)| name != k);
            if !v.is_empty() && !line.contains("Max-Age=0") {
                jar.push((k.to_owned(), v.to_owned()));
            }
        }
    }
}

fn cookie_header(jar: &[(String, String)]) -> String {
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One round's readings.
struct Round {
    /// From sending `POST /logout` to A until B's first 401.
    refused: Duration,
    /// From sending `POST /logout` to A's 303.
    logout: Duration,
    /// `/verify` requests B answered in that time (the last one being the 401).
    polls: u32,
}

/// Signs in on A, warms B, signs out on A while polling B.
async fn round(client: &Client, a: &str, b: &str) -> BenchResult<Round> {
    let mut jar = Vec::new();
    let res = client.get(format!("{a}/login")).send().await?;
    keep_cookies(&mut jar, &res);
    if res.status() != StatusCode::OK {
        return Err(format!("GET /login on A: {}", res.status()).into());
    }
    let token = hidden_value(&res.text().await?, "csrf_token").ok_or("no csrf_token on A's login page")?;
    let res = client
        .post(format!("{a}/login/local"))
        .header(COOKIE, cookie_header(&jar))
        .form(&[
            ("csrf_token", token.as_str()),
            ("username", USER),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    keep_cookies(&mut jar, &res);
    if res.status() != StatusCode::SEE_OTHER || !jar.iter().any(|(k, _)| k == "vestibule-session") {
        return Err(format!("POST /login/local on A: {} without a session cookie", res.status()).into());
    }
    let cookies = cookie_header(&jar);

    let res = client
        .get(format!("{b}/verify"))
        .header(COOKIE, &cookies)
        .send()
        .await?;
    if res.status() != StatusCode::OK {
        return Err(format!("B refuses a session made on A: {}", res.status()).into());
    }

    let res = client
        .get(format!("{a}/account"))
        .header(COOKIE, &cookies)
        .send()
        .await?;
    if res.status() != StatusCode::OK {
        return Err(format!("GET /account on A: {}", res.status()).into());
    }
    let token = hidden_value(&res.text().await?, "csrf_token").ok_or("no csrf_token on A's account page")?;

    let started = Instant::now();
    let logout = async {
        let res = client
            .post(format!("{a}/logout"))
            .header(COOKIE, &cookies)
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await?;
        let took = started.elapsed();
        if res.status() != StatusCode::SEE_OTHER {
            return Err(format!("POST /logout on A: {}", res.status()).into());
        }
        BenchResult::Ok(took)
    };
    let poll = async {
        let mut polls = 0u32;
        loop {
            let status = client
                .get(format!("{b}/verify"))
                .header(COOKIE, &cookies)
                .send()
                .await?
                .status();
            polls += 1;
            match status {
                StatusCode::UNAUTHORIZED => return BenchResult::Ok((started.elapsed(), polls)),
                StatusCode::OK if started.elapsed() < GIVE_UP => {}
                StatusCode::OK => return Err("B still accepts the session 10 s after the logout on A".into()),
                other => return Err(format!("GET /verify on B: {other}").into()),
            }
        }
    };
    let (logout, poll) = tokio::join!(logout, poll);
    let (refused, polls) = poll?;
    Ok(Round {
        refused,
        logout: logout?,
        polls,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(out: &mut impl Write, name: &str, mut v: Vec<f64>) -> BenchResult<()> {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{name}_ms min={:.2} median={:.2} p95={:.2} max={:.2}",
        v[0],
        pct(&v, 50.0),
        pct(&v, 95.0),
        v[v.len() - 1]
    )?;
    Ok(())
}

async fn measure(bin: &Path, dir: &Path, url: &str, rounds: u32) -> BenchResult<()> {
    let config = dir.join("vestibule.toml");
    std::fs::write(
        &config,
        format!("[database]\nurl = \"{url}\"\n[session]\ncache_ttl_secs = 3600\n"),
    )?;
    // A first, so that it creates the schema; B then finds it migrated.
    let a = Node::start(bin, dir, &config)?;
    let b = Node::start(bin, dir, &config)?;
    let mut add = Command::new(bin)
        .args([
            "user",
            "add",
            USER,
            "--email",
            "bench@example.org",
            "--password-stdin",
            "--config",
        ])
        .arg(&config)
        .current_dir(dir)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    add.stdin
        .take()
        .ok_or("no stdin of vestibule user add")?
        .write_all(format!("{PASSWORD}\n").as_bytes())?;
    if !add.wait()?.success() {
        return Err("vestibule user add failed".into());
    }

    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "nodes a={} b={}", a.base, b.base)?;
    let (mut refused, mut logout, mut after) = (Vec::new(), Vec::new(), Vec::new());
    let mut polls = 0u64;
    let mut before_logout_answered = 0u32;
    for i in 1..=rounds {
        let r = round(&client, &a.base, &b.base).await?;
        writeln!(
            out,
            "round={i} refused_ms={:.2} logout_ms={:.2} polls={}",
            ms(r.refused),
            ms(r.logout),
            r.polls
        )?;
        refused.push(ms(r.refused));
        logout.push(ms(r.logout));
        after.push((ms(r.refused) - ms(r.logout)).max(0.0));
        polls += u64::from(r.polls);
        if r.refused <= r.logout {
            before_logout_answered += 1;
        }
    }
    writeln!(out, "rounds={rounds}")?;
    summary(&mut out, "refused_on_b", refused.clone())?;
    summary(&mut out, "logout_on_a", logout)?;
    summary(&mut out, "refused_after_a_answered", after)?;
    writeln!(
        out,
        "refused_before_a_answered={before_logout_answered}/{rounds} mean_poll_ms={:.3}",
        refused.iter().sum::<f64>() / polls.max(1) as f64
    )?;
    out.flush()?;
    drop((a, b));
    Ok(())
}

async fn run() -> BenchResult<()> {
    let bin: String = arg(1, String::new())?;
    if bin.is_empty() {
        return Err("usage: bench_revocation VESTIBULE_BIN [ROUNDS]".into());
    }
    // The servers run in the temporary folder: a relative path would not be found from there.
    let bin = std::fs::canonicalize(&bin).map_err(|e| format!("{bin}: {e}"))?;
    let rounds: u32 = arg(2, 50)?;
    let admin = admin_url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos();
    let name = format!("vestibule_bench_{}_{nanos}", std::process::id());
    let mut conn = PgConnection::connect(&admin)
        .await
        .map_err(|e| format!("PostgreSQL at {admin}: {e}"))?;
    conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or_else(|| admin.clone());
    let dir = TempDir(std::env::temp_dir().join(&name));
    let url = format!("{base}/{name}");
    let result = match std::fs::create_dir_all(&dir.0) {
        // On SIGINT or SIGTERM the measurement is dropped (which kills both servers) and the cleanup below runs.
        Ok(()) => tokio::select! {
            r = measure(&bin, &dir.0, &url, rounds) => r,
            s = interrupted() => Err(match s {
                Ok(signal) => format!("interrupted ({signal})").into(),
                Err(e) => e,
            }),
        },
        Err(e) => Err(e.into()),
    };
    // The servers are gone (dropped in `measure`); FORCE closes anything left.
    let dropped = conn
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await;
    let _ = conn.close().await;
    drop(dir);
    result?;
    dropped?;
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
async fn interrupted() -> BenchResult<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").map_err(Into::into),
        _ = term.recv() => Ok("SIGTERM"),
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench_revocation: {e}");
        std::process::exit(1);
    }
}
