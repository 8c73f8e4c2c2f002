DROP INDEX tasks_waiting;
ALTER TABLE tasks DROP COLUMN priority;
