//! Throttling of credential checks, decided before a credential is checked (issue #11).
//!
//! Four layers, each with its own key:
//!
//! * **per client address** (and per IPv6 /64, since one host holds a whole /64): a GCRA token bucket that every
//!   failed attempt draws from — it caps the rate of guesses from one place whatever the accounts, while an office
//!   behind one NAT address signing people in correctly is never slowed;
//! * **per account** (the canonical login name, also for names that do not exist, so that throttling reveals
//!   nothing about which exist): failures beyond a free allowance bring a delay that doubles with each further
//!   failure, up to a cap — never a permanent lockout;
//! * **per (account, address)**: a smaller allowance, so a person mistyping on their own machine is slowed before
//!   a distributed attack slows everyone; a successful sign-in resets this pair only;
//! * **hourly ceiling per account** (ASVS 2.2.1: at most 100 failed attempts an hour), whatever the spread of
//!   addresses.
//!
//! Where the counters live: in the database when the store keeps them
//! ([`BrokerStore::throttle_counters`]; `vestibule-store` does, on SQLite and PostgreSQL), so every node sharing
//! it enforces one limit and an operator's command sees and lifts them; otherwise in process, in three bounded
//! caches. Both apply one failure with the same rules ([`FailureStep`], [`apply_failure`]) and decide with the
//! same code ([`Limiter::verdict`]); a test runs one sequence through both and compares every answer.
//!
//! Bearer tokens (checked on every API request) spend in-process buckets only, per node: a database round trip
//! on every request would cost more than guessing a 256-bit token could ever gain.
//!
//! Account names are kept as SHA-256 hashes, never as typed: people type their password into the name field.
//! Time is whole seconds from the broker's clock (tests inject one), so the same arithmetic runs in SQL. The GCRA
//! is a few lines of integer arithmetic over one timestamp per key; `governor` does the same in process but reads
//! its own clock and keeps its state in its own types, which the database variant could not share.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moka::sync::Cache;
use vestibule_core::storage::{
    BrokerStore, CounterKey, CounterKind, CounterRecord, CounterValues, FailureStep, StorageError, ThrottleCounters,
};
use vestibule_core::Timestamp;

/// The limits. Every layer is on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    /// Failed attempts a client address (and an IPv6 /64) may make at once before it must wait.
    pub address_burst: u32,
    /// Seconds per attempt an address earns back (6: ten a minute, sustained).
    pub address_refill_secs: u32,
    /// Failures of one account, from anywhere, before delays start.
    pub account_free_failures: u32,
    /// Failures of one account from one address before delays start.
    pub pair_free_failures: u32,
    /// The first delay, in seconds; each further failure doubles it.
    pub first_delay_secs: u32,
    /// The longest delay, in seconds.
    pub max_delay_secs: u32,
    /// Failures of one account in an hour after which it waits for the hour to end.
    pub account_failures_per_hour: u32,
    /// Seconds without a failure after which a key's failures are forgotten.
    pub forget_after_secs: u32,
    /// Keys kept in memory at most, in each of the three kinds (address buckets, (name, address) pairs, names),
    /// when the counters are kept in process; rarely used keys go first. Bounds memory whatever the number of
    /// addresses: about 330 bytes a key.
    pub max_tracked: u64,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            address_burst: 30,
            address_refill_secs: 6,
            account_free_failures: 10,
            pair_free_failures: 5,
            first_delay_secs: 2,
            max_delay_secs: 900,
            account_failures_per_hour: 100,
            forget_after_secs: 3600,
            max_tracked: 200_000,
        }
    }
}

/// Which layer refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThrottleLayer {
    /// The client address's bucket.
    Address,
    /// The bucket of the client's IPv6 /64.
    Network,
    /// The account's failures.
    Account,
    /// The account's failures from this address.
    Pair,
    /// The account's failures this hour.
    Hourly,
}

impl ThrottleLayer {
    /// The layer's name in audit events and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleLayer::Address => "address",
            ThrottleLayer::Network => "network",
            ThrottleLayer::Account => "account",
            ThrottleLayer::Pair => "pair",
            ThrottleLayer::Hourly => "hourly",
        }
    }
}

