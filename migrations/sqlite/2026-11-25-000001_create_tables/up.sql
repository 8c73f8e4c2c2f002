-- Tasks and their logs. Times are UTC microseconds since the Unix epoch; task ids are
-- the 16 bytes of a UUID; levels are 0 = DEBUG … 3 = ERROR.

CREATE TABLE tasks (
    id BLOB PRIMARY KEY NOT NULL,
    plugin TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    result TEXT,
    error TEXT,
    created_by TEXT
);
CREATE INDEX tasks_by_created ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_by_status ON tasks (status, created_at DESC);

-- Clustered on (task_id, seq): a task's records sit together in seq order, so every
-- log query is a range scan of one B-tree with no second lookup per row.
CREATE TABLE task_logs (
    task_id BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    level SMALLINT NOT NULL,
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    metadata TEXT,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

-- Per task, source and level: how many records are stored. Maintained with each batch
-- insert, so counts never need a scan of task_logs.
CREATE TABLE task_log_counts (
    task_id BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    level SMALLINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (task_id, source, level)
) WITHOUT ROWID;

CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
