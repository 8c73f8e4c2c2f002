-- The records at WARNING (2) or above: what the error strip, `e` and a WARNING or
-- ERROR level filter read. In most logs they are few, so a partial index over them
-- answers those reads without walking the task's other records and costs ingest
-- little. Level before seq: each level's records are a range in seq order, so an
-- ERROR filter reads only ERRORs, whatever the number of WARNINGs.
CREATE INDEX task_log_warnings ON task_logs (task_id, level, seq) WHERE level >= 2;
