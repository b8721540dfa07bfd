-- Second factors (issue #12). Numbered 0008: 0007 belongs to another change.

-- Sessions and remember-me series remember how they were proven (space-separated RFC 8176 `amr` names such as
-- `pwd otp`), so a session's assurance survives a cache miss and another node, and a session restored from
-- remember-me gets the assurance of the sign-in that started the series and no more. Empty: from before this was
-- recorded (the broker derives the method from the source, as it did). second_factor_at: when a second factor was
-- last proven in the session, for step-up.
ALTER TABLE sessions ADD COLUMN methods TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN second_factor_at BIGINT;
ALTER TABLE remember_series ADD COLUMN methods TEXT NOT NULL DEFAULT '';

-- One TOTP authenticator per account. The secret is sealed (AEAD under the configured key, the account id as
-- associated data, so a sealed secret copied to another row does not open); it counts only once confirmed with a
-- correct code. last_step is the last accepted time step: a code is never accepted twice (RFC 6238 section 5.2).
CREATE TABLE totp_factors (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sealed_secret TEXT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- Single-use recovery codes: only a keyed hash of each is kept; used_at marks a spent one.
CREATE TABLE recovery_codes (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (account_id, code_hash)
);

-- The half-signed-in state between a primary proof and the second step. Not a session: nothing reads it but the
-- second-factor routes. The browser holds the token (a cookie); only its hash is here. Deleted on use, on expiry
-- and after too many wrong codes.
CREATE TABLE pending_second_factor (
    token_hash TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    methods TEXT NOT NULL,
    next_path TEXT,
    remember BIGINT NOT NULL DEFAULT 0,
    enrol BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pending_second_factor_expires ON pending_second_factor(expires_at);
