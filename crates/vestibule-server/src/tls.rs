//! HTTPS served directly (`[server.tls]`): the certificate and key from PEM files, read again when they change
//! (certificate renewal by certbot, cert-manager or an ACME client, with no restart), and an optional plain-HTTP
//! listener that only redirects to the public https URL.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{self, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use vestibule_config::TlsConfig;

/// Loads the certificate chain and key into a server configuration (TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by
/// ALPN), saying which file is wrong and how.
pub fn load(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| format!("server.tls.cert_file {}: {e}", tls.cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("server.tls.cert_file {}: {e}", tls.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls.cert_file {}: no PEM certificate in it",
            tls.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| format!("server.tls.key_file {}: {e}", tls.key_file.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("server.tls: the key does not go with the certificate, or is not usable: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a change of either file looks like: modification time and length of both.
type Stamp = Option<(SystemTime, u64, SystemTime, u64)>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let c = std::fs::metadata(cert).ok()?;
    let k = std::fs::metadata(key).ok()?;
    Some((c.modified().ok()?, c.len(), k.modified().ok()?, k.len()))
}

/// Looks at the files every `reload_interval_secs` and swaps a changed, loadable pair in for new connections.
/// Connections already open keep the certificate they began with.
pub fn spawn_reloader(tls: TlsConfig, live: axum_server::tls_rustls::RustlsConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = stamp(&tls.cert_file, &tls.key_file);
        let mut tick = tokio::time::interval(Duration::from_secs(tls.reload_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamp(&tls.cert_file, &tls.key_file);
            if now == seen {
                continue;
            }
            // A renewal writes two files, not at once: a pair that does not match yet is tried again next time.
            match load(&tls) {
                Ok(config) => {
                    live.reload_from_config(config);
                    seen = now;
                    tracing::info!(cert = %tls.cert_file.display(), "TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate changed but does not load; still serving the previous one")
                }
            }
        }
    })
}

/// The plain-HTTP listener's only answer: a redirect to the same path and query at `public_url`'s origin (never
/// built from `Host`, which the client chooses), for GET and HEAD; anything else would have sent its body in the
/// clear already, so it is refused rather than redirected.
pub async fn to_https(State(origin): State<Arc<String>>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::BAD_REQUEST, "Use https.\n").into_response();
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = format!("{origin}{path}");
    match http::HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::MOVED_PERMANENTLY, [(http::header::LOCATION, v)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
