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

-- name: backfill_batch
-- One batch of schema.sql's backfill UPDATE: its SET on up to {{batch}} rows its WHERE selects.
UPDATE {{table}} SET {{set}}
 WHERE ctid IN (SELECT ctid FROM {{table}} WHERE {{where}}
                 LIMIT {{batch}} FOR UPDATE SKIP LOCKED)
