//! The source itself: search-then-bind or direct bind, groups, and the service-account connections.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, SearchOptions};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, Semaphore};
use vestibule_core::{
    AuthSource, ConfigIssue, ExternalIdentity, Flow, IdError, PasswordFlow, Probe, Recheck, RejectReason, SourceError,
    SourceId, Subject,
};

use crate::config::{LdapConfig, Mode, UserScope};
use crate::escape::{dn_value, filter_bytes, filter_value};
use crate::{dn, template};

/// Login names longer than this are refused before any LDAP traffic: no directory has such names, and it keeps
/// filters small.
const MAX_LOGIN_BYTES: usize = 256;

/// Active Directory's account flags, read from every user entry (other directories simply have no such attribute).
const USER_ACCOUNT_CONTROL: &str = "userAccountControl";
/// The userAccountControl bit of a disabled account.
const ACCOUNTDISABLE: i64 = 0x2;

/// An LDAP or Active Directory password source. See the [crate documentation](crate) for configuration.
///
/// Building one does not touch the network, so a directory that is down does not stop the broker from
/// starting; the first sign-in connects. Service-account connections are kept open and shared (each carries
/// many operations at once); a connection that fails is dropped and replaced on next use, so sign-in works again
/// as soon as the directory is back. Every user password is checked by a bind on a connection of its own, which
/// is closed afterwards and never reused.
///
/// It can also be asked again about a person it signed in ([`Recheck`], through [`AuthSource::recheck`]): a
/// search by their subject with the service account (anonymous in search mode without `bind_dn`, as at sign-in),
/// no password. Direct bind without `bind_dn` cannot search, so it offers no recheck.
pub struct LdapSource {
    id: SourceId,
    display_name: String,
    cfg: LdapConfig,
    mode: Mode,
    service: Option<(String, SecretString)>,
    tls: Option<Arc<rustls::ClientConfig>>,
    group_search: Option<(String, String)>,
    user_attrs: Vec<String>,
    group_attrs: Vec<String>,
    /// How a recheck finds a person again; `None` when this source has no way to search.
    recheck: Option<RecheckPlan>,
    recheck_interval: Duration,
    pool: Pool,
    gate: Semaphore,
    connect_timeout: Duration,
    op_timeout: Duration,
    deadline: Duration,
}

impl fmt::Debug for LdapSource {
    // Written by hand so that nothing secret can ever be added to the output by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapSource")
            .field("id", &self.id)
            .field("url", &self.cfg.url)
            .field("starttls", &self.cfg.starttls)
            .field("tls_verify", &self.cfg.tls_verify)
            .field(
                "mode",
                &match self.mode {
                    Mode::Search { .. } => "search-then-bind",
                    Mode::Direct { .. } => "direct bind",
                },
            )
            .field("bind_dn", &self.service.as_ref().map(|(dn, _)| dn))
            .finish_non_exhaustive()
    }
}

/// Where a recheck searches, and what besides the subject the entry must still match.
#[derive(Debug)]
struct RecheckPlan {
    base: String,
    scope: Scope,
    /// The configured `user_filter` with `{username}` read as "any value" (`*`), so that its other conditions (an
    /// object class, Active Directory's "not disabled" clause) must still hold. `None` in direct-bind mode, or
    /// when the filter cannot be read that way.
    also: Option<String>,
}

impl RecheckPlan {
    fn new(id: &SourceId, mode: &Mode, has_service: bool) -> Option<RecheckPlan> {
        match mode {
            Mode::Search { base, filter, scope } => {
                let also = template::expand(filter, &[("username", "*")])
                    .ok()
                    .filter(|f| ldap3::parse_filter(f).is_ok());
                if also.is_none() {
                    tracing::warn!(
                        source = %id,
                        "user_filter has {{username}} where `*` cannot stand (such as an extensible match): \
                         rechecks find people by their subject alone, without the filter's other conditions"
                    );
                }
                Some(RecheckPlan {
                    base: base.clone(),
                    scope: match scope {
                        UserScope::Sub => Scope::Subtree,
                        UserScope::One => Scope::OneLevel,
                    },
                    also,
                })
            }
            Mode::Direct { template } if has_service => {
                // People live right under the template's parent; a parent with a placeholder cannot be searched.
                let base = dn::parent(template).filter(|p| template::expand(p, &[]).is_ok());
                if base.is_none() {
                    tracing::warn!(
                        source = %id,
                        "user_dn_template has {{username}} outside its first RDN: people cannot be looked up \
                         again, so sessions from this source end only when their lifetime does"
                    );
                }
                Some(RecheckPlan {
                    base: base?.to_owned(),
                    scope: Scope::OneLevel,
                    also: None,
                })
            }
            Mode::Direct { .. } => {
                tracing::info!(
                    source = %id,
                    "direct bind without bind_dn: nothing can search the directory between sign-ins, so sessions \
                     from this source end only when their lifetime does (set bind_dn to have them rechecked)"
                );
                None
            }
        }
    }
}

/// Why a sign-in failed, before it becomes a [`SourceError`].
#[derive(Debug)]
enum Failure {
    Reject(RejectReason),
    Unavailable(String),
    Protocol(String),
    Id(IdError),
}

