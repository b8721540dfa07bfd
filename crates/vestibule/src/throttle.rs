//! Throttling of credential checks, decided before a credential is checked (issue #11, first part: the decision
//! logic and its in-process state; wiring into the sign-in paths, the shared PostgreSQL counters, the 429 answer
//! and the operator commands come next).
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
//! Time is whole seconds from the broker's clock (tests inject one), so the same arithmetic can run in SQL for
//! the counters shared between nodes. The GCRA is a few lines of integer arithmetic over one timestamp per key;
//! `governor` does the same in process but reads its own clock and keeps its state in its own types, which the
//! shared (database) variant could not reuse.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moka::sync::Cache;
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
    /// Keys kept in memory at most, in each of the three kinds (address buckets, (name, address) pairs, names);
    /// rarely used keys go first. Bounds memory whatever the number of addresses: about 330 bytes a key.
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Network([u8; 8]),
    Account(String),
    Pair(String, IpAddr),
}

/// What is kept per key: a GCRA arrival time for buckets, failure counts for accounts and pairs.
#[derive(Debug, Default)]
struct Entry {
    /// Theoretical arrival time of the next attempt (buckets).
    tat: i64,
    /// Failures since the key was last forgotten.
    failures: u32,
    /// The last failure.
    last_failure: i64,
    /// Start of the current hour window, and the failures in it.
    hour_start: i64,
    hour_failures: u32,
}

/// The in-process limiter. Cheap to share (clone the `Arc` it lives in).
///
/// Three bounded caches, so that one kind of key cannot push out another: a flood from a million addresses (each
/// a bucket, and a pair with the account it tries) must not evict the record of the account it is guessing.
pub struct Limiter {
    settings: ThrottleSettings,
    buckets: Cache<Key, Arc<Mutex<Entry>>>,
    pairs: Cache<Key, Arc<Mutex<Entry>>>,
    accounts: Cache<Key, Arc<Mutex<Entry>>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("settings", &self.settings)
            .field("buckets", &self.buckets.entry_count())
            .field("pairs", &self.pairs.entry_count())
            .field("accounts", &self.accounts.entry_count())
            .finish()
    }
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

impl Limiter {
    /// A limiter with these settings.
    pub fn new(settings: ThrottleSettings) -> Self {
        let idle = u64::from(settings.forget_after_secs.max(settings.max_delay_secs).max(3600));
        let cache = || {
            Cache::builder()
                .max_capacity(settings.max_tracked)
                .time_to_idle(Duration::from_secs(idle))
                .build()
        };
        Limiter {
            settings,
            buckets: cache(),
            pairs: cache(),
            accounts: cache(),
        }
    }

