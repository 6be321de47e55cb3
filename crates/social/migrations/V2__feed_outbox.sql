-- Changes the feed pipeline must see, written in the same transaction as the change itself, so
-- a change is never lost between the database and the broker: a relay publishes these rows to
-- RabbitMQ (with publisher confirms) and deletes them only once the broker has them.
CREATE TABLE feed_outbox (
    id         bigserial   PRIMARY KEY,
    -- post_created, post_updated, post_deleted: actor = author, subject = post.
    -- friend_added, friend_removed: actor = the user whose feed changes, subject = the friend.
    kind       text        NOT NULL CHECK (kind IN ('post_created', 'post_updated', 'post_deleted',
                                                    'friend_added', 'friend_removed')),
    actor_id   bigint      NOT NULL,
    subject_id bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The relay sleeps on LISTEN feed_outbox; a commit that adds a row wakes it at once.
CREATE FUNCTION feed_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('feed_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER feed_outbox_notify
    AFTER INSERT ON feed_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION feed_outbox_notify();