impl From<Failure> for SourceError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Reject(r) => SourceError::Rejected(r),
            Failure::Unavailable(detail) => SourceError::Unavailable(Box::new(DirectoryUnavailable(detail))),
            Failure::Protocol(m) => SourceError::Protocol(m),
            Failure::Id(e) => SourceError::Id(e),
        }
    }
}

/// The cause inside [`SourceError::Unavailable`]: what went wrong talking to the directory (never a password).
#[derive(Debug, thiserror::Error)]
#[error("LDAP directory: {0}")]
pub struct DirectoryUnavailable(String);

/// The outcome of one LDAP exchange: either the directory answered (and retrying would not help), or the
/// connection is broken or timed out.
enum OpError {
    Answered(Failure),
    Broken { timed_out: bool, detail: String },
}

impl OpError {
    fn into_failure(self) -> Failure {
        match self {
            OpError::Answered(f) => f,
            OpError::Broken { detail, .. } => Failure::Unavailable(detail),
        }
    }
}

fn broken(context: &str, e: LdapError) -> OpError {
    OpError::Broken {
        timed_out: matches!(e, LdapError::Timeout { .. }),
        detail: format!("{context}: {e}"),
    }
}

/// Service-account connections, opened lazily, each shared by concurrent sign-ins (ldap3 multiplexes
/// operations on one connection).
struct Pool {
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Slot {
    conn: Option<Ldap>,
    /// Bumped on every new connection, so that a late discard cannot drop its replacement.
    generation: u64,
    /// When the last attempt to connect failed: callers that were already waiting share that failure instead of
    /// each waiting out another connect timeout in turn.
    failed_at: Option<Instant>,
}

struct Lease {
    ldap: Ldap,
    slot: usize,
    generation: u64,
    reused: bool,
}

/// A group as read from the directory.
struct Group {
    name: String,
    dn: Option<String>,
}

/// Runs one operation with a service connection. A connection-level failure on a connection that was reused
/// (it may have died while idle, for instance when the directory restarted) is retried once on a fresh one;
/// a timeout or an answer from the directory is not retried, so that a slow directory is not asked twice and
/// nothing counts twice against a server-side lockout.
macro_rules! with_service {
    ($self:ident, |$ldap:ident| $body:expr) => {{
        let mut retried = false;
        loop {
            let lease = $self.lease().await.map_err(OpError::into_failure)?;
            let mut $ldap = lease.ldap.clone();
            match $body.await {
                Ok(v) => break Ok::<_, Failure>(v),
                Err(OpError::Answered(f)) => break Err(f),
                Err(OpError::Broken { timed_out, detail }) => {
                    $self.discard(&lease).await;
                    if lease.reused && !timed_out && !retried {
                        tracing::debug!(source = %$self.id, %detail, "stale LDAP connection dropped; retrying once");
                        retried = true;
                        continue;
                    }
                    break Err(Failure::Unavailable(detail));
                }
            }
        }
    }};
}

impl LdapSource {
    /// Validates `config` (as [`LdapConfig::check`]), reads the service password and the CA file, and builds the
    /// source. No network access: connections are opened on first use.
    pub fn new(config: LdapConfig) -> Result<LdapSource, ConfigIssue> {
        let v = config.validate()?;
        if !config.tls_verify {
            tracing::warn!(
                source = %config.id,
                url = %config.url,
                "tls_verify = false: the directory's certificate is NOT verified, anyone on the path can read \
                 every password sent to it"
            );
        }
        if matches!(v.mode, Mode::Search { .. }) && v.service.is_none() {
            tracing::warn!(
                source = %config.id,
                url = %config.url,
                "no bind_dn: this source searches the directory anonymously for every sign-in, which works only \
                 if the directory lets anyone search it; set bind_dn to a least-privileged service account"
            );
        }
        let mut user_attrs: Vec<String> = Vec::new();
        let mut wanted = vec![
            &config.subject_attribute,
            &config.login_attribute,
            &config.display_name_attribute,
            &config.email_attribute,
        ];
        if v.group_search.is_none() {
            wanted.push(&config.group_attribute);
        }
        let account_control = USER_ACCOUNT_CONTROL.to_owned();
        wanted.push(&account_control);
        for a in wanted {
            if !user_attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                user_attrs.push(a.clone());
            }
        }
        let recheck = RecheckPlan::new(&config.id, &v.mode, v.service.is_some());
        let connect_timeout = Duration::from_secs(config.connect_timeout_secs);
        let op_timeout = Duration::from_secs(config.timeout_secs);
        Ok(LdapSource {
            id: config.id.clone(),
            display_name: config.display_name.clone().unwrap_or_else(|| "Directory".to_owned()),
            group_attrs: vec![config.group_name_attribute.clone()],
            mode: v.mode,
            service: v.service,
            tls: v.tls,
            group_search: v.group_search,
            user_attrs,
            recheck,
            recheck_interval: Duration::from_secs(config.recheck_secs),
            pool: Pool {
                slots: (0..config.pool_size).map(|_| Mutex::default()).collect(),
                next: AtomicUsize::new(0),
            },
            gate: Semaphore::new(config.max_concurrent),
            connect_timeout,
            op_timeout,
            // A last-resort bound on one sign-in, above the sum of its steps' own timeouts (connects and
            // operations, with one retry), so that no combination of slow answers can hang a request.
            deadline: connect_timeout * 3 + op_timeout * 6 + Duration::from_secs(1),
            cfg: config,
        })
    }

