//! Complete OpenID Connect sign-ins per second against the real local provider (panva/oidc-provider on
//! loopback): `start`, the provider's login and consent pages driven over HTTP, the callback, `finish` (code
//! exchange, ID-token verification against the cached JWKS, userinfo).
//!
//! ```text
//! tests/oidc-provider/install.sh
//! cargo run --release -p vestibule-oidc --example oidc_bench -- [SIGN_INS] [CONCURRENCY]
//! ```
//!
//! Most of the time is the provider's (Node.js) work and the five browser round trips; `finish` alone is
//! reported separately.

use std::time::{Duration, Instant};

use vestibule_core::RedirectFlow;
use vestibule_oidc::{OidcConfig, OidcSource};
use vestibule_tests::oidc::{authorize, browser, secret_env, NodeOptions, NodeProvider, Person};

const CALLBACK: &str = "http://127.0.0.1:9/callback/bench";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4).max(1);
    let secret = "bench-client-secret-0123456789abcdef";
    let op = NodeProvider::start(NodeOptions {
        client_id: "vestibule",
        client_secret: secret,
        redirect_uri: CALLBACK,
        claims_in: "id_token",
        port: 0,
    });
    let var = secret_env("BENCH", secret);
    let config: OidcConfig = toml::from_str(&format!(
        "id = \"bench\"\nissuer = \"{}\"\nclient_id = \"vestibule\"\nclient_secret_env = \"{var}\"",
        op.issuer
    ))
    .expect("config");
    let source = std::sync::Arc::new(OidcSource::new(config).expect("source"));

    // Warm-up: discovery, JWKS, connection pools, the provider's JIT.
    for _ in 0..10 {
        one(&source).await;
    }

    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let source = source.clone();
        let n = total / concurrency + usize::from(w < total % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut finish_time = Duration::ZERO;
            for _ in 0..n {
                finish_time += one(&source).await;
            }
            finish_time
        }));
    }
    let mut finish_time = Duration::ZERO;
    for task in tasks {
        finish_time += task.await.expect("task");
    }
    let elapsed = t.elapsed();
    println!(
        "{total} complete OIDC sign-ins, concurrency {concurrency}: {:.2} s, {:.1} sign-ins/s; finish() alone \
         averages {:.2} ms",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        finish_time.as_secs_f64() * 1000.0 / total as f64
    );
}

/// One sign-in; returns the time spent in `finish`.
async fn one(source: &OidcSource) -> Duration {
    let started = source.start(CALLBACK).await.expect("start");
    let params = authorize(&browser(), &started.authorize_url, CALLBACK, Person::SignIn("alice")).await;
    let t = Instant::now();
    let who = source.finish(started.pending, CALLBACK, &params).await.expect("finish");
    let spent = t.elapsed();
    assert_eq!(who.subject.as_str(), "alice");
    spent
}
