-- A redirect flow remembers when it started (a step-up's provider must report an authentication from after it;
-- 0: from before this was recorded) and, for a step-up of a signed-in session, the hash of that session's id: the
-- callback then renews that session with the provider's second factor, and only for that session.
ALTER TABLE pending_redirects ADD COLUMN started_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pending_redirects ADD COLUMN step_up_session TEXT;
