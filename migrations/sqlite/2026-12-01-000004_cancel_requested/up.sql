-- A cancel asked through one node of a task another node runs is recorded on the
-- task as well as announced, so that a node that missed the notice (its listening
-- connection was down) still finds it on its next look at the queue.
ALTER TABLE tasks ADD COLUMN cancel_requested_at BIGINT;
ALTER TABLE tasks ADD COLUMN cancel_requested_by TEXT;
