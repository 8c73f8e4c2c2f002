-- The remote plugins the workers connected to a node offer (a JSON array, as in
-- GET /api/plugins), so that any node accepts tasks for them and queues them for
-- the node that can run them.
ALTER TABLE nodes ADD COLUMN plugins TEXT;
