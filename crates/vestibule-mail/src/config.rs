//! `[email]` in the server's TOML.

use std::path::PathBuf;

use serde::Deserialize;
use vestibule_core::{ConfigIssue, SecretString};

/// `[email]`: who messages come from, how they leave (SMTP, or the development outbox when `smtp_url` is not
/// set), and how long mailed links work. Unknown keys are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// The `From` address, optionally with a name: `Vestibule <id@example.com>`.
    pub from: String,
    /// `smtp://host:587` (STARTTLS required), `smtps://host:465` (implicit TLS), with the user name in the URL
    /// (`smtps://user@host`). Not set: messages go to `outbox_dir` instead (development). Plain SMTP without TLS
    /// is `smtp://127.0.0.1:25?tls=none` (or `tls=opportunistic`: STARTTLS when offered), for a relay on loopback
    /// only — anywhere else it is refused. `tls` is the only parameter read.
    pub smtp_url: Option<String>,
    /// The SMTP password in a file (one line), for the user named in `smtp_url`.
    pub password_file: Option<PathBuf>,
    /// The SMTP password in an environment variable.
    pub password_env: Option<String>,
    /// A PEM file of extra root certificates to trust for the SMTP server (a private CA).
    pub ca_file: Option<PathBuf>,
    /// The development outbox: each message is written there as an `.eml` file (when `smtp_url` is not set).
    pub outbox_dir: PathBuf,
    /// Outbox messages older than this many hours are deleted by the janitor (every five minutes); 0: no age limit.
    pub outbox_max_age_hours: u32,
    /// Only the newest this many outbox messages are kept (the janitor deletes the older ones); 0: no count limit.
    pub outbox_max_files: u32,
    /// The longest one SMTP exchange may take, in seconds.
    pub timeout_secs: u64,
    /// How many messages may wait for delivery; when full, new ones are refused and the refusal is logged.
    pub queue_capacity: usize,
    /// Delivery attempts per message before it is given up (logged and counted).
    pub max_attempts: u32,
    /// How long a password reset link works, in minutes.
    pub reset_link_minutes: u32,
    /// How long an address confirmation link works, in hours.
    pub verify_link_hours: u32,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            from: "Vestibule <vestibule@localhost>".into(),
            smtp_url: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            outbox_dir: PathBuf::from("vestibule-outbox"),
            outbox_max_age_hours: 168,
            outbox_max_files: 1000,
            timeout_secs: 10,
            queue_capacity: 1000,
            max_attempts: 5,
            reset_link_minutes: 30,
            verify_link_hours: 24,
        }
    }
}

/// How an `smtp_url` asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// `smtps://`: TLS from the first byte.
    Wrapper,
    /// `smtp://` (or `?tls=required`): STARTTLS, or no delivery.
    Required,
    /// `?tls=opportunistic`: STARTTLS when the server offers it, else clear text (loopback only).
    Opportunistic,
    /// `?tls=none`: clear text (loopback only).
    None,
}

/// The TLS mode an `smtp_url` asks for, refusing what cannot be meant: a parameter other than `tls`, a `tls`
/// value that is not one of the modes (a typo must not fall back to anything), `tls` on `smtps://` other than
/// `required`, and clear text — `none`, or `opportunistic`, which an attacker on the path turns into clear text by
/// hiding the STARTTLS offer — to a relay that is not on this machine: the messages carry reset links.
pub(crate) fn tls_mode(url: &url::Url) -> Result<TlsMode, String> {
    let mut asked: Option<String> = None;
    for (key, value) in url.query_pairs() {
        if key != "tls" {
            return Err(format!("unknown parameter `{key}`: `tls` is the only one"));
        }
        if asked.replace(value.into_owned()).is_some() {
            return Err("`tls` is given twice".into());
        }
    }
    let mode = match (url.scheme(), asked.as_deref()) {
        ("smtps", None | Some("required")) => TlsMode::Wrapper,
        ("smtps", Some(other)) => return Err(format!("smtps is TLS from the start: `tls={other}` cannot apply")),
        ("smtp", None | Some("required")) => TlsMode::Required,
        ("smtp", Some("opportunistic")) => TlsMode::Opportunistic,
        ("smtp", Some("none")) => TlsMode::None,
        ("smtp", Some(other)) => {
            return Err(format!(
                "unknown `tls={other}`: `required` (the default), `opportunistic` or `none`"
            ))
        }
        (scheme, _) => return Err(format!("the scheme must be smtp or smtps, not {scheme}")),
    };
    if matches!(mode, TlsMode::None | TlsMode::Opportunistic) && !on_loopback(url) {
        return Err(format!(
            "`tls={}` can send mail (reset links) in clear text: only for a relay on loopback (127.0.0.1, ::1, \
             localhost); use smtps://, or smtp:// with STARTTLS required (no `tls` parameter)",
            asked.unwrap_or_default()
        ));
    }
    Ok(mode)
}

