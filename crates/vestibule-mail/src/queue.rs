//! The bounded queue and its delivery task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use tokio::sync::mpsc;
use vestibule::{Mail, MailError, Mailer};

use crate::config::MailConfig;
use crate::transport::{Transport, TransportError};

/// Delivery counters, for logs and metrics.
#[derive(Debug, Default)]
pub struct MailStats {
    /// Messages delivered.
    pub sent: AtomicU64,
    /// Messages given up after `max_attempts`, or that could not be built.
    pub failed: AtomicU64,
    /// Messages refused at the door because the queue was full.
    pub refused: AtomicU64,
}

/// A [`Mailer`] over a bounded queue: [`Mailer::queue`] never waits, one background task delivers.
#[derive(Debug)]
pub struct MailQueue {
    sender: mpsc::Sender<Mail>,
    stats: Arc<MailStats>,
    /// Closed by the task when the queue is empty after [`MailQueue::drain`] was asked.
    done: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    drain: Arc<tokio::sync::Notify>,
    /// What [`Mailer::tidy`] keeps of the development outbox; `None` over SMTP.
    retention: Option<crate::transport::OutboxRetention>,
}

impl MailQueue {
    /// Builds the transport from `config` and starts the delivery task (inside a tokio runtime).
    pub fn start(config: &MailConfig) -> Result<Arc<Self>, TransportError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| TransportError::Config(format!("email.from: {e}")))?;
        let transport = match config
            .smtp()
            .map_err(|e| TransportError::Config(format!("email.{}: {}", e.key, e.message)))?
        {
            Some(smtp) => Transport::smtp(&smtp, Duration::from_secs(config.timeout_secs))?,
            None => Transport::Outbox(config.outbox_dir.clone()),
        };
        tracing::info!(transport = %transport.describe(), "mail delivery ready");
        let (sender, receiver) = mpsc::channel(config.queue_capacity);
        let stats = Arc::new(MailStats::default());
        let drain = Arc::new(tokio::sync::Notify::new());
        let worker = Worker {
            from,
            transport,
            max_attempts: config.max_attempts,
            stats: stats.clone(),
        };
        let handle = tokio::spawn(worker.run(receiver, drain.clone()));
        Ok(Arc::new(MailQueue {
            sender,
            stats,
            done: tokio::sync::Mutex::new(Some(handle)),
            drain,
            retention: config.outbox_retention(),
        }))
    }

    /// The delivery counters.
    pub fn stats(&self) -> &MailStats {
        &self.stats
    }

    /// How many messages wait in the queue now.
    pub fn queued(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Delivers what is queued (new messages are still taken meanwhile) and stops the task, waiting at most
    /// `limit`: for a command that mails something and then exits, and at shutdown.
    pub async fn drain(&self, limit: Duration) {
        self.drain.notify_one();
        if let Some(handle) = self.done.lock().await.take() {
            if tokio::time::timeout(limit, handle).await.is_err() {
                tracing::warn!("mail queue not drained in time: undelivered messages are lost");
            }
        }
    }
}

#[async_trait::async_trait]
impl Mailer for MailQueue {
    fn queue(&self, mail: Mail) -> Result<(), MailError> {
        self.sender.try_send(mail).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::error!(kind = m.message.kind(), "mail queue full: message refused");
                MailError::QueueFull
            }
            mpsc::error::TrySendError::Closed(_) => MailError::Closed,
        })
    }

    fn has_room(&self) -> bool {
        self.sender.capacity() > 0
    }

    /// Applies the outbox retention (nothing over SMTP).
    async fn tidy(&self) {
        let Some(retention) = self.retention.clone() else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        match tokio::task::spawn_blocking(move || retention.prune(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(deleted = n, "development outbox: old messages deleted"),
            Ok(Err(e)) => tracing::warn!(error = %e, "development outbox: could not delete old messages"),
            Err(e) => tracing::warn!(error = %e, "development outbox: the clean-up task failed"),
        }
    }
}

struct Worker {
    from: Mailbox,
    transport: Transport,
    max_attempts: u32,
    stats: Arc<MailStats>,
}

impl Worker {
    async fn run(self, mut receiver: mpsc::Receiver<Mail>, drain: Arc<tokio::sync::Notify>) {
        let mut draining = false;
        loop {
            let mail = if draining {
                match receiver.try_recv() {
                    Ok(m) => m,
                    Err(_) => return,
                }
            } else {
                tokio::select! {
                    m = receiver.recv() => match m { Some(m) => m, None => return },
                    () = drain.notified() => { draining = true; continue; }
                }
            };
            self.deliver(mail).await;
        }
    }

    async fn deliver(&self, mail: Mail) {
        let kind = mail.message.kind();
        let message = match self.build(&mail) {
            Ok(m) => m,
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(kind, error = %e, "mail could not be built: dropped");
                return;
            }
        };
        let mut pause = Duration::from_secs(1);
        for attempt in 1..=self.max_attempts {
            match self.transport.send(&message).await {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(kind, "mail delivered");
                    return;
                }
                Err(e) if attempt < self.max_attempts => {
                    tracing::warn!(kind, attempt, error = %e, "mail delivery failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(60));
                }
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(kind, attempts = attempt, error = %e, "mail delivery failed: given up");
                }
            }
        }
    }

    fn build(&self, mail: &Mail) -> Result<lettre::Message, String> {
        let rendered = crate::render(mail).map_err(|e| e.to_string())?;
        let to: Mailbox = mail.to.parse().map_err(|e| format!("recipient: {e}"))?;
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
            .map_err(|e| e.to_string())
    }
}
