-- Moves of logical shards in progress, so that a move whose command died part-way is finished
-- or undone by the dialogs service itself instead of leaving its shard frozen. The command holds
-- a session advisory lock on the shard (class 0x5EA4D, see reshard.rs) while it moves it: a row
-- whose lock anyone can take has no living owner.
CREATE TABLE dialog_shard_moves (
    logical_shard integer     PRIMARY KEY,
    source        text        NOT NULL,
    target        text        NOT NULL,
    -- The last step reached, for operators: copy, catch_up, freeze, last_pass, switch, clean_up.
    step          text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
