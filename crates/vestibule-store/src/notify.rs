//! Cross-node session revocation: on PostgreSQL, every revocation is announced with NOTIFY so that other nodes
//! drop the session from their in-process caches at once. SQLite is single-node: nothing to announce.

use sqlx::postgres::PgListener;

use crate::{Backend, Store, StoreError};

/// The channel revoked session hashes are announced on.
pub const REVOCATION_CHANNEL: &str = "vestibule_session_revoked";

/// Receives the hashes of sessions revoked by any node.
#[derive(Debug)]
pub struct RevocationListener {
    inner: PgListener,
}

impl RevocationListener {
    /// The next revoked session hash. An error means the connection broke: build a new listener.
    pub async fn recv(&mut self) -> Result<String, StoreError> {
        Ok(self.inner.recv().await?.payload().to_owned())
    }
}

impl Store {
    /// Announces revoked sessions to every node (PostgreSQL only).
    pub async fn publish_revoked(&self, hashes: &[String]) -> Result<(), StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        for hash in hashes {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A listener for revocations announced by any node, or `None` on SQLite.
    pub async fn revocation_listener(&self) -> Result<Option<RevocationListener>, StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let mut inner = PgListener::connect(self.url()).await?;
        inner.listen(REVOCATION_CHANNEL).await?;
        Ok(Some(RevocationListener { inner }))
    }

    /// Deletes one session of an account (never another account's); `true` when it existed.
    pub async fn delete_session_of(
        &self,
        account: &vestibule_core::AccountId,
        id_hash: &str,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM sessions WHERE id_hash = $1 AND account_id = $2")
            .bind(id_hash)
            .bind(account.as_str())
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }
}