    /// The configuration this source was built from.
    pub fn config(&self) -> &LdapConfig {
        &self.cfg
    }

    /// Opens a connection (TCP, then TLS or StartTLS as configured) within the connect timeout. StartTLS
    /// failing is an error here: ldap3 never continues in plaintext after a refused StartTLS.
    async fn connect(&self) -> Result<Ldap, OpError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_starttls(self.cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        // ldap3 applies the connect timeout to TCP, StartTLS and the handshake; the outer timeout is a guard.
        let connecting = LdapConnAsync::with_settings(settings, &self.cfg.url);
        let (conn, ldap) =
            match tokio::time::timeout(self.connect_timeout + Duration::from_millis(200), connecting).await {
                Err(_) => {
                    return Err(OpError::Broken {
                        timed_out: true,
                        detail: "connect timed out".into(),
                    })
                }
                Ok(Err(e)) => return Err(broken("connect", e)),
                Ok(Ok(pair)) => pair,
            };
        let id = self.id.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(source = %id, error = %e, "LDAP connection ended with an error");
            }
        });
        Ok(ldap)
    }

    async fn service_connect(&self) -> Result<Ldap, OpError> {
        let mut ldap = self.connect().await?;
        if let Some((bind_dn, password)) = &self.service {
            let res = ldap
                .with_timeout(self.op_timeout)
                .simple_bind(bind_dn, password.expose_secret())
                .await
                .map_err(|e| broken("service bind", e))?;
            if res.rc != 0 {
                tracing::error!(
                    source = %self.id, rc = res.rc, diagnostic = %res.text,
                    "the directory refused the service account: check bind_dn and its password"
                );
                return Err(OpError::Answered(Failure::Unavailable(format!(
                    "service account bind refused (result {})",
                    res.rc
                ))));
            }
        }
        Ok(ldap)
    }

    async fn lease(&self) -> Result<Lease, OpError> {
        let asked = Instant::now();
        let index = self.pool.next.fetch_add(1, Ordering::Relaxed) % self.pool.slots.len();
        let mut slot = self.pool.slots[index].lock().await;
        if let Some(ldap) = slot.conn.as_mut() {
            if !ldap.is_closed() {
                return Ok(Lease {
                    ldap: ldap.clone(),
                    slot: index,
                    generation: slot.generation,
                    reused: true,
                });
            }
            slot.conn = None;
        }
        if slot.failed_at.is_some_and(|failed| failed >= asked) {
            return Err(OpError::Broken {
                timed_out: false,
                detail: "directory unreachable (a connection attempt just failed)".into(),
            });
        }
        match self.service_connect().await {
            Ok(ldap) => {
                slot.generation += 1;
                slot.conn = Some(ldap.clone());
                slot.failed_at = None;
                Ok(Lease {
                    ldap,
                    slot: index,
                    generation: slot.generation,
                    reused: false,
                })
            }
            Err(e) => {
                slot.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn discard(&self, lease: &Lease) {
        let mut slot = self.pool.slots[lease.slot].lock().await;
        if slot.generation == lease.generation {
            slot.conn = None;
        }
    }

    fn search_options(&self, size_limit: i32) -> SearchOptions {
        let secs = i32::try_from(self.cfg.timeout_secs).unwrap_or(i32::MAX);
        SearchOptions::new().sizelimit(size_limit).timelimit(secs)
    }

    /// Search results without continuation references: referrals are never chased (they could send the next
    /// bind, with its password, to any host), only logged.
    fn entries(&self, items: Vec<ldap3::ResultEntry>) -> Vec<SearchEntry> {
        items
            .into_iter()
            .filter_map(|item| {
                if item.is_ref() {
                    tracing::debug!(source = %self.id, refs = ?ldap3::parse_refs(item.0), "ignored a search reference (referrals are not chased)");
                    None
                } else if item.is_intermediate() {
                    None
                } else {
                    Some(SearchEntry::construct(item))
                }
            })
            .collect()
    }

    /// Finds the one entry for `login` (step 2 of search-then-bind).
    async fn find_user(
        &self,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        scope: UserScope,
        login: &str,
    ) -> Result<SearchEntry, OpError> {
        let filter = template::expand(filter, &[("username", &filter_value(login))])
            .map_err(|m| OpError::Answered(Failure::Protocol(m)))?;
        let scope = match scope {
            UserScope::Sub => Scope::Subtree,
            UserScope::One => Scope::OneLevel,
        };
        // Size limit 2: one is what we need, a second proves ambiguity; more would be wasted work.
        let ldap3::SearchResult(items, result) = ldap
            .with_timeout(self.op_timeout)
            .with_search_options(self.search_options(2))
            .search(base, scope, &filter, &self.user_attrs)
            .await
            .map_err(|e| broken("user search", e))?;
        let entries = self.entries(items);
        match result.rc {
            0 => {}
            4 => {
                tracing::warn!(source = %self.id, login, %filter, "user filter matched more than one entry; refused");
                return Err(OpError::Answered(Failure::Reject(RejectReason::Ambiguous)));
            }
            10 => {
                tracing::info!(source = %self.id, login, refs = ?result.refs, "user search returned a referral; not chased");
            }
            32 => {
                tracing::warn!(source = %self.id, base, "user_base does not exist in the directory");
                return Err(OpError::Answered(Failure::Unavailable(
                    "user_base does not exist".into(),
                )));
            }
            rc => {
                tracing::warn!(source = %self.id, rc, diagnostic = %result.text, "user search failed");
                return Err(OpError::Answered(Failure::Unavailable(format!(
                    "user search failed (result {rc})"
                ))));
            }
        }
        let mut entries = entries.into_iter();
        match (entries.next(), entries.next()) {
            (None, _) => {
                tracing::debug!(source = %self.id, login, "no such user");
                Err(OpError::Answered(Failure::Reject(RejectReason::InvalidCredentials)))
            }
            (Some(entry), None) => Ok(entry),
            (Some(_), Some(_)) => {
                tracing::warn!(source = %self.id, login, %filter, "user filter matched more than one entry; refused");
                Err(OpError::Answered(Failure::Reject(RejectReason::Ambiguous)))
            }
        }
    }

    /// Reads one entry by DN (direct-bind mode).
    async fn read_entry(&self, ldap: &mut Ldap, entry_dn: &str) -> Result<SearchEntry, OpError> {
        let ldap3::SearchResult(items, result) = ldap
            .with_timeout(self.op_timeout)
            .with_search_options(self.search_options(1))
            .search(entry_dn, Scope::Base, "(objectClass=*)", &self.user_attrs)
            .await
            .map_err(|e| broken("entry read", e))?;
        if result.rc != 0 {
            tracing::warn!(source = %self.id, rc = result.rc, diagnostic = %result.text, dn = entry_dn, "cannot read the user's entry");
            return Err(OpError::Answered(Failure::Unavailable(format!(
                "cannot read the user's entry (result {})",
                result.rc
            ))));
        }
        self.entries(items)
            .into_iter()
            .next()
            .ok_or_else(|| OpError::Answered(Failure::Unavailable("the user's entry is not readable".into())))
    }

    /// Finds the one entry a recheck is about (`None`: no such entry, or several, which admits nobody).
    async fn find_by_subject(
        &self,
        ldap: &mut Ldap,
        plan: &RecheckPlan,
        filter: &str,
    ) -> Result<Option<SearchEntry>, OpError> {
        let ldap3::SearchResult(items, result) = ldap
            .with_timeout(self.op_timeout)
            .with_search_options(self.search_options(2))
            .search(&plan.base, plan.scope, filter, &self.user_attrs)
            .await
            .map_err(|e| broken("recheck search", e))?;
        let entries = self.entries(items);
        match result.rc {
            // 4: more than one entry, refused below; 10: the base is a referral, not chased (as at sign-in).
            0 | 4 | 10 => {}
            32 => {
                tracing::warn!(source = %self.id, base = %plan.base, "the base of recheck searches does not exist in the directory");
                return Err(OpError::Answered(Failure::Unavailable(
                    "recheck search base does not exist".into(),
                )));
            }
            rc => {
                tracing::warn!(source = %self.id, rc, diagnostic = %result.text, "recheck search failed");
                return Err(OpError::Answered(Failure::Unavailable(format!(
                    "recheck search failed (result {rc})"
                ))));
            }
        }
        let mut entries = entries.into_iter();
        match (entries.next(), entries.next()) {
            (Some(entry), None) => Ok(Some(entry)),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => {
                tracing::warn!(source = %self.id, %filter, "more than one entry carries this subject; none is admitted");
                Ok(None)
            }
        }
    }

    /// Groups by search under `group_base`.
    async fn search_groups(&self, ldap: &mut Ldap, user_dn: &str, login: &str) -> Result<Vec<Group>, OpError> {
        let Some((base, filter)) = &self.group_search else {
            return Ok(Vec::new());
        };
        let filter = template::expand(
            filter,
            &[("dn", &filter_value(user_dn)), ("username", &filter_value(login))],
        )
        .map_err(|m| OpError::Answered(Failure::Protocol(m)))?;
        let ldap3::SearchResult(items, result) = ldap
            .with_timeout(self.op_timeout)
            .with_search_options(self.search_options(1000))
            .search(base, Scope::Subtree, &filter, &self.group_attrs)
            .await
            .map_err(|e| broken("group search", e))?;
        match result.rc {
            0 => {}
            4 => {
                tracing::warn!(source = %self.id, user_dn, "more than 1000 groups; the rest are ignored")
            }
            rc => {
                tracing::warn!(source = %self.id, rc, diagnostic = %result.text, "group search failed");
                return Err(OpError::Answered(Failure::Unavailable(format!(
                    "group search failed (result {rc})"
                ))));
            }
        }
        Ok(self
            .entries(items)
            .into_iter()
            .filter_map(|g| {
                let name = attr(&g, &self.cfg.group_name_attribute)
                    .map(str::to_owned)
                    .or_else(|| dn::first_value(&g.dn))?;
                Some(Group { name, dn: Some(g.dn) })
            })
            .collect())
    }

    /// Groups from the user entry's `group_attribute` (DNs), as short names.
    fn attribute_groups(&self, entry: &SearchEntry) -> Vec<Group> {
        attrs(entry, &self.cfg.group_attribute)
            .iter()
            .map(|value| Group {
                name: dn::first_value(value).unwrap_or_else(|| value.clone()),
                dn: Some(value.clone()),
            })
            .collect()
    }

    /// Step 3: the password check, as a bind on a connection of its own, never shared and closed afterwards.
    async fn bind_user(&self, user_dn: &str, password: &str) -> Result<Ldap, Failure> {
        let mut ldap = self.connect().await.map_err(OpError::into_failure)?;
        let res = ldap
            .with_timeout(self.op_timeout)
            .simple_bind(user_dn, password)
            .await
            .map_err(|e| broken("user bind", e).into_failure())?;
        match res.rc {
            0 => Ok(ldap),
            // busy, unavailable: the directory's trouble, not the person's.
            51 | 52 => Err(Failure::Unavailable(format!("user bind failed (result {})", res.rc))),
            rc => {
                // 49 invalidCredentials (with Active Directory's sub-code in the text: 52e bad password, 530/531
                // time or workstation, 532 expired, 533 disabled, 701 account expired, 773 must change, 775
                // locked), 48, 50, 53 (policy refusals), and anything else: one generic failure, detail logged.
                tracing::info!(
                    source = %self.id, dn = user_dn, rc, ad_code = ad_sub_code(&res.text).unwrap_or("-"),
                    diagnostic = %res.text, "user bind refused"
                );
                Err(Failure::Reject(RejectReason::InvalidCredentials))
            }
        }
    }

    /// An unknown login name costs what a known one does (a connection and a bind), so response times do not
    /// tell which names exist. The bind is to a DN that cannot exist, with a fixed password: the person's
    /// password is not sent for a name that matched nobody, and no real account's lockout counter moves.
    async fn spend_a_bind(&self, base: &str) {
        let nobody = format!("cn=vestibule-no-such-user-{},{base}", self.id);
        if self.bind_user(&nobody, "vestibule-timing-equalizer").await.is_ok() {
            // Only a directory that lets anyone in would get here; nothing to undo, but worth knowing.
            tracing::warn!(source = %self.id, dn = %nobody, "a bind to a DN that does not exist succeeded");
        }
    }

    async fn sign_in(&self, login: &str, password: &str) -> Result<ExternalIdentity, Failure> {
        let (user_dn, found) = match &self.mode {
            Mode::Search { base, filter, scope } => {
                let found = with_service!(self, |ldap| self.find_user(&mut ldap, base, filter, *scope, login));
                let entry = match found {
                    Err(Failure::Reject(RejectReason::InvalidCredentials)) => {
                        self.spend_a_bind(base).await;
                        return Err(Failure::Reject(RejectReason::InvalidCredentials));
                    }
                    other => other?,
                };
                (entry.dn.clone(), Some(entry))
            }
            Mode::Direct { template } => {
                let user_dn =
                    template::expand(template, &[("username", &dn_value(login))]).map_err(Failure::Protocol)?;
                (user_dn, None)
            }
        };
        let mut user_conn = self.bind_user(&user_dn, password).await?;
        let (entry, groups) = if let (None, None) = (&found, &self.service) {
            // Direct bind without a service account: the person's own connection reads their entry and groups,
            // and is closed right after.
            let read = async {
                let entry = self.read_entry(&mut user_conn, &user_dn).await?;
                let groups = match self.group_search {
                    Some(_) => self.search_groups(&mut user_conn, &entry.dn, login).await?,
                    None => self.attribute_groups(&entry),
                };
                Ok::<_, OpError>((entry, groups))
            }
            .await
            .map_err(OpError::into_failure);
            let _ = user_conn.unbind().await;
            read?
        } else {
            let _ = user_conn.unbind().await;
            drop(user_conn);
            let entry = match found {
                Some(entry) => entry,
                None => with_service!(self, |ldap| self.read_entry(&mut ldap, &user_dn))?,
            };
            let groups = match self.group_search {
                Some(_) => with_service!(self, |ldap| self.search_groups(&mut ldap, &entry.dn, login))?,
                None => self.attribute_groups(&entry),
            };
            (entry, groups)
        };
        if let Some(reason) = self.refusal(&entry, &groups) {
            return Err(Failure::Reject(reason));
        }
        self.identity(&entry, Some(login), groups)
    }

    /// The source's rules beyond the password, the same at sign-in and at every recheck: an Active Directory
    /// account marked disabled is refused (AD also refuses its bind, with sub-code 533: the same generic
    /// failure), and so is anyone outside `require_group`.
    fn refusal(&self, entry: &SearchEntry, groups: &[Group]) -> Option<RejectReason> {
        if let Some(flags) = attr(entry, USER_ACCOUNT_CONTROL) {
            match flags.trim().parse::<i64>() {
                Ok(flags) if flags & ACCOUNTDISABLE == 0 => {}
                Ok(_) => {
                    tracing::info!(source = %self.id, dn = %entry.dn, "account disabled (userAccountControl)");
                    return Some(RejectReason::InvalidCredentials);
                }
                Err(_) => {
                    // Fail closed: an account whose state cannot be read is not let in.
                    tracing::warn!(source = %self.id, dn = %entry.dn, value = flags, "unreadable userAccountControl; treated as disabled");
                    return Some(RejectReason::InvalidCredentials);
                }
            }
        }
        if let Some(required) = &self.cfg.require_group {
            if !is_member(groups, required) {
                tracing::info!(source = %self.id, dn = %entry.dn, required = %required, "not in the required group");
                return Some(RejectReason::NotPermitted);
            }
        }
        None
    }

    /// A recheck: the entry with this subject, if it is still there and still admitted, as it is today.
    async fn look_up(&self, plan: &RecheckPlan, subject: &str) -> Result<Option<ExternalIdentity>, Failure> {
        let Some(by_subject) = self.subject_filter(subject) else {
            tracing::debug!(source = %self.id, subject, "not a subject this source could have issued");
            return Ok(None);
        };
        let filter = match &plan.also {
            Some(also) => format!("(&{by_subject}{also})"),
            None => by_subject,
        };
        let found = with_service!(self, |ldap| self.find_by_subject(&mut ldap, plan, &filter))?;
        // The filter matched by the attribute's own matching rule (case-insensitive for some); the identity must
        // carry exactly the subject it is linked by.
        let Some(entry) = found.filter(|e| self.subject(e).ok().as_deref() == Some(subject)) else {
            tracing::info!(source = %self.id, subject, "recheck: no admitted entry has this subject any more");
            return Ok(None);
        };
        let login = attr(&entry, &self.cfg.login_attribute);
        let groups = match &self.group_search {
            Some((_, group_filter)) => {
                let login = match login {
                    Some(login) => login,
                    None if !group_filter.contains("{username}") => "",
                    None => {
                        tracing::error!(source = %self.id, dn = %entry.dn, attribute = %self.cfg.login_attribute, "group_filter needs {{username}} but the entry has no login_attribute; check login_attribute");
                        return Err(Failure::Protocol(format!(
                            "the directory entry has no {}",
                            self.cfg.login_attribute
                        )));
                    }
                };
                with_service!(self, |ldap| self.search_groups(&mut ldap, &entry.dn, login))?
            }
            None => self.attribute_groups(&entry),
        };
        if self.refusal(&entry, &groups).is_some() {
            return Ok(None);
        }
        self.identity(&entry, None, groups).map(Some)
    }

    /// A filter for the entry whose subject is `subject` (rendered as [`Self::subject`] does), or `None` for a
    /// string that cannot be an `objectGUID` when that is the subject attribute.
    fn subject_filter(&self, subject: &str) -> Option<String> {
        let name = &self.cfg.subject_attribute;
        if name.eq_ignore_ascii_case("objectGUID") {
            return dn::guid_bytes(subject).map(|wire| format!("({name}={})", filter_bytes(&wire)));
        }
        let as_text = format!("({name}={})", filter_value(subject));
        match hex_bytes(subject) {
            // Other binary subjects are rendered in hexadecimal, and a text one may look the same: ask for both
            // readings; the subject check after the search keeps only an entry whose subject is exactly this.
            Some(bytes) => Some(format!("(|{as_text}({name}={}))", filter_bytes(&bytes))),
            None => Some(as_text),
        }
    }

    /// Runs one request to the directory inside the source's limits: at most `max_concurrent` at once (the rest
    /// wait up to `timeout_secs`, then fail fast instead of piling up behind a slow directory), and never longer
    /// than the deadline.
    async fn bounded<T>(&self, what: &str, work: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
        let _permit = match tokio::time::timeout(self.op_timeout, self.gate.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                tracing::warn!(source = %self.id, what, "too many LDAP requests in flight");
                return Err(Failure::Unavailable(format!("too many requests in flight ({what})")));
            }
        };
        match tokio::time::timeout(self.deadline, work).await {
            Ok(result) => {
                if let Err(Failure::Unavailable(detail)) = &result {
                    tracing::warn!(source = %self.id, what, %detail, "LDAP directory unavailable");
                }
                result
            }
            Err(_) => {
                tracing::warn!(source = %self.id, what, "LDAP request exceeded its deadline");
                Err(Failure::Unavailable(format!("{what} exceeded its deadline")))
            }
        }
    }

    /// `login` is what the person typed, the fallback when the entry has no `login_attribute`.
    fn identity(
        &self,
        entry: &SearchEntry,
        login: Option<&str>,
        groups: Vec<Group>,
    ) -> Result<ExternalIdentity, Failure> {
        let subject = self.subject(entry)?;
        let mut identity = ExternalIdentity::new(self.id.clone(), Subject::new(subject).map_err(Failure::Id)?);
        if let Some(login) = attr(entry, &self.cfg.login_attribute).or(login) {
            identity = identity.with_login(login);
        }
        if let Some(name) = attr(entry, &self.cfg.display_name_attribute) {
            identity = identity.with_display_name(name);
        }
        if let Some(mail) = attr(entry, &self.cfg.email_attribute) {
            identity = identity.with_email(mail, self.cfg.email_verified);
        }
        let mut names: Vec<String> = groups.into_iter().map(|g| g.name).collect();
        names.sort();
        names.dedup();
        Ok(identity.with_groups(names))
    }

    /// The stable subject: the configured attribute as text, except `objectGUID`, which is 16 binary bytes
    /// rendered as a GUID string. Any other binary value is rendered in hexadecimal.
    fn subject(&self, entry: &SearchEntry) -> Result<String, Failure> {
        let name = &self.cfg.subject_attribute;
        let guid = name.eq_ignore_ascii_case("objectGUID");
        let binary = entry
            .bin_attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first());
        let value = match (binary, attr(entry, name)) {
            (Some(bytes), _) if guid => dn::guid_string(bytes),
            (Some(bytes), _) => Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
            // A GUID whose 16 bytes happen to be valid UTF-8 arrives as text.
            (None, Some(text)) if guid => dn::guid_string(text.as_bytes()),
            (None, Some(text)) => Some(text.to_owned()),
            (None, None) => None,
        };
        value.ok_or_else(|| {
            tracing::error!(source = %self.id, dn = %entry.dn, attribute = %name, "the entry has no usable subject attribute; check subject_attribute");
            Failure::Protocol(format!("the directory entry has no usable {name}"))
        })
    }
}

