//! The rustls client configuration for ldaps and StartTLS.
//!
//! Built here rather than left to ldap3 for four reasons: to trust a CA file, to pin one certificate, to turn
//! verification off only when asked (ldap3 would ignore `set_no_tls_verify` once a config is given), and to name
//! the crypto provider (ring) explicitly, because rustls panics on `ClientConfig::builder()` when a binary links
//! two providers.
//!
//! Three verifiers, one per setting: `ExplainedWebPki` (the default: rustls' own WebPKI checks against `ca_file`
//! or the system roots, with one common refusal explained), `PinnedCertificate` (`tls_pinned_cert_file`) and
//! `AcceptAnyCertificate` (`tls_verify = false`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use subtle::ConstantTimeEq;
use vestibule_core::ConfigIssue;

use crate::LdapConfig;

/// What to do when the `ca_file` holds the server's own, CA-marked certificate (the `openssl req -x509` default).
pub(crate) const CA_FILE_HOLDS_SERVER_CERT: &str = "the certificate in ca_file is a CA certificate used as the \
     server's own certificate; issue a server certificate from a CA, or set tls_pinned_cert_file to pin this one";
/// The same refusal without a `ca_file`: the certificate came from the server only.
const SERVER_CERT_IS_A_CA: &str = "the server presents a CA certificate (basicConstraints CA:TRUE) as its own \
     certificate; issue a server certificate from a CA, or set tls_pinned_cert_file to pin this one";
/// Pinning refused the server's certificate.
const NOT_THE_PINNED_CERT: &str = "the server's certificate is not the one pinned in tls_pinned_cert_file";

/// The handshake-signature half of a verifier, the same for every one here: the server must prove it holds the
/// key of the certificate it sent, checked with the provider's algorithms (`$provider` names the field).
macro_rules! handshake_signatures {
    ($provider:tt) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = &self.$provider.signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = &self.$provider.signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.$provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// The client configuration for a source that uses TLS. `LdapConfig::validate` has already refused the
/// combinations that make no sense (pinning with `ca_file` or with `tls_verify = false`).
pub(crate) fn client_config(cfg: &LdapConfig) -> Result<Arc<ClientConfig>, ConfigIssue> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigIssue::new("url", format!("TLS setup failed: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if let Some(path) = &cfg.tls_pinned_cert_file {
        Arc::new(PinnedCertificate::load(path, provider)?)
    } else if cfg.tls_verify {
        Arc::new(ExplainedWebPki::new(roots(cfg)?, provider, cfg.ca_file.is_some())?)
    } else {
        Arc::new(AcceptAnyCertificate(provider))
    };
    // `dangerous()` is only the door to a custom verifier: each of ours is described on its type, and the
    // default one is rustls' own WebPkiServerVerifier with nothing changed but an error's wording.
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

fn roots(cfg: &LdapConfig) -> Result<RootCertStore, ConfigIssue> {
    let mut roots = RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            for cert in read_pem_certificates("ca_file", path)? {
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

fn read_pem_certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigIssue> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| ConfigIssue::new(key, format!("cannot read {}: {e}", path.display())))?
        .map(|cert| cert.map_err(|e| ConfigIssue::new(key, format!("bad PEM in {}: {e}", path.display()))))
        .collect()
}

/// A certificate refusal whose text says what to do. rustls shows `CertificateError::Other` through `Debug`, so
/// `Debug` prints the same text as `Display`.
struct Refusal(&'static str);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refusal {}

fn refusal(text: &'static str) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal(text)))))
}

/// The default: rustls' WebPKI verification (chain to `ca_file` or the system roots, validity, key usage, host
/// name), unchanged, except that one refusal operators meet often is reworded. A self-signed certificate made
/// with `openssl req -x509` is marked a CA (basicConstraints CA:TRUE); webpki refuses a CA certificate as a
/// server's own (`CaUsedAsEndEntity`) even when it is the trusted `ca_file`, where OpenLDAP's own tools accept it.
#[derive(Debug)]
struct ExplainedWebPki {
    /// `None` when there is no root at all (an empty system store): every certificate is then refused.
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    has_ca_file: bool,
}

impl ExplainedWebPki {
    fn new(roots: RootCertStore, provider: Arc<CryptoProvider>, has_ca_file: bool) -> Result<Self, ConfigIssue> {
        let inner = if roots.is_empty() {
            tracing::warn!(
                "the system trust store has no certificates: every TLS handshake will fail; set ca_file or \
                 tls_pinned_cert_file"
            );
            None
        } else {
            let built = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| ConfigIssue::new("ca_file", format!("cannot use these certificates: {e}")))?;
            Some(built)
        };
        Ok(ExplainedWebPki {
            inner,
            provider,
            has_ca_file,
        })
    }
}

fn is_ca_used_as_end_entity(other: &OtherError) -> bool {
    matches!(
        other.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

impl ServerCertVerifier for ExplainedWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(other)))
                if is_ca_used_as_end_entity(&other) =>
            {
                Err(refusal(if self.has_ca_file {
                    CA_FILE_HOLDS_SERVER_CERT
                } else {
                    SERVER_CERT_IS_A_CA
                }))
            }
            other => other,
        }
    }

    handshake_signatures!(provider);
}

