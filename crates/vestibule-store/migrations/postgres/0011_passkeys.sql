-- Passkeys (WebAuthn credentials), the last part of issue #12.

-- An account's passkeys: any number, each named by its owner. cred_id is the credential id (base64url) the
-- authenticator returns with every assertion: unique across all accounts, since WebAuthn requires a relying party
-- to refuse a credential id registered before (and a passwordless sign-in finds its account by it). user_handle is
-- the WebAuthn user id the credential was made for (the authenticator hands it back at a passwordless sign-in; it
-- must match). credential is webauthn-rs's record of it as JSON: the public key, the signature counter and the
-- backup flags — nothing secret.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    cred_id TEXT NOT NULL UNIQUE,
    user_handle TEXT NOT NULL,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_account ON passkeys(account_id);

-- A WebAuthn ceremony under way (registration, second step, passwordless sign-in, step-up): the challenge and
-- what webauthn-rs needs to check the answer. Kept here, never in a cookie (a state the browser holds can be
-- replayed); the page holds a random id whose hash is id_hash. Single use (taken by DELETE ... RETURNING), five
-- minutes. bound_to is the hash of what it belongs to (the session, the half-signed-in state or the browser's
-- pre-session cookie): another browser holding the id cannot finish it.
CREATE TABLE passkey_ceremonies (
    id_hash TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    bound_to TEXT NOT NULL,
    account_id TEXT REFERENCES accounts(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX passkey_ceremonies_expires ON passkey_ceremonies(expires_at);
