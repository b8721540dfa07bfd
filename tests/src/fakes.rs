//! In-process sources for the broker's and the router's tests: no server, no network, every answer chosen by the
//! test.
//!
//! - [`PasswordFake`]: a directory of people with passwords, that can be changed, taken down, asked again
//!   ([`Recheck`]) and made to fail or hang for one login; it counts what it is asked.
//! - [`RedirectFake`]: an identity provider, either honest about one person (the callback's `code` must be the
//!   nonce it kept for that sign-in) or [scripted](RedirectFake::scripted) (the `code` says who signed in, so a
//!   test can play a provider that lets anyone claim any email).
//!
//! ```
//! use vestibule_core::{ExternalIdentity, SourceId, Subject};
//! use vestibule_tests::fakes::{PasswordFake, RedirectFake};
//!
//! let id = |s: &str| SourceId::new(s).unwrap();
//! let dir = PasswordFake::new("dir").user(
//!     "ann",
//!     "right password",
//!     ExternalIdentity::new(id("dir"), Subject::new("ann-1").unwrap()),
//! );
//! let idp = RedirectFake::new("idp", ExternalIdentity::new(id("idp"), Subject::new("idp-sub").unwrap()));
//! // Both go into `Broker::builder(..).source(Arc::new(dir))`; a test keeps an `Arc` to read `dir.calls()`.
//! # let _ = (dir, idp);
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use vestibule_core::{
    async_trait, AuthSource, CallbackParams, ExposeSecret, ExternalIdentity, Flow, PasswordFlow, PendingRedirect,
    Probe, Recheck, RedirectFlow, RedirectStart, RejectReason, SecretString, SourceError, SourceId, StartOptions,
    Subject,
};

/// What signing in as one login does.
#[derive(Debug)]
enum Entry {
    /// The right password yields the identity; any other is refused.
    Person {
        password: SecretString,
        identity: ExternalIdentity,
    },
    /// The directory cannot be reached: `Unavailable` with this detail, whatever the password.
    Unavailable(String),
    /// The directory never answers: only a deadline outside the source ends the call.
    Hangs,
}

#[derive(Debug, Default)]
struct Directory {
    entries: HashMap<String, Entry>,
    down: bool,
}

/// A password source over a directory the test holds: people with passwords (changeable while the broker runs),
/// logins that fail as if the directory were unreachable or that hang, an outage for everyone, and, when asked for,
/// re-checks of signed-in people by subject (as LDAP does). Counts sign-ins and re-checks, so a test can prove the
/// broker refused before asking the source, or asked it again exactly once.
///
/// Every refusal is `Rejected(InvalidCredentials)`; an outage is `Unavailable("directory down")`.
#[derive(Debug)]
pub struct PasswordFake {
    id: SourceId,
    recheck_interval: Option<Duration>,
    directory: Mutex<Directory>,
    calls: AtomicUsize,
    rechecks: AtomicUsize,
    probes: AtomicUsize,
}

impl PasswordFake {
    /// An empty directory with this source id (panics on an invalid id), shown as "Directory", not re-checked.
    pub fn new(id: &str) -> PasswordFake {
        PasswordFake {
            id: SourceId::new(id).expect("a valid source id"),
            recheck_interval: None,
            directory: Mutex::default(),
            calls: AtomicUsize::new(0),
            rechecks: AtomicUsize::new(0),
            probes: AtomicUsize::new(0),
        }
    }

    /// With `login` signing in with `password` as `identity`.
    pub fn user(self, login: &str, password: &str, identity: ExternalIdentity) -> PasswordFake {
        self.put(login, password, identity);
        self
    }

    /// With `login` failing as an unreachable directory, `Unavailable(detail)`: for tests that the detail is
    /// logged and not shown.
    pub fn unavailable_for(self, login: &str, detail: &str) -> PasswordFake {
        self.lock()
            .entries
            .insert(login.to_owned(), Entry::Unavailable(detail.to_owned()));
        self
    }

    /// With `login` never answering, for request deadlines.
    pub fn hangs_for(self, login: &str) -> PasswordFake {
        self.lock().entries.insert(login.to_owned(), Entry::Hangs);
        self
    }

