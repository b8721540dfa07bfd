//! Building the broker from configuration and serving it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use vestibule::StorageError;
use vestibule_axum::{HttpSettings, Vestibule};
use vestibule_local::PasswordHasher;
use vestibule_store::{NewLocalAccount, Store};

use vestibule_config::{FileConfig, Transport};

pub async fn open_store(cfg: &FileConfig) -> Result<Store, String> {
    cfg.open_store().await.map_err(|e| e.to_string())
}

pub async fn serve(cfg: FileConfig) -> Result<(), String> {
    // Refuse an unsafe transport before opening any socket (the rule `check-config` applies too).
    let transport = cfg.transport().map_err(|issue| issue.message)?;
    if transport == (Transport::Loopback { https: false }) {
        tracing::warn!(
            "development mode: plain HTTP on a loopback address; cookies are not Secure. Set [server] public_url to \
             an https URL for anything but local development"
        );
    }
    for issue in cfg.warnings() {
        tracing::warn!(key = %issue.key, "{}", issue.message);
    }
    let secure = transport.secure_cookies();
    let scheme = if cfg.server.tls.is_some() { "https" } else { "http" };
    // The certificate is read before the port opens: a wrong file stops the start with a message naming it.
    let tls = match &cfg.server.tls {
        Some(t) => Some((t.clone(), crate::tls::load(t)?)),
        None => None,
    };
    let listener = std::net::TcpListener::bind(cfg.server.bind)
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.server.bind))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    // With port 0 the default public URL is only known once bound.
    let public = cfg
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{bound}"));
    // The recorder first, so that the broker's first events are counted.
    let prometheus = match cfg.metrics.bind {
        Some(_) => Some(crate::metrics::install()?),
        None => None,
    };
    let store = open_store(&cfg).await?;
    let mailer = match start_mailer(&cfg) {
        Ok(m) => m,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let served: Result<(), String> = async {
        let builder = cfg
            .broker_builder(store.clone(), mailer.clone(), &public)
            .map_err(|e| e.to_string())?;
        if cfg.second_factor.key_file.is_none() && cfg.second_factor.key_env.is_none() {
            if secure {
                // The key then sits in the database next to what it seals: a stolen database opens the secrets.
                tracing::warn!(
                    "second_factor.key_file / key_env not set: TOTP secrets are sealed with a key kept in the \
                     database; set a key so that a copy of the database alone does not reveal them"
                );
            } else {
                tracing::info!("second_factor: TOTP secrets sealed with a key kept in the database (development)");
            }
        }
        let broker = Arc::new(builder.build().await.map_err(|e| e.to_string())?);
        let _janitor = broker.spawn_janitor();
        // With PostgreSQL, revocations made by other nodes reach this node's cache at once.
        let _listener = broker.spawn_revocation_listener();
        if let (Some(bind), Some(prometheus)) = (cfg.metrics.bind, prometheus) {
            crate::metrics::serve(
                bind,
                crate::metrics::Scrape {
                    prometheus,
                    broker: broker.clone(),
                    store: store.clone(),
                    mailer: mailer.clone(),
                },
            )?;
        }
        // Served under the path of public_url (usually none): the broker builds its links from the same URL.
        let app = Vestibule::new(
            broker,
            HttpSettings {
                secure_cookies: secure,
                ..cfg.http_settings()
            },
        )
        .nest_into(axum::Router::new());
        // Counted and timed only when metrics are on.
        let app = if cfg.metrics.bind.is_some() {
            app.layer(axum::middleware::from_fn(crate::metrics::track))
        } else {
            app
        };
        // Outermost: every log line of a request, and its error page's reference, carry the request's id.
        let app = app.layer(axum::middleware::from_fn(vestibule_axum::with_request_id));
        // On SIGTERM: stop accepting at once, let the requests under way finish, but no longer than the grace
        // period (a request stuck on a dead directory must not keep the process from being replaced).
        let handle = axum_server::Handle::new();
        let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
        let on_signal = handle.clone();
        tokio::spawn(async move {
            shutdown().await;
            on_signal.graceful_shutdown(Some(grace));
        });
        let redirect = match cfg.server.tls.as_ref().and_then(|t| t.redirect_http_bind) {
            // Its own handle (so each reports its own address) sharing the main one's shutdown.
            Some(addr) => Some(start_redirect(
                addr,
                &public,
                axum_server::Handle::with_control(handle.control()),
            )?),
            None => None,
        };
        let make = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = match tls {
            Some((settings, config)) => {
                let live = axum_server::tls_rustls::RustlsConfig::from_config(config);
                let _reloader = crate::tls::spawn_reloader(settings, live.clone());
                let server = axum_server::tls_rustls::from_tcp_rustls(listener, live)
                    .map_err(|e| format!("cannot listen on {bound}: {e}"))?
                    .handle(handle.clone());
                announce(bound, &public, "https");
                server.serve(make).await
            }
            None => {
                let server = axum_server::from_tcp(listener)
                    .map_err(|e| format!("cannot listen on {bound}: {e}"))?
                    .handle(handle.clone());
                announce(bound, &public, "http");
                server.serve(make).await
            }
        };
        if served.is_err() {
            // The redirect listener would otherwise run on alone.
            handle.shutdown();
        }
        if let Some(r) = redirect {
            let _ = r.await;
        }
        served.map_err(|e| format!("server error: {e}"))
    }
    .await;
    // However serving ended (a signal, an error, a part that could not start), reset links and notices queued by
    // the last requests still go out, and the database is closed cleanly (SQLite folds its write-ahead log in):
    // every audit row written so far stays.
    mailer.drain(MAIL_DRAIN).await;
    store.close().await;
    tracing::info!("stopped");
    served
}