/// An attempt refused before the credential was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// The layer that refused.
    pub layer: ThrottleLayer,
    /// Seconds until an attempt may be made (for `Retry-After`); at least 1.
    pub retry_after_secs: u32,
}

/// Who is trying: the account key (a canonical login name, existing or not) and the client address.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The canonical login name tried, qualified by the source (`local:alice`).
    pub account: &'a str,
    /// The client address, when known.
    pub ip: Option<IpAddr>,
}

/// One counter as an operator sees it ([`Limiter::current`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleEntry {
    /// What it counts: `Address`, `Network`, `Account` or `Pair`.
    pub layer: ThrottleLayer,
    /// The account name's SHA-256, lowercase hex (the audit log shows its first 16 characters).
    pub name_hash: Option<String>,
    /// The client address, or the IPv6 network as `prefix/64`.
    pub address: Option<String>,
    /// Failures counted (buckets: attempts waiting to be earned back).
    pub failures: i64,
    /// When the counter refuses attempts now: the seconds to wait and the layer that refuses (for an account
    /// counter, `Hourly` when the hourly ceiling is the reason).
    pub refusing: Option<Throttled>,
}

/// Why an attempt may not go on: the limiter holds it back, or its counters could not be read (fail closed).
#[derive(Debug)]
pub(crate) enum Held {
    /// Too many attempts.
    Throttled(Throttled),
    /// The counters could not be read.
    Store(StorageError),
}

impl From<StorageError> for Held {
    fn from(e: StorageError) -> Self {
        Held::Store(e)
    }
}

/// The name a password attempt at `source` is counted under: the canonical login name, existing or not, so that
/// throttling says nothing about which exist.
pub(crate) fn name_key(source: &str, login: &str) -> String {
    let canonical = vestibule_core::canonical_login(login).unwrap_or_else(|_| login.to_lowercase());
    format!("{source}:{canonical}")
}

/// The name a signed-in account's own credential checks (its current password) are counted under.
pub(crate) fn account_key(account: &vestibule_core::AccountId) -> String {
    format!("account:{account}")
}

/// The hash of a counted name, as listings and the audit log show it (lowercase hex).
pub(crate) fn name_hash_hex(key: &str) -> String {
    crate::secret::hex_of(&name_hash(key))
}

/// A name's hash: what the counters are keyed by.
fn name_hash(account: &str) -> [u8; 32] {
    crate::secret::hash_token(account)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Network([u8; 8]),
    Account([u8; 32]),
    Pair([u8; 32], IpAddr),
}

impl Key {
    fn kind(&self) -> CounterKind {
        match self {
            Key::Address(_) => CounterKind::Address,
            Key::Network(_) => CounterKind::Network,
            Key::Account(_) => CounterKind::Account,
            Key::Pair(..) => CounterKind::Pair,
        }
    }

    /// The key as the database keeps it.
    fn stored(&self) -> CounterKey {
        let hex = |h: &[u8; 32]| crate::secret::hex_of(h);
        let (name, address) = match self {
            Key::Address(ip) => (String::new(), ip.to_string()),
            Key::Network(net) => (String::new(), network_text(net)),
            Key::Account(h) => (hex(h), String::new()),
            Key::Pair(h, ip) => (hex(h), ip.to_string()),
        };
        CounterKey {
            kind: self.kind(),
            name,
            address,
        }
    }
}

fn network_text(net: &[u8; 8]) -> String {
    let mut octets = [0u8; 16];
    octets[..8].copy_from_slice(net);
    format!("{}/64", Ipv6Addr::from(octets))
}

/// The /64 an IPv6 address belongs to; `None` for IPv4 (limited per address).
fn network_of(ip: IpAddr) -> Option<[u8; 8]> {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let mut net = [0u8; 8];
            net.copy_from_slice(&v6.octets()[..8]);
            Some(net)
        }
        _ => None,
    }
}

/// One failure applied to a counter: the rules of [`FailureStep`], which the database applies in SQL.
pub(crate) fn apply_failure(v: &mut CounterValues, kind: CounterKind, step: &FailureStep) {
    let now = step.now.0;
    if kind.is_bucket() {
        // Refused or not, a failure is drawn from a bucket that has room; a full bucket stays full.
        let tat = v.tat.max(now);
        if tat - now <= step.tolerance {
            v.tat = tat + step.interval;
        }
        return;
    }
    v.failures = if now - v.last_failure >= step.forget_after {
        1
    } else {
        v.failures.saturating_add(1)
    };
    v.last_failure = now;
    if kind == CounterKind::Account {
        if now - v.hour_start >= 3600 {
            v.hour_start = now;
            v.hour_failures = 1;
        } else {
            v.hour_failures = v.hour_failures.saturating_add(1);
        }
    }
}

