//! The generic [`AuthSource`] contract, runnable against any source: the checks every source of this workspace
//! passes, for a third party to run on its own.
//!
//! A password source:
//!
//! ```no_run
//! # async fn demo(source: &(impl vestibule_core::AuthSource + std::fmt::Debug)) {
//! use vestibule_testkit::conformance::PasswordSourceKit;
//!
//! let report = PasswordSourceKit::new(source, "ann", "correct horse")
//!     .secret("the-bind-password") // anything from the source's configuration that must never be shown
//!     .run()
//!     .await; // panics, naming the rule, when the source breaks one
//! println!("{report}");
//! # }
//! ```
//!
//! A redirect source, with a closure that plays the person at the provider (it gets an authorization URL and
//! returns the callback's parameters):
//!
//! ```no_run
//! # async fn demo(
//! #     source: &(impl vestibule_core::AuthSource + std::fmt::Debug),
//! #     issuer_login: impl Fn(String) -> vestibule_core::CallbackParams + Send + Sync,
//! # ) {
//! use vestibule_testkit::conformance::RedirectSourceKit;
//!
//! RedirectSourceKit::new(source, "https://broker.example/callback/corp")
//!     .secret("the-client-secret")
//!     .provider(move |url| {
//!         let params = issuer_login(url);
//!         async move { params }
//!     })
//!     .run()
//!     .await;
//! # }
//! ```
//!
//! What is checked, and how:
//!
//! | rule | password source | redirect source |
//! |---|---|---|
//! | the right credentials work | known name and password sign in, as this source | the person's round trip signs in |
//! | empty password | refused as `Rejected`; with [`PasswordSourceKit::backend_down`], still `Rejected` (not `Unavailable`) when the backend cannot be reached, so it was refused before any traffic | |
//! | one answer for every bad sign-in | unknown name and wrong password both `Rejected(InvalidCredentials)` | |
//! | same effort for unknown and known names | counted with [`PasswordSourceKit::effort_counter`] (e.g. hashes verified): equal and non-zero; otherwise timed: medians of many interleaved samples within a factor of 4 (a loose check, said so in the report), and not asserted when both are under 200 µs, below what a client can tell apart over a network | |
//! | fresh per-sign-in secrets | | `state`, `nonce` (unless [`RedirectSourceKit::without_nonce`]), PKCE `code_challenge` with `code_challenge_method=S256`, all different between two starts; the URL's `state` is the pending one; the PKCE verifier is kept in the pending data and never put in the URL |
//! | foreign state | | `finish` refuses a callback whose `state` is another sign-in's, and (with a provider) another sign-in's code under this sign-in's state |
//! | cancel | | `error=access_denied` is `Cancelled` |
//! | no secret shown | passwords and configured secrets appear in no error (`Display`, `Debug`, source chain) and not in the `Debug` of the source (the kits require `Debug`) or of what [`PasswordSourceKit::debug_of`] names | the same for the client secret and the authorization codes |

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use vestibule_core::{
    error_chain, AuthSource, CallbackParams, ExposeSecret, ExternalIdentity, Flow, PasswordFlow, RejectReason,
    SecretString, SourceError,
};

/// A random lowercase suffix, so that names made up by two runs at once do not collide.
fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..12).map(|_| char::from(b'a' + rng.gen_range(0..26))).collect()
}

/// What a kit checked, one line a rule; `Display` prints them.
#[derive(Debug, Default)]
pub struct Report {
    /// The source's id.
    pub source: String,
    /// One line per rule checked.
    pub checks: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of source `{}`:", self.source)?;
        for c in &self.checks {
            writeln!(f, "  ok  {c}")?;
        }
        Ok(())
    }
}

impl Report {
    fn ok(&mut self, line: impl Into<String>) {
        self.checks.push(line.into());
    }
}

/// Everything a person or a log could see of an error.
fn shown(e: &SourceError) -> String {
    format!("{e}\n{e:?}\n{}", error_chain(e))
}

/// Panics when any of `secrets` is in `text`.
fn assert_hidden(source: &str, what: &str, text: &str, secrets: &[String]) {
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !text.contains(s.as_str()),
            "conformance: source `{source}`: a secret is shown in {what}: {text}"
        );
    }
}

