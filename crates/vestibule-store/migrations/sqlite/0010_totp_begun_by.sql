-- An unconfirmed TOTP secret belongs to the sign-in that started its enrolment: begun_by is the hash of that
-- session's id (enrolment from the account page) or of that half-signed-in state's token (enrolment at sign-in).
-- Only the same one may see the secret again or confirm it, so a second sign-in with the same password (someone
-- else's) can neither read the secret the owner is scanning nor have the owner enrol one it planted. NULL for
-- confirmed factors and for rows from before this column, which are then shown to nobody.
ALTER TABLE totp_factors ADD COLUMN begun_by TEXT;
