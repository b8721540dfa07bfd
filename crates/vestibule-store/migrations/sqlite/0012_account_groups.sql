-- Groups an operator assigns to an account that signs in with a local password (`vestibule user groups`). Kept
-- apart from identities.groups_json, which every sign-in overwrites with what the source asserts: a local sign-in
-- must not wipe what the operator set. The broker merges both into the account's groups.
CREATE TABLE account_groups (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, name)
);
