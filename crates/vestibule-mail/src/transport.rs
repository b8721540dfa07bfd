//! Where messages go: an SMTP server (lettre, rustls on ring), or the development outbox folder.

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use vestibule_core::ExposeSecret;

use crate::config::SmtpSettings;

/// A transport could not be built or a message could not be delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// SMTP (connection, TLS, authentication, refusal).
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// Writing to the outbox.
    #[error("outbox: {0}")]
    Outbox(#[from] std::io::Error),
    /// The configuration cannot be used.
    #[error("{0}")]
    Config(String),
}

pub(crate) enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

impl Transport {
    pub(crate) fn smtp(settings: &SmtpSettings, timeout: Duration) -> Result<Self, TransportError> {
        let url = &settings.url;
        let host = url
            .host_str()
            .ok_or_else(|| TransportError::Config("smtp_url names no host".into()))?
            .to_owned();
        let mode = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let params = || {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(pem) = &settings.ca_pem {
                b = b.add_root_certificate(Certificate::from_pem(pem)?);
            }
            b.build_rustls()
        };
        let (tls, default_port) = match (url.scheme(), mode.as_deref()) {
            ("smtps", _) => (Tls::Wrapper(params()?), 465),
            ("smtp", None | Some("required")) => (Tls::Required(params()?), 587),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(params()?), 587),
            ("smtp", Some("none")) => (Tls::None, 25),
            (scheme, mode) => {
                return Err(TransportError::Config(format!(
                    "smtp_url: unsupported scheme {scheme} or tls={}",
                    mode.unwrap_or_default()
                )))
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout));
        let user = percent_decode(url.username());
        if !user.is_empty() {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Transport::Smtp(builder.build()))
    }

    pub(crate) async fn send(&self, message: &lettre::Message) -> Result<(), TransportError> {
        match self {
            Transport::Smtp(t) => {
                t.send(message.clone()).await?;
                Ok(())
            }
            Transport::Outbox(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                let name = format!(
                    "{}-{:016x}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0),
                    rand::random::<u64>()
                );
                // Written aside and renamed: whoever watches the folder never reads half a message.
                let partial = dir.join(format!(".{name}.partial"));
                tokio::fs::write(&partial, message.formatted()).await?;
                tokio::fs::rename(&partial, dir.join(format!("{name}.eml"))).await?;
                Ok(())
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Transport::Smtp(_) => "smtp".into(),
            Transport::Outbox(dir) => format!("outbox {}", dir.display()),
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("u={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