    /// With the broker asking again, at this interval, whether a signed-in person is still in the directory.
    pub fn rechecked_every(mut self, interval: Duration) -> PasswordFake {
        self.recheck_interval = Some(interval);
        self
    }

    /// Adds `login`, or changes what it signs in as.
    pub fn put(&self, login: &str, password: &str, identity: ExternalIdentity) {
        self.lock().entries.insert(
            login.to_owned(),
            Entry::Person {
                password: password.into(),
                identity,
            },
        );
    }

    /// Removes `login` from the directory.
    pub fn remove(&self, login: &str) {
        self.lock().entries.remove(login);
    }

    /// Takes the directory down: sign-ins and re-checks are `Unavailable` until [`up`](Self::up).
    pub fn down(&self) {
        self.lock().down = true;
    }

    /// How many readiness probes reached the directory.
    pub fn probes(&self) -> usize {
        self.probes.load(Ordering::SeqCst)
    }

    /// Ends an outage; the people are those there were before it.
    pub fn up(&self) {
        self.lock().down = false;
    }

    /// How many sign-ins the source was asked for.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// How many re-checks the source was asked for.
    pub fn rechecks(&self) -> usize {
        self.rechecks.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.directory.lock().expect("the fake directory's lock")
    }
}

fn down() -> SourceError {
    SourceError::Unavailable("directory down".into())
}

impl AuthSource for PasswordFake {
    fn id(&self) -> &SourceId {
        &self.id
    }
    fn display_name(&self) -> &str {
        "Directory"
    }
    fn flow(&self) -> Flow<'_> {
        Flow::Password(self)
    }
    fn recheck(&self) -> Option<&dyn Recheck> {
        self.recheck_interval.map(|_| self as &dyn Recheck)
    }
    fn probe(&self) -> Option<&dyn Probe> {
        Some(self)
    }
}

/// Readiness: up unless [`PasswordFake::down`]; each probe takes 50 ms (a directory's round trip), so requests
/// that overlap one can be told apart from requests that each run their own.
#[async_trait]
impl Probe for PasswordFake {
    async fn probe(&self) -> Result<(), SourceError> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if self.lock().down {
            return Err(down());
        }
        Ok(())
    }
}

#[async_trait]
impl PasswordFlow for PasswordFake {
    async fn authenticate(&self, login: &str, password: &SecretString) -> Result<ExternalIdentity, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // The answer is decided under the lock; a hang waits without it.
        let answer = {
            let directory = self.lock();
            match directory.entries.get(login) {
                _ if directory.down => Some(Err(down())),
                Some(Entry::Person {
                    password: right,
                    identity,
                }) if right.expose_secret() == password.expose_secret() => Some(Ok(identity.clone())),
                Some(Entry::Unavailable(detail)) => Some(Err(SourceError::Unavailable(detail.clone().into()))),
                Some(Entry::Hangs) => None,
                _ => Some(Err(SourceError::Rejected(RejectReason::InvalidCredentials))),
            }
        };
        match answer {
            Some(answer) => answer,
            None => {
                tokio::time::sleep(Duration::from_secs(600)).await;
                Err(SourceError::Unavailable("too late".into()))
            }
        }
    }
}

#[async_trait]
impl Recheck for PasswordFake {
    fn recheck_interval(&self) -> Duration {
        self.recheck_interval.unwrap_or(Duration::MAX)
    }
    async fn recheck(&self, subject: &Subject) -> Result<Option<ExternalIdentity>, SourceError> {
        self.rechecks.fetch_add(1, Ordering::SeqCst);
        let directory = self.lock();
        if directory.down {
            return Err(down());
        }
        Ok(directory.entries.values().find_map(|entry| match entry {
            Entry::Person { identity, .. } if identity.subject == *subject => Some(identity.clone()),
            _ => None,
        }))
    }
}

/// What the provider says at the callback.
#[derive(Debug)]
enum Asserts {
    /// This person, when the callback's `code` is the nonce kept for the sign-in; a fixed code when given.
    One {
        identity: Box<ExternalIdentity>,
        code: Option<String>,
    },
    /// Whoever the callback's `code` names, as the JSON of an [`ExternalIdentity`].
    WhatTheCodeSays,
}

