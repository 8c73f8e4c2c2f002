DROP INDEX task_log_warnings;
