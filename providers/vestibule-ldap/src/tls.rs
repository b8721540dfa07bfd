//! The rustls client configuration for ldaps and StartTLS.
//!
//! Built here rather than left to ldap3 for three reasons: to trust a CA file, to turn verification off only
//! when asked (ldap3 would ignore `set_no_tls_verify` once a config is given), and to name the crypto provider
//! (ring) explicitly, because rustls panics on `ClientConfig::builder()` when a binary links two providers.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use vestibule_core::ConfigIssue;

use crate::LdapConfig;

pub(crate) fn client_config(cfg: &LdapConfig) -> Result<Arc<ClientConfig>, ConfigIssue> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigIssue::new("url", format!("TLS setup failed: {e}")))?;
    let roots = roots(cfg)?;
    let config = if cfg.tls_verify {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn roots(cfg: &LdapConfig) -> Result<RootCertStore, ConfigIssue> {
    let mut roots = RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ConfigIssue::new("ca_file", format!("cannot read {}: {e}", path.display())))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| ConfigIssue::new("ca_file", format!("bad PEM in {}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| {
                    ConfigIssue::new("ca_file", format!("unusable certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(ConfigIssue::new(
                    "ca_file",
                    format!("no certificate in {}", path.display()),
                ));
            }
        }
        None => {
            // The system store; a machine without one simply fails every handshake (reported as unavailable),
            // which is the safe outcome.
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "skipping part of the system trust store");
            }
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(roots)
}

/// Used only with `tls_verify = false`: accepts any certificate, but still checks that the server holds the key
/// of the certificate it sent (handshake signatures), which costs nothing.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
