-- causa: the SQL that `causa migrate` runs besides schema.sql, by name (shared.queries).
-- Double-braced placeholders are filled by shared/schema.py with quoted names or with parts
-- of the rendered schema.sql; %s are query parameters.

-- name: table_oid
-- The table's oid as text, NULL when there is no such table (%s: its quoted name).
SELECT to_regclass(%s)::text

-- name: table_columns
-- The names of the table's live columns (%s: its quoted name).
SELECT attname FROM pg_attribute
 WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped

-- name: invalid_index
-- A row when the index exists but is invalid: an earlier CONCURRENTLY build failed (%s: its name).
SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname = %s AND NOT i.indisvalid

-- name: drop_index
-- Drop an invalid index without blocking writers.
DROP INDEX CONCURRENTLY IF EXISTS {{index}}

-- name: create_index
-- Build one of the indexes of schema.sql's online section without blocking writers.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {{index}} ON {{definition}}

-- name: applied_steps
-- The versioned steps of schema.sql already applied to this database.
SELECT version FROM causa.migrations

-- name: install_event
-- causa's install record: the steps a migration applied (%s: {steps}); retention keeps it.
INSERT INTO causa.events (kind, payload) VALUES ('install', %s)

-- name: legacy_columns
-- The previous release's queue columns an upgrade left on the ticket table.
SELECT name FROM causa.owned WHERE kind = 'legacy_column' ORDER BY name

-- name: drop_column
-- Drop one of them (`causa migrate --drop-legacy`).
ALTER TABLE {{table}} DROP COLUMN IF EXISTS {{column}}

-- name: forget_legacy_column
-- Forget a dropped legacy column (%s: its name).
DELETE FROM causa.owned WHERE kind = 'legacy_column' AND name = %s
