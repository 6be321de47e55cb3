-- One shard server's schema. A dialog is the unordered pair of its users, stored as
-- (dialog_low, dialog_high) with low < high; every row of a dialog lives on the server that
-- holds the dialog's logical shard.

CREATE SEQUENCE id_sequence;

-- The id layout of agora_platform::ids: milliseconds, the logical shard, a sequence.
CREATE FUNCTION next_id(shard integer) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1704067200000) << 23)
         | ((shard::bigint & 8191) << 10)
         | (nextval('id_sequence') & 1023)
$$;

-- A server accepts writes for a logical shard only while it holds an open gate for it.
-- Resharding closes the gate on the old server (waiting for writes in flight) before the last
-- copy, and opens it on the new one when the map switches (docs/dialogs.md).
CREATE TABLE shard_gates (
    logical_shard integer PRIMARY KEY,
    open          boolean NOT NULL
);

CREATE TABLE messages (
    dialog_low    bigint      NOT NULL,
    dialog_high   bigint      NOT NULL,
    id            bigint      NOT NULL,
    logical_shard integer     NOT NULL,
    sender        bigint      NOT NULL,
    text          text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dialog_low, dialog_high, id),
    CHECK (dialog_low < dialog_high),
    CHECK (sender = dialog_low OR sender = dialog_high)
);

-- Resharding copies a logical shard in id order.
CREATE INDEX messages_shard_idx ON messages (logical_shard, id);

-- One row per dialog, updated with each message: a user's dialog list reads these rows, and
-- what each side has read is kept here, durably, so unread counters can be recomputed.
CREATE TABLE dialogs (
    dialog_low      bigint  NOT NULL,
    dialog_high     bigint  NOT NULL,
    logical_shard   integer NOT NULL,
    last_message_id bigint  NOT NULL,
    low_read_upto   bigint  NOT NULL DEFAULT 0,
    high_read_upto  bigint  NOT NULL DEFAULT 0,
    -- Set by every change of the row, so resharding's last pass copies only recent ones.
    touched_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (dialog_low, dialog_high)
);
CREATE INDEX dialogs_low_idx ON dialogs (dialog_low, last_message_id DESC);
CREATE INDEX dialogs_high_idx ON dialogs (dialog_high, last_message_id DESC);
CREATE INDEX dialogs_shard_idx ON dialogs (logical_shard, touched_at);
