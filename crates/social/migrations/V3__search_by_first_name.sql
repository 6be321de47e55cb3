-- A search whose surname prefix is empty (`first_name=zzzz&last_name=`) cannot narrow
-- users_name_prefix_idx, which leads with the surname: it scanned every user. This index leads
-- with the first name, so such a search is a range scan too. Both indexes list a prefix's
-- matches in name order, so a search reads only the rows it returns (ORDER BY the index's own
-- order, LIMIT 100) instead of collecting and sorting every match of a short prefix.
CREATE INDEX users_first_name_prefix_idx
    ON users (lower(first_name) text_pattern_ops, lower(second_name) text_pattern_ops);
