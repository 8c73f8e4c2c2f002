-- Groups (foldable sections, protocol::group): each record names the group it is
-- in by the seq of the record that opened it; the records that open and close a
-- group are marked (1 open, 2 close), and a close holds the most severe level
-- inside its group. Nullable without a default: no partition is rewritten.
ALTER TABLE task_logs
    ADD COLUMN group_seq BIGINT,
    ADD COLUMN group_mark SMALLINT,
    ADD COLUMN group_worst SMALLINT;
-- Listing a task's groups reads only its marks: the opens in seq order, then the
-- closes of the groups listed. Partitions made later inherit both.
CREATE INDEX task_log_opens ON task_logs (task_id, seq) WHERE group_mark = 1;
CREATE INDEX task_log_closes ON task_logs (task_id, group_seq) WHERE group_mark = 2;
