-- A trigram index over log messages, so that `q` and the literals a regex needs
-- find their candidate records without reading every row of a task.
--
-- task_log_text is a contentless FTS5 table (the messages stay in task_logs only)
-- with the trigram tokenizer, folding case, and no positions (detail=none): queries
-- are ANDs of single trigrams whose candidates are then checked against the record
-- itself, so positions would only cost space. Its rowid is
-- (task key << 32) + seq: one task's records are one rowid range, in seq order,
-- which is what keyset paging reads.
--
-- The index follows ingest instead of slowing it: the writer notes each batch's seq
-- range in task_log_unindexed, and an indexer (storage::text_index::index_pending)
-- moves ranges into task_log_text a step at a time. Reads take the candidates of
-- task_log_text and every record of the ranges still listed.
--
-- The task key comes from task_log_keys rather than tasks.rowid, which VACUUM may
-- renumber; AUTOINCREMENT never hands out a key again, so an index entry left by a
-- deleted task can never be taken for another task's. Records with seq >= 2^32 and
-- tasks past key 2^31 are not indexed; storage reads them unindexed.
CREATE TABLE task_log_keys (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id BLOB NOT NULL UNIQUE REFERENCES tasks (id) ON DELETE CASCADE
);

CREATE VIRTUAL TABLE task_log_text USING fts5 (
    message,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram case_sensitive 0',
    detail = 'none'
);

CREATE TABLE task_log_unindexed (
    task_id BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_seq BIGINT NOT NULL,
    to_seq BIGINT NOT NULL,
    PRIMARY KEY (task_id, from_seq)
) WITHOUT ROWID;

CREATE TRIGGER tasks_log_key AFTER INSERT ON tasks
BEGIN
    INSERT INTO task_log_keys (task_id) VALUES (NEW.id);
END;

CREATE TRIGGER task_logs_text_delete AFTER DELETE ON task_logs
WHEN OLD.seq < 4294967296
BEGIN
    DELETE FROM task_log_text WHERE rowid =
        (SELECT (key << 32) + OLD.seq FROM task_log_keys WHERE task_id = OLD.task_id);
END;

-- A task deleted with its records (ON DELETE CASCADE) takes its whole range first:
-- by the time the cascade deletes the records, their key is gone.
CREATE TRIGGER tasks_text_delete BEFORE DELETE ON tasks
BEGIN
    DELETE FROM task_log_text WHERE rowid >= (SELECT key << 32 FROM task_log_keys WHERE task_id = OLD.id)
        AND rowid < (SELECT (key + 1) << 32 FROM task_log_keys WHERE task_id = OLD.id);
END;

-- Records stored before the index are indexed after start, like new ones.
INSERT INTO task_log_keys (task_id) SELECT id FROM tasks ORDER BY created_at, id;
INSERT INTO task_log_unindexed (task_id, from_seq, to_seq)
SELECT task_id, min(seq), min(max(seq), 4294967295) FROM task_logs
WHERE seq < 4294967296 GROUP BY task_id;
