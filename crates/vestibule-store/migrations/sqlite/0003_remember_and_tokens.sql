-- Remember-me series (Jaspan's improved persistent login cookie): the cookie holds a series id and a token; only
-- their hashes are kept. The previous token is kept briefly so that parallel requests racing a rotation are not
-- mistaken for a stolen cookie.
CREATE TABLE remember_series (
    series_hash TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    previous_token_hash TEXT,
    rotated_at BIGINT NOT NULL,
    authenticated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX remember_series_account ON remember_series(account_id);

-- Personal access tokens for APIs: shown once, only the hash kept.
CREATE TABLE access_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX access_tokens_account ON access_tokens(account_id);