/// A redirect source whose provider lives in the test: `start` sends the browser to `https://idp.test/authorize`
/// with `redirect_uri` (the callback, unencoded, so a test can read it) and then `state` (last, so that everything
/// after `state=` is the state), and keeps what the provider will expect in the pending data. Counts the callbacks
/// that reach it, so a test can prove the broker refused one before asking the source.
///
/// The identities it asserts always carry its own source id.
#[derive(Debug)]
pub struct RedirectFake {
    id: SourceId,
    asserts: Asserts,
    finished: AtomicUsize,
    reauthentications: AtomicUsize,
}

impl RedirectFake {
    /// A provider honest about one person: the callback's `code` must be the random nonce kept for that sign-in
    /// (a test reads it from the stored flow), or, with [`code`](Self::code), that fixed value; any other code is
    /// `Protocol("bad code")`. Panics on an invalid id.
    pub fn new(id: &str, identity: ExternalIdentity) -> RedirectFake {
        RedirectFake::asserting(
            id,
            Asserts::One {
                identity: Box::new(identity),
                code: None,
            },
        )
    }

    /// A provider that asserts whatever the callback's `code` says: the JSON of an [`ExternalIdentity`] (its
    /// `source` replaced by this source's id). It plays an honest provider or one that lets anyone claim any email.
    pub fn scripted(id: &str) -> RedirectFake {
        RedirectFake::asserting(id, Asserts::WhatTheCodeSays)
    }

    /// The code the honest provider accepts, the same for every sign-in (for tests that type the callback URL).
    pub fn code(mut self, fixed: &str) -> RedirectFake {
        if let Asserts::One { code, .. } = &mut self.asserts {
            *code = Some(fixed.to_owned());
        }
        self
    }

    /// How many callbacks reached the source.
    pub fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    /// How many starts asked for a new login at the provider ([`StartOptions::reauthenticate`]).
    pub fn reauthentications(&self) -> usize {
        self.reauthentications.load(Ordering::SeqCst)
    }

    fn asserting(id: &str, asserts: Asserts) -> RedirectFake {
        RedirectFake {
            id: SourceId::new(id).expect("a valid source id"),
            asserts,
            finished: AtomicUsize::new(0),
            reauthentications: AtomicUsize::new(0),
        }
    }
}

/// 32 random bytes, base64url: a state or nonce no other sign-in shares.
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl AuthSource for RedirectFake {
    fn id(&self) -> &SourceId {
        &self.id
    }
    fn display_name(&self) -> &str {
        "Test IdP"
    }
    fn flow(&self) -> Flow<'_> {
        Flow::Redirect(self)
    }
}

#[async_trait]
impl RedirectFlow for RedirectFake {
    async fn start_with(&self, callback: &str, options: &StartOptions) -> Result<RedirectStart, SourceError> {
        if options.reauthenticate {
            self.reauthentications.fetch_add(1, Ordering::SeqCst);
        }
        self.start(callback).await
    }

    async fn start(&self, callback: &str) -> Result<RedirectStart, SourceError> {
        let state = random_token();
        let expected = match &self.asserts {
            Asserts::One { code: Some(code), .. } => code.clone(),
            Asserts::One { code: None, .. } => random_token(),
            Asserts::WhatTheCodeSays => String::new(),
        };
        Ok(RedirectStart {
            authorize_url: format!("https://idp.test/authorize?redirect_uri={callback}&state={state}"),
            pending: PendingRedirect {
                state: state.into(),
                data: expected.into(),
            },
        })
    }

    async fn finish(
        &self,
        pending: PendingRedirect,
        _callback: &str,
        params: &CallbackParams,
    ) -> Result<ExternalIdentity, SourceError> {
        self.finished.fetch_add(1, Ordering::SeqCst);
        let code = params.code.as_ref().map(ExposeSecret::expose_secret);
        let mut identity = match &self.asserts {
            Asserts::One { identity, .. } if code == Some(pending.data.expose_secret()) => (**identity).clone(),
            Asserts::One { .. } => return Err(SourceError::Protocol("bad code".into())),
            Asserts::WhatTheCodeSays => serde_json::from_str::<ExternalIdentity>(code.unwrap_or(""))
                .map_err(|e| SourceError::Protocol(e.to_string()))?,
        };
        identity.source = self.id.clone();
        Ok(identity)
    }
}