/// The in-process counters: three bounded caches, so that one kind of key cannot push out another (a flood from a
/// million addresses, each a bucket and a pair with the account it tries, must not evict the record of the account
/// it is guessing).
struct Memory {
    buckets: Cache<Key, Arc<Mutex<CounterValues>>>,
    pairs: Cache<Key, Arc<Mutex<CounterValues>>>,
    accounts: Cache<Key, Arc<Mutex<CounterValues>>>,
}

impl Memory {
    fn cache(&self, key: &Key) -> &Cache<Key, Arc<Mutex<CounterValues>>> {
        match key {
            Key::Address(_) | Key::Network(_) => &self.buckets,
            Key::Pair(..) => &self.pairs,
            Key::Account(_) => &self.accounts,
        }
    }

    fn peek(&self, key: &Key) -> Option<CounterValues> {
        self.cache(key)
            .get(key)
            .map(|e| *e.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn fail(&self, key: Key, step: &FailureStep) {
        let kind = key.kind();
        let e = self
            .cache(&key)
            .get_with(key, || Arc::new(Mutex::new(CounterValues::default())));
        apply_failure(&mut e.lock().unwrap_or_else(PoisonError::into_inner), kind, step);
    }
}

/// The limiter. Shared by the broker's sign-in, linking, password change and bearer paths.
pub struct Limiter {
    settings: ThrottleSettings,
    memory: Memory,
    /// The store whose counters are used for sign-in attempts, when it keeps them.
    shared: Option<Arc<dyn BrokerStore>>,
    /// Refusals audited in the last minute, by (address, name hash): see [`Limiter::worth_auditing`].
    audited: Cache<(Option<IpAddr>, [u8; 32]), ()>,
    /// One credential check at a time per name on this node: see [`Limiter::one_at_a_time`].
    turns: Cache<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("settings", &self.settings)
            .field("shared", &self.shared.is_some())
            .field("buckets", &self.memory.buckets.entry_count())
            .field("pairs", &self.memory.pairs.entry_count())
            .field("accounts", &self.memory.accounts.entry_count())
            .finish()
    }
}

impl Limiter {
    /// A limiter counting in process, with these settings.
    pub fn new(settings: ThrottleSettings) -> Self {
        let cache = || {
            Cache::builder()
                .max_capacity(settings.max_tracked)
                .time_to_idle(Duration::from_secs(Self::idle_secs(&settings)))
                .build()
        };
        Limiter {
            settings,
            memory: Memory {
                buckets: cache(),
                pairs: cache(),
                accounts: cache(),
            },
            shared: None,
            audited: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            turns: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
        }
    }

    /// Waits for this node's turn to check a credential of `name`, and holds it while the guard lives. For
    /// credentials that someone already past the first proof could guess many at once (second-factor codes):
    /// [`Limiter::check`] only reads the counters and a failure is counted after the check, so codes sent in
    /// parallel would all pass the check before the first failure is counted. In turn, each check sees the failures
    /// before it; across N nodes at most N run at once.
    pub(crate) async fn one_at_a_time(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.turns
            .get_with(name_hash(name), || Arc::new(tokio::sync::Mutex::new(())))
            .lock_owned()
            .await
    }

    /// Whether a refusal of `name` from `ip` is the first on this node in a minute: only those are written to the
    /// audit log, so that hammering a throttled name (a refusal costs the attacker a fraction of a millisecond)
    /// cannot flood it — one row a minute per name and address, each saying the rest were not written.
    pub(crate) fn worth_auditing(&self, ip: Option<IpAddr>, name: &str) -> bool {
        self.audited
            .entry((ip, name_hash(name)))
            .or_insert_with(|| ())
            .is_fresh()
    }

