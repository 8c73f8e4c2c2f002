-- Per task, level and block of 8,192 seqs: which seqs of the block hold a record
-- of that level, one bit each (bit i of byte j is seq block * 8192 + 8j + i), cut
-- after the last byte with a bit set. A level filter alone reads a task's index from
-- these, a few thousand rows for 10,000,000 records, instead of every record's seq
-- (storage::logs::level_bits). The writer ORs each batch's bits in, in the batch's
-- transaction, holding the row, so a retried batch changes nothing and two writers
-- never lose each other's bits. Tasks stored before this table have no bits; their
-- index is read from the records, as before. Blocks of 8,192 seqs keep a row within
-- 1 KiB, in its page: 8 KiB values went to TOAST, compressed again at every batch,
-- which cost ingest of ten tasks at once a fifth of its rate.
CREATE TABLE task_log_level_bits (
    task_id BYTEA NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    level SMALLINT NOT NULL,
    block BIGINT NOT NULL,
    bits BYTEA NOT NULL,
    PRIMARY KEY (task_id, level, block)
);
