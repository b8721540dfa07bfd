-- Times are Unix seconds (BIGINT) so that both backends store and compare the same integers.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    display_name TEXT,
    email TEXT,
    email_verified BIGINT NOT NULL DEFAULT 0,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- One row per way in: (source, subject) is the only key an identity is found by.
CREATE TABLE identities (
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    login TEXT,
    email TEXT,
    email_verified BIGINT NOT NULL DEFAULT 0,
    groups_json TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    last_login_at BIGINT,
    PRIMARY KEY (source, subject)
);
CREATE INDEX identities_account ON identities(account_id);

CREATE TABLE local_credentials (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Only the SHA-256 of a session id is stored: a leaked table does not hand out sessions.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    authenticated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    user_agent TEXT,
    ip TEXT
);
CREATE INDEX sessions_account ON sessions(account_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- A redirect sign-in between its start and its callback; deleted on use.
CREATE TABLE pending_redirects (
    state_hash TEXT PRIMARY KEY NOT NULL,
    source TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    data TEXT NOT NULL,
    next_path TEXT,
    expires_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    account_id TEXT,
    source TEXT,
    subject TEXT,
    ip TEXT,
    detail TEXT
);
-- Append-only: the database itself refuses to rewrite history.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- Server-side keys (the CSRF MAC key), created once and shared by every node on the database.
CREATE TABLE broker_keys (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