    /// Counts sign-in attempts in `store`'s database when it keeps throttling counters (shared by every node using
    /// it); otherwise keeps counting in process.
    pub fn with_store(mut self, store: Arc<dyn BrokerStore>) -> Self {
        if store.throttle_counters().is_some() {
            self.shared = Some(store);
        }
        self
    }

    /// Whether sign-in attempts are counted in the database.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    fn counters(&self) -> Option<&dyn ThrottleCounters> {
        self.shared.as_deref().and_then(|s| s.throttle_counters())
    }

    /// How long a counter matters after its last failure.
    fn idle_secs(s: &ThrottleSettings) -> u64 {
        let bucket = u64::from(s.address_refill_secs.max(1)) * u64::from(s.address_burst);
        u64::from(s.forget_after_secs.max(s.max_delay_secs).max(3600)) + bucket
    }

    fn step(&self, now: Timestamp) -> FailureStep {
        let s = &self.settings;
        let interval = i64::from(s.address_refill_secs.max(1));
        FailureStep {
            now,
            interval,
            tolerance: interval * i64::from(s.address_burst.saturating_sub(1)),
            forget_after: i64::from(s.forget_after_secs),
            expires_at: now.plus_secs(i64::try_from(Self::idle_secs(s)).unwrap_or(i64::MAX / 4)),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    /// The keys an attempt touches: account, pair, address, network (those that apply).
    fn keys(attempt: &Attempt<'_>) -> Vec<Key> {
        let name = name_hash(attempt.account);
        let mut keys = vec![Key::Account(name)];
        if let Some(ip) = attempt.ip {
            keys.push(Key::Pair(name, ip));
            keys.push(Key::Address(ip));
            if let Some(net) = network_of(ip) {
                keys.push(Key::Network(net));
            }
        }
        keys
    }

    /// Decides whether an attempt may go on to check its credential, before it is checked: `Some` when it must
    /// wait. Spends nothing: a failure spends (see [`Limiter::failed`]); a refused attempt counts as no failure.
    pub async fn check(&self, attempt: &Attempt<'_>, now: Timestamp) -> Result<Option<Throttled>, StorageError> {
        let keys = Self::keys(attempt);
        let values: Vec<(Key, CounterValues)> = match self.counters() {
            Some(db) => {
                let stored: Vec<CounterKey> = keys.iter().map(Key::stored).collect();
                let found = db.counters(&stored).await?;
                keys.into_iter()
                    .zip(stored)
                    .filter_map(|(k, sk)| found.iter().find(|r| r.key == sk).map(|r| (k, r.values)))
                    .collect()
            }
            None => keys
                .into_iter()
                .filter_map(|k| self.memory.peek(&k).map(|v| (k, v)))
                .collect(),
        };
        Ok(values.iter().find_map(|(k, v)| self.verdict(k.kind(), v, now).err()))
    }

    /// Whether one counter refuses an attempt now.
    fn verdict(&self, kind: CounterKind, v: &CounterValues, now: Timestamp) -> Result<(), Throttled> {
        let s = &self.settings;
        match kind {
            CounterKind::Account => {
                let delayed = self.refuse_if_delayed(v, s.account_free_failures, ThrottleLayer::Account, now);
                if v.hour_failures >= i64::from(s.account_failures_per_hour) && now.0 - v.hour_start < 3600 {
                    // Both may hold it back: the longer wait is the true `Retry-After`.
                    let hourly = throttled(ThrottleLayer::Hourly, v.hour_start + 3600 - now.0);
                    return Err(match delayed {
                        Err(d) if d.retry_after_secs > hourly.retry_after_secs => d,
                        _ => hourly,
                    });
                }
                delayed
            }
            CounterKind::Pair => self.refuse_if_delayed(v, s.pair_free_failures, ThrottleLayer::Pair, now),
            _ => {
                let layer = if kind == CounterKind::Network {
                    ThrottleLayer::Network
                } else {
                    ThrottleLayer::Address
                };
                let step = self.step(now);
                let ahead = v.tat.max(now.0) - now.0;
                if ahead > step.tolerance {
                    return Err(throttled(layer, ahead - step.tolerance));
                }
                Ok(())
            }
        }
    }

    fn refuse_if_delayed(
        &self,
        v: &CounterValues,
        free: u32,
        layer: ThrottleLayer,
        now: Timestamp,
    ) -> Result<(), Throttled> {
        if now.0 - v.last_failure >= i64::from(self.settings.forget_after_secs) {
            return Ok(());
        }
        let until = v.last_failure + self.delay_after(v.failures, free);
        if until > now.0 {
            return Err(throttled(layer, until - now.0));
        }
        Ok(())
    }

    /// The delay after `failures` failures with `free` of them allowed: none within the allowance, then the first
    /// delay, doubling, capped.
    fn delay_after(&self, failures: i64, free: u32) -> i64 {
        let s = &self.settings;
        let over = failures - i64::from(free);
        if over <= 0 {
            return 0;
        }
        let shift = u32::try_from(over - 1).unwrap_or(u32::MAX).min(32);
        let doubled = u64::from(s.first_delay_secs).saturating_mul(1u64 << shift);
        i64::try_from(doubled.min(u64::from(s.max_delay_secs))).unwrap_or(i64::MAX)
    }

    /// Records a failed credential check (a wrong password, an unknown name, a disabled account alike).
    pub async fn failed(&self, attempt: &Attempt<'_>, now: Timestamp) -> Result<(), StorageError> {
        let step = self.step(now);
        let keys = Self::keys(attempt);
        match self.counters() {
            Some(db) => {
                let stored: Vec<CounterKey> = keys.iter().map(Key::stored).collect();
                db.count_failure(&stored, &step).await
            }
            None => {
                for key in keys {
                    self.memory.fail(key, &step);
                }
                Ok(())
            }
        }
    }

    /// Records a successful sign-in: the pair starts over; the account's record stays (someone who knows one
    /// password of a shared machine must not wipe the account's history).
    pub async fn succeeded(&self, attempt: &Attempt<'_>) -> Result<(), StorageError> {
        let Some(ip) = attempt.ip else { return Ok(()) };
        let pair = Key::Pair(name_hash(attempt.account), ip);
        match self.counters() {
            Some(db) => db.forget_counters(&[pair.stored()]).await.map(|_| ()),
            None => {
                self.memory.pairs.invalidate(&pair);
                Ok(())
            }
        }
    }

    /// Lifts every delay of an account name (`source:canonical name`), an operator's decision: its failures and
    /// those of its pairs are forgotten. Returns how many counters were.
    pub async fn lift(&self, account: &str) -> Result<u64, StorageError> {
        let name = name_hash(account);
        if let Some(db) = self.counters() {
            return db.forget_name(&crate::secret::hex_of(&name)).await;
        }
        let mut n = u64::from(self.memory.accounts.contains_key(&Key::Account(name)));
        self.memory.accounts.invalidate(&Key::Account(name));
        // invalidate_entries_if needs support enabled at build time; a scan of the pairs is enough for an
        // operator's occasional command.
        for (k, _) in self.memory.pairs.iter() {
            if matches!(&*k, Key::Pair(a, _) if *a == name) {
                self.memory.pairs.invalidate(&*k);
                n += 1;
            }
        }
        Ok(n)
    }

    /// The counters that counted a failure in the last `forget_after_secs`, at most `limit`, most recent first,
    /// with whether each refuses attempts now.
    pub async fn current(&self, now: Timestamp, limit: u32) -> Result<Vec<ThrottleEntry>, StorageError> {
        let since = now.plus_secs(-i64::try_from(Self::idle_secs(&self.settings)).unwrap_or(i64::MAX / 4));
        let records: Vec<CounterRecord> = match self.counters() {
            Some(db) => db.recent_counters(since, limit).await?,
            None => {
                let mut all: Vec<CounterRecord> = [&self.memory.accounts, &self.memory.pairs, &self.memory.buckets]
                    .into_iter()
                    .flat_map(|c| c.iter())
                    .map(|(k, v)| CounterRecord {
                        key: k.stored(),
                        values: *v.lock().unwrap_or_else(PoisonError::into_inner),
                    })
                    .collect();
                all.sort_by_key(|r| std::cmp::Reverse(r.values.last_failure.max(r.values.tat)));
                all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                all
            }
        };
        let step = self.step(now);
        Ok(records
            .into_iter()
            .map(|r| {
                let refusing = self.verdict(r.key.kind, &r.values, now).err();
                let layer = match r.key.kind {
                    CounterKind::Address => ThrottleLayer::Address,
                    CounterKind::Network => ThrottleLayer::Network,
                    CounterKind::Pair => ThrottleLayer::Pair,
                    _ => ThrottleLayer::Account,
                };
                let failures = if r.key.kind.is_bucket() {
                    // Attempts not yet earned back.
                    {
                        let interval = step.interval.max(1);
                        ((r.values.tat - now.0).max(0) + interval - 1) / interval
                    }
                } else {
                    r.values.failures
                };
                ThrottleEntry {
                    layer,
                    name_hash: Some(r.key.name).filter(|n| !n.is_empty()),
                    address: Some(r.key.address).filter(|a| !a.is_empty()),
                    failures,
                    refusing,
                }
            })
            .collect())
    }

    /// For a credential checked on every request (a bearer token): whether `ip` may present one now. Spends
    /// nothing; [`Limiter::address_failed`] spends when the credential turns out wrong, so valid tokens are never
    /// slowed by their own use, and guessing them is. In process, per node (see the module's documentation).
    pub fn address_blocked(&self, ip: IpAddr, now: Timestamp) -> Option<Throttled> {
        // Looking without spending creates nothing: an address that never failed costs no memory.
        let keys = [Some(Key::Address(ip)), network_of(ip).map(Key::Network)];
        keys.iter()
            .flatten()
            .find_map(|k| self.memory.peek(k).and_then(|v| self.verdict(k.kind(), &v, now).err()))
    }

    /// Spends one attempt of `ip`'s buckets (in process) for a credential that failed (an unknown bearer token).
    pub fn address_failed(&self, ip: IpAddr, now: Timestamp) {
        let step = self.step(now);
        self.memory.fail(Key::Address(ip), &step);
        if let Some(net) = network_of(ip) {
            self.memory.fail(Key::Network(net), &step);
        }
    }
}

fn throttled(layer: ThrottleLayer, secs: i64) -> Throttled {
    Throttled {
        layer,
        retry_after_secs: u32::try_from(secs.max(1)).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn at(secs: i64) -> Timestamp {
        Timestamp(T0 + secs)
    }

    fn attempt<'a>(account: &'a str, ip: &str) -> Attempt<'a> {
        Attempt {
            account,
            ip: Some(ip.parse().expect("address")),
        }
    }

    /// Plenty of address allowance, so that only the failure layers speak.
    /// The limiter's answer, with a store error failing the test.
    async fn check(l: &Limiter, a: &Attempt<'_>, now: Timestamp) -> Result<(), Throttled> {
        match l.check(a, now).await.expect("counters") {
            None => Ok(()),
            Some(t) => Err(t),
        }
    }

    fn only_failures() -> ThrottleSettings {
        ThrottleSettings {
            address_burst: 10_000,
            ..ThrottleSettings::default()
        }
    }

    #[tokio::test]
    async fn pair_delays_double_up_to_the_cap_and_end() {
        let l = Limiter::new(only_failures());
        let a = attempt("local:ann", "192.0.2.1");
        // Five failures are free, and so is the attempt after them; the sixth failure brings the first delay.
        for i in 0..6 {
            assert_eq!(check(&l, &a, at(i)).await, Ok(()), "attempt {i} is free");
            l.failed(&a, at(i)).await.expect("counted");
        }
        let refused = check(&l, &a, at(5)).await.expect_err("the seventh attempt waits");
        assert_eq!(refused.layer, ThrottleLayer::Pair);
        assert_eq!(refused.retry_after_secs, 2);
        assert_eq!(check(&l, &a, at(7)).await, Ok(()), "after the delay");
        l.failed(&a, at(7)).await.expect("counted");
        assert_eq!(
            check(&l, &a, at(8)).await.map_err(|t| t.retry_after_secs),
            Err(3),
            "4 s after the 7th failure"
        );
        // The delay never exceeds the cap, however many failures.
        let mut now = 10;
        for _ in 0..40 {
            while check(&l, &a, at(now)).await.is_err() {
                now += 1;
            }
            l.failed(&a, at(now)).await.expect("counted");
        }
        let wait = check(&l, &a, at(now)).await.expect_err("delayed").retry_after_secs;
        assert!(wait <= 900 && wait > 400, "{wait}");
        // Never a permanent lockout: after the cap, an attempt may be made.
        assert!(check(&l, &a, at(now + 900)).await.is_ok());
    }

    #[tokio::test]
    async fn success_resets_the_pair_not_the_account() {
        let l = Limiter::new(ThrottleSettings {
            pair_free_failures: 2,
            account_free_failures: 3,
            ..only_failures()
        });
        let a = attempt("local:ann", "192.0.2.1");
        l.failed(&a, at(0)).await.expect("counted");
        l.failed(&a, at(0)).await.expect("counted");
        l.failed(&a, at(0)).await.expect("counted");
        assert_eq!(
            check(&l, &a, at(0)).await.map_err(|t| t.layer),
            Err(ThrottleLayer::Pair)
        );
        l.succeeded(&a).await.expect("counted");
        assert_eq!(check(&l, &a, at(0)).await, Ok(()), "the pair starts over");
        l.failed(&a, at(0)).await.expect("counted");
        assert_eq!(
            check(&l, &a, at(0)).await.map_err(|t| t.layer),
            Err(ThrottleLayer::Account),
            "the account kept its four failures"
        );
    }

    #[tokio::test]
    async fn one_account_from_many_addresses_hits_the_account_layer_and_the_hourly_ceiling() {
        let l = Limiter::new(ThrottleSettings {
            max_delay_secs: 1,
            first_delay_secs: 1,
            ..only_failures()
        });
        let mut now = 0;
        let mut hourly = None;
        for i in 0..200u32 {
            let ip = format!("198.51.{}.{}", i / 250, i % 250 + 1);
            let a = attempt("local:ann", &ip);
            match check(&l, &a, at(now)).await {
                Ok(()) => l.failed(&a, at(now)).await.expect("counted"),
                Err(t) if t.layer == ThrottleLayer::Hourly => {
                    hourly = Some((i, t));
                    break;
                }
                Err(t) => {
                    assert_eq!(t.layer, ThrottleLayer::Account, "{t:?}");
                    now += i64::from(t.retry_after_secs);
                }
            }
        }
        let (tried, t) = hourly.expect("the hourly ceiling");
        assert!(tried >= 100, "{tried}");
        assert!(t.retry_after_secs <= 3600);
        // Other accounts are not affected.
        assert_eq!(check(&l, &attempt("local:bob", "198.51.0.1"), at(now)).await, Ok(()));
    }

    #[tokio::test]
    async fn unknown_and_known_names_are_throttled_alike() {
        let l = Limiter::new(only_failures());
        for name in ["local:ann", "local:nobody-by-this-name"] {
            let a = attempt(name, "192.0.2.9");
            for _ in 0..6 {
                l.failed(&a, at(0)).await.expect("counted");
            }
            assert_eq!(
                check(&l, &a, at(0)).await.map_err(|t| (t.layer, t.retry_after_secs)),
                Err((ThrottleLayer::Pair, 2))
            );
        }
    }

    #[tokio::test]
    async fn an_address_bucket_caps_guesses_across_accounts_and_refills() {
        let l = Limiter::new(ThrottleSettings {
            address_burst: 3,
            address_refill_secs: 10,
            ..ThrottleSettings::default()
        });
        // Successes spend nothing.
        for _ in 0..10 {
            assert_eq!(check(&l, &attempt("local:a", "203.0.113.5"), at(0)).await, Ok(()));
        }
        for (i, name) in ["local:a", "local:b", "local:c"].iter().enumerate() {
            assert_eq!(check(&l, &attempt(name, "203.0.113.5"), at(0)).await, Ok(()), "{i}");
            l.failed(&attempt(name, "203.0.113.5"), at(0)).await.expect("counted");
        }
        let t = check(&l, &attempt("local:d", "203.0.113.5"), at(0))
            .await
            .expect_err("burst spent");
        assert_eq!((t.layer, t.retry_after_secs), (ThrottleLayer::Address, 10));
        assert_eq!(
            check(&l, &attempt("local:d", "203.0.113.6"), at(0)).await,
            Ok(()),
            "another address"
        );
        assert_eq!(
            check(&l, &attempt("local:d", "203.0.113.5"), at(10)).await,
            Ok(()),
            "one earned back"
        );
        l.failed(&attempt("local:d", "203.0.113.5"), at(10))
            .await
            .expect("counted");
        assert!(check(&l, &attempt("local:e", "203.0.113.5"), at(10)).await.is_err());
    }

    #[tokio::test]
    async fn ipv6_addresses_share_their_64() {
        let l = Limiter::new(ThrottleSettings {
            address_burst: 2,
            address_refill_secs: 60,
            ..ThrottleSettings::default()
        });
        l.failed(&attempt("local:a", "2001:db8:1:2::1"), at(0))
            .await
            .expect("counted");
        l.failed(&attempt("local:b", "2001:db8:1:2::2"), at(0))
            .await
            .expect("counted");
        let t = check(&l, &attempt("local:a", "2001:db8:1:2::3"), at(0))
            .await
            .expect_err("the /64 is spent");
        assert_eq!(t.layer, ThrottleLayer::Network);
        assert!(
            check(&l, &attempt("local:a", "2001:db8:1:3::1"), at(0)).await.is_ok(),
            "another /64"
        );
    }

    #[tokio::test]
    async fn failures_are_forgotten_and_an_operator_can_lift_a_delay() {
        let l = Limiter::new(only_failures());
        let a = attempt("local:ann", "192.0.2.1");
        for _ in 0..12 {
            l.failed(&a, at(0)).await.expect("counted");
        }
        assert!(check(&l, &a, at(1)).await.is_err());
        assert!(
            check(&l, &a, at(3600)).await.is_ok(),
            "forgotten after an hour without failures"
        );
        for _ in 0..12 {
            l.failed(&a, at(4000)).await.expect("counted");
        }
        assert!(check(&l, &a, at(4001)).await.is_err());
        l.lift("local:ann").await.expect("lifted");
        assert_eq!(check(&l, &a, at(4001)).await, Ok(()));
    }

    #[tokio::test]
    async fn memory_is_bounded() {
        let l = Limiter::new(ThrottleSettings {
            max_tracked: 1_000,
            ..ThrottleSettings::default()
        });
        for i in 0..20_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let a = Attempt {
                account: "local:x",
                ip: Some(ip),
            };
            l.failed(&a, at(0)).await.expect("counted");
        }
        for cache in [&l.memory.buckets, &l.memory.pairs, &l.memory.accounts] {
            cache.run_pending_tasks();
            assert!(cache.entry_count() <= 1_100, "{}", cache.entry_count());
        }
        assert!(l.memory.buckets.entry_count() >= 500, "the cache was used");
    }

