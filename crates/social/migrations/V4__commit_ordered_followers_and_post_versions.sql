-- Followers as of a post's commit, and post versions for conditional cache write-backs.
--
-- A post reaches the users who followed its author when it committed, whatever the worker
-- finds when it gets to the post later (an unfriend right after a post must not swallow it,
-- and a post after an unfriend must never arrive). Commit order between a post and a
-- friendship change of its author is made observable with a per-author clock:
-- * a friendship change takes pg_advisory_xact_lock(author) (exclusive) and advances the
--   author's tick in follow_clocks;
-- * a post takes pg_advisory_xact_lock_shared(author) and records the tick it then reads.
-- The locks make each post and each change of the same author commit one after the other, so a
-- change with tick <= the post's tick committed before the post, and one above it after.
CREATE TABLE follow_clocks (
    author_id bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tick      bigint NOT NULL
);

-- The author's tick when the friendship began (0: before clocks existed).
ALTER TABLE friendships ADD COLUMN since_tick bigint NOT NULL DEFAULT 0;
-- The fan-out reads followers with their tick from the index alone.
CREATE INDEX friendships_followers_idx ON friendships (friend_id, user_id) INCLUDE (since_tick);
DROP INDEX friendships_friend_id_idx;

-- Friendships that ended, while posts made during them may still be on their way to
-- followers. The worker deletes rows older than its retention window.
CREATE TABLE ended_friendships (
    user_id    bigint      NOT NULL,
    friend_id  bigint      NOT NULL,
    since_tick bigint      NOT NULL,
    until_tick bigint      NOT NULL,
    ended_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ended_friendships_followers_idx
    ON ended_friendships (friend_id, user_id) INCLUDE (since_tick, until_tick);
CREATE INDEX ended_friendships_ended_at_idx ON ended_friendships (ended_at);

-- post_created: the author's tick at the post's commit. friend_removed: the ending tick.
-- post_updated: the post's new version.
ALTER TABLE feed_outbox ADD COLUMN tick bigint;
ALTER TABLE feed_outbox ADD COLUMN post_version integer;

-- Bumped by every edit: a cached body is only ever replaced by a newer version, so a reader
-- that loaded the text before an edit cannot write it back over the edit.
ALTER TABLE posts ADD COLUMN version integer NOT NULL DEFAULT 0;