/// Whether the URL's host is this machine: a loopback address, or `localhost`.
fn on_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // `smtp` is not one of the URL standard's special schemes, so an IPv4 address arrives as a name.
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// What the SMTP transport needs, read from a [`MailConfig`] (the password from its file or variable).
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// The parsed `smtp_url`.
    pub url: url::Url,
    /// The password, when one is configured.
    pub password: Option<SecretString>,
    /// Extra trusted roots (PEM).
    pub ca_pem: Option<Vec<u8>>,
}

impl MailConfig {
    /// Checks what can be checked without connecting; the issue names the key (under `email.`).
    pub fn check(&self) -> Result<(), ConfigIssue> {
        let issue = |key: &str, message: String| ConfigIssue::new(key, message);
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| issue("from", format!("not a mail address: {e}")))?;
        if let Some(u) = &self.smtp_url {
            let url = url::Url::parse(u).map_err(|e| issue("smtp_url", e.to_string()))?;
            if !matches!(url.scheme(), "smtp" | "smtps") {
                return Err(issue("smtp_url", "the scheme must be smtp or smtps".into()));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(issue("smtp_url", "the URL names no host".into()));
            }
            tls_mode(&url).map_err(|why| issue("smtp_url", why))?;
            if url.password().is_some() {
                return Err(issue(
                    "smtp_url",
                    "put the password in `password_file` or `password_env`, not in the URL".into(),
                ));
            }
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            return Err(issue(
                "password_file",
                "set only one of `password_file` and `password_env`".into(),
            ));
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            return Err(issue("timeout_secs", "must be between 1 and 600".into()));
        }
        if self.queue_capacity == 0 {
            return Err(issue("queue_capacity", "must be at least 1".into()));
        }
        if self.max_attempts == 0 {
            return Err(issue("max_attempts", "must be at least 1".into()));
        }
        if !(5..=1440).contains(&self.reset_link_minutes) {
            return Err(issue("reset_link_minutes", "must be between 5 and 1440".into()));
        }
        // Reset links sit in the outbox in clear text: it must not keep them forever.
        if self.outbox_max_age_hours == 0 && self.outbox_max_files == 0 {
            return Err(issue(
                "outbox_max_age_hours",
                "set `outbox_max_age_hours` or `outbox_max_files` (or both) above 0: the outbox must not grow without bound"
                    .into(),
            ));
        }
        if self.outbox_max_age_hours > 87_600 {
            return Err(issue(
                "outbox_max_age_hours",
                "must be at most 87600 (ten years)".into(),
            ));
        }
        if !(1..=720).contains(&self.verify_link_hours) {
            return Err(issue("verify_link_hours", "must be between 1 and 720".into()));
        }
        Ok(())
    }

    /// The SMTP settings, reading the password and the CA file; `None` when messages go to the outbox.
    pub fn smtp(&self) -> Result<Option<SmtpSettings>, ConfigIssue> {
        let Some(u) = &self.smtp_url else { return Ok(None) };
        let url = url::Url::parse(u).map_err(|e| ConfigIssue::new("smtp_url", e.to_string()))?;
        let password = match (&self.password_file, &self.password_env) {
            (None, None) => None,
            (file, env) => Some(vestibule_core::read_secret("password", file.as_ref(), env.as_deref())?),
        };
        let ca_pem =
            match &self.ca_file {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    ConfigIssue::new("ca_file", format!("cannot read {}: {}", path.display(), e.kind()))
                })?),
                None => None,
            };
        Ok(Some(SmtpSettings { url, password, ca_pem }))
    }

    /// What the janitor keeps of the development outbox: `None` when messages go over SMTP.
    pub fn outbox_retention(&self) -> Option<crate::transport::OutboxRetention> {
        if self.smtp_url.is_some() {
            return None;
        }
        Some(crate::transport::OutboxRetention {
            dir: self.outbox_dir.clone(),
            max_age: (self.outbox_max_age_hours > 0)
                .then(|| std::time::Duration::from_secs(u64::from(self.outbox_max_age_hours) * 3600)),
            max_files: (self.outbox_max_files > 0)
                .then(|| usize::try_from(self.outbox_max_files).unwrap_or(usize::MAX)),
        })
    }

    /// The broker's link lifetimes.
    pub fn link_settings(&self) -> vestibule::MailSettings {
        vestibule::MailSettings {
            reset_ttl_secs: i64::from(self.reset_link_minutes) * 60,
            verify_ttl_secs: i64::from(self.verify_link_hours) * 3600,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_mistakes_name_their_key() {
        assert!(MailConfig::default().check().is_ok());
        let bad = |f: fn(&mut MailConfig)| {
            let mut c = MailConfig::default();
            f(&mut c);
            c.check().expect_err("refused").key
        };
        assert_eq!(bad(|c| c.from = "not an address".into()), "from");
        assert_eq!(bad(|c| c.smtp_url = Some("http://mail.example.com".into())), "smtp_url");
        assert_eq!(
            bad(|c| c.smtp_url = Some("smtps://u:secret@mail.example.com".into())),
            "smtp_url"
        );
        assert_eq!(bad(|c| c.reset_link_minutes = 0), "reset_link_minutes");
        assert_eq!(bad(|c| c.queue_capacity = 0), "queue_capacity");
        let unbounded = |c: &mut MailConfig| {
            c.outbox_max_age_hours = 0;
            c.outbox_max_files = 0;
        };
        assert_eq!(bad(unbounded), "outbox_max_age_hours");
        let by_count_only = MailConfig {
            outbox_max_age_hours: 0,
            ..MailConfig::default()
        };
        assert!(by_count_only.check().is_ok());
    }

    /// Mail in clear text (reset links!) may only go to a relay on this machine; a `tls` mode that is not one of
    /// the known ones is a mistake, never a silent default.
    #[test]
    fn plain_smtp_is_for_loopback_only_and_tls_modes_are_known() {
        let check = |url: &str| {
            MailConfig {
                smtp_url: Some(url.into()),
                ..MailConfig::default()
            }
            .check()
        };
        for ok in [
            "smtp://127.0.0.1:25?tls=none",
            "smtp://127.0.0.2:2525?tls=none",
            "smtp://localhost:25?tls=none",
            "smtp://[::1]:25?tls=none",
            "smtp://127.0.0.1:25?tls=opportunistic",
            "smtp://mail.example.com:587",
            "smtp://mail.example.com:587?tls=required",
            "smtps://user@mail.example.com",
            "smtps://mail.example.com:465?tls=required",
        ] {
            assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
        }
        for bad in [
            "smtp://mail.example.com:25?tls=none",
            "smtp://10.0.0.5:25?tls=none",
            "smtp://localhost.example.com:25?tls=none",
            "smtp://mail.example.com:587?tls=opportunistic",
            "smtp://127.0.0.1:25?tls=off",
            "smtp://127.0.0.1:25?tls=",
            "smtp://127.0.0.1:25?tls=NONE",
            "smtps://mail.example.com:465?tls=none",
            "smtp://mail.example.com:587?tls=required&tls=none",
            "smtp://mail.example.com:587?timeout=5",
        ] {
            let issue = check(bad).expect_err(bad);
            assert_eq!(issue.key, "smtp_url", "{bad}: {issue:?}");
        }
        let issue = check("smtp://mail.example.com:25?tls=none").expect_err("refused");
        assert!(issue.message.contains("loopback"), "{issue:?}");
    }
}
