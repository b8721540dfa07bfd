-- Personal access tokens remember how the session that created them was proven (space-separated RFC 8176 `amr`
-- names, as sessions store them), so that a token minted by a password-only session stops working, like that
-- session, once policy requires a second factor of its account. Empty: from before this was recorded, treated as
-- proven by nothing more than the primary sign-in (it ends under such a policy: fail closed).
ALTER TABLE access_tokens ADD COLUMN methods TEXT NOT NULL DEFAULT '';
