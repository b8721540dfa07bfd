//! What operator administration asks of the store beyond the broker's everyday steps: listing accounts, deleting
//! one with everything that hangs on it, and the groups an operator assigns.

use crate::AccountId;

/// Which accounts to list, in account id order (ids are random: a stable order, not the order of creation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountQuery {
    /// Only accounts where this text occurs (case ignored, taken literally: `%` and `_` are no wildcards) in the
    /// display name, the account's email, the local login name, or the subject or login name of an identity.
    pub search: Option<String>,
    /// Only accounts whose id sorts after this one: the next page after a page whose last account had this id.
    pub after: Option<AccountId>,
    /// At most this many (the store caps it at 10 000).
    pub limit: i64,
}

/// What deleting an account removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountDeletion {
    /// Hex hashes of the ended sessions and access tokens (already announced to other nodes), to evict from this
    /// node's cache.
    pub ended: Vec<String>,
    /// How many rows went from each table, in the order they were deleted (tables with none included).
    pub rows: Vec<(&'static str, u64)>,
}
