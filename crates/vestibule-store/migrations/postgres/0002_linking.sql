-- A redirect flow started from the account page links to this account instead of signing in.
ALTER TABLE pending_redirects ADD COLUMN link_account TEXT;

-- An identity seen for the first time whose email matches an existing account: kept here (never linked silently)
-- until the person proves they own that account by signing in to it, or chooses a separate account.
CREATE TABLE pending_links (
    token_hash TEXT PRIMARY KEY NOT NULL,
    identity_json TEXT NOT NULL,
    may_create BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL
);

CREATE INDEX accounts_email ON accounts (lower(email));
