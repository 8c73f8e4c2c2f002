DROP INDEX tasks_by_node;
ALTER TABLE tasks DROP COLUMN node_id;
DROP TABLE nodes;
