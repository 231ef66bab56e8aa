-- One database per read model: each service creates its own tables, and one can be dropped and
-- rebuilt from the event log without touching the others. Runs once, when the volume is empty.
CREATE DATABASE datasets;
CREATE DATABASE inference;
CREATE DATABASE annotations;
