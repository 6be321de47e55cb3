-- A rating and its film's totals in one statement. Sent as separate statements they cost a
-- transaction of four or five round trips, and a rating ran at a quarter of a bookmark's rate
-- (docs/benchmarks/ugc.md). The logic is the one the service ran statement by statement:
-- a first rating inserts; a change learns the old score under the row's lock (if the row
-- vanished in between, a concurrent removal, the insert is tried again); the totals are
-- updated before they are inserted, because PostgreSQL checks an INSERT's proposed row against
-- the CHECK constraints before it looks for a conflict, so a negative difference could never
-- go through INSERT … ON CONFLICT. Each statement inside runs with its own snapshot, as the
-- separate statements did (READ COMMITTED).

CREATE FUNCTION ugc_add_to_totals(p_film uuid, p_sum bigint, p_votes bigint,
                                  OUT o_sum bigint, OUT o_votes bigint)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE film_ratings f SET score_sum = f.score_sum + p_sum, votes = f.votes + p_votes
     WHERE f.film_id = p_film
    RETURNING f.score_sum, f.votes INTO o_sum, o_votes;
    IF NOT FOUND THEN
        -- Only a film's first rating (a positive one) gets here; two at once meet in ON CONFLICT.
        INSERT INTO film_ratings AS f VALUES (p_film, p_sum, p_votes)
        ON CONFLICT (film_id) DO UPDATE SET score_sum = f.score_sum + EXCLUDED.score_sum,
                                            votes = f.votes + EXCLUDED.votes
        RETURNING f.score_sum, f.votes INTO o_sum, o_votes;
    END IF;
END
$$;

-- Sets p_user's score of p_film; the film's totals after it.
CREATE FUNCTION ugc_rate(p_user bigint, p_film uuid, p_score smallint, p_at timestamptz,
                         OUT o_sum bigint, OUT o_votes bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_old smallint;
BEGIN
    FOR attempt IN 1..3 LOOP
        INSERT INTO ratings VALUES (p_user, p_film, p_score, p_at) ON CONFLICT DO NOTHING;
        IF FOUND THEN
            SELECT t.o_sum, t.o_votes INTO o_sum, o_votes
              FROM ugc_add_to_totals(p_film, p_score, 1) t;
            RETURN;
        END IF;
        SELECT r.score INTO v_old FROM ratings r
         WHERE r.user_id = p_user AND r.film_id = p_film FOR UPDATE;
        IF FOUND THEN
            UPDATE ratings r SET score = p_score, rated_at = p_at
             WHERE r.user_id = p_user AND r.film_id = p_film;
            SELECT t.o_sum, t.o_votes INTO o_sum, o_votes
              FROM ugc_add_to_totals(p_film, p_score - v_old, 0) t;
            RETURN;
        END IF;
    END LOOP;
    -- A serialization failure: the service repeats the whole write.
    RAISE EXCEPTION 'a rating kept changing under us' USING ERRCODE = '40001';
END
$$;

-- Removes p_user's score of p_film, if any; the film's totals after it.
CREATE FUNCTION ugc_unrate(p_user bigint, p_film uuid, OUT o_sum bigint, OUT o_votes bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_old smallint;
BEGIN
    DELETE FROM ratings r WHERE r.user_id = p_user AND r.film_id = p_film
    RETURNING r.score INTO v_old;
    IF FOUND THEN
        SELECT t.o_sum, t.o_votes INTO o_sum, o_votes
          FROM ugc_add_to_totals(p_film, -v_old, -1) t;
    ELSE
        SELECT f.score_sum, f.votes INTO o_sum, o_votes FROM film_ratings f
         WHERE f.film_id = p_film;
        o_sum := coalesce(o_sum, 0);
        o_votes := coalesce(o_votes, 0);
    END IF;
END
$$;
