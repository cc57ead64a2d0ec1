-- causa: remove everything causa added to the ticket table (columns, functions, triggers,
-- indexes) and its own causa_events and causa_meta tables (a new install records a new
-- cut-off), and nothing else. The causes it wrote stay in the cause column. A template like
-- schema.sql: `causa migrate --uninstall` renders and applies it.
DROP TRIGGER IF EXISTS causa_on_insert ON {{table}};
DROP TRIGGER IF EXISTS causa_notify ON {{table}};
DROP TRIGGER IF EXISTS causa_on_label ON {{table}};
DROP FUNCTION IF EXISTS causa_on_insert();
DROP FUNCTION IF EXISTS causa_notify();
DROP FUNCTION IF EXISTS causa_on_label();
DROP FUNCTION IF EXISTS causa_claim(text, integer, integer, integer, jsonb, timestamptz);
DROP FUNCTION IF EXISTS causa_apply(jsonb, text);
DROP FUNCTION IF EXISTS causa_fail(jsonb, integer);
DROP FUNCTION IF EXISTS causa_pending_count(timestamptz);
DROP FUNCTION IF EXISTS causa_status_counts();
DROP FUNCTION IF EXISTS causa_labelled(text, integer);
DROP FUNCTION IF EXISTS causa_requeue(jsonb, jsonb, text);
DROP FUNCTION IF EXISTS causa_backfill(boolean, timestamptz, integer, timestamptz);
DROP FUNCTION IF EXISTS causa_activity(integer, timestamptz);
DROP FUNCTION IF EXISTS causa_recent(timestamptz, integer);
DROP FUNCTION IF EXISTS causa_record_event(text, jsonb);
DROP FUNCTION IF EXISTS causa_latest_events();
DROP TABLE IF EXISTS causa_events;
DROP TABLE IF EXISTS causa_meta;
DROP INDEX IF EXISTS causa_queue_idx;
DROP INDEX IF EXISTS causa_labelled_idx;
ALTER TABLE {{table}}
    DROP COLUMN IF EXISTS causa_source,
    DROP COLUMN IF EXISTS causa_predicted,
    DROP COLUMN IF EXISTS causa_confidence,
    DROP COLUMN IF EXISTS model_version,
    DROP COLUMN IF EXISTS classified_at,
    DROP COLUMN IF EXISTS classification_status,
    DROP COLUMN IF EXISTS attempts,
    DROP COLUMN IF EXISTS claimed_by,
    DROP COLUMN IF EXISTS claim_token,
    DROP COLUMN IF EXISTS claimed_until,
    DROP COLUMN IF EXISTS last_error,
    DROP COLUMN IF EXISTS received_at;
