//! The limiter's counters (issue #11), kept here so that every node using this database enforces one limit. One
//! failure is one statement: an upsert whose arithmetic runs in the `UPDATE`, so concurrent failures on two nodes
//! are all counted. The rules are [`FailureStep`]'s, the same as the broker's in-process counters.

use sqlx::any::AnyRow;
use sqlx::Row;
use vestibule_core::storage::{CounterKey, CounterKind, CounterRecord, CounterValues, FailureStep};
use vestibule_core::Timestamp;

use crate::{Backend, Store, StoreError};

const COLUMNS: &str = "kind, name, address, tat, failures, last_failure, hour_start, hour_failures";

/// `(kind = $a AND name = $b AND address = $c) OR ...` for `keys`, parameters from `$first` on.
fn key_filter(keys: &[CounterKey], first: usize) -> String {
    (0..keys.len())
        .map(|i| {
            let p = first + 3 * i;
            format!("(kind = ${} AND name = ${} AND address = ${})", p, p + 1, p + 2)
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

fn record(row: &AnyRow) -> Result<Option<CounterRecord>, StoreError> {
    let kind: String = row.try_get("kind")?;
    // A kind this version does not know (written by a newer node) is skipped, not an error.
    let Some(kind) = CounterKind::parse(&kind) else {
        return Ok(None);
    };
    Ok(Some(CounterRecord {
        key: CounterKey {
            kind,
            name: row.try_get("name")?,
            address: row.try_get("address")?,
        },
        values: CounterValues {
            tat: row.try_get("tat")?,
            failures: row.try_get("failures")?,
            last_failure: row.try_get("last_failure")?,
            hour_start: row.try_get("hour_start")?,
            hour_failures: row.try_get("hour_failures")?,
        },
    }))
}

fn records(rows: &[AnyRow]) -> Result<Vec<CounterRecord>, StoreError> {
    Ok(rows
        .iter()
        .map(record)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect())
}

impl Store {
    /// The counters kept under `keys`.
    pub async fn counters(&self, keys: &[CounterKey]) -> Result<Vec<CounterRecord>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {COLUMNS} FROM throttle_counters WHERE {}", key_filter(keys, 1));
        let mut q = sqlx::query(&sql);
        for k in keys {
            q = q.bind(k.kind.as_str()).bind(&k.name).bind(&k.address);
        }
        records(&q.fetch_all(&self.pool).await?)
    }

    /// Applies one failure to each of `keys`, in one statement.
    pub async fn count_failure(&self, keys: &[CounterKey], step: &FailureStep) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        // $1 now, $2 interval, $3 tolerance, $4 forget_after, $5 expires_at; then kind, name, address per key.
        // A new row is the result of one failure on an empty counter: a bucket with tat = now + interval, a count
        // of 1 (accounts: in an hour window starting now).
        let values = (0..keys.len())
            .map(|i| {
                let p = 6 + 3 * i;
                format!(
                    "(${k}, ${n}, ${a}, \
                     CASE WHEN ${k} IN ('address', 'network') THEN $1 + $2 ELSE 0 END, \
                     CASE WHEN ${k} IN ('address', 'network') THEN 0 ELSE 1 END, \
                     CASE WHEN ${k} IN ('address', 'network') THEN 0 ELSE $1 END, \
                     CASE WHEN ${k} = 'account' THEN $1 ELSE 0 END, \
                     CASE WHEN ${k} = 'account' THEN 1 ELSE 0 END, \
                     $1, $5)",
                    k = p,
                    n = p + 1,
                    a = p + 2
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        // In an UPDATE every right-hand side reads the row as it was, so the CASEs below see the old values.
        let sql = format!(
            "INSERT INTO throttle_counters AS t ({COLUMNS}, touched_at, expires_at) VALUES {values} \
             ON CONFLICT (kind, name, address) DO UPDATE SET \
             tat = CASE WHEN t.kind NOT IN ('address', 'network') THEN t.tat \
                   WHEN (CASE WHEN t.tat > $1 THEN t.tat ELSE $1 END) - $1 > $3 THEN t.tat \
                   ELSE (CASE WHEN t.tat > $1 THEN t.tat ELSE $1 END) + $2 END, \
             failures = CASE WHEN t.kind IN ('address', 'network') THEN t.failures \
                   WHEN $1 - t.last_failure >= $4 THEN 1 ELSE t.failures + 1 END, \
             last_failure = CASE WHEN t.kind IN ('address', 'network') THEN t.last_failure ELSE $1 END, \
             hour_start = CASE WHEN t.kind <> 'account' THEN t.hour_start \
                   WHEN $1 - t.hour_start >= 3600 THEN $1 ELSE t.hour_start END, \
             hour_failures = CASE WHEN t.kind <> 'account' THEN t.hour_failures \
                   WHEN $1 - t.hour_start >= 3600 THEN 1 ELSE t.hour_failures + 1 END, \
             touched_at = $1, \
             expires_at = CASE WHEN t.expires_at > $5 THEN t.expires_at ELSE $5 END"
        );
        let mut q = sqlx::query(&sql)
            .bind(step.now.0)
            .bind(step.interval)
            .bind(step.tolerance)
            .bind(step.forget_after)
            .bind(step.expires_at.0);
        for k in keys {
            q = q.bind(k.kind.as_str()).bind(&k.name).bind(&k.address);
        }
        if self.backend != Backend::Postgres {
            q.execute(&self.pool).await?;
            return Ok(());
        }
        // A counter is worth less than a commit's flush to disk: without waiting for it a failure costs a few round
        // trips instead of an fsync (measured: 3.3 ms → see BENCHMARKS.md). A database crash may lose the last
        // fraction of a second of failures, never a session or an audit row (this setting is for this
        // transaction only).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the counters under `keys`.
    pub async fn forget_counters(&self, keys: &[CounterKey]) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let sql = format!("DELETE FROM throttle_counters WHERE {}", key_filter(keys, 1));
        let mut q = sqlx::query(&sql);
        for k in keys {
            q = q.bind(k.kind.as_str()).bind(&k.name).bind(&k.address);
        }
        Ok(q.execute(&self.pool).await?.rows_affected())
    }

    /// Deletes the account and pair counters of the name with this hash.
    pub async fn forget_name(&self, name: &str) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM throttle_counters WHERE name = $1 AND kind IN ('account', 'pair')")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }

    /// Counters that counted a failure at or after `since`, most recent first.
    pub async fn recent_counters(&self, since: Timestamp, limit: u32) -> Result<Vec<CounterRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM throttle_counters WHERE touched_at >= $1 \
             ORDER BY touched_at DESC, kind, name, address LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(since.0)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        records(&rows)
    }

    /// Deletes counters that expired before `now`.
    pub async fn purge_counters(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM throttle_counters WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected())
    }
}
