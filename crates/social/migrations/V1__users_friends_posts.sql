-- Ids: time-ordered 64-bit integers, the layout of agora_platform::ids:
-- 41 bits of milliseconds since 2024-01-01 UTC, 13 bits of logical shard, 10 bits of sequence.
-- Generated here rather than in the application so that every instance shares one sequence.
CREATE SEQUENCE id_sequence;

CREATE FUNCTION next_id(shard integer DEFAULT 0) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1704067200000) << 23)
         | ((shard::bigint & 8191) << 10)
         | (nextval('id_sequence') & 1023)
$$;

CREATE TABLE users (
    id            bigint      PRIMARY KEY DEFAULT next_id(),
    first_name    text        NOT NULL,
    second_name   text        NOT NULL,
    birthdate     date,
    biography     text,
    city          text,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Prefix search on names, case-insensitive: WHERE lower(second_name) LIKE 'оси%' AND
-- lower(first_name) LIKE 'конст%'.
-- * text_pattern_ops: a btree in a non-C collation cannot serve LIKE 'abc%'; the pattern
--   operator class compares bytes, so a prefix becomes a range scan.
-- * lower(...): case-insensitivity without citext or ILIKE, which no btree serves.
-- * second_name first: surnames are far more varied than first names, so the leading range
--   (the only part that narrows the scan) selects fewer index entries; the first-name prefix
--   is then checked inside the index without visiting the heap.
CREATE INDEX users_name_prefix_idx
    ON users (lower(second_name) text_pattern_ops, lower(first_name) text_pattern_ops);

-- A row means "user_id has added friend_id": the friend's posts appear in user_id's feed.
CREATE TABLE friendships (
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id  bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT friendships_pkey PRIMARY KEY (user_id, friend_id),
    CONSTRAINT friendships_not_self CHECK (user_id <> friend_id)
);
-- "Who sees this author's posts": the fan-out of a new post reads it.
CREATE INDEX friendships_friend_id_idx ON friendships (friend_id, user_id);

CREATE TABLE posts (
    id         bigint      PRIMARY KEY DEFAULT next_id(),
    author_id  bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz
);
-- An author's posts newest first: feed rebuilds and deep feed pages read it.
CREATE INDEX posts_author_id_idx ON posts (author_id, id DESC);

-- Bearer tokens, stored as SHA-256 of the token so a leaked table cannot be replayed.
CREATE TABLE sessions (
    token_hash bytea       PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
