DROP INDEX task_log_closes;
DROP INDEX task_log_opens;
ALTER TABLE task_logs DROP COLUMN group_worst;
ALTER TABLE task_logs DROP COLUMN group_mark;
ALTER TABLE task_logs DROP COLUMN group_seq;