fn attrs<'a>(entry: &'a SearchEntry, name: &str) -> &'a [String] {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[])
}

fn attr<'a>(entry: &'a SearchEntry, name: &str) -> Option<&'a str> {
    attrs(entry, name).first().map(String::as_str)
}

/// Lowercase hexadecimal of whole bytes, as [`LdapSource::subject`] renders binary values; `None` otherwise.
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn is_member(groups: &[Group], required: &str) -> bool {
    if required.contains('=') {
        let want = dn::normalize(required);
        want.is_some() && groups.iter().any(|g| g.dn.as_deref().and_then(dn::normalize) == want)
    } else {
        let want = required.to_lowercase();
        groups.iter().any(|g| g.name.to_lowercase() == want)
    }
}

/// Active Directory puts the reason for result 49 in the diagnostic text: `..., data 52e, v4563`.
fn ad_sub_code(text: &str) -> Option<&str> {
    let at = text.find("data ")?;
    let code = text[at + 5..].split([',', ' ']).next()?;
    (!code.is_empty() && code.len() <= 8).then_some(code)
}

impl AuthSource for LdapSource {
    fn id(&self) -> &SourceId {
        &self.id
    }
    fn display_name(&self) -> &str {
        &self.display_name
    }
    fn flow(&self) -> Flow<'_> {
        Flow::Password(self)
    }
    fn recheck(&self) -> Option<&dyn Recheck> {
        self.recheck.as_ref().map(|_| self as &dyn Recheck)
    }
    fn probe(&self) -> Option<&dyn Probe> {
        Some(self)
    }
}

