-- Server processes sharing the database, and which of them owns each task: a node
-- that starts resolves only its own unfinished tasks, and a survivor those of a
-- node whose heartbeat stopped.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY NOT NULL,
    role TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    running BIGINT NOT NULL
);

ALTER TABLE tasks ADD COLUMN node_id TEXT;
CREATE INDEX tasks_by_node ON tasks (node_id, status);
