//! Where messages go: an SMTP server (lettre, rustls on ring), or the development outbox folder.

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use vestibule_core::ExposeSecret;

use crate::config::{SmtpSettings, TlsMode};

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

impl TransportError {
    /// Whether trying again cannot help: the server refused for good (a 5xx reply: no such sender, relaying
    /// denied, message rejected), or the message cannot go over this server at all (lettre's client errors, such
    /// as a non-ASCII address for a server without SMTPUTF8). Network trouble, timeouts and 4xx replies are worth
    /// another try.
    pub fn is_permanent(&self) -> bool {
        match self {
            TransportError::Smtp(e) => e.is_permanent() || e.is_client(),
            TransportError::Outbox(_) | TransportError::Config(_) => false,
        }
    }
}

impl Transport {
    pub(crate) fn smtp(settings: &SmtpSettings, timeout: Duration) -> Result<Self, TransportError> {
        let url = &settings.url;
        let host = url
            .host_str()
            .ok_or_else(|| TransportError::Config("smtp_url names no host".into()))?
            .to_owned();
        // Checked again here (not only by `MailConfig::check`), so that no way of starting a queue mails in clear
        // text to another machine.
        let mode = crate::config::tls_mode(url).map_err(|why| TransportError::Config(format!("smtp_url: {why}")))?;
        let params = || {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(pem) = &settings.ca_pem {
                b = b.add_root_certificate(Certificate::from_pem(pem)?);
            }
            b.build_rustls()
        };
        let (tls, default_port) = match mode {
            TlsMode::Wrapper => (Tls::Wrapper(params()?), 465),
            TlsMode::Required => (Tls::Required(params()?), 587),
            TlsMode::Opportunistic => (Tls::Opportunistic(params()?), 587),
            TlsMode::None => (Tls::None, 25),
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
                create_outbox(dir).await?;
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
                write_private(&partial, &message.formatted()).await?;
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

/// Creates the outbox folder (and any missing parent) for its owner alone (`0700` on Unix): its messages hold
/// reset links in clear text. A folder that exists already is left as it is (it may be the operator's, holding
/// other files); the messages in it are their owner's alone either way.
async fn create_outbox(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await
}

/// Writes a new file that only its owner may read (`0600` on Unix), whatever the umask would allow.
async fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    file.write_all(bytes).await?;
    // tokio hands the write to a blocking thread: it is only done once flushed.
    file.flush().await
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("u={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// What the janitor keeps of the development outbox (`[email] outbox_max_age_hours`, `outbox_max_files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRetention {
    /// The outbox folder.
    pub dir: PathBuf,
    /// Messages older than this go; `None`: no age limit.
    pub max_age: Option<Duration>,
    /// Only the newest this many messages stay; `None`: no count limit.
    pub max_files: Option<usize>,
}

/// The time a message file was written (milliseconds since the epoch, from its name) and whether it is a
/// finished `.eml` (else a `.partial` a crash left behind); `None` for a file this transport did not write, which
/// is never touched: the folder may hold an operator's own files.
fn outbox_file(name: &str) -> Option<(u128, bool)> {
    let (stem, done) = match name.strip_suffix(".eml") {
        Some(stem) => (stem, true),
        None => (name.strip_prefix('.')?.strip_suffix(".partial")?, false),
    };
    let (millis, random) = stem.split_once('-')?;
    let ours = !millis.is_empty()
        && millis.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random.bytes().all(|b| b.is_ascii_hexdigit());
    Some((millis.parse().ok().filter(|_| ours)?, done))
}

impl OutboxRetention {
    /// Deletes the messages past retention, as of `now_millis` (milliseconds since the epoch): those older than
    /// `max_age` (half-written ones too), then all but the newest `max_files`. Returns how many went. Blocking
    /// file I/O: run it off the async threads.
    pub fn prune(&self, now_millis: u128) -> std::io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut kept = Vec::new();
        let mut doomed = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some((written, done)) = name.to_str().and_then(outbox_file) else {
                continue;
            };
            let expired = self
                .max_age
                .is_some_and(|age| written.saturating_add(age.as_millis()) < now_millis);
            if expired {
                doomed.push(entry.path());
            } else if done {
                kept.push((written, entry.path()));
            }
        }
        if let Some(max) = self.max_files {
            // Newest first; names break ties, so that the same files go on every run.
            kept.sort_by(|a, b| b.cmp(a));
            doomed.extend(kept.into_iter().skip(max).map(|(_, path)| path));
        }
        let mut deleted = 0;
        for path in doomed {
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                // Another node (or a person) deleted it first: gone is what was wanted.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const HOUR_MS: u128 = 3_600_000;
    const NOW: u128 = 1_800_000_000_000;

    fn write(dir: &std::path::Path, name: &str) {
        std::fs::write(dir.join(name), "x").unwrap();
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_outbox_keeps_only_recent_messages_and_never_foreign_files() {
        let dir = std::env::temp_dir().join(format!("vestibule-outbox-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let msg = |age_hours: u128, n: u64| format!("{}-{n:016x}.eml", NOW - age_hours * HOUR_MS);
        for (age, n) in [(200, 1), (100, 2), (3, 3), (2, 4), (1, 5)] {
            write(&dir, &msg(age, n));
        }
        write(&dir, &format!(".{}-{:016x}.partial", NOW - 200 * HOUR_MS, 6));
        write(&dir, &format!(".{}-{:016x}.partial", NOW - HOUR_MS, 7));
        // Not ours: left alone whatever their age or number.
        for foreign in ["notes.txt", "1-zz.eml", "old.eml", "100-00000000000000001.eml"] {
            write(&dir, foreign);
        }
        let retention = |max_age_hours: Option<u64>, max_files| OutboxRetention {
            dir: dir.clone(),
            max_age: max_age_hours.map(|h| Duration::from_secs(h * 3600)),
            max_files,
        };

        // A week: the 200-hour-old message and half-written file go.
        assert_eq!(retention(Some(168), None).prune(NOW).unwrap(), 2);
        assert!(!names(&dir).contains(&msg(200, 1)));
        assert_eq!(retention(Some(168), None).prune(NOW).unwrap(), 0, "nothing more to do");
        // Two files: the newest two stay (the recent half-written one is not counted, nor deleted).
        assert_eq!(retention(None, Some(2)).prune(NOW).unwrap(), 2);
        let left = names(&dir);
        for kept in [msg(2, 4), msg(1, 5), format!(".{}-{:016x}.partial", NOW - HOUR_MS, 7)] {
            assert!(left.contains(&kept), "{kept} kept: {left:?}");
        }
        assert!(!left.contains(&msg(100, 2)) && !left.contains(&msg(3, 3)), "{left:?}");
        for foreign in ["notes.txt", "1-zz.eml", "old.eml", "100-00000000000000001.eml"] {
            assert!(left.contains(&foreign.to_owned()), "{foreign} untouched: {left:?}");
        }
        // A folder that does not exist yet (nothing mailed) is no error.
        let missing = OutboxRetention {
            dir: dir.join("missing"),
            max_age: None,
            max_files: Some(1),
        };
        assert_eq!(missing.prune(NOW).unwrap(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
