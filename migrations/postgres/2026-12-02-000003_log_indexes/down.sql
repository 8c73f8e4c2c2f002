DROP TABLE task_log_pairs;
DROP TABLE task_log_trigram_counts;
DROP TABLE task_log_trigrams;
DROP TABLE task_log_unindexed;
