-- Session protection: a hash of the client's user agent and coarse address at sign-in.
ALTER TABLE sessions ADD COLUMN fingerprint TEXT;
