-- UGC of a film site (docs/ugc.md). Films belong to a catalog we do not own: a film is its
-- UUID, never looked up. Users are the platform's ids. The layout is the one the storage study
-- measured (docs/benchmarks/ugc-storage.md).

-- A user's rating of a film; the film's sum and count are kept beside it, changed in the
-- rating's own transaction, so the average is one row away and exact.
CREATE TABLE ratings (
    user_id  bigint      NOT NULL,
    film_id  uuid        NOT NULL,
    score    smallint    NOT NULL CHECK (score BETWEEN 0 AND 10),
    rated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, film_id)
);

CREATE TABLE film_ratings (
    film_id   uuid   PRIMARY KEY,
    score_sum bigint NOT NULL CHECK (score_sum >= 0),
    votes     bigint NOT NULL CHECK (votes >= 0)
);

-- One review per user and film. likes and dislikes count review_votes rows, changed with them.
CREATE TABLE reviews (
    film_id    uuid        NOT NULL,
    author_id  bigint      NOT NULL,
    body       text        NOT NULL,
    score      smallint    NOT NULL CHECK (score BETWEEN 0 AND 10),
    written_at timestamptz NOT NULL,
    edited_at  timestamptz,
    likes      integer     NOT NULL DEFAULT 0 CHECK (likes >= 0),
    dislikes   integer     NOT NULL DEFAULT 0 CHECK (dislikes >= 0),
    PRIMARY KEY (film_id, author_id)
);
-- Pages of a film's reviews, newest first and most liked first, read by keyset.
CREATE INDEX reviews_newest ON reviews (film_id, written_at DESC, author_id DESC);
CREATE INDEX reviews_top ON reviews (film_id, (likes - dislikes) DESC, written_at DESC, author_id DESC);

CREATE TABLE review_votes (
    film_id   uuid        NOT NULL,
    author_id bigint      NOT NULL,
    voter_id  bigint      NOT NULL CHECK (voter_id <> author_id),
    vote      smallint    NOT NULL CHECK (vote IN (-1, 1)),
    voted_at  timestamptz NOT NULL,
    PRIMARY KEY (film_id, author_id, voter_id),
    FOREIGN KEY (film_id, author_id) REFERENCES reviews ON DELETE CASCADE
);

CREATE TABLE bookmarks (
    user_id  bigint      NOT NULL,
    film_id  uuid        NOT NULL,
    added_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, film_id)
);
CREATE INDEX bookmarks_newest ON bookmarks (user_id, added_at DESC, film_id DESC);
