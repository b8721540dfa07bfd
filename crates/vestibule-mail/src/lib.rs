//! Vestibule's [`Mailer`]: each [`Mail`] is rendered from askama templates (plain text and HTML, in the
//! workspace's `templates/mail/`), put on a bounded queue, and delivered by one background task, over SMTP (lettre
//! on rustls: STARTTLS or implicit TLS, with authentication) or into a development outbox (one `.eml` file a
//! message). Queuing never waits; a failed delivery is retried with a growing pause, then logged and counted —
//! at once after a permanent refusal, and without a try once the link it carries has expired.
//!
//! Every message is plain text and HTML, rendered on its own (no I/O):
//!
//! ```
//! use vestibule::{Mail, MailLink, Message};
//!
//! let mail = Mail {
//!     to: "alice@example.org".into(),
//!     name: Some("Alice".into()),
//!     message: Message::PasswordReset { link: MailLink::new("https://id.example.org/reset/abc"), valid_minutes: 30 },
//! };
//! let rendered = vestibule_mail::render(&mail).expect("built-in templates render");
//! assert_eq!(rendered.subject, "Reset your password");
//! assert!(rendered.text.contains("https://id.example.org/reset/abc"));
//! assert!(rendered.html.contains("Alice"));
//! ```
//!
//! The queue delivers them:
//!
//! ```no_run
//! use std::sync::Arc;
//! use vestibule_mail::{MailConfig, MailQueue};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config: MailConfig = toml_like_defaults();
//! let queue = MailQueue::start(&config)?; // must run inside a tokio runtime
//! // `Broker::builder(..).mailer(queue.clone())`; at shutdown:
//! queue.drain(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! # fn toml_like_defaults() -> MailConfig { MailConfig::default() }
//! ```

mod config;
mod queue;
mod render;
mod transport;

pub use config::{MailConfig, SmtpSettings};
pub use queue::{MailQueue, MailStats};
pub use render::{render, Rendered};
pub use transport::{OutboxRetention, TransportError};

#[doc(no_inline)]
pub use vestibule::{Mail, MailError, Mailer, Message};
