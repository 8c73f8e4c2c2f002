DROP INDEX task_log_closes;
DROP INDEX task_log_opens;
ALTER TABLE task_logs
    DROP COLUMN group_worst,
    DROP COLUMN group_mark,
    DROP COLUMN group_seq;
