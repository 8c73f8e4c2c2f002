DROP TABLE task_log_pairs;
DROP TABLE task_log_unindexed;
