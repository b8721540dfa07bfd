-- Sessions, remember-me series and access tokens remember which identity opened them, so that unlinking that
-- identity ends them, and a long session knows whom to ask its source about again. NULL for rows from before this
-- migration: they are treated as opened by any identity of their source.
ALTER TABLE sessions ADD COLUMN subject TEXT;
-- When the source last confirmed the identity (LDAP search by subject); NULL: at sign-in (created_at).
ALTER TABLE sessions ADD COLUMN checked_at BIGINT;
ALTER TABLE remember_series ADD COLUMN subject TEXT;
ALTER TABLE access_tokens ADD COLUMN source TEXT;
ALTER TABLE access_tokens ADD COLUMN subject TEXT;
ALTER TABLE access_tokens ADD COLUMN checked_at BIGINT;
