-- An index of metadata members, so that `meta.KEY=VALUE` finds its candidate
-- records without reading every row of a task.
--
-- Each entry is one (path, value) of a record's metadata as
-- protocol::filter::meta_pairs lists them (nested members under their dotted path),
-- written as `path || char(31) || value`, the value cut to 128 bytes: a lookup cuts
-- its value the same way, so the entries it finds are a superset, confirmed against
-- the record itself. The key is task_log_keys' task key, so one task's entries for
-- one pair are one range of the primary key, in seq order, which keyset paging
-- reads.
--
-- The table follows ingest with the text index: the same indexer fills both from
-- task_log_unindexed. Entries of a deleted record are left until its task goes (seqs
-- are never reused within a task, and a candidate without its record is skipped).
CREATE TABLE task_log_pairs (
    key INTEGER NOT NULL,
    pair TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (key, pair, seq)
) WITHOUT ROWID;

CREATE TRIGGER tasks_pairs_delete BEFORE DELETE ON tasks
BEGIN
    DELETE FROM task_log_pairs WHERE key = (SELECT key FROM task_log_keys WHERE task_id = OLD.id);
END;

-- Records indexed before this table existed are indexed again (the text index
-- replaces its entries), as if they were new.
DELETE FROM task_log_unindexed;
INSERT INTO task_log_unindexed (task_id, from_seq, to_seq)
SELECT task_id, min(seq), min(max(seq), 4294967295) FROM task_logs
WHERE seq < 4294967296 GROUP BY task_id;
