-- Local login names are one name when their canonical forms (NFKC + lower case, vestibule_core::canonical_login)
-- are equal: `Alice`, `alice` and `ＡＬＩＣＥ`. SQL cannot compute NFKC, so the store writes this column with every
-- new name and fills it for the rows below right after migrating, refusing to start (and naming them) when two
-- existing names collide. `username` keeps the name as typed, for display.
ALTER TABLE local_credentials ADD COLUMN username_canonical TEXT;
-- Unique, and the index sign-in looks names up by. NULLs (rows not filled yet) do not collide with each other.
CREATE UNIQUE INDEX local_credentials_username_canonical ON local_credentials (username_canonical);