    #[tokio::test]
    async fn bearer_failures_spend_the_address_and_looking_costs_nothing() {
        let l = Limiter::new(ThrottleSettings {
            address_burst: 3,
            address_refill_secs: 10,
            ..ThrottleSettings::default()
        });
        let ip: IpAddr = "203.0.113.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..100 {
            assert_eq!(l.address_blocked(ip, at(0)), None, "looking spends nothing");
        }
        assert_eq!(l.memory.buckets.entry_count(), 0);
        for _ in 0..3 {
            l.address_failed(ip, at(0));
        }
        let t = l.address_blocked(ip, at(0)).expect("three failures spent the burst");
        assert_eq!((t.layer, t.retry_after_secs), (ThrottleLayer::Address, 10));
        assert_eq!(l.address_blocked(ip, at(10)), None, "one earned back");
    }

    #[tokio::test]
    async fn a_flood_of_addresses_does_not_evict_the_account_being_guessed() {
        let l = Limiter::new(ThrottleSettings {
            max_tracked: 1_000,
            address_burst: 10_000,
            ..ThrottleSettings::default()
        });
        let a = attempt("local:ann", "192.0.2.1");
        for _ in 0..12 {
            l.failed(&a, at(0)).await.expect("counted");
        }
        // Many one-off attempts from other addresses, at other names.
        for i in 0..20_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let a = Attempt {
                account: "local:other",
                ip: Some(ip),
            };
            l.failed(&a, at(0)).await.expect("counted");
        }
        l.memory.buckets.run_pending_tasks();
        l.memory.pairs.run_pending_tasks();
        let t = check(&l, &attempt("local:ann", "198.51.100.7"), at(1))
            .await
            .expect_err("still delayed");
        assert_eq!(t.layer, ThrottleLayer::Account);
    }
}