/// A hang fails the check instead of blocking the test run.
async fn within_a_minute<T>(source: &str, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("conformance: source `{source}`: {what} did not return within 60 s"))
}

/// No secret in any error or in the Debug texts (the source's, its configuration's); one report line.
fn nothing_shown(
    report: &mut Report,
    kind: &str,
    errors: &[(String, SourceError)],
    debug_texts: &[(String, String)],
    secrets: &[String],
) {
    for (what, e) in errors {
        assert_hidden(&report.source, &format!("the error for {what}"), &shown(e), secrets);
    }
    for (what, text) in debug_texts {
        assert_hidden(&report.source, &format!("the Debug of {what}"), text, secrets);
    }
    let debugs: Vec<&str> = debug_texts.iter().map(|(w, _)| w.as_str()).collect();
    report.ok(format!(
        "no {kind} in {} errors, nor in the Debug of {}",
        errors.len(),
        debugs.join(", ")
    ));
}

fn distinctive(what: &str) -> String {
    format!("conformance-{what}-{}", random_suffix())
}

/// Below this, a timing difference between unknown and known names is not asserted: it is within the jitter a
/// client sees over any network, and measuring it would make the check flaky.
const NOISE_FLOOR: Duration = Duration::from_micros(200);

type Counter<'a> = Box<dyn Fn() -> u64 + Send + Sync + 'a>;

/// The contract of a [`PasswordFlow`] source. Build with [`PasswordSourceKit::new`], add what the source offers,
/// then [`run`](PasswordSourceKit::run).
pub struct PasswordSourceKit<'a> {
    source: &'a dyn AuthSource,
    login: String,
    password: String,
    unknown_login: String,
    secrets: Vec<String>,
    debug_texts: Vec<(String, String)>,
    effort: Option<(String, Counter<'a>)>,
    backend_down: Option<&'a dyn AuthSource>,
    timing_samples: usize,
}

