-- An index of metadata members, so that `meta.KEY=VALUE` finds its candidate
-- records without reading every row of a task: SQLite's task_log_pairs (migration
-- 2026-12-01-000006_meta_index) on PostgreSQL.
--
-- Each entry is one (path, value) of a record's metadata as
-- protocol::filter::meta_pairs lists them (nested members under their dotted path),
-- written as `path || chr(31) || value`, the value cut to 128 bytes: a lookup cuts
-- its value the same way, so the entries it finds are a superset, confirmed against
-- the record itself. One task's entries for one pair are one range of the primary
-- key, in seq order, which keyset paging reads. The key is the task itself, not its
-- partition of task_logs: a posting list of a whole day would hold every task's
-- records of a common value (docs/benchmarks.md, the trigram index tried here).
--
-- The table follows ingest: the writer notes the seq range of each batch's records
-- that carry metadata in task_log_unindexed, in the batch's transaction, and an
-- indexer on each engine node (storage::text_index::postgres::index_pending) takes
-- ranges a step at a time, skipping those another node holds. Reads take the
-- entries' candidates and every record of the ranges still listed.
CREATE TABLE task_log_unindexed (
    task_id BYTEA NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_seq BIGINT NOT NULL,
    to_seq BIGINT NOT NULL,
    PRIMARY KEY (task_id, from_seq)
);

CREATE TABLE task_log_pairs (
    task_id BYTEA NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    pair TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (task_id, pair, seq)
);

-- Records stored before this table existed are indexed as if they were new.
INSERT INTO task_log_unindexed (task_id, from_seq, to_seq)
SELECT task_id, min(seq), max(seq) FROM task_logs
WHERE metadata IS NOT NULL GROUP BY task_id;
