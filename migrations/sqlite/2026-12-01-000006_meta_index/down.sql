DROP TRIGGER tasks_pairs_delete;
DROP TABLE task_log_pairs;
