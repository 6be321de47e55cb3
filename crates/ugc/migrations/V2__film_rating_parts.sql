-- A film's totals split over 16 rows, one per rater's id modulo 16, summed on read. With one
-- row, every rating of a popular film waited for the previous one's commit on that row (the
-- load study: 3,000 ratings/s at most, a tenth of them on one film); with 16, sixteen go at
-- once, and a read sums at most 16 rows of one index page. A user's ratings always land in the
-- same part, so each part's sum and count stay those of its users' ratings: never negative.
CREATE TABLE film_rating_parts (
    film_id   uuid     NOT NULL,
    part      smallint NOT NULL CHECK (part BETWEEN 0 AND 15),
    score_sum bigint   NOT NULL CHECK (score_sum >= 0),
    votes     bigint   NOT NULL CHECK (votes >= 0),
    PRIMARY KEY (film_id, part)
);

INSERT INTO film_rating_parts (film_id, part, score_sum, votes)
SELECT film_id, mod(user_id, 16)::smallint, sum(score), count(*)
FROM ratings
GROUP BY film_id, mod(user_id, 16);

DROP TABLE film_ratings;