/// How long queued mail may still take to leave at shutdown, after the requests have finished.
const MAIL_DRAIN: Duration = Duration::from_secs(10);

fn announce(bound: SocketAddr, public: &str, scheme: &str) {
    tracing::info!(address = %bound, public_url = %public, scheme, "vestibule listening");
    // Tests and scripts read this line to learn the port when binding to :0.
    println!("vestibule listening on {bound}");
}

/// The plain-HTTP listener of `[server.tls] redirect_http_bind`: redirects only (see [`crate::tls::to_https`]),
/// stopped with the main one.
fn start_redirect(
    addr: SocketAddr,
    public: &str,
    handle: axum_server::Handle<SocketAddr>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let url = url::Url::parse(public).map_err(|e| format!("server.public_url: {e}"))?;
    let origin = Arc::new(url.origin().ascii_serialization());
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let app = axum::Router::new()
        .fallback(crate::tls::to_https)
        .with_state(origin)
        .layer(axum::middleware::from_fn(vestibule_axum::with_request_id));
    let server = axum_server::from_tcp(listener)
        .map_err(|e| format!("cannot listen on {bound}: {e}"))?
        .handle(handle);
    tracing::info!(address = %bound, "redirecting plain http to https");
    println!("vestibule redirecting http on {bound}");
    Ok(tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "the http redirect listener stopped");
        }
    }))
}

/// `vestibule healthcheck`: GET `/healthz` on the server's own address (an unspecified bind address such as
/// 0.0.0.0 is asked on loopback), over https when `[server.tls]` is set. The certificate is not checked: the
/// request goes to this machine's own socket, carries nothing secret, and the certificate need not name the
/// loopback address. Within 5 s.
pub async fn healthcheck(cfg: &FileConfig, address: Option<SocketAddr>) -> Result<(), String> {
    let mut addr = address.unwrap_or(cfg.server.bind);
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    if !addr.ip().is_loopback() {
        return Err(format!(
            "unhealthy: {addr} is not a loopback address; give --address 127.0.0.1:PORT"
        ));
    }
    let scheme = if cfg.server.tls.is_some() { "https" } else { "http" };
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("unhealthy: {e}"))?;
    let url = format!("{scheme}://{addr}/healthz");
    match client.get(&url).send().await {
        Ok(res) if res.status() == reqwest::StatusCode::OK => Ok(()),
        Ok(res) => Err(format!("unhealthy: {url} answered {}", res.status())),
        Err(e) => Err(format!("unhealthy: {url}: {}", vestibule_core::error_chain(&e))),
    }
}

