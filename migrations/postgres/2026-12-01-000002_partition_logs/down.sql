CREATE TABLE task_logs_flat (
    task_id BYTEA NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    level SMALLINT NOT NULL,
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    metadata TEXT,
    PRIMARY KEY (task_id, seq)
);
INSERT INTO task_logs_flat SELECT * FROM task_logs;
DROP TABLE task_logs;
ALTER TABLE task_logs_flat RENAME TO task_logs;
ALTER INDEX task_logs_flat_pkey RENAME TO task_logs_pkey;
ALTER TABLE task_logs RENAME CONSTRAINT task_logs_flat_task_id_fkey TO task_logs_task_id_fkey;
