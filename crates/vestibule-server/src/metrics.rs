//! `[metrics]`: Prometheus metrics on a listener of their own (`bind`, off by default), never on the public one.
//!
//! The broker records through the `metrics` facade (sign-ins by source and result, audit events, throttle
//! refusals, calls to sources with their latency); this module installs the Prometheus recorder, times every
//! request by route class, and at each scrape reads what is a state rather than an event: live sessions, the
//! database pool, the mail queue, each source's readiness.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use vestibule::Broker;
use vestibule_store::Store;

/// Buckets for every `*_seconds` histogram: from a cached session check to a slow directory.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What a scrape reads besides the recorder.
pub struct Scrape {
    pub prometheus: PrometheusHandle,
    pub broker: Arc<Broker>,
    pub store: Store,
    pub mailer: Arc<vestibule_mail::MailQueue>,
}

/// Installs the process-wide recorder. Call once, before the broker records anything.
pub fn install() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))
}

/// Serves `GET /metrics` on `bind` until the process ends; returns the bound address.
pub fn serve(bind: SocketAddr, scrape: Scrape) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind(bind).map_err(|e| format!("metrics: cannot listen on {bind}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("metrics: cannot read the bound address: {e}"))?;
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(render))
        .with_state(Arc::new(scrape));
    let server = axum_server::from_tcp(listener).map_err(|e| format!("metrics: cannot listen on {bound}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    tracing::info!(address = %bound, "metrics at /metrics");
    println!("vestibule metrics on {bound}");
    Ok(bound)
}

async fn render(State(s): State<Arc<Scrape>>) -> Response {
    match s.broker.active_sessions().await {
        Ok(n) => metrics::gauge!("vestibule_sessions_active").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "metrics: could not count the sessions"),
    }
    let (size, idle) = s.store.pool_usage();
    metrics::gauge!("vestibule_db_pool_connections").set(f64::from(size));
    metrics::gauge!("vestibule_db_pool_idle").set(idle as f64);
    let mail = s.mailer.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("vestibule_mail_sent_total").absolute(load(&mail.sent));
    metrics::counter!("vestibule_mail_failed_total").absolute(load(&mail.failed));
    metrics::counter!("vestibule_mail_refused_total").absolute(load(&mail.refused));
    metrics::gauge!("vestibule_mail_queued").set(s.mailer.queued() as f64);
    // Readiness as of its last shared run (at most 2 s old): 1 up or not checked, 0 down.
    let ready = s.broker.readiness().await;
    metrics::gauge!("vestibule_store_up").set(if ready.store == vestibule::CheckState::Up {
        1.0
    } else {
        0.0
    });
    for source in &ready.sources {
        let up = if source.state == vestibule::CheckState::Down {
            0.0
        } else {
            1.0
        };
        metrics::gauge!("vestibule_source_up", "source" => source.id.clone()).set(up);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.prometheus.render(),
    )
        .into_response()
}

/// The route class of a path, from a fixed list (never the path itself: tokens live in some paths, and any path
/// as a label would let clients create series without end).
fn route_class(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "" => "root",
        "login" => "login",
        "callback" => "callback",
        "logout" => "logout",
        "account" => "account",
        "me" => "me",
        "verify" => "verify",
        "healthz" | "readyz" => "health",
        "reset" => "reset",
        "email" => "email",
        "link" => "link",
        "static" => "static",
        _ => "other",
    }
}

/// Middleware: counts every request and times it, by route class and status class. `verify` is the session
/// check reverse proxies make on every request.
pub async fn track(req: Request, next: Next) -> Response {
    let route = route_class(req.uri().path());
    let started = Instant::now();
    let res = next.run(req).await;
    let status = match res.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("vestibule_http_requests_total", "route" => route, "status" => status).increment(1);
    metrics::histogram!("vestibule_http_request_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    res
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_classes_never_carry_the_path() {
        assert_eq!(super::route_class("/reset/abc123secret"), "reset");
        assert_eq!(super::route_class("/email/verify/tok"), "email");
        assert_eq!(super::route_class("/verify"), "verify");
        assert_eq!(super::route_class("/x/../../etc"), "other");
        assert_eq!(super::route_class("/"), "root");
    }
}
