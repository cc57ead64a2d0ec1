-- causa: remove exactly what causa created, and nothing else: its triggers and index on the
-- ticket table, the result columns it recorded as created (causa.owned), its entry points in
-- `public` and its schema `causa` (queue, decisions, events: a new install records a new
-- cut-off). The causes it wrote stay in the cause column. Columns of the previous release
-- that may have been the user's (attempts, received_at, ...) stay: `causa migrate
-- --drop-legacy` removes them. A template like schema.sql: `causa migrate --uninstall`
-- renders and applies it.
DROP TRIGGER IF EXISTS causa_enqueue ON {{table}};
DROP TRIGGER IF EXISTS causa_on_insert ON {{table}};
DROP TRIGGER IF EXISTS causa_on_label ON {{table}};
DO $$
DECLARE
    c text;
BEGIN
    FOR c IN SELECT indexrelid::regclass::text FROM pg_index AS i
              JOIN pg_class AS x ON x.oid = i.indexrelid
             WHERE i.indrelid = '{{table}}'::regclass AND x.relname = 'causa_labelled_idx' LOOP
        EXECUTE format('DROP INDEX %s', c);
    END LOOP;
    IF to_regclass('causa.owned') IS NOT NULL THEN
        FOR c IN SELECT name FROM causa.owned WHERE kind = 'column' LOOP
            EXECUTE format('ALTER TABLE {{table}} DROP COLUMN IF EXISTS %I', c);
        END LOOP;
    END IF;
END $$;
DROP FUNCTION IF EXISTS public.causa_claim(text, integer, integer, integer, jsonb, timestamptz, text, integer);
DROP FUNCTION IF EXISTS public.causa_apply(jsonb, text, text, text, text);
DROP FUNCTION IF EXISTS public.causa_fail(jsonb, integer, text, text, text);
DROP FUNCTION IF EXISTS public.causa_pending_count(timestamptz, integer);
DROP FUNCTION IF EXISTS public.causa_status_counts(integer);
DROP FUNCTION IF EXISTS public.causa_labelled(text, integer);
DROP FUNCTION IF EXISTS public.causa_requeue(jsonb, jsonb, text);
DROP FUNCTION IF EXISTS public.causa_backfill(boolean, timestamptz, integer, timestamptz);
DROP FUNCTION IF EXISTS public.causa_activity(integer, timestamptz, integer);
DROP FUNCTION IF EXISTS public.causa_recent(timestamptz, integer);
DROP FUNCTION IF EXISTS public.causa_live_decisions(timestamptz, timestamptz, text, jsonb, integer);
DROP FUNCTION IF EXISTS public.causa_record_event(text, jsonb);
DROP FUNCTION IF EXISTS public.causa_latest_events();
DROP FUNCTION IF EXISTS public.causa_retain(integer, integer, integer);
DROP FUNCTION IF EXISTS public.causa_label(text, text, text);
DROP FUNCTION IF EXISTS public.causa_tickets(text, integer, jsonb, integer);
DROP FUNCTION IF EXISTS public.causa_ticket(text, integer);
DROP FUNCTION IF EXISTS public.causa_api_key_create(text, text, text, text, text);
DROP FUNCTION IF EXISTS public.causa_api_key_find(text);
DROP FUNCTION IF EXISTS public.causa_api_keys();
DROP FUNCTION IF EXISTS public.causa_api_key_revoke(text);
DROP FUNCTION IF EXISTS public.causa_task_run(text, text, text, text, jsonb, text);
DROP FUNCTION IF EXISTS public.causa_task_get(text);
DROP FUNCTION IF EXISTS public.causa_event_history(jsonb, timestamptz, integer);
DROP FUNCTION IF EXISTS public.causa_dashboard(integer);
DROP SCHEMA IF EXISTS causa CASCADE;