#[async_trait]
impl Probe for LdapSource {
    /// A new connection (TCP, TLS or StartTLS as configured) and the service bind when one is configured, outside
    /// the pool: a pooled connection could still look alive after the directory went away. Unbound at once.
    async fn probe(&self) -> Result<(), SourceError> {
        let work = async {
            let mut ldap = self.service_connect().await.map_err(OpError::into_failure)?;
            // The answer to the unbind does not matter: the bind above was the check.
            let _ = ldap.unbind().await;
            Ok(())
        };
        Ok(self.bounded("readiness probe", work).await?)
    }
}

#[async_trait]
impl Recheck for LdapSource {
    fn recheck_interval(&self) -> Duration {
        self.recheck_interval
    }

    async fn recheck(&self, subject: &Subject) -> Result<Option<ExternalIdentity>, SourceError> {
        let Some(plan) = &self.recheck else {
            // Only reachable by calling this directly: `AuthSource::recheck` is `None` for such a source.
            return Err(Failure::Unavailable(
                "this source cannot search the directory (direct bind without bind_dn)".into(),
            )
            .into());
        };
        let answer = self.bounded("recheck", self.look_up(plan, subject.as_str())).await?;
        tracing::debug!(source = %self.id, %subject, admitted = answer.is_some(), "LDAP recheck");
        Ok(answer)
    }
}

