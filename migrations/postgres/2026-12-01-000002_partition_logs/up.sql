-- task_logs is partitioned by the UTC day its task was created. A task id is a
-- UUIDv7, which begins with its creation time in milliseconds, so ids compare as
-- bytes in time order and a day is a range of ids: all of a task's records share one
-- partition, a read of one task touches one partition, and retention drops a day's
-- partition whole once every task created that day has expired (storage::partitions
-- creates the days ahead and drops them).
--
-- An empty table is replaced. A table with records becomes the partition of every id
-- before tomorrow, named for that bound. It is not rewritten: a check constraint,
-- validated by one read of the table, lets it attach without another. Ids that are
-- not time-ordered and fall after the bound move to the default partition, which
-- also catches any record whose day has no partition (yet).
DO $$
DECLARE
    tomorrow date := (now() AT TIME ZONE 'UTC')::date + 1;
    bound bytea := decode(
        lpad(to_hex((extract(epoch FROM tomorrow::timestamp) * 1000)::bigint), 12, '0')
            || repeat('0', 20),
        'hex');
    old text := 'task_logs_until_' || to_char(tomorrow, 'YYYYMMDD');
BEGIN
    ALTER TABLE task_logs RENAME TO task_logs_unpartitioned;
    ALTER INDEX task_logs_pkey RENAME TO task_logs_unpartitioned_pkey;

    CREATE TABLE task_logs (
        task_id BYTEA NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        level SMALLINT NOT NULL,
        source TEXT NOT NULL,
        message TEXT NOT NULL,
        metadata TEXT,
        PRIMARY KEY (task_id, seq)
    ) PARTITION BY RANGE (task_id);
    CREATE TABLE task_logs_default PARTITION OF task_logs DEFAULT;

    IF NOT EXISTS (SELECT 1 FROM task_logs_unpartitioned) THEN
        DROP TABLE task_logs_unpartitioned;
        RETURN;
    END IF;
    INSERT INTO task_logs_default
        SELECT * FROM task_logs_unpartitioned WHERE task_id >= bound;
    DELETE FROM task_logs_unpartitioned WHERE task_id >= bound;
    EXECUTE format('ALTER TABLE task_logs_unpartitioned RENAME TO %I', old);
    EXECUTE format('ALTER INDEX task_logs_unpartitioned_pkey RENAME TO %I', old || '_pkey');
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (task_id < %L::bytea)',
        old, old || '_range', bound);
    EXECUTE format('ALTER TABLE task_logs ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
        old, bound);
END $$;
