-- The dialogs service's map from logical shards to PostgreSQL servers. It lives in the main
-- database (beside the users and sessions every service checks), and only the map does:
-- messages live on the shard servers (docs/dialogs.md).

-- The PostgreSQL servers that hold messages, by a name operators choose.
CREATE TABLE dialog_shard_servers (
    name text PRIMARY KEY,
    url  text NOT NULL
);

-- Which server holds each logical shard. The number of logical shards is fixed when the map is
-- first filled; resharding moves logical shards between servers, never splits them.
CREATE TABLE dialog_shard_map (
    logical_shard integer PRIMARY KEY CHECK (logical_shard >= 0),
    server        text    NOT NULL REFERENCES dialog_shard_servers (name)
);

-- Bumped with every change of the map, so an instance can tell its copy is stale.
CREATE TABLE dialog_shard_map_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint  NOT NULL
);
INSERT INTO dialog_shard_map_version (version) VALUES (0);