impl fmt::Debug for PasswordSourceKit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordSourceKit")
            .field("source", &self.source.id())
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl<'a> PasswordSourceKit<'a> {
    /// The kit for `source`, where `known_login` signs in with `known_password`. The source's `Debug` output is
    /// among what must show no secret.
    pub fn new<S: AuthSource + fmt::Debug>(source: &'a S, known_login: &str, known_password: &str) -> Self {
        PasswordSourceKit {
            source,
            login: known_login.to_owned(),
            password: known_password.to_owned(),
            unknown_login: distinctive("nobody"),
            secrets: vec![known_password.to_owned()],
            debug_texts: vec![("the source".to_owned(), format!("{source:?}"))],
            effort: None,
            backend_down: None,
            timing_samples: 25,
        }
    }

    /// A login name that matches nobody (default: a random one).
    pub fn unknown_login(mut self, login: &str) -> Self {
        self.unknown_login = login.to_owned();
        self
    }

    /// A secret of the source's configuration (a bind password, an API key) that must appear in no error and no
    /// `Debug` output.
    pub fn secret(mut self, secret: &str) -> Self {
        self.secrets.push(secret.to_owned());
        self
    }

    /// Also checks that the `Debug` output of `value` (say, the source's configuration) shows no secret.
    pub fn debug_of(mut self, what: &str, value: &dyn fmt::Debug) -> Self {
        self.debug_texts.push((what.to_owned(), format!("{value:?}")));
        self
    }

    /// A counter of the source's expensive work (for a local source: argon2 verifications). The kit checks that
    /// an unknown name and a known name with a wrong password add the same, non-zero amount: a structural check
    /// that needs no clock. Without one, the kit falls back to timing (see the module docs).
    pub fn effort_counter(mut self, what: &str, counter: impl Fn() -> u64 + Send + Sync + 'a) -> Self {
        self.effort = Some((what.to_owned(), Box::new(counter)));
        self
    }

    /// The same source configured against a backend that cannot be reached (a port that refuses connections, a
    /// store that fails). An empty password must still be refused as `Rejected`, which shows it is refused before
    /// any traffic (an LDAP bind with an empty password is an anonymous bind that many servers accept).
    pub fn backend_down(mut self, source: &'a dyn AuthSource) -> Self {
        self.backend_down = Some(source);
        self
    }

    /// Samples per case for the timing fallback (default 25).
    pub fn timing_samples(mut self, n: usize) -> Self {
        self.timing_samples = n.max(5);
        self
    }

    fn flow(&self, source: &'a dyn AuthSource) -> &'a dyn PasswordFlow {
        match source.flow() {
            Flow::Password(p) => p,
            other => panic!(
                "conformance: source `{}` is not a password source ({other:?})",
                source.id()
            ),
        }
    }

    async fn attempt(
        &self,
        flow: &dyn PasswordFlow,
        login: &str,
        password: &str,
    ) -> Result<ExternalIdentity, SourceError> {
        let password = SecretString::from(password);
        within_a_minute(
            self.source.id().as_str(),
            "a sign-in",
            flow.authenticate(login, &password),
        )
        .await
    }

    /// Runs every check; panics naming the first rule the source breaks.
    pub async fn run(self) -> Report {
        let id = self.source.id().as_str().to_owned();
        let mut report = Report {
            source: id.clone(),
            ..Report::default()
        };
        let flow = self.flow(self.source);
        let wrong = distinctive("wrong-password");
        let mut secrets = self.secrets.clone();
        secrets.push(wrong.clone());
        let mut errors: Vec<(String, SourceError)> = Vec::new();

        // The right credentials work, as this source.
        let who = self
            .attempt(flow, &self.login, &self.password)
            .await
            .unwrap_or_else(|e| panic!("conformance: source `{id}`: the known login does not sign in: {e:?}"));
        assert_eq!(
            who.source,
            *self.source.id(),
            "conformance: source `{id}`: identity of another source"
        );
        assert_hidden(&id, "the identity's Debug", &format!("{who:?}"), &secrets);
        report.ok(format!("`{}` signs in with the right password", self.login));

        // Empty passwords.
        for login in [self.login.as_str(), self.unknown_login.as_str()] {
            match self.attempt(flow, login, "").await {
                Err(e @ SourceError::Rejected(_)) => errors.push(("empty password".into(), e)),
                other => {
                    panic!("conformance: source `{id}`: an empty password for `{login}` was not rejected: {other:?}")
                }
            }
        }
        report.ok("an empty password is rejected, for a known and an unknown name");
        if let Some(down) = self.backend_down {
            let down_flow = self.flow(down);
            match self.attempt(down_flow, &self.login, "").await {
                Err(SourceError::Rejected(_)) => {}
                other => panic!(
                    "conformance: source `{id}`: with its backend down, an empty password gave {other:?}: it is not \
                     refused before contacting the backend"
                ),
            }
            match self.attempt(down_flow, &self.login, &wrong).await {
                Err(SourceError::Unavailable(_)) => {}
                other => panic!(
                    "conformance: source `{id}`: the backend_down source is not down (a password sign-in gave \
                     {other:?}), so it proves nothing"
                ),
            }
            report.ok("an empty password is rejected before the backend is contacted (rejected with the backend down)");
        }

        // One answer for an unknown name and a wrong password.
        let unknown = self.attempt(flow, &self.unknown_login, &wrong).await;
        let mismatch = self.attempt(flow, &self.login, &wrong).await;
        for (what, r) in [("an unknown name", unknown), ("a wrong password", mismatch)] {
            match r {
                Err(e @ SourceError::Rejected(RejectReason::InvalidCredentials)) => errors.push((what.into(), e)),
                other => panic!(
                    "conformance: source `{id}`: {what} must be Rejected(InvalidCredentials), the same answer as \
                     for every bad sign-in; got {other:?}"
                ),
            }
        }
        report.ok("an unknown name and a wrong password get the same answer, Rejected(InvalidCredentials)");

        // The same effort for unknown and known names.
        if let Some((what, count)) = &self.effort {
            let before = count();
            let _ = self.attempt(flow, &self.unknown_login, &wrong).await;
            let unknown = count() - before;
            let before = count();
            let _ = self.attempt(flow, &self.login, &wrong).await;
            let known = count() - before;
            assert!(
                known > 0 && unknown == known,
                "conformance: source `{id}`: an unknown name cost {unknown} {what}, a known name with a wrong \
                 password {known}: they must cost the same, non-zero work"
            );
            report.ok(format!(
                "an unknown name costs what a known one does: {known} {what} each (counted, not timed)"
            ));
        } else {
            let (unknown, known) = self.timed(flow, &wrong).await;
            let ratio = unknown.as_secs_f64() / known.as_secs_f64().max(1e-9);
            if unknown.max(known) < NOISE_FLOOR {
                report.ok(format!(
                    "unknown name {unknown:?}, known name {known:?} (medians of {} interleaved samples): both under \
                     {NOISE_FLOOR:?}, below what a network client can tell apart; not asserted (no effort counter \
                     given)",
                    self.timing_samples
                ));
                return self.finish_secrets(report, &errors, &secrets);
            }
            // Loose on purpose: this runs on shared, busy machines. It catches a source that skips the work for
            // unknown names (a ratio of 10 or more against a network round trip or a hash), not small differences.
            assert!(
                (0.25..=4.0).contains(&ratio),
                "conformance: source `{id}`: median time for an unknown name {unknown:?}, for a known name with a \
                 wrong password {known:?} (ratio {ratio:.2}, allowed 0.25..4): unknown names must cost the same \
                 kind of work"
            );
            report.ok(format!(
                "an unknown name costs about what a known one does: medians {unknown:?} and {known:?} over {} \
                 interleaved samples each (timed, loose bound 4x: no effort counter given)",
                self.timing_samples
            ));
        }

        self.finish_secrets(report, &errors, &secrets)
    }

    fn finish_secrets(&self, mut report: Report, errors: &[(String, SourceError)], secrets: &[String]) -> Report {
        nothing_shown(
            &mut report,
            "password or configured secret",
            errors,
            &self.debug_texts,
            secrets,
        );
        report
    }

    /// Medians of interleaved samples: (unknown name, known name with a wrong password).
    async fn timed(&self, flow: &dyn PasswordFlow, wrong: &str) -> (Duration, Duration) {
        // One of each first, untimed: connection pools, discovery and caches warm up.
        let _ = self.attempt(flow, &self.unknown_login, wrong).await;
        let _ = self.attempt(flow, &self.login, wrong).await;
        let (mut unknown, mut known) = (Vec::new(), Vec::new());
        for _ in 0..self.timing_samples {
            let t = Instant::now();
            let _ = self.attempt(flow, &self.unknown_login, wrong).await;
            unknown.push(t.elapsed());
            let t = Instant::now();
            let _ = self.attempt(flow, &self.login, wrong).await;
            known.push(t.elapsed());
        }
        unknown.sort();
        known.sort();
        (unknown[unknown.len() / 2], known[known.len() / 2])
    }
}

type Player<'a> = Box<dyn Fn(String) -> Pin<Box<dyn Future<Output = CallbackParams> + Send + 'a>> + Send + Sync + 'a>;

/// The contract of a [`RedirectFlow`](vestibule_core::RedirectFlow) source. Build with [`RedirectSourceKit::new`], then
/// [`run`](RedirectSourceKit::run).
pub struct RedirectSourceKit<'a> {
    source: &'a dyn AuthSource,
    callback: String,
    secrets: Vec<String>,
    debug_texts: Vec<(String, String)>,
    nonce: bool,
    opaque_pending: bool,
    player: Option<Player<'a>>,
}

