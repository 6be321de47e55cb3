-- Unread counters live in Redis; a message's increment is recorded here in the same statement
-- as the message, so a counter update that fails (Redis away, a crash after the commit) is
-- applied later by a sweeper instead of being lost. Applying is idempotent (docs/dialogs.md).
CREATE TABLE unread_outbox (
    message_id    bigint      PRIMARY KEY,
    recipient     bigint      NOT NULL,
    sender        bigint      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX unread_outbox_created_idx ON unread_outbox (created_at);