    fn cache(&self, key: &Key) -> &Cache<Key, Arc<Mutex<Entry>>> {
        match key {
            Key::Address(_) | Key::Network(_) => &self.buckets,
            Key::Pair(..) => &self.pairs,
            Key::Account(_) => &self.accounts,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    fn entry(&self, key: Key) -> Arc<Mutex<Entry>> {
        self.cache(&key)
            .get_with(key.clone(), || Arc::new(Mutex::new(Entry::default())))
    }

    fn peek(&self, key: &Key) -> Option<Arc<Mutex<Entry>>> {
        self.cache(key).get(key)
    }

    /// Decides whether an attempt may go on to check its credential, before it is checked. Spends nothing: a
    /// failure spends (see [`Limiter::failed`]); a refused attempt counts as no failure.
    pub fn check(&self, attempt: &Attempt<'_>, now: Timestamp) -> Result<(), Throttled> {
        let s = &self.settings;
        // Failures first: a throttled account must not spend the address's allowance.
        if let Some(e) = self.peek(&Key::Account(attempt.account.to_owned())) {
            let e = e.lock().unwrap_or_else(PoisonError::into_inner);
            self.refuse_if_delayed(&e, s.account_free_failures, ThrottleLayer::Account, now)?;
            if e.hour_failures >= s.account_failures_per_hour && now.0 - e.hour_start < 3600 {
                return Err(throttled(ThrottleLayer::Hourly, e.hour_start + 3600 - now.0));
            }
        }
        if let Some(ip) = attempt.ip {
            if let Some(e) = self.peek(&Key::Pair(attempt.account.to_owned(), ip)) {
                let e = e.lock().unwrap_or_else(PoisonError::into_inner);
                self.refuse_if_delayed(&e, s.pair_free_failures, ThrottleLayer::Pair, now)?;
            }
            // Look only: the buckets are spent by failures (see `failed`), so a busy NAT or proxy address signing many
            // people in correctly is never slowed, and guessing from it is.
            self.draw(ip, now, false)?;
        }
        Ok(())
    }

    /// The address buckets of `ip` (and of its /64): refused when one has no room; otherwise one attempt is drawn
    /// from each when `spend` (all must have room before any is drawn from).
    fn draw(&self, ip: IpAddr, now: Timestamp, spend: bool) -> Result<(), Throttled> {
        let s = &self.settings;
        let mut buckets = vec![(Key::Address(ip), ThrottleLayer::Address)];
        if let Some(net) = network_of(ip) {
            buckets.push((Key::Network(net), ThrottleLayer::Network));
        }
        let interval = i64::from(s.address_refill_secs.max(1));
        let tolerance = interval * i64::from(s.address_burst.saturating_sub(1));
        let mut entries = Vec::with_capacity(buckets.len());
        for (key, layer) in buckets {
            // Looking without spending creates nothing: an address that never failed costs no memory.
            let entry = if spend { Some(self.entry(key)) } else { self.peek(&key) };
            if let Some(e) = entry {
                let tat = e.lock().unwrap_or_else(PoisonError::into_inner).tat.max(now.0);
                if tat - now.0 > tolerance {
                    return Err(throttled(layer, tat - now.0 - tolerance));
                }
                entries.push(e);
            }
        }
        if spend {
            for e in &entries {
                let mut e = e.lock().unwrap_or_else(PoisonError::into_inner);
                e.tat = e.tat.max(now.0) + interval;
            }
        }
        Ok(())
    }

    /// For a credential checked on every request (a bearer token): whether `ip` may present one now. Spends
    /// nothing; [`Limiter::address_failed`] spends when the credential turns out wrong, so valid tokens are never
    /// slowed by their own use, and guessing them is.
    pub fn address_blocked(&self, ip: IpAddr, now: Timestamp) -> Option<Throttled> {
        self.draw(ip, now, false).err()
    }

    /// Spends one attempt of `ip`'s buckets for a credential that failed (an unknown bearer token).
    pub fn address_failed(&self, ip: IpAddr, now: Timestamp) {
        // Refused or not, the failure is recorded in the buckets that had room; a full bucket stays full.
        let _ = self.draw(ip, now, true);
    }

    fn refuse_if_delayed(&self, e: &Entry, free: u32, layer: ThrottleLayer, now: Timestamp) -> Result<(), Throttled> {
        if now.0 - e.last_failure >= i64::from(self.settings.forget_after_secs) {
            return Ok(());
        }
        let until = e.last_failure + self.delay_after(e.failures, free);
        if until > now.0 {
            return Err(throttled(layer, until - now.0));
        }
        Ok(())
    }

    /// The delay after `failures` failures with `free` of them allowed: none within the allowance, then the first
    /// delay, doubling, capped.
    fn delay_after(&self, failures: u32, free: u32) -> i64 {
        let s = &self.settings;
        let Some(over) = failures.checked_sub(free).filter(|o| *o > 0) else {
            return 0;
        };
        let doubled = u64::from(s.first_delay_secs).saturating_mul(1u64 << (over - 1).min(32));
        i64::try_from(doubled.min(u64::from(s.max_delay_secs))).unwrap_or(i64::MAX)
    }

    /// Records a failed credential check (a wrong password, an unknown name, a disabled account alike).
    pub fn failed(&self, attempt: &Attempt<'_>, now: Timestamp) {
        let forget = i64::from(self.settings.forget_after_secs);
        let count = |key: Key, hourly: bool| {
            let e = self.entry(key);
            let mut e = e.lock().unwrap_or_else(PoisonError::into_inner);
            if now.0 - e.last_failure >= forget {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last_failure = now.0;
            if hourly {
                if now.0 - e.hour_start >= 3600 {
                    e.hour_start = now.0;
                    e.hour_failures = 0;
                }
                e.hour_failures = e.hour_failures.saturating_add(1);
            }
        };
        count(Key::Account(attempt.account.to_owned()), true);
        if let Some(ip) = attempt.ip {
            count(Key::Pair(attempt.account.to_owned(), ip), false);
            self.address_failed(ip, now);
        }
    }

    /// Records a successful sign-in: the pair starts over; the account's record stays (someone who knows one
    /// password of a shared machine must not wipe the account's history).
    pub fn succeeded(&self, attempt: &Attempt<'_>) {
        if let Some(ip) = attempt.ip {
            self.pairs.invalidate(&Key::Pair(attempt.account.to_owned(), ip));
        }
    }

    /// Lifts every delay of an account (an operator's decision): its failures and those of its pairs are forgotten.
    pub fn lift(&self, account: &str) {
        self.accounts.invalidate(&Key::Account(account.to_owned()));
        // invalidate_entries_if needs support enabled at build time; a scan of the pairs is enough for an
        // operator's occasional command.
        for (k, _) in self.pairs.iter() {
            if matches!(&*k, Key::Pair(a, _) if a == account) {
                self.pairs.invalidate(&*k);
            }
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
    fn only_failures() -> ThrottleSettings {
        ThrottleSettings {
            address_burst: 10_000,
            ..ThrottleSettings::default()
        }
    }

    #[test]
    fn pair_delays_double_up_to_the_cap_and_end() {
        let l = Limiter::new(only_failures());
        let a = attempt("local:ann", "192.0.2.1");
        // Five failures are free, and so is the attempt after them; the sixth failure brings the first delay.
        for i in 0..6 {
            assert_eq!(l.check(&a, at(i)), Ok(()), "attempt {i} is free");
            l.failed(&a, at(i));
        }
        let refused = l.check(&a, at(5)).expect_err("the seventh attempt waits");
        assert_eq!(refused.layer, ThrottleLayer::Pair);
        assert_eq!(refused.retry_after_secs, 2);
        assert_eq!(l.check(&a, at(7)), Ok(()), "after the delay");
        l.failed(&a, at(7));
        assert_eq!(
            l.check(&a, at(8)).map_err(|t| t.retry_after_secs),
            Err(3),
            "4 s after the 7th failure"
        );
        // The delay never exceeds the cap, however many failures.
        let mut now = 10;
        for _ in 0..40 {
            while l.check(&a, at(now)).is_err() {
                now += 1;
            }
            l.failed(&a, at(now));
        }
        let wait = l.check(&a, at(now)).expect_err("delayed").retry_after_secs;
        assert!(wait <= 900 && wait > 400, "{wait}");
        // Never a permanent lockout: after the cap, an attempt may be made.
        assert!(l.check(&a, at(now + 900)).is_ok());
    }

    #[test]
    fn success_resets_the_pair_not_the_account() {
        let l = Limiter::new(ThrottleSettings {
            pair_free_failures: 2,
            account_free_failures: 3,
            ..only_failures()
        });
        let a = attempt("local:ann", "192.0.2.1");
        l.failed(&a, at(0));
        l.failed(&a, at(0));
        l.failed(&a, at(0));
        assert_eq!(l.check(&a, at(0)).map_err(|t| t.layer), Err(ThrottleLayer::Pair));
        l.succeeded(&a);
        assert_eq!(l.check(&a, at(0)), Ok(()), "the pair starts over");
        l.failed(&a, at(0));
        assert_eq!(
            l.check(&a, at(0)).map_err(|t| t.layer),
            Err(ThrottleLayer::Account),
            "the account kept its four failures"
        );
    }

    #[test]
    fn one_account_from_many_addresses_hits_the_account_layer_and_the_hourly_ceiling() {
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
            match l.check(&a, at(now)) {
                Ok(()) => l.failed(&a, at(now)),
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
        assert_eq!(l.check(&attempt("local:bob", "198.51.0.1"), at(now)), Ok(()));
    }

    #[test]
    fn unknown_and_known_names_are_throttled_alike() {
        let l = Limiter::new(only_failures());
        for name in ["local:ann", "local:nobody-by-this-name"] {
            let a = attempt(name, "192.0.2.9");
            for _ in 0..6 {
                l.failed(&a, at(0));
            }
            assert_eq!(
                l.check(&a, at(0)).map_err(|t| (t.layer, t.retry_after_secs)),
                Err((ThrottleLayer::Pair, 2))
            );
        }
    }

    #[test]
    fn an_address_bucket_caps_guesses_across_accounts_and_refills() {
        let l = Limiter::new(ThrottleSettings {
            address_burst: 3,
            address_refill_secs: 10,
            ..ThrottleSettings::default()
        });
        // Successes spend nothing.
        for _ in 0..10 {
            assert_eq!(l.check(&attempt("local:a", "203.0.113.5"), at(0)), Ok(()));
        }
        for (i, name) in ["local:a", "local:b", "local:c"].iter().enumerate() {
            assert_eq!(l.check(&attempt(name, "203.0.113.5"), at(0)), Ok(()), "{i}");
            l.failed(&attempt(name, "203.0.113.5"), at(0));
        }
        let t = l
            .check(&attempt("local:d", "203.0.113.5"), at(0))
            .expect_err("burst spent");
        assert_eq!((t.layer, t.retry_after_secs), (ThrottleLayer::Address, 10));
        assert_eq!(
            l.check(&attempt("local:d", "203.0.113.6"), at(0)),
            Ok(()),
            "another address"
        );
        assert_eq!(
            l.check(&attempt("local:d", "203.0.113.5"), at(10)),
            Ok(()),
            "one earned back"
        );
        l.failed(&attempt("local:d", "203.0.113.5"), at(10));
        assert!(l.check(&attempt("local:e", "203.0.113.5"), at(10)).is_err());
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let l = Limiter::new(ThrottleSettings {
            address_burst: 2,
            address_refill_secs: 60,
            ..ThrottleSettings::default()
        });
        l.failed(&attempt("local:a", "2001:db8:1:2::1"), at(0));
        l.failed(&attempt("local:b", "2001:db8:1:2::2"), at(0));
        let t = l
            .check(&attempt("local:a", "2001:db8:1:2::3"), at(0))
            .expect_err("the /64 is spent");
        assert_eq!(t.layer, ThrottleLayer::Network);
        assert!(
            l.check(&attempt("local:a", "2001:db8:1:3::1"), at(0)).is_ok(),
            "another /64"
        );
    }

    #[test]
    fn failures_are_forgotten_and_an_operator_can_lift_a_delay() {
        let l = Limiter::new(only_failures());
        let a = attempt("local:ann", "192.0.2.1");
        for _ in 0..12 {
            l.failed(&a, at(0));
        }
        assert!(l.check(&a, at(1)).is_err());
        assert!(
            l.check(&a, at(3600)).is_ok(),
            "forgotten after an hour without failures"
        );
        for _ in 0..12 {
            l.failed(&a, at(4000));
        }
        assert!(l.check(&a, at(4001)).is_err());
        l.lift("local:ann");
        assert_eq!(l.check(&a, at(4001)), Ok(()));
    }

    #[test]
    fn memory_is_bounded() {
        let l = Limiter::new(ThrottleSettings {
            max_tracked: 1_000,
            ..ThrottleSettings::default()
        });
        for i in 0..20_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = l.check(
                &Attempt {
                    account: "local:x",
                    ip: Some(ip),
                },
                at(0),
            );
        }
        l.buckets.run_pending_tasks();
        assert!(l.buckets.entry_count() <= 1_100, "{}", l.buckets.entry_count());
    }

    #[test]
    fn bearer_failures_spend_the_address_and_looking_costs_nothing() {
        let l = Limiter::new(ThrottleSettings {
            address_burst: 3,
            address_refill_secs: 10,
            ..ThrottleSettings::default()
        });
        let ip: IpAddr = "203.0.113.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..100 {
            assert_eq!(l.address_blocked(ip, at(0)), None, "looking spends nothing");
        }
        assert_eq!(l.buckets.entry_count(), 0);
        for _ in 0..3 {
            l.address_failed(ip, at(0));
        }
        let t = l.address_blocked(ip, at(0)).expect("three failures spent the burst");
        assert_eq!((t.layer, t.retry_after_secs), (ThrottleLayer::Address, 10));
        assert_eq!(l.address_blocked(ip, at(10)), None, "one earned back");
    }

    #[test]
    fn a_flood_of_addresses_does_not_evict_the_account_being_guessed() {
        let l = Limiter::new(ThrottleSettings {
            max_tracked: 1_000,
            address_burst: 10_000,
            ..ThrottleSettings::default()
        });
        let a = attempt("local:ann", "192.0.2.1");
        for _ in 0..12 {
            l.failed(&a, at(0));
        }
        // Many one-off attempts from other addresses, at other names.
        for i in 0..20_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = l.check(
                &Attempt {
                    account: "local:other",
                    ip: Some(ip),
                },
                at(0),
            );
        }
        l.buckets.run_pending_tasks();
        let t = l
            .check(&attempt("local:ann", "198.51.100.7"), at(1))
            .expect_err("still delayed");
        assert_eq!(t.layer, ThrottleLayer::Account);
    }
}