impl fmt::Debug for RedirectSourceKit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedirectSourceKit")
            .field("source", &self.source.id())
            .field("callback", &self.callback)
            .finish_non_exhaustive()
    }
}

/// The query of a URL, first value of each name.
fn query(url: &str) -> std::collections::HashMap<String, String> {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("conformance: authorize URL {url:?}: {e}"));
    let mut q = std::collections::HashMap::new();
    for (k, v) in parsed.query_pairs() {
        q.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    q
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A PKCE verifier (RFC 7636: 43 to 128 unreserved characters) in `data` whose S256 is `challenge`.
fn find_verifier(data: &str, challenge: &str) -> Option<String> {
    data.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
        .filter(|t| (43..=128).contains(&t.len()))
        .find(|t| s256(t) == challenge)
        .map(str::to_owned)
}

impl<'a> RedirectSourceKit<'a> {
    /// The kit for `source`, with the absolute callback URL the broker would pass. The source's `Debug` output
    /// is among what must show no secret.
    pub fn new<S: AuthSource + fmt::Debug>(source: &'a S, callback: &str) -> Self {
        RedirectSourceKit {
            source,
            callback: callback.to_owned(),
            secrets: Vec::new(),
            debug_texts: vec![("the source".to_owned(), format!("{source:?}"))],
            nonce: true,
            opaque_pending: false,
            player: None,
        }
    }

    /// A secret of the source's configuration (the client secret) that must appear in no error and no `Debug`.
    pub fn secret(mut self, secret: &str) -> Self {
        self.secrets.push(secret.to_owned());
        self
    }

    /// Also checks that the `Debug` output of `value` (say, the configuration) shows no secret.
    pub fn debug_of(mut self, what: &str, value: &dyn fmt::Debug) -> Self {
        self.debug_texts.push((what.to_owned(), format!("{value:?}")));
        self
    }

    /// For a plain OAuth2 source (no ID token, so no `nonce`), such as GitHub.
    pub fn without_nonce(mut self) -> Self {
        self.nonce = false;
        self
    }

    /// For a source that encrypts its pending data: the kit cannot find the PKCE verifier there, and does not
    /// look.
    pub fn opaque_pending_data(mut self) -> Self {
        self.opaque_pending = true;
        self
    }

    /// Plays the person at the provider: gets an authorization URL, signs in, and returns the parameters the
    /// provider sends to the callback. With it the kit also checks a whole sign-in, and that another sign-in's
    /// code is refused.
    pub fn provider<F, Fut>(mut self, play: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'a,
        Fut: Future<Output = CallbackParams> + Send + 'a,
    {
        self.player = Some(Box::new(move |url| Box::pin(play(url))));
        self
    }

    /// Runs every check; panics naming the first rule the source breaks.
    pub async fn run(self) -> Report {
        let id = self.source.id().as_str().to_owned();
        let mut report = Report {
            source: id.clone(),
            ..Report::default()
        };
        let Flow::Redirect(flow) = self.source.flow() else {
            panic!("conformance: source `{id}` is not a redirect source");
        };
        let start = || async {
            within_a_minute(&id, "start", flow.start(&self.callback))
                .await
                .unwrap_or_else(|e| panic!("conformance: source `{id}`: start failed: {e:?}"))
        };

        // Fresh state, nonce and PKCE pair per start.
        let (a, b) = (start().await, start().await);
        let (qa, qb) = (query(&a.authorize_url), query(&b.authorize_url));
        let mut names = vec!["state", "code_challenge"];
        if self.nonce {
            names.push("nonce");
        }
        for q in [&qa, &qb] {
            for name in &names {
                let v = q.get(*name).map(String::as_str).unwrap_or("");
                assert!(
                    v.len() >= 22,
                    "conformance: source `{id}`: `{name}` missing or shorter than 128 bits in the authorize URL"
                );
            }
            assert_eq!(
                q.get("code_challenge_method").map(String::as_str),
                Some("S256"),
                "conformance: source `{id}`: PKCE must use S256"
            );
            assert_eq!(
                q.get("response_type").map(String::as_str),
                Some("code"),
                "conformance: source `{id}`: authorization code flow"
            );
            assert_eq!(
                q.get("redirect_uri").map(String::as_str),
                Some(self.callback.as_str()),
                "conformance: source `{id}`: redirect_uri must be the callback the broker gave"
            );
        }
        for name in &names {
            assert_ne!(
                qa[*name], qb[*name],
                "conformance: source `{id}`: `{name}` repeats between two sign-ins"
            );
        }
        for (q, started) in [(&qa, &a), (&qb, &b)] {
            assert_eq!(
                q["state"].as_str(),
                started.pending.state.expose_secret(),
                "conformance: source `{id}`: the URL's state is not the pending state the broker will match"
            );
        }
        report.ok(format!(
            "each start draws its own {} (two starts compared); PKCE is S256; redirect_uri is the callback",
            names.join(", ")
        ));
        if !self.opaque_pending {
            for (q, started) in [(&qa, &a), (&qb, &b)] {
                let verifier = find_verifier(started.pending.data.expose_secret(), &q["code_challenge"])
                    .unwrap_or_else(|| {
                        panic!(
                            "conformance: source `{id}`: no PKCE verifier for the URL's code_challenge in the pending \
                             data (if the source encrypts it, say .opaque_pending_data())"
                        )
                    });
                assert!(
                    !started.authorize_url.contains(&verifier),
                    "conformance: source `{id}`: the PKCE verifier is in the authorize URL"
                );
            }
            report.ok("the PKCE verifier is kept in the pending data and is not in the URL");
        }

        let mut secrets = self.secrets.clone();
        let mut errors: Vec<(String, SourceError)> = Vec::new();
        let finish = |pending, params: CallbackParams| {
            let id = &id;
            let callback = &self.callback;
            async move { within_a_minute(id, "finish", flow.finish(pending, callback, &params)).await }
        };

        // A callback with another sign-in's state, and a cancel.
        let code = distinctive("code");
        secrets.push(code.clone());
        let foreign = CallbackParams {
            state: Some(qb["state"].clone().into()),
            code: Some(code.clone().into()),
            ..CallbackParams::default()
        };
        match finish(a.pending.clone(), foreign).await {
            Ok(who) => panic!("conformance: source `{id}`: finish accepted a foreign state and signed in {who:?}"),
            Err(e) => errors.push(("a foreign state".into(), e)),
        }
        let cancel = CallbackParams {
            state: Some(qa["state"].clone().into()),
            error: Some("access_denied".into()),
            ..CallbackParams::default()
        };
        match finish(a.pending.clone(), cancel).await {
            Err(SourceError::Cancelled(_)) => {}
            other => panic!("conformance: source `{id}`: error=access_denied must be Cancelled, got {other:?}"),
        }
        report.ok("finish refuses a callback carrying another sign-in's state; a cancel is Cancelled");

        if let Some(play) = &self.player {
            // Another sign-in's real code, under this sign-in's state (code injection): PKCE and the nonce bind a
            // code to the sign-in that asked for it.
            let (victim, other) = (start().await, start().await);
            let stolen = play(other.authorize_url.clone()).await;
            if let Some(c) = &stolen.code {
                secrets.push(c.expose_secret().to_owned());
            }
            let injected = CallbackParams {
                state: Some(victim.pending.state.clone()),
                ..stolen.clone()
            };
            match finish(victim.pending.clone(), injected).await {
                Ok(who) => panic!(
                    "conformance: source `{id}`: finish accepted another sign-in's code under this state: {who:?}"
                ),
                Err(e) => errors.push(("another sign-in's code".into(), e)),
            }
            match finish(victim.pending.clone(), stolen).await {
                Ok(who) => panic!("conformance: source `{id}`: finish accepted a foreign state with its code: {who:?}"),
                Err(e) => errors.push(("a foreign state with a real code".into(), e)),
            }
            // And the honest round trip works.
            let honest = start().await;
            let params = play(honest.authorize_url.clone()).await;
            if let Some(c) = &params.code {
                secrets.push(c.expose_secret().to_owned());
            }
            let who = finish(honest.pending, params)
                .await
                .unwrap_or_else(|e| panic!("conformance: source `{id}`: an honest sign-in failed: {e:?}"));
            assert_eq!(
                who.source,
                *self.source.id(),
                "conformance: source `{id}`: identity of another source"
            );
            report.ok(format!(
                "a whole sign-in at the provider works (subject `{}`); another sign-in's code is refused, under \
                 this state and under its own",
                who.subject.as_str()
            ));
        }

        nothing_shown(
            &mut report,
            "client secret or code",
            &errors,
            &self.debug_texts,
            &secrets,
        );
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_verifier_of_a_challenge() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        // RFC 7636 appendix B.
        assert_eq!(s256(verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let data = format!("{{\"v\":1,\"pkce\":\"{verifier}\",\"nonce\":\"n\"}}");
        assert_eq!(
            find_verifier(&data, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM").as_deref(),
            Some(verifier)
        );
        assert_eq!(find_verifier(&data, "another-challenge"), None);
    }
}
