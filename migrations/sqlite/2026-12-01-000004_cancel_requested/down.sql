ALTER TABLE tasks DROP COLUMN cancel_requested_by;
ALTER TABLE tasks DROP COLUMN cancel_requested_at;
