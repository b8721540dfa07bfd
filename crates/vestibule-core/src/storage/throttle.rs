//! Throttling counters kept in the database, so that every node sharing it enforces one limit (issue #11).
//!
//! The broker's limiter decides; the store only keeps numbers and applies one failure to them atomically (the
//! arithmetic runs inside the `UPDATE`, so two nodes counting at once lose nothing). A store that cannot keep them
//! returns `None` from [`BrokerStore::throttle_counters`](super::BrokerStore::throttle_counters) and the limiter
//! counts in process.

use async_trait::async_trait;

use super::StorageError;
use crate::Timestamp;

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CounterKind {
    /// Failed attempts from one client address: a GCRA bucket.
    Address,
    /// Failed attempts from one IPv6 /64: a GCRA bucket.
    Network,
    /// Failed attempts at one account name, from anywhere, with an hourly count.
    Account,
    /// Failed attempts at one account name from one address.
    Pair,
}

impl CounterKind {
    /// The name kept in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CounterKind::Address => "address",
            CounterKind::Network => "network",
            CounterKind::Account => "account",
            CounterKind::Pair => "pair",
        }
    }

    /// The kind named `s` in the database.
    pub fn parse(s: &str) -> Option<CounterKind> {
        Some(match s {
            "address" => CounterKind::Address,
            "network" => CounterKind::Network,
            "account" => CounterKind::Account,
            "pair" => CounterKind::Pair,
            _ => return None,
        })
    }

    /// Whether this counter is a bucket (spent by time) rather than a failure count.
    pub fn is_bucket(self) -> bool {
        matches!(self, CounterKind::Address | CounterKind::Network)
    }
}

/// One counter's key. `name` is the hash of the account name (never the name as typed: people type passwords into
/// the name field), empty for buckets; `address` is the client address or `/64`, empty for account counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// What it counts.
    pub kind: CounterKind,
    /// The account name's hash, or empty.
    pub name: String,
    /// The address or network, or empty.
    pub address: String,
}

/// The numbers kept under a key (all times in whole seconds since the epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValues {
    /// Buckets: the theoretical arrival time of the next attempt (GCRA).
    pub tat: i64,
    /// Failures since the counter was last forgotten.
    pub failures: i64,
    /// The last failure.
    pub last_failure: i64,
    /// Accounts: the start of the current hour window.
    pub hour_start: i64,
    /// Accounts: failures in the current hour window.
    pub hour_failures: i64,
}

/// A counter as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRecord {
    /// Its key.
    pub key: CounterKey,
    /// Its numbers.
    pub values: CounterValues,
}

/// How one failure changes the counters, the same for every key of an attempt.
///
/// Failure counts: `failures` starts over at 1 when the last failure is `forget_after` seconds old or more, else
/// grows by 1; `last_failure` becomes `now`; accounts' hour window starts over at `now` when an hour old. Buckets:
/// when `max(tat, now) - now <= tolerance` there is room and `tat` becomes `max(tat, now) + interval`; a full
/// bucket is left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureStep {
    /// The time of the failure.
    pub now: Timestamp,
    /// Seconds a bucket earns one attempt back in.
    pub interval: i64,
    /// How far ahead of `now` a bucket's `tat` may run before it is full.
    pub tolerance: i64,
    /// Seconds without a failure after which a count starts over.
    pub forget_after: i64,
    /// When the touched counters may be deleted.
    pub expires_at: Timestamp,
}

/// The database side of the limiter.
#[async_trait]
pub trait ThrottleCounters: Send + Sync {
    /// The counters kept under `keys` (missing ones were never spent, or expired).
    async fn counters(&self, keys: &[CounterKey]) -> Result<Vec<CounterRecord>, StorageError>;

    /// Applies one failure to each of `keys` (distinct), creating the missing ones, atomically per key.
    async fn count_failure(&self, keys: &[CounterKey], step: &FailureStep) -> Result<(), StorageError>;

    /// Deletes the counters under `keys`.
    async fn forget_counters(&self, keys: &[CounterKey]) -> Result<u64, StorageError>;

    /// Deletes the account and pair counters of the name with this hash (an operator lifting its delays).
    async fn forget_name(&self, name: &str) -> Result<u64, StorageError>;

    /// Counters that counted a failure at or after `since` (an operator's listing), at most `limit`, most recent
    /// first.
    async fn recent_counters(&self, since: Timestamp, limit: u32) -> Result<Vec<CounterRecord>, StorageError>;

    /// Deletes counters that expired before `now`.
    async fn purge_counters(&self, now: Timestamp) -> Result<u64, StorageError>;
}