/// `tls_pinned_cert_file`: the server must present exactly this certificate (its DER compared in constant time).
/// The exact match replaces the chain and CA checks, and only those: the validity period and the host name
/// (against the certificate's subjectAltNames, by webpki) are still checked, and the server must still prove it
/// holds the certificate's key (handshake signatures).
#[derive(Debug)]
struct PinnedCertificate {
    der: CertificateDer<'static>,
    not_before: u64,
    not_after: u64,
    provider: Arc<CryptoProvider>,
}

impl PinnedCertificate {
    fn load(path: &Path, provider: Arc<CryptoProvider>) -> Result<Self, ConfigIssue> {
        const KEY: &str = "tls_pinned_cert_file";
        let certs = read_pem_certificates(KEY, path)?;
        let count = certs.len();
        let [der] = <[CertificateDer<'static>; 1]>::try_from(certs).map_err(|_| {
            ConfigIssue::new(
                KEY,
                format!(
                    "{} holds {count} certificates: it must hold exactly the server's own certificate",
                    path.display()
                ),
            )
        })?;
        // Parsed now so that a file webpki cannot read is a configuration error, not a failure at every sign-in.
        ParsedCertificate::try_from(&der)
            .map_err(|e| ConfigIssue::new(KEY, format!("unusable certificate in {}: {e}", path.display())))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| ConfigIssue::new(KEY, format!("unusable certificate in {}: {e}", path.display())))?;
        // Before 1970 reads as 1970: only the lower bound can be negative, and clamping it changes nothing.
        let not_before = u64::try_from(cert.validity().not_before.timestamp()).unwrap_or(0);
        let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
        let now = UnixTime::now().as_secs();
        if now > not_after {
            tracing::warn!(
                file = %path.display(),
                "the certificate in tls_pinned_cert_file has expired: every TLS handshake will fail until a new \
                 one is pinned"
            );
        }
        Ok(PinnedCertificate {
            der,
            not_before,
            not_after,
            provider,
        })
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !bool::from(end_entity.as_ref().ct_eq(self.der.as_ref())) {
            return Err(refusal(NOT_THE_PINNED_CERT));
        }
        let at = |secs| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        if now.as_secs() < self.not_before {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYetContext {
                    time: now,
                    not_before: at(self.not_before),
                },
            ));
        }
        if now.as_secs() > self.not_after {
            return Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                time: now,
                not_after: at(self.not_after),
            }));
        }
        verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!(provider);
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

    handshake_signatures!(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1, made by `openssl req -x509` (CA:TRUE, as operators make them).
    fn self_signed(dir: &Path, name: &str) -> std::path::PathBuf {
        let out = dir.join(format!("{name}.crt"));
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ])
            .args([
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(dir.join(format!("{name}.key")))
            .arg("-out")
            .arg(&out)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (tests/ldap/install.sh installs it)");
        assert!(status.success());
        out
    }

    #[test]
    fn pinning_checks_the_bytes_the_dates_and_the_name_only() {
        let dir = vestibule_tests::server::TempDir::new("vestibule-ldap-pin");
        let path = self_signed(dir.0.as_path(), "pinned");
        let other = self_signed(dir.0.as_path(), "other");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pin = PinnedCertificate::load(&path, provider).expect("loads");
        let der = read_pem_certificates("x", &path).expect("read").remove(0);
        let other_der = read_pem_certificates("x", &other).expect("read").remove(0);
        let ip = ServerName::try_from("127.0.0.1").expect("name");
        let now = UnixTime::now();
        let verify = |cert: &CertificateDer<'_>, name: &ServerName<'_>, at: UnixTime| {
            pin.verify_server_cert(cert, &[], name, &[], at)
        };

        verify(&der, &ip, now).expect("the pinned certificate, by its address");
        // The chain check is what pinning replaces: this CA:TRUE certificate is refused by webpki as a server's.
        let e = verify(&other_der, &ip, now).expect_err("another certificate");
        assert!(e.to_string().contains(NOT_THE_PINNED_CERT), "{e}");
        // Nothing else is relaxed: the name and the dates.
        let localhost = ServerName::try_from("localhost").expect("name");
        assert!(matches!(
            verify(&der, &localhost, now),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForNameContext { .. }
            ))
        ));
        let later = UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs() + 10 * 86_400));
        assert!(matches!(
            verify(&der, &ip, later),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ExpiredContext { .. }
            ))
        ));
        let earlier = UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs() - 86_400));
        assert!(matches!(
            verify(&der, &ip, earlier),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYetContext { .. }
            ))
        ));
    }
}
