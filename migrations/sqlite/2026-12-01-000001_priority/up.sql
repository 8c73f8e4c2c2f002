-- The shared queue runs the highest priority first, then the oldest: an index of
-- exactly the tasks waiting to be claimed, in that order.
ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_waiting ON tasks (priority DESC, created_at, id)
    WHERE status = 'queued' AND node_id IS NULL;
