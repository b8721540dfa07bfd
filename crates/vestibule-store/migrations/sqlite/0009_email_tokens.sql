-- Single-use tokens mailed to an account's own address: a password reset link (purpose 'reset') or an address
-- confirmation (purpose 'verify'). Only the SHA-256 of the token is stored, so a leaked table hands out no link.
-- Rows are deleted when used, when expired (janitor), and reset rows when the password changes by any route.
CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX email_tokens_account ON email_tokens(account_id);
CREATE INDEX email_tokens_expires ON email_tokens(expires_at);
