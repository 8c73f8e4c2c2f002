-- A trigram index over log messages and an index of metadata members, so that
-- `q`, the literals a regex needs and `meta.KEY=VALUE` find their candidate records
-- without reading every row of a task (storage::text_index::postgres).
--
-- Both are keyed by task, not by task_logs' partition: a posting list over a day's
-- partition would hold every task's records of a common trigram or value (a
-- pg_trgm GIN index was measured so: docs/benchmarks.md).
--
-- task_log_trigrams holds, per task, trigram and block of 4,096 seqs, the offsets in
-- the block of the records holding the trigram: two bytes each, little-endian, in
-- any order, possibly repeated. A trigram is three characters of 21 bits, ASCII
-- letters folded to lower case. task_log_trigram_counts says how many of the task's
-- records hold each trigram (summed over its rows), so that a text is looked up by
-- its rarest ones.
--
-- task_log_pairs holds one entry per (path, value) of a record's metadata as
-- protocol::filter::meta_pairs lists them, written as `path || chr(31) || value`,
-- the value cut to 128 bytes: a lookup cuts its value the same way, so the entries
-- it finds are a superset, confirmed against the record itself.
--
-- The indexes follow ingest: the writer notes each batch's seq range in
-- task_log_unindexed, in the batch's transaction, and an indexer on each engine
-- node takes ranges a step at a time, skipping those another node holds. Reads
-- take the indexes' candidates and every record of the ranges still listed.
--
-- The entry tables have no foreign key: checking one per entry cost the indexer
-- more than writing the entry. A step instead holds its task's row (FOR KEY SHARE)
-- while it writes, and a task's deletion removes its entries after the task's row
-- (storage::tasks::delete_task), so no step can add entries to a task once gone.
CREATE TABLE task_log_unindexed (
    task_id BYTEA NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_seq BIGINT NOT NULL,
    to_seq BIGINT NOT NULL,
    PRIMARY KEY (task_id, from_seq)
);

CREATE TABLE task_log_trigrams (
    task_id BYTEA NOT NULL,
    trigram BIGINT NOT NULL,
    block BIGINT NOT NULL,
    offsets BYTEA NOT NULL,
    PRIMARY KEY (task_id, trigram, block)
) WITH (toast_tuple_target = 8160);
-- A block's offsets are at most 8 KiB (a trigram every record holds), compressed
-- in the row rather than moved out to TOAST: an append to a TOASTed value rewrote
-- its chunks and kept autovacuum busy on them (docs/benchmarks.md).
ALTER TABLE task_log_trigrams ALTER COLUMN offsets SET STORAGE MAIN;

-- An indexer step adds its counts to the rows of a bucket of 65,536 seqs (the one
-- of the lowest seq it took), and a read sums a trigram's rows: one row per trigram
-- updated at every step kept thousands of dead versions for each upsert to walk.
CREATE TABLE task_log_trigram_counts (
    task_id BYTEA NOT NULL,
    trigram BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    records BIGINT NOT NULL,
    PRIMARY KEY (task_id, trigram, bucket)
);

CREATE TABLE task_log_pairs (
    task_id BYTEA NOT NULL,
    pair TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (task_id, pair, seq)
);

-- Records stored before these tables existed are indexed as if they were new.
INSERT INTO task_log_unindexed (task_id, from_seq, to_seq)
SELECT task_id, min(seq), max(seq) FROM task_logs GROUP BY task_id;
