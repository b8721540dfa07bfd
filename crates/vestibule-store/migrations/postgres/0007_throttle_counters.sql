-- Throttling counters (issue #11), shared by every node using this database so that they enforce one limit.
-- `name` is the SHA-256 of the account name tried (never the name as typed), empty for address buckets;
-- `address` is the client address or IPv6 /64, empty for account counters. Times are whole seconds.
CREATE TABLE throttle_counters (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    tat BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    last_failure BIGINT NOT NULL,
    hour_start BIGINT NOT NULL,
    hour_failures BIGINT NOT NULL,
    touched_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, name, address)
);
CREATE INDEX throttle_counters_expiry ON throttle_counters (expires_at);
CREATE INDEX throttle_counters_name ON throttle_counters (name);
CREATE INDEX throttle_counters_touched ON throttle_counters (touched_at);
