DROP TABLE task_log_level_bits;