/// The mail queue of `[email]` (see [`FileConfig::start_mailer`]).
pub fn start_mailer(cfg: &FileConfig) -> Result<Arc<vestibule_mail::MailQueue>, String> {
    cfg.start_mailer().map_err(|e| e.to_string())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: no new connections; finishing the requests under way");
}

/// Creates a local account; returns its id and, when a confirmation link was mailed (or could not be), a line
/// saying so.
pub async fn add_user(
    cfg: &FileConfig,
    username: &str,
    email: Option<String>,
    email_verified: bool,
    display_name: Option<String>,
    password: String,
) -> Result<(String, Option<String>), String> {
    let has_email = email.is_some();
    let local = cfg
        .local_source()
        .cloned()
        .ok_or_else(|| "the configuration has no `local` source to add users to".to_owned())?;
    if username.is_empty() || username.len() > 128 || username.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the username must be 1 to 128 characters without spaces or control characters".into());
    }
    if let Some(e) = &email {
        if !e.contains('@') || e.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("the email address is not valid".into());
        }
    }
    local.password.check(&password).map_err(|e| e.to_string())?;
    let hasher = PasswordHasher::new(local.argon2).map_err(|e| e.to_string())?;
    let hash = hasher.hash(password.into()).await.map_err(|e| e.to_string())?;
    let (broker, mailer) = crate::operator_broker_mailing(cfg).await?;
    let created = broker
        .create_local_account(
            &NewLocalAccount {
                source: local.id.clone(),
                username: username.to_owned(),
                display_name: display_name.or_else(|| Some(username.to_owned())),
                email,
                // Only when the operator says so: `--email-verified`.
                email_verified: email_verified && has_email,
                password_hash: hash.into(),
            },
            "cli",
        )
        .await;
    // An address the operator did not vouch for gets a confirmation link; until it is used, the address is not
    // used for reset or linking.
    let verification = match &created {
        Ok(id) => broker.send_email_verification(id).await,
        Err(_) => Ok(false),
    };
    crate::mail_and_close(broker, &mailer).await;
    let note = match verification {
        Ok(true) => Some("a confirmation link was sent to the account's email address".to_owned()),
        Ok(false) => None,
        Err(e) => Some(format!(
            "the confirmation link could not be sent: {}",
            vestibule_core::error_chain(&e)
        )),
    };
    let id = match created {
        Ok(id) => id,
        Err(vestibule::BrokerError::Store(StorageError::Conflict(_))) => {
            return Err(format!("the username `{username}` is taken"))
        }
        Err(e) => {
            return Err(format!(
                "cannot create the account: {}",
                vestibule_core::error_chain(&e)
            ))
        }
    };
    Ok((id.to_string(), note))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// `[database]` reaches the store: the busy timeout SQLite runs with is the configured one.
    #[tokio::test]
    async fn the_store_opens_with_the_configured_timeouts() {
        let dir = vestibule_tests::server::TempDir::new("vestibule-serve");
        let text = format!(
            "[database]\nurl = \"sqlite://{}/s.db\"\nbusy_timeout_secs = 2\n",
            dir.0.display()
        );
        let cfg = vestibule_config::parse("t.toml", &text).unwrap();
        let store = super::open_store(&cfg).await.unwrap();
        assert_eq!(store.sqlite_pragma("busy_timeout").await.unwrap(), 2000);
        store.close().await;
    }
}
