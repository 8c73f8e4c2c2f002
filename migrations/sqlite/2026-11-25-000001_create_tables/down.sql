DROP TABLE api_tokens;
DROP TABLE settings;
DROP TABLE task_log_counts;
DROP TABLE task_logs;
DROP TABLE tasks;
