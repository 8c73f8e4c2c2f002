DROP TRIGGER tasks_text_delete;
DROP TRIGGER task_logs_text_delete;
DROP TRIGGER tasks_log_key;
DROP TABLE task_log_unindexed;
DROP TABLE task_log_text;
DROP TABLE task_log_keys;