#[async_trait]
impl PasswordFlow for LdapSource {
    async fn authenticate(&self, login: &str, password: &SecretString) -> Result<ExternalIdentity, SourceError> {
        let password = password.expose_secret();
        // RFC 4513 5.1.2: a DN with an empty password is an "unauthenticated bind" that many servers accept as
        // anonymous. A NUL can cut a password short in C-based servers and proxies. Both are refused before any
        // traffic, whatever the directory would do with them.
        if password.is_empty() || password.contains('\0') {
            tracing::info!(source = %self.id, login, "empty or NUL-bearing password refused before binding");
            return Err(SourceError::Rejected(RejectReason::EmptyPassword));
        }
        if login.is_empty() || login.len() > MAX_LOGIN_BYTES {
            return Err(SourceError::Rejected(RejectReason::InvalidCredentials));
        }
        let identity = self.bounded("sign-in", self.sign_in(login, password)).await?;
        tracing::debug!(source = %self.id, login, subject = %identity.subject, "LDAP sign-in");
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_sub_codes_are_extracted() {
        let text = "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 775, v3839";
        assert_eq!(ad_sub_code(text), Some("775"));
        assert_eq!(ad_sub_code("invalid credentials"), None);
    }

    #[test]
    fn membership_by_name_or_dn() {
        let groups = vec![Group {
            name: "Admins".into(),
            dn: Some("cn=Admins,ou=Groups,dc=example,dc=org".into()),
        }];
        assert!(is_member(&groups, "admins"));
        assert!(is_member(&groups, "CN=admins, ou=groups,DC=example,dc=org"));
        assert!(!is_member(&groups, "staff"));
        assert!(!is_member(&groups, "cn=admins,ou=other,dc=example,dc=org"));
    }

    fn search_source(edit: impl FnOnce(&mut LdapConfig)) -> LdapSource {
        let mut c = LdapConfig::new(SourceId::new("corp").expect("id"), "ldap://127.0.0.1:389");
        c.user_base = Some("ou=people,dc=example,dc=org".into());
        edit(&mut c);
        LdapSource::new(c).expect("valid")
    }

    #[test]
    fn which_sources_can_be_asked_again() {
        // Search mode without bind_dn: sign-in already depends on anonymous searches, so rechecks use them too.
        let s = search_source(|_| {});
        assert!(AuthSource::recheck(&s).is_some());
        let plan = s.recheck.as_ref().expect("plan");
        assert_eq!(
            (plan.base.as_str(), plan.scope),
            ("ou=people,dc=example,dc=org", Scope::Subtree)
        );
        assert_eq!(plan.also.as_deref(), Some("(uid=*)"));
        let s = search_source(|c| {
            c.user_filter = Some("(&(objectClass=user)(sAMAccountName={username}))".into());
            c.user_scope = Some(UserScope::One);
        });
        let plan = s.recheck.as_ref().expect("plan");
        assert_eq!(plan.scope, Scope::OneLevel);
        assert_eq!(plan.also.as_deref(), Some("(&(objectClass=user)(sAMAccountName=*))"));
        // `*` cannot stand in an extensible match: the subject alone.
        let s = search_source(|c| c.user_filter = Some("(uid:caseExactMatch:={username})".into()));
        assert_eq!(s.recheck.as_ref().expect("plan").also, None);
        // Direct bind: with a service account, one level under the template's parent; without, no recheck.
        let direct = |bind_dn: Option<&str>| {
            let mut c = LdapConfig::new(SourceId::new("lab").expect("id"), "ldap://127.0.0.1:389");
            c.user_dn_template = Some("uid={username},ou=people,dc=lab".into());
            c.bind_dn = bind_dn.map(str::to_owned);
            c.bind_password_env = bind_dn.map(|_| "PATH".to_owned());
            LdapSource::new(c).expect("valid")
        };
        assert!(AuthSource::recheck(&direct(None)).is_none());
        let s = direct(Some("cn=svc,dc=lab"));
        let plan = s.recheck.as_ref().expect("plan");
        assert_eq!((plan.base.as_str(), plan.scope), ("ou=people,dc=lab", Scope::OneLevel));
        assert_eq!(Recheck::recheck_interval(&s), Duration::from_secs(300));
    }

    #[test]
    fn subjects_become_filters_that_match_only_themselves() {
        let s = search_source(|_| {});
        assert_eq!(
            s.subject_filter("3f2504e0-4f89-11d3-9a0c-0305e82c3301").as_deref(),
            Some("(entryUUID=3f2504e0-4f89-11d3-9a0c-0305e82c3301)")
        );
        assert_eq!(
            s.subject_filter("*)(uid=*").as_deref(),
            Some("(entryUUID=\\2a\\29\\28uid=\\2a)")
        );
        // A hex-looking subject may be a binary value rendered in hex: both readings are asked for.
        assert_eq!(
            s.subject_filter("0aff").as_deref(),
            Some("(|(entryUUID=0aff)(entryUUID=\\0a\\ff))")
        );
        let ad = search_source(|c| c.subject_attribute = "objectGUID".into());
        assert_eq!(
            ad.subject_filter("3f2504e0-4f89-11d3-9a0c-0305e82c3301").as_deref(),
            Some("(objectGUID=\\e0\\04\\25\\3f\\89\\4f\\d3\\11\\9a\\0c\\03\\05\\e8\\2c\\33\\01)")
        );
        assert_eq!(ad.subject_filter("alice"), None);
        assert_eq!(hex_bytes("0aFF"), None);
        assert_eq!(hex_bytes("0af"), None);
        assert_eq!(hex_bytes(""), None);
    }

    #[tokio::test]
    async fn empty_and_nul_passwords_are_refused_without_any_network() {
        // Port 9 on a TEST-NET address: any connection attempt would fail as unavailable, not as empty password.
        let mut c = LdapConfig::new(SourceId::new("corp").expect("id"), "ldaps://192.0.2.1:9");
        c.user_base = Some("dc=example,dc=org".into());
        let s = LdapSource::new(c).expect("valid");
        for pw in ["", "\0", "\0secret", "sec\0ret"] {
            let e = s
                .authenticate("alice", &SecretString::from(pw))
                .await
                .expect_err("refused");
            assert!(
                matches!(e, SourceError::Rejected(RejectReason::EmptyPassword)),
                "{pw:?}: {e:?}"
            );
        }
    }
}
