//! The bounded queue and its delivery task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use tokio::sync::mpsc;
use tokio::time::Instant;
use vestibule::{Mail, MailError, Mailer};

use crate::config::MailConfig;
use crate::transport::{Transport, TransportError};

/// Delivery counters, for logs and metrics.
#[derive(Debug, Default)]
pub struct MailStats {
    /// Messages delivered.
    pub sent: AtomicU64,
    /// Messages given up: after `max_attempts`, at once on a permanent refusal, when the link they carry expired
    /// before they could be delivered, or when they could not be built.
    pub failed: AtomicU64,
    /// Messages refused at the door because the queue was full.
    pub refused: AtomicU64,
}

/// A message waiting for delivery, and when it was queued (its link's lifetime counts from then).
struct Queued {
    mail: Mail,
    at: Instant,
}

/// A [`Mailer`] over a bounded queue: [`Mailer::queue`] never waits, one background task delivers.
#[derive(Debug)]
pub struct MailQueue {
    sender: mpsc::Sender<Queued>,
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
            timeout: Duration::from_secs(config.timeout_secs),
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
        let queued = Queued {
            mail,
            at: Instant::now(),
        };
        self.sender.try_send(queued).map_err(|e| match e {
            mpsc::error::TrySendError::Full(q) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::error!(kind = q.mail.message.kind(), "mail queue full: message refused");
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
    /// The longest one delivery attempt may take. lettre bounds only the connection: a relay that accepts and
    /// then says nothing would hold the one worker, and every message behind it, for good.
    timeout: Duration,
    stats: Arc<MailStats>,
}

impl Worker {
    async fn run(self, mut receiver: mpsc::Receiver<Queued>, drain: Arc<tokio::sync::Notify>) {
        let mut draining = false;
        loop {
            let queued = if draining {
                match receiver.try_recv() {
                    Ok(q) => q,
                    Err(_) => return,
                }
            } else {
                tokio::select! {
                    q = receiver.recv() => match q { Some(q) => q, None => return },
                    () = drain.notified() => { draining = true; continue; }
                }
            };
            self.deliver(queued).await;
        }
    }

    /// Delivers one message: retried with a pause that doubles from 1 s, up to `max_attempts`, each attempt
    /// bounded by `timeout`; given up at once on a permanent refusal, and without a try once the link it carries
    /// has expired (the link is dead, and the queue behind it — other people's reset links — must not wait for it).
    async fn deliver(&self, queued: Queued) {
        let Queued { mail, at } = queued;
        let kind = mail.message.kind();
        let deadline = mail.message.valid_for().map(|d| at + d);
        let expired = || deadline.is_some_and(|d| Instant::now() >= d);
        let message = match self.build(&mail) {
            Ok(m) => m,
            Err(e) => return self.give_up(kind, 0, &format!("it could not be built: {e}")),
        };
        let mut pause = Duration::from_secs(1);
        for attempt in 1..=self.max_attempts {
            if expired() {
                return self.give_up(
                    kind,
                    attempt - 1,
                    "the link it carries expired before it could be delivered",
                );
            }
            let result = match tokio::time::timeout(self.timeout, self.transport.send(&message)).await {
                Ok(sent) => sent.map_err(|e| (e.is_permanent(), e.to_string())),
                Err(_) => Err((false, format!("no answer within {} s", self.timeout.as_secs()))),
            };
            match result {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(kind, "mail delivered");
                    return;
                }
                Err((true, e)) => return self.give_up(kind, attempt, &format!("permanently refused: {e}")),
                Err((false, e)) if attempt < self.max_attempts => {
                    tracing::warn!(kind, attempt, error = %e, "mail delivery failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(60));
                }
                Err((false, e)) => return self.give_up(kind, attempt, &e),
            }
        }
    }

    /// Counts and logs a message that will not be delivered.
    fn give_up(&self, kind: &str, attempts: u32, why: &str) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(kind, attempts, reason = why, "mail given up");
    }

    fn build(&self, mail: &Mail) -> Result<lettre::Message, String> {
        let rendered = crate::render(mail).map_err(|e| e.to_string())?;
        // One bare address, never a mailbox with a display name: `x<eve@evil.org>` in an address field must not
        // become a message to eve (the broker checks what it is given, and this is the last door).
        let to: lettre::Address = mail.to.parse().map_err(|e| format!("recipient: {e}"))?;
        lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use vestibule::MailLink;

    use super::*;

    fn notice(to: &str) -> Mail {
        Mail {
            to: to.into(),
            name: None,
            message: vestibule::Message::PasswordChanged,
        }
    }

    fn reset_link(valid_minutes: i64) -> Mail {
        Mail {
            to: "ann@example.org".into(),
            name: None,
            message: vestibule::Message::PasswordReset {
                link: MailLink::new("https://id.example.com/reset/t"),
                valid_minutes,
            },
        }
    }

    /// SMTP to `port` on loopback, without TLS; an exchange may take one second. (Real time, not tokio's paused
    /// clock: its `test-util` feature would give the workspace's test builds a second tokio, and everything above
    /// it, to compile. The waits here are the one-second pause between attempts and `timeout_secs`.)
    fn smtp_to(port: u16, max_attempts: u32, queue_capacity: usize) -> MailConfig {
        MailConfig {
            smtp_url: Some(format!("smtp://127.0.0.1:{port}?tls=none")),
            max_attempts,
            queue_capacity,
            timeout_secs: 1,
            ..MailConfig::default()
        }
    }

    /// A port nothing listens on.
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    /// A relay that refuses every sender for good (`550` to `MAIL FROM`), counting the refusals.
    async fn refusing_relay() -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let refused = Arc::new(AtomicUsize::new(0));
        let count = refused.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 relay.test ESMTP\r\n").await.unwrap();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                        let answer: &[u8] = match verb.as_str() {
                            "MAIL" => {
                                count.fetch_add(1, Ordering::SeqCst);
                                b"550 5.7.1 sender refused\r\n"
                            }
                            "QUIT" => b"221 bye\r\n",
                            _ => b"250 relay.test\r\n",
                        };
                        if write.write_all(answer).await.is_err() || verb == "QUIT" {
                            break;
                        }
                    }
                });
            }
        });
        (port, refused)
    }

    /// A relay that accepts connections and never says a word, counting them.
    async fn stalled_relay() -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        (port, connections)
    }

    /// A relay that cannot be reached is tried `max_attempts` times, then the message is given up and counted.
    #[tokio::test]
    async fn an_unreachable_relay_is_given_up_after_max_attempts() {
        let queue = MailQueue::start(&smtp_to(closed_port().await, 2, 10)).unwrap();
        queue.queue(notice("ann@example.org")).unwrap();
        queue.drain(Duration::from_secs(60)).await;
        let stats = queue.stats();
        assert_eq!(stats.failed.load(Ordering::SeqCst), 1);
        assert_eq!(stats.sent.load(Ordering::SeqCst), 0);
    }

    /// A permanent refusal (5xx) is final: asking again would get the same answer, and the retries would hold up
    /// every message behind it.
    #[tokio::test]
    async fn a_permanent_refusal_is_not_retried() {
        let (port, refused) = refusing_relay().await;
        let queue = MailQueue::start(&smtp_to(port, 5, 10)).unwrap();
        queue.queue(notice("ann@example.org")).unwrap();
        queue.drain(Duration::from_secs(60)).await;
        assert_eq!(refused.load(Ordering::SeqCst), 1, "retried after a permanent refusal");
        assert_eq!(queue.stats().failed.load(Ordering::SeqCst), 1);
    }

    /// A relay that accepts and then says nothing: the queue fills, and a message that finds it full is refused at
    /// the door (counted, and `has_room` says so before a request promises a mail). The stalled attempt ends at
    /// `timeout_secs` (lettre bounds only the connection: the exchange is the queue's to bound); a reset link that
    /// expired meanwhile is dropped without being tried, rather than mailed dead or holding up what comes after it.
    #[tokio::test]
    async fn a_stalled_relay_fills_the_queue_and_expired_links_are_dropped() {
        let (port, connections) = stalled_relay().await;
        let queue = MailQueue::start(&smtp_to(port, 1, 1)).unwrap();
        queue.queue(notice("ann@example.org")).unwrap();
        // The worker takes the first message and hangs on the relay.
        while queue.queued() > 0 || connections.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // A link that works for no time at all: it has expired by the time the relay gives up.
        queue.queue(reset_link(0)).unwrap();
        assert!(!queue.has_room());
        assert_eq!(queue.queue(notice("bob@example.org")), Err(MailError::QueueFull));
        assert_eq!(queue.stats().refused.load(Ordering::SeqCst), 1);

        queue.drain(Duration::from_secs(60)).await;
        assert_eq!(connections.load(Ordering::SeqCst), 1, "the expired link was tried");
        let stats = queue.stats();
        assert_eq!(stats.failed.load(Ordering::SeqCst), 2);
        assert_eq!(stats.sent.load(Ordering::SeqCst), 0);
    }

    fn outbox_in(dir: &std::path::Path) -> MailConfig {
        MailConfig {
            outbox_dir: dir.to_path_buf(),
            ..MailConfig::default()
        }
    }

    fn temp_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("vestibule-mail-{:016x}", rand::random::<u64>()))
    }

    /// The recipient is one bare address: a display name with an address of its own in angle brackets (as a
    /// form could smuggle in) is not a recipient, nor is a list.
    #[tokio::test]
    async fn the_recipient_is_one_bare_address() {
        let dir = temp_dir();
        let queue = MailQueue::start(&outbox_in(&dir)).unwrap();
        for to in [
            "x<eve@evil.org>",
            "ann@example.org <eve@evil.org>",
            "ann@example.org, eve@evil.org",
            "Ann <ann@example.org>",
        ] {
            queue.queue(notice(to)).unwrap();
        }
        queue.queue(notice("ann@example.org")).unwrap();
        queue.drain(Duration::from_secs(60)).await;
        assert_eq!(queue.stats().failed.load(Ordering::SeqCst), 4);
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let eml = std::fs::read_to_string(&files[0]).unwrap();
        assert!(eml.contains("To: ann@example.org\r\n"), "{eml}");
        assert!(!eml.contains("evil.org"), "{eml}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The outbox holds reset links in clear text: its folder (when the outbox makes it) is its owner's alone, and
    /// so is every message.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_outbox_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let parent = temp_dir();
        let dir = parent.join("outbox");
        let queue = MailQueue::start(&outbox_in(&dir)).unwrap();
        queue.queue(reset_link(30)).unwrap();
        queue.drain(Duration::from_secs(60)).await;
        assert_eq!(queue.stats().sent.load(Ordering::SeqCst), 1);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "the folder");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
