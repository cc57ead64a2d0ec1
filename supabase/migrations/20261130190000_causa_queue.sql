-- causa: the queue beside a ticket table, in causa's own schema.
--
-- shared/sql/schema.sql is a template: `causa migrate` fills its double-braced placeholders
-- (table, number, cause, text, number_key, table_name, channel, result_columns) with the
-- configured, quoted names and applies it; `causa migrate --print` writes the rendered SQL.
-- supabase/migrations/ holds it rendered for the default names (tickets, number,
-- short_description + description, causa). Applying it twice is harmless. PostgreSQL 15+.
--
-- causa is a quiet neighbour. Its queue lives in the schema `causa`, in tables it owns:
-- work items (what waits or is claimed), decisions (an append-only log), outcomes (each
-- ticket's latest decision), requests (replies to repeated calls), meta, events, owned (what
-- causa created outside its schema) and migrations (the versioned steps applied). The user's
-- ticket row is written once per decision: the cause (mode apply, when classified) and,
-- unless CAUSA_RESULT_COLUMNS=false, the causa_ result columns. The entry points stay in
-- `public` (PostgREST serves only exposed schemas), named causa_..., callable by the
-- service role only; the schema `causa` is not exposed to anon or authenticated.
--
-- The file has parts marked `-- causa:<part>`: checks (every run), versioned steps (`step N`,
-- each applied once, in order, recorded in causa.migrations), the repeatable part (functions,
-- triggers, grants: replaced every run) and the online part (indexes on the user's table,
-- built CONCURRENTLY by `causa migrate`).

-- causa:checks
CREATE SCHEMA IF NOT EXISTS causa;
REVOKE ALL ON SCHEMA causa FROM PUBLIC;
CREATE TABLE IF NOT EXISTS causa.migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- What causa created outside its schema (columns of the user's table), so that it refuses a
-- column it did not create and `--uninstall` removes exactly what it created.
CREATE TABLE IF NOT EXISTS causa.owned (
    kind text NOT NULL,          -- 'column' | 'legacy_column'
    name text NOT NULL,
    PRIMARY KEY (kind, name)
);
-- The result columns causa adds to the ticket table (unless CAUSA_RESULT_COLUMNS=false).
CREATE OR REPLACE FUNCTION causa.result_columns() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['causa_status', 'causa_source', 'causa_predicted', 'causa_confidence',
                 'causa_model_version', 'causa_decided_at']
$$;
-- The type of the ticket number column: causa's tables key tickets by the same type.
CREATE OR REPLACE FUNCTION causa.number_type() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format_type(atttypid, atttypmod) FROM pg_attribute
     WHERE attrelid = '"tickets"'::regclass AND attname = 'number'
$$;

-- Whether the ticket table is still migrated by causa 0.x (its queue columns and its
-- functions or cut-off table are there): then step 2 upgrades it.
CREATE OR REPLACE FUNCTION causa.from_0x() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = '"tickets"'::regclass
                      AND attname = 'classification_status' AND NOT attisdropped)
       AND (to_regclass('public.causa_meta') IS NOT NULL
            OR to_regprocedure('public.causa_claim(text, integer, integer, integer, jsonb,'
                               ' timestamptz)') IS NOT NULL)
$$;

-- One database serves one ticket table; the ticket number is the join key, so it must be
-- unique; result columns causa did not create are refused by name.
DO $$
DECLARE
    v_installed text;
    c text;
BEGIN
    IF to_regclass('causa.meta') IS NOT NULL THEN
        EXECUTE 'SELECT table_name FROM causa.meta' INTO v_installed;
        IF v_installed IS DISTINCT FROM 'tickets' THEN
            RAISE EXCEPTION 'causa is installed for table % in this database, not %', v_installed, 'tickets'
                USING HINT = 'one database serves one ticket table: set CAUSA_TABLE to it, or'
                             ' remove causa from it first (causa migrate --uninstall)';
        END IF;
    END IF;
    IF NOT EXISTS (
        SELECT FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = '"tickets"'::regclass AND i.indisunique AND i.indnkeyatts = 1
           AND i.indpred IS NULL AND a.attname = 'number') THEN
        RAISE EXCEPTION 'column % of table % is not unique: causa joins its queue to tickets by it',
                        'number', 'tickets'
            USING HINT = 'add a unique index on it, or set CAUSA_NUMBER_COLUMN to a unique column';
    END IF;
    IF true THEN
        FOREACH c IN ARRAY causa.result_columns() LOOP
            IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = '"tickets"'::regclass
                          AND attname = c AND NOT attisdropped)
               AND NOT EXISTS (SELECT FROM causa.owned WHERE kind = 'column' AND name = c)
               AND NOT causa.from_0x() THEN  -- 0.x's causa_ columns: the upgrade adopts them
                RAISE EXCEPTION 'column %.% exists and causa did not create it', 'tickets', c
                    USING HINT = 'rename or drop your column, or set CAUSA_RESULT_COLUMNS=false'
                                 ' (causa then writes only the cause)';
            END IF;
        END LOOP;
    END IF;
END $$;


-- causa:step 1 queue tables
-- The ticket number keeps the type of the user's column, so joins use their index.
DO $$
DECLARE
    v_type text := causa.number_type();
BEGIN
    EXECUTE format($sql$
        CREATE TABLE IF NOT EXISTS causa.work (
            number %1$s PRIMARY KEY,
            received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            attempts integer NOT NULL DEFAULT 0,
            claim_token uuid,
            claimed_by text,
            claimed_until timestamptz,
            request_id text,
            last_error text
        );
        CREATE TABLE IF NOT EXISTS causa.decisions (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            number %1$s NOT NULL,
            status text NOT NULL,
            source text NOT NULL,        -- 'model' | 'human'
            cause text,                  -- what the ticket's cause became (NULL: unchanged)
            predicted text,
            confidence real,
            alternatives jsonb,          -- the next causes: [{cause, p}]
            model_version text,
            digest text,                 -- sha256 of the text the model saw
            error text,
            received_at timestamptz,     -- when the ticket entered the queue
            decided_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            worker text,
            task text
        );
        CREATE TABLE IF NOT EXISTS causa.outcomes (
            number %1$s PRIMARY KEY,
            status text NOT NULL,
            source text NOT NULL,
            predicted text,
            confidence real,
            model_version text,
            error text,
            decided_at timestamptz NOT NULL
        )$sql$, v_type);
END $$;
-- Fresh items (claimed in batches, oldest first), items to retry alone, running leases.
CREATE INDEX IF NOT EXISTS work_fresh_idx ON causa.work (received_at)
    WHERE attempts = 0 AND claim_token IS NULL;
CREATE INDEX IF NOT EXISTS work_retry_idx ON causa.work (received_at)
    WHERE attempts > 0 AND claim_token IS NULL;
CREATE INDEX IF NOT EXISTS work_lease_idx ON causa.work (claimed_until)
    WHERE claim_token IS NOT NULL;
CREATE INDEX IF NOT EXISTS work_request_idx ON causa.work (request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS decisions_at_idx ON causa.decisions (decided_at);
CREATE INDEX IF NOT EXISTS decisions_number_idx ON causa.decisions (number);
CREATE INDEX IF NOT EXISTS decisions_failed_idx ON causa.decisions (decided_at)
    WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS outcomes_status_idx ON causa.outcomes (status, decided_at);
-- What a repeated apply or fail returns (the reply of the first), kept a day.
CREATE TABLE IF NOT EXISTS causa.requests (
    id text PRIMARY KEY,
    response jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS requests_at_idx ON causa.requests (at);
-- The table causa serves and the cut-off: only tickets received since it are work (the
-- first migration's time; never moved by a later one; CAUSA_CLASSIFY_SINCE overrides it).
CREATE TABLE IF NOT EXISTS causa.meta (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    table_name text NOT NULL,
    classify_since timestamptz NOT NULL
);
INSERT INTO causa.meta (table_name, classify_since) VALUES ('tickets', clock_timestamp())
ON CONFLICT (id) DO NOTHING;
-- causa's own record of what happened: training decisions, drift reports, admin actions.
CREATE TABLE IF NOT EXISTS causa.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS events_kind_idx ON causa.events (kind, at DESC);
INSERT INTO causa.migrations (version, name) VALUES (1, 'queue tables') ON CONFLICT DO NOTHING;


-- causa:step 2 upgrade from the queue in the ticket table
-- A database migrated by the previous release (causa 0.x: 12 columns in the user's table).
-- Its state moves into causa's tables: tickets pending or claimed since its cut-off become
-- work items (a running claim is let go: stop the old workers first), decided ones outcomes.
-- Three columns are renamed (classification_status -> causa_status, model_version ->
-- causa_model_version, classified_at -> causa_decided_at); causa_source, causa_predicted and
-- causa_confidence keep their names. The other six (attempts, claimed_by, claim_token,
-- claimed_until, last_error, received_at) stay until `causa migrate --drop-legacy`: the old
-- release may have adopted a column of the user's under one of those names.
DO $$
DECLARE
    c text;
BEGIN
    IF NOT causa.from_0x() THEN
        RETURN;
    END IF;
    IF to_regclass('public.causa_meta') IS NOT NULL THEN
        UPDATE causa.meta SET classify_since = (SELECT classify_since FROM public.causa_meta);
        DROP TABLE public.causa_meta;
    END IF;
    IF to_regclass('public.causa_events') IS NOT NULL THEN
        INSERT INTO causa.events (at, kind, payload)
        SELECT at, kind, payload FROM public.causa_events ORDER BY id;
        DROP TABLE public.causa_events;
    END IF;
    INSERT INTO causa.work (number, received_at, attempts, last_error)
    SELECT t."number", t.received_at, t.attempts, t.last_error FROM "tickets" AS t
     WHERE t.classification_status IN ('pending', 'claimed') AND t."causa" IS NULL
       AND t.received_at >= (SELECT classify_since FROM causa.meta)
    ON CONFLICT (number) DO NOTHING;
    INSERT INTO causa.outcomes (number, status, source, predicted, confidence, model_version,
                                error, decided_at)
    SELECT t."number", t.classification_status, coalesce(t.causa_source, 'model'),
           t.causa_predicted, t.causa_confidence, t.model_version, t.last_error,
           coalesce(t.classified_at, clock_timestamp())
      FROM "tickets" AS t
     WHERE t.classification_status IN ('classified', 'needs_review', 'failed', 'labelled')
    ON CONFLICT (number) DO NOTHING;
    DROP TRIGGER IF EXISTS causa_notify ON "tickets";
    DROP TRIGGER IF EXISTS causa_on_insert ON "tickets";
    DROP TRIGGER IF EXISTS causa_on_label ON "tickets";
    DROP FUNCTION IF EXISTS public.causa_on_insert();
    DROP FUNCTION IF EXISTS public.causa_notify();
    DROP FUNCTION IF EXISTS public.causa_on_label();
    DROP FUNCTION IF EXISTS public.causa_claim(text, integer, integer, integer, jsonb, timestamptz);
    DROP FUNCTION IF EXISTS public.causa_apply(jsonb, text);
    DROP FUNCTION IF EXISTS public.causa_fail(jsonb, integer);
    DROP FUNCTION IF EXISTS public.causa_pending_count(timestamptz);
    DROP FUNCTION IF EXISTS public.causa_status_counts();
    DROP FUNCTION IF EXISTS public.causa_requeue(jsonb, jsonb, text);
    DROP FUNCTION IF EXISTS public.causa_backfill(boolean, timestamptz, integer, timestamptz);
    DROP FUNCTION IF EXISTS public.causa_activity(integer, timestamptz);
    DROP FUNCTION IF EXISTS public.causa_recent(timestamptz, integer);
    DROP INDEX IF EXISTS causa_queue_idx;
    DROP INDEX IF EXISTS causa_labelled_idx;
    ALTER TABLE "tickets" ALTER COLUMN classification_status DROP DEFAULT;
    ALTER TABLE "tickets" RENAME COLUMN classification_status TO causa_status;
    ALTER TABLE "tickets" RENAME COLUMN model_version TO causa_model_version;
    ALTER TABLE "tickets" RENAME COLUMN classified_at TO causa_decided_at;
    -- NULL while queued, as causa writes it now (rows still queued are rewritten once).
    PERFORM set_config('causa.applying', 'on', true);
    UPDATE "tickets" SET causa_status = NULL WHERE causa_status IN ('pending', 'claimed');
    PERFORM set_config('causa.applying', 'off', true);
    INSERT INTO causa.owned (kind, name)
    SELECT 'column', unnest(causa.result_columns())
    UNION ALL
    SELECT 'legacy_column', unnest(ARRAY['attempts', 'claimed_by', 'claim_token',
                                         'claimed_until', 'last_error', 'received_at'])
    ON CONFLICT DO NOTHING;
END $$;
INSERT INTO causa.migrations (version, name) VALUES (2, 'upgrade from the queue in the ticket table')
ON CONFLICT DO NOTHING;


-- causa:step 3 api keys and task runs
-- The HTTP API's keys: only a SHA-256 of each key is kept, found by its first characters.
CREATE TABLE IF NOT EXISTS causa.api_keys (
    name text PRIMARY KEY,
    prefix text NOT NULL UNIQUE,      -- the key's first characters: how a request finds it
    hash text NOT NULL,               -- SHA-256 of the whole key, hex
    scope text NOT NULL CHECK (scope IN ('predict', 'review', 'admin')),
    rate_limit text,                  -- e.g. 600/minute; NULL: CAUSA_API_RATE_LIMIT
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
-- What became of each admin task (Celery keeps no results): keyed by its task id.
CREATE TABLE IF NOT EXISTS causa.task_runs (
    id text PRIMARY KEY,
    name text NOT NULL,
    state text NOT NULL CHECK (state IN ('queued', 'started', 'succeeded', 'failed')),
    requested_by text,
    summary jsonb,
    error text,
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS task_runs_queued_idx ON causa.task_runs (queued_at);
INSERT INTO causa.migrations (version, name) VALUES (3, 'api keys and task runs')
ON CONFLICT DO NOTHING;


-- causa:step 4 explanations
-- Why the model decided: the terms that raised the predicted cause most, [{term, weight}].
ALTER TABLE causa.decisions ADD COLUMN IF NOT EXISTS explanation jsonb;
INSERT INTO causa.migrations (version, name) VALUES (4, 'explanations')
ON CONFLICT DO NOTHING;


-- causa:repeatable
-- The result columns people filter on in their own tools, written once per decision.
DO $$
BEGIN
    IF true THEN
        ALTER TABLE "tickets"
            ADD COLUMN IF NOT EXISTS causa_status text,   -- NULL while queued
            ADD COLUMN IF NOT EXISTS causa_source text,   -- who set the cause: 'model' | 'human'
            ADD COLUMN IF NOT EXISTS causa_predicted text,
            ADD COLUMN IF NOT EXISTS causa_confidence real,
            ADD COLUMN IF NOT EXISTS causa_model_version text,
            ADD COLUMN IF NOT EXISTS causa_decided_at timestamptz;
        INSERT INTO causa.owned (kind, name)
        SELECT 'column', unnest(causa.result_columns())
        ON CONFLICT DO NOTHING;
    END IF;
END $$;

-- A ticket number given as JSON, as the user's column type (so its index is used).
DO $$
DECLARE
    v_type text := causa.number_type();
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION causa.ticket_number(p jsonb) RETURNS %1$s'
                   ' LANGUAGE sql IMMUTABLE AS $f$ SELECT (p #>> ''{}'')::%1$s $f$', v_type);
END $$;

-- Tickets and their latest decision: what the result columns hold, for those who turned them off.
CREATE OR REPLACE VIEW causa.tickets AS
SELECT t."number" AS number, t."causa" AS cause, o.status, o.source, o.predicted,
       o.confidence, o.model_version, o.decided_at, (w.number IS NOT NULL) AS queued
  FROM "tickets" AS t
  LEFT JOIN causa.outcomes AS o ON o.number = t."number"
  LEFT JOIN causa.work AS w ON w.number = t."number";


-- Bad input to an entry point is refused before anything is read or written, with an error
-- that names the argument and its value (the path into a JSON array: p_results[3].status)
-- and a hint that says what to give. SQLSTATE 22023 (invalid_parameter_value): the same call
-- fails the same way again, so callers do not retry it. A well-formed call that changes
-- nothing is no error: a claim token that is no longer (or never was) a claim is stale.

-- The most items one call may name: CAUSA_BATCH_SIZE's maximum and the admin flows' limit
-- of ticket numbers. A longer array is a mistake (or an attack), not a batch.
CREATE OR REPLACE FUNCTION causa.max_items() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT 10000 $$;

-- A JSON value as an error message shows it: at most 60 characters.
CREATE OR REPLACE FUNCTION causa.shown(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN length(p::text) > 60 THEN left(p::text, 57) || '...' ELSE p::text END
$$;

-- An integer argument from p_min to p_max (NULL: no maximum), else the error.
CREATE OR REPLACE FUNCTION causa.check_range(p_name text, p_value bigint, p_min bigint,
                                             p_max bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_value IS NULL OR p_value < p_min OR p_value > p_max THEN
        RAISE EXCEPTION '% is %', p_name,
                        coalesce(p_value::text || ': out of range', 'NULL: it is required')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = CASE WHEN p_max IS NULL
                              THEN format('give a whole number of at least %s', p_min)
                              ELSE format('give a whole number from %s to %s', p_min, p_max) END;
    END IF;
END $$;

-- A claim token as causa_claim gives it: a UUID's 36 characters. Only the length is looked
-- at for every item (a regular expression costs 5 us an item); causa.check_items casts them.
CREATE OR REPLACE FUNCTION causa.bad_token(p jsonb, p_exact boolean DEFAULT false) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p) IS DISTINCT FROM 'string' THEN true
                WHEN p_exact THEN p #>> '{}' !~* '^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$'
                ELSE length(p #>> '{}') <> 36 END
$$;

-- The keys an item of a kind may have: a misspelt key is refused, not silently dropped.
CREATE OR REPLACE FUNCTION causa.item_keys(p_kind text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_kind
        WHEN 'results' THEN ARRAY['number', 'claim_token', 'status', 'predicted', 'confidence',
                                  'alternatives', 'explanation', 'model_version', 'digest',
                                  'error']
        WHEN 'failures' THEN ARRAY['number', 'claim_token', 'error'] END
$$;

-- What is wrong with one item of a JSON array argument (NULL: nothing), as the path from it
-- and the value: `.status is "done", not classified or needs_review`. Kinds: numbers (ticket
-- numbers), statuses (what causa_requeue takes back), results (causa_apply), failures
-- (causa_fail). Nested CASEs: a value is cast only once its type is known. One expression,
-- without sub-selects, so that PostgreSQL inlines it: checking 1,000 results costs about
-- 10 ms (70 ms as a function called per item).
CREATE OR REPLACE FUNCTION causa.item_problem(e jsonb, p_kind text) RETURNS text
LANGUAGE sql STABLE AS $$  -- STABLE as format() is: else it is not inlined
    SELECT CASE
        WHEN p_kind = 'numbers' THEN
            CASE WHEN jsonb_typeof(e) NOT IN ('string', 'number')
                 THEN format(' is %s, not a ticket number', causa.shown(e)) END
        WHEN p_kind = 'statuses' THEN
            CASE WHEN jsonb_typeof(e) <> 'string'
                      OR e #>> '{}' NOT IN ('classified', 'needs_review', 'failed')
                 THEN format(' is %s, not classified, needs_review or failed', causa.shown(e)) END
        WHEN jsonb_typeof(e) <> 'object' THEN format(' is %s, not an object', causa.shown(e))
        WHEN e - causa.item_keys(p_kind) <> '{}'
            THEN format(' has keys causa does not know: %s',
                        causa.shown(e - causa.item_keys(p_kind)))
        WHEN coalesce(jsonb_typeof(e->'number'), 'missing') NOT IN ('string', 'number')
            THEN format('.number is %s, not a ticket number',
                        coalesce(causa.shown(e->'number'), 'missing'))
        WHEN causa.bad_token(e->'claim_token')  -- and causa.check_items casts each to uuid
            THEN format('.claim_token is %s, not the UUID causa_claim gave',
                        coalesce(causa.shown(e->'claim_token'), 'missing'))
        WHEN p_kind = 'failures' THEN
            CASE WHEN coalesce(jsonb_typeof(e->'error'), 'null') NOT IN ('string', 'null')
                 THEN format('.error is %s, not a string', causa.shown(e->'error')) END
        WHEN CASE WHEN jsonb_typeof(e->'status') = 'string'
                  THEN e->>'status' NOT IN ('classified', 'needs_review') ELSE true END
            THEN format('.status is %s, not classified or needs_review (failures go to'
                        ' causa_fail)', coalesce(causa.shown(e->'status'), 'missing'))
        WHEN e->>'status' = 'classified'
             AND coalesce(jsonb_typeof(e->'predicted'), 'null') <> 'string'
            THEN format('.predicted is %s: a classified result needs its cause, a string',
                        coalesce(causa.shown(e->'predicted'), 'missing'))
        WHEN coalesce(jsonb_typeof(e->'predicted'), 'null') NOT IN ('string', 'null')
            THEN format('.predicted is %s, not a string', causa.shown(e->'predicted'))
        WHEN CASE WHEN jsonb_typeof(e->'confidence') = 'number'
                  THEN (e->'confidence')::numeric NOT BETWEEN 0 AND 1
                  ELSE coalesce(jsonb_typeof(e->'confidence'), 'null') <> 'null' END
            THEN format('.confidence is %s, not a number from 0 to 1', causa.shown(e->'confidence'))
        WHEN coalesce(jsonb_typeof(e->'alternatives'), 'null') NOT IN ('array', 'null')
            THEN format('.alternatives is %s, not an array', causa.shown(e->'alternatives'))
        WHEN coalesce(jsonb_typeof(e->'explanation'), 'null') NOT IN ('array', 'null')
            THEN format('.explanation is %s, not an array', causa.shown(e->'explanation'))
        WHEN coalesce(jsonb_typeof(e->'model_version'), 'null') NOT IN ('string', 'null')
            THEN format('.model_version is %s, not a string', causa.shown(e->'model_version'))
        WHEN coalesce(jsonb_typeof(e->'digest'), 'null') NOT IN ('string', 'null')
            THEN format('.digest is %s, not a string', causa.shown(e->'digest'))
        WHEN coalesce(jsonb_typeof(e->'error'), 'null') NOT IN ('string', 'null')
            THEN format('.error is %s, not a string', causa.shown(e->'error'))
    END
$$;

-- A JSON array argument of a kind (see causa.item_problem): an array of at most
-- causa.max_items() well-formed items, results and failures one per ticket, every ticket
-- number one the number column can hold (an integer column cannot hold "INC1"); else the
-- error, for the first bad item.
CREATE OR REPLACE FUNCTION causa.check_items(p_name text, p jsonb, p_kind text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_hint text := 'give ' || CASE p_kind
        WHEN 'numbers' THEN 'a JSON array of ticket numbers, e.g. ["INC0012345"]'
        WHEN 'statuses' THEN 'a JSON array of statuses among classified, needs_review and failed'
        WHEN 'results' THEN 'a JSON array of {number, claim_token, status (classified or'
                            ' needs_review), predicted, confidence (0 to 1), alternatives,'
                            ' explanation, model_version, digest, error}, one per claimed ticket'
        WHEN 'failures' THEN 'a JSON array of {number, claim_token, error}, one per claimed ticket'
    END;
    v_at bigint;
    v_item jsonb;
    v_problem text;
BEGIN
    IF jsonb_typeof(p) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION '% is %, not a JSON array', p_name, coalesce(causa.shown(p), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = v_hint;
    END IF;
    IF jsonb_array_length(p) > causa.max_items() THEN
        RAISE EXCEPTION '% has % items: more than % in one call', p_name, jsonb_array_length(p),
                        causa.max_items()
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('split it into calls of at most %s items', causa.max_items());
    END IF;
    SELECT a.i - 1, causa.item_problem(a.e, p_kind) INTO v_at, v_problem
      FROM jsonb_array_elements(p) WITH ORDINALITY AS a(e, i)
     WHERE causa.item_problem(a.e, p_kind) IS NOT NULL
     ORDER BY a.i
     LIMIT 1;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%[%]%', p_name, v_at, v_problem
            USING ERRCODE = 'invalid_parameter_value', HINT = v_hint;
    END IF;
    IF p_kind IN ('results', 'failures') THEN
        SELECT to_jsonb(n)::text INTO v_problem
          FROM (SELECT a.e->>'number' AS n FROM jsonb_array_elements(p) AS a(e)) AS d
         GROUP BY n HAVING count(*) > 1
         LIMIT 1;
        IF v_problem IS NOT NULL THEN
            RAISE EXCEPTION '% names ticket % more than once', p_name, v_problem
                USING ERRCODE = 'invalid_parameter_value', HINT = v_hint;
        END IF;
    END IF;
    IF p_kind <> 'statuses' THEN
        -- Casts, all at once in one subtransaction (a claim token to uuid, a ticket number to
        -- the number column's type: an integer column cannot hold "INC1"); on an error, the
        -- item is looked for.
        BEGIN
            PERFORM causa.ticket_number(CASE WHEN p_kind = 'numbers' THEN a.e
                                             ELSE a.e->'number' END),
                    CASE WHEN p_kind <> 'numbers' THEN (a.e->>'claim_token')::uuid END
               FROM jsonb_array_elements(p) AS a(e);
        EXCEPTION WHEN data_exception THEN
            SELECT a.i - 1, a.e->'claim_token' INTO v_at, v_item
              FROM jsonb_array_elements(p) WITH ORDINALITY AS a(e, i)
             WHERE p_kind <> 'numbers' AND causa.bad_token(a.e->'claim_token', true)
             ORDER BY a.i
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION '%[%].claim_token is %, not the UUID causa_claim gave',
                                p_name, v_at, causa.shown(v_item)
                    USING ERRCODE = 'invalid_parameter_value', HINT = v_hint;
            END IF;
            RAISE EXCEPTION '% holds a ticket number the ticket table cannot: %', p_name, SQLERRM
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('ticket numbers here are of type %s, the number column''s',
                                    causa.number_type());
        END;
    END IF;
END $$;


-- Record decisions: a JSON array of {number, status, source, predicted, confidence,
-- alternatives, explanation, model_version, digest, error, received_at} whose work items are gone. The
-- confidence is kept to 6 decimals (a real cannot hold 1e-300: it would be an error). Appends to
-- the log, sets each ticket's outcome and writes the ticket's row once: the cause when
-- classified in mode apply, the result columns when they are on (nothing else: with them
-- off, a decision that sets no cause does not touch the row).
CREATE OR REPLACE FUNCTION causa.record(p jsonb, p_mode text, p_worker text, p_task text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_array_length(p) = 0 THEN
        RETURN;
    END IF;
    WITH d AS (
        SELECT causa.ticket_number(to_jsonb(x.number)) AS number, x.status,
               coalesce(x.source, 'model') AS source,
               CASE WHEN x.status = 'classified' AND p_mode = 'apply' THEN x.predicted END AS cause,
               x.predicted, round(x.confidence, 6)::real AS confidence, x.alternatives,
               x.explanation, x.model_version, x.digest,
               left(x.error, 2000) AS error, x.received_at
          FROM jsonb_to_recordset(p) AS x(number text, status text, source text, predicted text,
                                          confidence numeric, alternatives jsonb,
                                          explanation jsonb, model_version text, digest text, error text,
                                          received_at timestamptz)
    ), logged AS (
        INSERT INTO causa.decisions (number, status, source, cause, predicted, confidence,
                                     alternatives, explanation, model_version, digest, error,
                                     received_at, worker, task)
        SELECT d.number, d.status, d.source, d.cause, d.predicted, d.confidence,
               d.alternatives, d.explanation, d.model_version, d.digest, d.error,
               d.received_at, p_worker, p_task
          FROM d
    )
    INSERT INTO causa.outcomes AS o (number, status, source, predicted, confidence,
                                     model_version, error, decided_at)
    SELECT d.number, d.status, d.source, d.predicted, d.confidence, d.model_version, d.error,
           clock_timestamp()
      FROM d
    ON CONFLICT (number) DO UPDATE
       SET status = excluded.status, source = excluded.source, predicted = excluded.predicted,
           confidence = excluded.confidence, model_version = excluded.model_version,
           error = excluded.error, decided_at = excluded.decided_at;
    PERFORM set_config('causa.applying', 'on', true);
    IF true THEN
        UPDATE "tickets" AS t
           SET "causa" = coalesce(d.cause, t."causa"),
               causa_status = d.status,
               causa_source = CASE WHEN d.cause IS NOT NULL THEN 'model' END,
               causa_predicted = d.predicted,
               causa_confidence = d.confidence,
               causa_model_version = d.model_version,
               causa_decided_at = clock_timestamp()
          FROM (SELECT causa.ticket_number(to_jsonb(x.number)) AS number,
                       CASE WHEN x.status = 'classified' AND p_mode = 'apply'
                            THEN x.predicted END AS cause,
                       x.status, x.predicted, round(x.confidence, 6)::real AS confidence,
                       x.model_version
                  FROM jsonb_to_recordset(p) AS x(number text, status text, predicted text,
                                                  confidence numeric, model_version text)) AS d
         WHERE t."number" = d.number;
    ELSIF p_mode = 'apply' THEN
        UPDATE "tickets" AS t
           SET "causa" = d.predicted
          FROM jsonb_to_recordset(p) AS d(number text, status text, predicted text)
         WHERE t."number" = causa.ticket_number(to_jsonb(d.number))
           AND d.status = 'classified';
    END IF;
    PERFORM set_config('causa.applying', 'off', true);
END $$;


-- Lock the tickets of a JSON array of {number, ...} in number order, before their work
-- items: the order a person's label takes them in (the row, then its trigger), so the two
-- never deadlock, and a label that committed first wins (its work item is gone). SKIP
-- LOCKED leaves out tickets someone holds. Returns the numbers locked.
CREATE OR REPLACE FUNCTION causa.lock_tickets(p jsonb, p_skip_locked boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_locked jsonb;
BEGIN
    IF p_skip_locked THEN
        SELECT coalesce(jsonb_agg(l.n), '[]'::jsonb) INTO v_locked
          FROM (SELECT t."number"::text AS n FROM "tickets" AS t
                 WHERE t."number" IN (SELECT causa.ticket_number(x->'number')
                                          FROM jsonb_array_elements(p) AS x)
                 ORDER BY t."number" FOR NO KEY UPDATE SKIP LOCKED) AS l;
    ELSE
        SELECT coalesce(jsonb_agg(l.n), '[]'::jsonb) INTO v_locked
          FROM (SELECT t."number"::text AS n FROM "tickets" AS t
                 WHERE t."number" IN (SELECT causa.ticket_number(x->'number')
                                          FROM jsonb_array_elements(p) AS x)
                 ORDER BY t."number" FOR NO KEY UPDATE) AS l;
    END IF;
    RETURN v_locked;
END $$;


-- Dead-letter the work items whose lease expired after their last attempt (the worker died
-- or timed out on them every time): at most p_limit per call, tickets someone holds skipped.
CREATE OR REPLACE FUNCTION causa.expire(p_max_attempts integer, p_limit integer DEFAULT 100)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_dead jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(jsonb_build_object('number', w.number)), '[]'::jsonb) INTO v_dead
      FROM (SELECT number FROM causa.work
             WHERE claim_token IS NOT NULL AND claimed_until < v_now AND attempts >= p_max_attempts
             ORDER BY claimed_until LIMIT p_limit) AS w;
    IF jsonb_array_length(v_dead) = 0 THEN
        RETURN 0;
    END IF;
    v_dead := causa.lock_tickets(v_dead, true);
    WITH gone AS (
        DELETE FROM causa.work AS w
         WHERE w.number IN (SELECT causa.ticket_number(n) FROM jsonb_array_elements(v_dead) AS n)
           AND w.claim_token IS NOT NULL AND w.claimed_until < v_now
           AND w.attempts >= p_max_attempts
        RETURNING w.number, w.attempts, w.received_at
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'number', g.number::text, 'status', 'failed', 'received_at', g.received_at,
               'error', format('the lease expired %s times: the worker died or timed out on'
                               ' this ticket every time', g.attempts))), '[]'::jsonb)
      INTO v_dead FROM gone AS g;
    PERFORM causa.record(v_dead, 'apply', NULL, 'lease expired');
    RETURN jsonb_array_length(v_dead);
END $$;


-- Tickets inserted without a cause enter the queue: one statement-level trigger per INSERT,
-- and one NOTIFY carrying how many (a bulk insert of 5,000 rows asks for enough batches).
-- Notifications are hints: beat's poll is the safety net. SECURITY DEFINER: the user's
-- application inserts with its own role, which has no rights on causa's schema.
CREATE OR REPLACE FUNCTION causa.enqueue_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_count bigint;
BEGIN
    INSERT INTO causa.work (number)
    SELECT n."number" FROM causa_inserted AS n WHERE n."causa" IS NULL
    ON CONFLICT (number) DO NOTHING;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM pg_notify('causa_pending', v_count::text);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER causa_enqueue
    AFTER INSERT ON "tickets"
    REFERENCING NEW TABLE AS causa_inserted
    FOR EACH STATEMENT EXECUTE FUNCTION causa.enqueue_inserted();


-- A ticket inserted with a cause is a person's label (only written into the row it inserts).
CREATE OR REPLACE FUNCTION causa.label_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.causa_source := 'human';
    NEW.causa_status := 'labelled';
    RETURN NEW;
END $$;

DO $$
BEGIN
    IF true THEN
        CREATE OR REPLACE TRIGGER causa_on_insert
            BEFORE INSERT ON "tickets"
            FOR EACH ROW WHEN (NEW."causa" IS NOT NULL)
            EXECUTE FUNCTION causa.label_inserted();
    ELSE
        DROP TRIGGER IF EXISTS causa_on_insert ON "tickets";
    END IF;
END $$;


-- Any change of the cause that does not come from causa (causa.record sets a
-- transaction-local flag) is a person's: a training label, recorded as a decision, its work
-- item removed so no model write can overwrite it. A cause set back to NULL asks for a new
-- classification. Only the row being updated is changed (no second write).
-- A person's label: the ticket leaves the queue, a human decision is recorded, with who
-- made it when the caller said so (causa_label sets causa.labelled_by for its transaction).
CREATE OR REPLACE FUNCTION causa.record_label(p_number anyelement, p_cause text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM causa.work WHERE number = p_number;
    INSERT INTO causa.decisions (number, status, source, cause, worker)
    VALUES (p_number, 'labelled', 'human', p_cause,
            nullif(current_setting('causa.labelled_by', true), ''));
    INSERT INTO causa.outcomes AS o (number, status, source, decided_at)
    VALUES (p_number, 'labelled', 'human', clock_timestamp())
    ON CONFLICT (number) DO UPDATE
       SET status = 'labelled', source = 'human', error = NULL, decided_at = excluded.decided_at;
END $$;

CREATE OR REPLACE FUNCTION causa.cause_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF current_setting('causa.applying', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW."causa" IS NULL THEN
        INSERT INTO causa.work (number) VALUES (NEW."number")
        ON CONFLICT (number) DO UPDATE
           SET received_at = clock_timestamp(), attempts = 0, claim_token = NULL,
               claimed_by = NULL, claimed_until = NULL, request_id = NULL, last_error = NULL;
        DELETE FROM causa.outcomes WHERE number = NEW."number";
        IF true THEN
            NEW.causa_status := NULL;
            NEW.causa_source := NULL;
        END IF;
        PERFORM pg_notify('causa_pending', '1');
    ELSE
        PERFORM causa.record_label(NEW."number", NEW."causa");
        IF true THEN
            NEW.causa_source := 'human';
            NEW.causa_status := 'labelled';
            NEW.causa_decided_at := clock_timestamp();
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER causa_on_label
    BEFORE UPDATE OF "causa" ON "tickets"
    FOR EACH ROW WHEN (OLD."causa" IS DISTINCT FROM NEW."causa")
    EXECUTE FUNCTION causa.cause_changed();


-- Claim up to p_batch tickets for p_lease_seconds. A repeated claim with the same
-- p_request_id (a lost reply, a retried call) returns the tickets that request holds, with no
-- new attempt. A ticket claimed before (its worker died, timed out or failed on it) is
-- claimed alone, so a poison ticket uses up only its own attempts; an expired lease that
-- used the last attempt goes to the dead letter. Only among p_numbers when given (a JSON
-- array), only tickets received since p_since, or since the cut-off when NULL. A work item
-- whose ticket was deleted is dropped. Texts are cut to p_max_chars characters. Returns a
-- JSON array of {number, text, attempts, claim_token}. A lease of 0 s ends at once (tests).
CREATE OR REPLACE FUNCTION public.causa_claim(
    p_worker text,
    p_batch integer,
    p_lease_seconds integer,
    p_max_attempts integer DEFAULT 3,
    p_numbers jsonb DEFAULT NULL,
    p_since timestamptz DEFAULT NULL,
    p_request_id text DEFAULT NULL,
    p_max_chars integer DEFAULT 20000
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_since timestamptz := coalesce(p_since, (SELECT classify_since FROM causa.meta), '-infinity');
    v_claimed jsonb;
    v_ctids tid[];
    v_gone uuid[];
BEGIN
    IF coalesce(p_worker, '') = '' THEN
        RAISE EXCEPTION 'p_worker is %: a claim needs the name of the worker making it',
                        coalesce(quote_literal(p_worker), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'give the worker''s name';
    END IF;
    PERFORM causa.check_range('p_batch', p_batch, 1, causa.max_items());
    PERFORM causa.check_range('p_lease_seconds', p_lease_seconds, 0);
    PERFORM causa.check_range('p_max_attempts', p_max_attempts, 1);
    PERFORM causa.check_range('p_max_chars', p_max_chars, 1);
    p_numbers := nullif(p_numbers, 'null');  -- JSON null: not given, as SQL NULL
    IF p_numbers IS NOT NULL THEN
        PERFORM causa.check_items('p_numbers', p_numbers, 'numbers');
    END IF;
    IF p_request_id IS NOT NULL THEN
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'number', w.number::text, 'text', left(concat_ws(' ', t."short_description", t."description"), p_max_chars),
                   'attempts', w.attempts, 'claim_token', w.claim_token)), '[]'::jsonb)
          INTO v_claimed
          FROM causa.work AS w JOIN "tickets" AS t ON t."number" = w.number
         WHERE w.request_id = p_request_id AND w.claim_token IS NOT NULL;
        IF jsonb_array_length(v_claimed) > 0 THEN
            RETURN v_claimed;
        END IF;
    END IF;

    PERFORM causa.expire(p_max_attempts);

    SELECT ARRAY[w.ctid] INTO v_ctids FROM causa.work AS w
     WHERE w.claim_token IS NOT NULL AND w.claimed_until < v_now
       AND (p_numbers IS NULL OR w.number IN (SELECT causa.ticket_number(x)
                                               FROM jsonb_array_elements(p_numbers) AS x))
       AND w.received_at >= v_since
     ORDER BY w.claimed_until
     LIMIT 1
       FOR UPDATE SKIP LOCKED;
    IF v_ctids IS NULL THEN
        SELECT ARRAY[w.ctid] INTO v_ctids FROM causa.work AS w
         WHERE w.attempts > 0 AND w.claim_token IS NULL
           AND (p_numbers IS NULL OR w.number IN (SELECT causa.ticket_number(x)
                                                   FROM jsonb_array_elements(p_numbers) AS x))
           AND w.received_at >= v_since
         ORDER BY w.received_at
         LIMIT 1
           FOR UPDATE SKIP LOCKED;
    END IF;
    IF v_ctids IS NULL THEN
        SELECT array_agg(f.ctid) INTO v_ctids
          FROM (SELECT w.ctid FROM causa.work AS w
                 WHERE w.attempts = 0 AND w.claim_token IS NULL
                   AND (p_numbers IS NULL OR w.number IN (SELECT causa.ticket_number(x)
                                                           FROM jsonb_array_elements(p_numbers) AS x))
                   AND w.received_at >= v_since
                 ORDER BY w.received_at
                 LIMIT p_batch
                   FOR UPDATE SKIP LOCKED) AS f;
    END IF;
    IF v_ctids IS NULL THEN
        RETURN '[]'::jsonb;
    END IF;

    WITH claimed AS (
        UPDATE causa.work AS w
           SET attempts = w.attempts + 1, claimed_by = p_worker, claim_token = gen_random_uuid(),
               claimed_until = v_now + make_interval(secs => p_lease_seconds),
               request_id = p_request_id
         WHERE w.ctid = ANY(v_ctids)
        RETURNING w.number, w.attempts, w.claim_token
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'number', c.number::text, 'text', left(concat_ws(' ', t."short_description", t."description"), p_max_chars),
               'attempts', c.attempts, 'claim_token', c.claim_token))
                   FILTER (WHERE t."number" IS NOT NULL), '[]'::jsonb),
           array_agg(c.claim_token) FILTER (WHERE t."number" IS NULL)
      INTO v_claimed, v_gone
      FROM claimed AS c LEFT JOIN "tickets" AS t ON t."number" = c.number;
    IF v_gone IS NOT NULL THEN  -- work items whose ticket was deleted: dropped, not returned
        DELETE FROM causa.work WHERE claim_token = ANY(v_gone);
    END IF;
    RETURN v_claimed;
END $$;


-- Write results: a JSON array of {number, claim_token, status ('classified' or
-- 'needs_review'), predicted, confidence, alternatives, explanation, model_version, digest,
-- error}. Only tickets whose work item still holds that token are written, so a late,
-- duplicated or replayed write changes nothing and is counted as stale; a repeated call with the same
-- p_request_id returns the first one's reply. 'classified' writes the cause (unless p_mode
-- = 'suggest'). Returns {applied, stale}.
CREATE OR REPLACE FUNCTION public.causa_apply(
    p_results jsonb,
    p_mode text DEFAULT 'apply',
    p_request_id text DEFAULT NULL,
    p_worker text DEFAULT NULL,
    p_task text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_reply jsonb;
    v_won jsonb;
BEGIN
    PERFORM causa.check_items('p_results', p_results, 'results');
    IF p_mode IS NULL OR p_mode NOT IN ('apply', 'suggest') THEN
        RAISE EXCEPTION 'p_mode is %, not apply or suggest', coalesce(quote_literal(p_mode), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'apply writes the cause; suggest writes only the prediction';
    END IF;
    SELECT response INTO v_reply FROM causa.requests WHERE id = p_request_id;
    IF FOUND THEN
        RETURN v_reply;
    END IF;
    PERFORM causa.lock_tickets(p_results);
    WITH r AS (
        SELECT causa.ticket_number(x->'number') AS number, (x->>'claim_token')::uuid AS token,
               x - 'claim_token' AS x
          FROM jsonb_array_elements(p_results) AS x
         WHERE x->>'status' IN ('classified', 'needs_review')
    ), present AS (  -- a ticket deleted meanwhile is a stale write (the claim drops its item)
        SELECT r.* FROM r JOIN "tickets" AS t ON t."number" = r.number
    ), won AS (
        DELETE FROM causa.work AS w USING present AS r
         WHERE w.number = r.number AND w.claim_token = r.token
        RETURNING r.x || jsonb_build_object('received_at', w.received_at) AS x
    )
    SELECT coalesce(jsonb_agg(won.x), '[]'::jsonb) INTO v_won FROM won;
    PERFORM causa.record(v_won, p_mode, p_worker, p_task);
    v_reply := jsonb_build_object('applied', jsonb_array_length(v_won),
                                  'stale', jsonb_array_length(p_results) - jsonb_array_length(v_won));
    IF p_request_id IS NOT NULL THEN
        INSERT INTO causa.requests (id, response) VALUES (p_request_id, v_reply);
    END IF;
    RETURN v_reply;
END $$;


-- Record failures: a JSON array of {number, claim_token, error}. A ticket goes back to the
-- queue (retried alone), or to the dead letter (a 'failed' decision) once its attempts
-- reach p_max_attempts. A repeated call with the same p_request_id returns the first one's
-- reply. Returns {retrying, failed, stale}.
CREATE OR REPLACE FUNCTION public.causa_fail(
    p_failures jsonb,
    p_max_attempts integer DEFAULT 3,
    p_request_id text DEFAULT NULL,
    p_worker text DEFAULT NULL,
    p_task text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_reply jsonb;
    v_retrying integer;
    v_dead jsonb;
BEGIN
    PERFORM causa.check_items('p_failures', p_failures, 'failures');
    PERFORM causa.check_range('p_max_attempts', p_max_attempts, 1);
    SELECT response INTO v_reply FROM causa.requests WHERE id = p_request_id;
    IF FOUND THEN
        RETURN v_reply;
    END IF;
    PERFORM causa.lock_tickets(p_failures);
    UPDATE causa.work AS w
       SET claim_token = NULL, claimed_until = NULL, request_id = NULL, last_error = left(f.error, 2000)
      FROM jsonb_to_recordset(p_failures) AS f(number text, claim_token uuid, error text)
     WHERE w.number = causa.ticket_number(to_jsonb(f.number)) AND w.claim_token = f.claim_token
       AND w.attempts < p_max_attempts;
    GET DIAGNOSTICS v_retrying = ROW_COUNT;
    WITH dead AS (
        DELETE FROM causa.work AS w
         USING jsonb_to_recordset(p_failures) AS f(number text, claim_token uuid, error text)
         WHERE w.number = causa.ticket_number(to_jsonb(f.number)) AND w.claim_token = f.claim_token
        RETURNING f.number, f.error, w.received_at
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('number', d.number, 'status', 'failed',
                                                 'error', d.error,
                                                 'received_at', d.received_at)), '[]'::jsonb)
      INTO v_dead FROM dead AS d;
    PERFORM causa.record(v_dead, 'apply', p_worker, p_task);
    v_reply := jsonb_build_object(
        'retrying', v_retrying, 'failed', jsonb_array_length(v_dead),
        'stale', jsonb_array_length(p_failures) - v_retrying - jsonb_array_length(v_dead));
    IF p_request_id IS NOT NULL THEN
        INSERT INTO causa.requests (id, response) VALUES (p_request_id, v_reply);
    END IF;
    RETURN v_reply;
END $$;


-- The planner's estimate of the rows a query returns: a count that costs nothing, for
-- counts above a threshold (people see them marked as estimates).
CREATE OR REPLACE FUNCTION causa.estimate(p_query text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_plan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || p_query INTO v_plan;
    RETURN (v_plan->0->'Plan'->>'Plan Rows')::bigint;
END $$;


-- The work still to do: fresh tickets (claimed in batches), tickets to retry one at a time
-- (back after a failure, or whose lease expired) and leases still running; only tickets
-- received since p_since, or since the cut-off when NULL. Each count stops at p_cap (it
-- runs every poll: its cost is bounded, and beat needs no more to fill the queue); a count
-- that reached it is the planner's estimate and `estimated` says so.
CREATE OR REPLACE FUNCTION public.causa_pending_count(
    p_since timestamptz DEFAULT NULL,
    p_cap integer DEFAULT 10000
) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_since timestamptz := coalesce(p_since, (SELECT classify_since FROM causa.meta), '-infinity');
    v_pending bigint;
    v_retry bigint;
    v_claimed bigint;
BEGIN
    PERFORM causa.check_range('p_cap', p_cap, 1);
    SELECT count(*) INTO v_pending
      FROM (SELECT FROM causa.work WHERE attempts = 0 AND claim_token IS NULL
                                     AND received_at >= v_since LIMIT p_cap) AS w;
    SELECT count(*) INTO v_retry
      FROM (SELECT FROM causa.work WHERE attempts > 0 AND claim_token IS NULL
                                     AND received_at >= v_since
            UNION ALL
            SELECT FROM causa.work WHERE claim_token IS NOT NULL AND claimed_until < v_now
                                     AND received_at >= v_since
            LIMIT p_cap) AS w;
    SELECT count(*) INTO v_claimed
      FROM (SELECT FROM causa.work WHERE claim_token IS NOT NULL AND claimed_until >= v_now
            LIMIT p_cap) AS w;
    IF v_pending >= p_cap THEN
        v_pending := greatest(p_cap, causa.estimate(
            'SELECT FROM causa.work WHERE attempts = 0 AND claim_token IS NULL'));
    END IF;
    RETURN jsonb_build_object('pending', v_pending, 'retry', v_retry, 'claimed', v_claimed,
                              'estimated', v_pending > p_cap);
END $$;


-- Tickets by status, for `causa status`: queued (pending, claimed) from the work items, the
-- rest from each ticket's latest decision (labels counted since causa was installed). A
-- count above p_cap is the planner's estimate, listed under `estimated`.
CREATE OR REPLACE FUNCTION public.causa_status_counts(p_cap integer DEFAULT 10000) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_counts jsonb;
    v_status text;
    v_n bigint;
    v_estimated jsonb := '[]'::jsonb;
BEGIN
    v_counts := public.causa_pending_count(NULL, p_cap);
    IF (v_counts->>'estimated')::boolean THEN
        v_estimated := '["pending"]'::jsonb;
    END IF;
    v_counts := jsonb_build_object(
        'pending', (v_counts->>'pending')::bigint + (v_counts->>'retry')::bigint,
        'claimed', v_counts->'claimed');
    FOREACH v_status IN ARRAY ARRAY['classified', 'needs_review', 'failed', 'labelled'] LOOP
        SELECT count(*) INTO v_n
          FROM (SELECT FROM causa.outcomes WHERE status = v_status LIMIT p_cap) AS o;
        IF v_n >= p_cap THEN
            v_n := greatest(p_cap, causa.estimate(format(
                'SELECT FROM causa.outcomes WHERE status = %L', v_status)));
            v_estimated := v_estimated || to_jsonb(v_status);
        END IF;
        v_counts := v_counts || jsonb_build_object(v_status, v_n);
    END LOOP;
    RETURN v_counts || jsonb_build_object('estimated', v_estimated);
END $$;


-- Labelled tickets for training, by keyset on the ticket number (p_after: the last number of
-- the previous page): causes people set, never the model's guesses (a cause the model wrote
-- is one whose latest decision is the model's 'classified').
CREATE OR REPLACE FUNCTION public.causa_labelled(p_after text DEFAULT NULL, p_limit integer DEFAULT 10000)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT causa.check_range('p_limit', p_limit, 0);
    SELECT causa.check_items('p_after', jsonb_build_array(p_after), 'numbers')
     WHERE p_after IS NOT NULL;
    SELECT coalesce(jsonb_agg(jsonb_build_object('number', l.number::text, 'text', l.text,
                                                 'cause', l.cause) ORDER BY l.number),
                    '[]'::jsonb)
      FROM (SELECT t."number" AS number, concat_ws(' ', t."short_description", t."description") AS text, t."causa" AS cause
              FROM "tickets" AS t
             WHERE t."causa" IS NOT NULL
               AND (p_after IS NULL OR t."number" > causa.ticket_number(to_jsonb(p_after)))
               AND NOT EXISTS (SELECT FROM causa.outcomes AS o
                                WHERE o.number = t."number" AND o.source = 'model'
                                  AND o.status = 'classified')
             ORDER BY t."number"
             LIMIT p_limit) AS l
$$;


-- Operator replay: put tickets back in the queue. Only tickets the model decided or gave up
-- on (latest decision classified, needs_review or failed; never a person's label, never one
-- queued), among p_statuses (a JSON array), only p_numbers when given, only those decided
-- by p_model_version when given. A cause the model wrote is cleared (one write of the row),
-- attempts start again. Running it twice requeues nothing more. Returns {requeued}.
CREATE OR REPLACE FUNCTION public.causa_requeue(
    p_statuses jsonb,
    p_numbers jsonb DEFAULT NULL,
    p_model_version text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_requeued jsonb;
BEGIN
    PERFORM causa.check_items('p_statuses', p_statuses, 'statuses');
    p_numbers := nullif(p_numbers, 'null');  -- JSON null: not given, as SQL NULL
    IF p_numbers IS NOT NULL THEN
        PERFORM causa.check_items('p_numbers', p_numbers, 'numbers');
    END IF;
    WITH r AS (
        DELETE FROM causa.outcomes AS o
         WHERE o.status IN (SELECT jsonb_array_elements_text(p_statuses))
           AND o.status IN ('classified', 'needs_review', 'failed')
           AND o.source = 'model'
           AND (p_numbers IS NULL OR o.number IN (SELECT causa.ticket_number(x)
                                                   FROM jsonb_array_elements(p_numbers) AS x))
           AND (p_model_version IS NULL OR o.model_version = p_model_version)
        RETURNING o.number, o.predicted, o.status
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('number', r.number::text,
                                                 'predicted', r.predicted, 'status', r.status)),
                    '[]'::jsonb)
      INTO v_requeued FROM r;
    PERFORM set_config('causa.applying', 'on', true);
    -- A cause the model wrote is its latest 'classified' decision's prediction, still there.
    UPDATE "tickets" AS t
       SET "causa" = CASE WHEN q.status = 'classified'
                                 AND t."causa" IS NOT DISTINCT FROM q.predicted
                            THEN NULL ELSE t."causa" END
           , causa_status = NULL, causa_source = NULL, causa_decided_at = NULL
      FROM jsonb_to_recordset(v_requeued) AS q(number text, predicted text, status text)
     WHERE t."number" = causa.ticket_number(to_jsonb(q.number))
       AND (true OR (q.status = 'classified'
                                   AND t."causa" IS NOT DISTINCT FROM q.predicted));
    PERFORM set_config('causa.applying', 'off', true);
    INSERT INTO causa.work (number)
    SELECT causa.ticket_number(to_jsonb(q.number))
      FROM jsonb_to_recordset(v_requeued) AS q(number text)
    ON CONFLICT (number) DO NOTHING;
    RETURN jsonb_build_object('requeued', jsonb_array_length(v_requeued));
END $$;


-- History on purpose (`causa backfill`): tickets without a cause that the cut-off leaves
-- alone: work items received before it (CAUSA_CLASSIFY_SINCE moved it past them), newest
-- first, then tickets causa never saw (there before it: no work item, no decision), newest
-- number first; with p_since only the first kind received since then. At most p_limit.
-- Without p_apply they are only counted; with it they are queued with a received time now
-- (nothing is enqueued: beat's poll finds them). Returns {tickets, cutoff}.
CREATE OR REPLACE FUNCTION public.causa_backfill(
    p_apply boolean DEFAULT false,
    p_since timestamptz DEFAULT NULL,
    p_limit integer DEFAULT NULL,
    p_classify_since timestamptz DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_cutoff timestamptz :=
        coalesce(p_classify_since, (SELECT classify_since FROM causa.meta), '-infinity');
    v_late integer;
    v_unseen integer := 0;
BEGIN
    IF p_limit IS NOT NULL THEN  -- NULL: no limit
        PERFORM causa.check_range('p_limit', p_limit, 0);
    END IF;
    IF p_apply THEN
        UPDATE causa.work AS w
           SET received_at = clock_timestamp(), attempts = 0, last_error = NULL
         WHERE w.number IN (SELECT s.number FROM causa.work AS s
                             WHERE s.received_at < v_cutoff AND s.claim_token IS NULL
                               AND (p_since IS NULL OR s.received_at >= p_since)
                             ORDER BY s.received_at DESC
                             LIMIT p_limit);
        GET DIAGNOSTICS v_late = ROW_COUNT;
        IF p_since IS NULL THEN
            INSERT INTO causa.work (number)
            SELECT t."number" FROM "tickets" AS t
             WHERE t."causa" IS NULL
               AND NOT EXISTS (SELECT FROM causa.work AS w WHERE w.number = t."number")
               AND NOT EXISTS (SELECT FROM causa.outcomes AS o WHERE o.number = t."number")
             ORDER BY t."number" DESC
             LIMIT p_limit - v_late
            ON CONFLICT (number) DO NOTHING;
            GET DIAGNOSTICS v_unseen = ROW_COUNT;
        END IF;
    ELSE
        SELECT count(*) INTO v_late
          FROM (SELECT FROM causa.work AS s
                 WHERE s.received_at < v_cutoff AND s.claim_token IS NULL
                   AND (p_since IS NULL OR s.received_at >= p_since)
                 LIMIT p_limit) AS h;
        IF p_since IS NULL THEN
            SELECT count(*) INTO v_unseen
              FROM (SELECT FROM "tickets" AS t
                     WHERE t."causa" IS NULL
                       AND NOT EXISTS (SELECT FROM causa.work AS w WHERE w.number = t."number")
                       AND NOT EXISTS (SELECT FROM causa.outcomes AS o
                                        WHERE o.number = t."number")
                     LIMIT p_limit - v_late) AS h;
        END IF;
    END IF;
    RETURN jsonb_build_object('tickets', v_late + v_unseen, 'cutoff', v_cutoff);
END $$;


-- What `causa status` and the watch task need beyond the counts: the age of the oldest
-- queued ticket (the alarm that catches every stall), decisions in the last p_window
-- seconds (counted up to p_cap, then the planner's estimate: `decided_estimated`), and the
-- tickets dead-lettered since p_failed_since (default: the window), with a few examples.
-- Each part reads an index range: its cost is the work, not the table.
CREATE OR REPLACE FUNCTION public.causa_activity(
    p_window integer DEFAULT 300,
    p_failed_since timestamptz DEFAULT NULL,
    p_cap integer DEFAULT 10000
) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_since timestamptz := clock_timestamp() - make_interval(secs => p_window);
    v_failed_since timestamptz := coalesce(p_failed_since, v_since);
    v_decided bigint;
BEGIN
    PERFORM causa.check_range('p_window', p_window, 0);
    PERFORM causa.check_range('p_cap', p_cap, 1);
    SELECT count(*) INTO v_decided
      FROM (SELECT FROM causa.decisions
             WHERE decided_at >= v_since AND status IN ('classified', 'needs_review')
             LIMIT p_cap) AS d;
    IF v_decided >= p_cap THEN
        v_decided := greatest(p_cap, causa.estimate(format(
            'SELECT FROM causa.decisions WHERE decided_at >= %L'
            ' AND status IN (''classified'', ''needs_review'')', v_since)));
    END IF;
    RETURN jsonb_build_object(
        'oldest_pending_s',
            (SELECT extract(epoch FROM clock_timestamp() - min(m))::real
               FROM (SELECT min(received_at) AS m FROM causa.work
                      WHERE attempts = 0 AND claim_token IS NULL
                     UNION ALL
                     SELECT min(received_at) FROM causa.work
                      WHERE attempts > 0 AND claim_token IS NULL
                     UNION ALL
                     SELECT min(received_at) FROM causa.work WHERE claim_token IS NOT NULL) AS o),
        'decided_recently', v_decided,
        'decided_estimated', v_decided > p_cap,
        'dead_lettered',
            (SELECT count(*) FROM causa.decisions
              WHERE status = 'failed' AND decided_at >= v_failed_since),
        'dead_letter_examples',
            (SELECT coalesce(jsonb_agg(jsonb_build_object('number', f.number::text,
                                                          'error', f.error)), '[]'::jsonb)
               FROM (SELECT number, error FROM causa.decisions
                      WHERE status = 'failed' AND decided_at >= v_failed_since
                      ORDER BY decided_at DESC LIMIT 5) AS f));
END $$;


-- The model's recent decisions, newest first, for the drift report: text, predicted cause,
-- confidence, status and model of tickets decided since p_since.
CREATE OR REPLACE FUNCTION public.causa_recent(p_since timestamptz, p_limit integer DEFAULT 10000)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT causa.check_range('p_limit', p_limit, 0);
    SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]'::jsonb)
      FROM (SELECT concat_ws(' ', t."short_description", t."description") AS text, d.predicted, d.confidence, d.status, d.model_version
              FROM causa.decisions AS d JOIN "tickets" AS t ON t."number" = d.number
             WHERE d.status IN ('classified', 'needs_review') AND d.decided_at >= p_since
             ORDER BY d.decided_at DESC
             LIMIT p_limit) AS r
$$;


-- The model's decisions over a window and what people made of them, for live accuracy and
-- `causa thresholds --suggest`: each decision (classified or needs_review, with a predicted
-- cause) made from p_since to p_until (default now) that is the model's last word on its
-- ticket before a person's label (a later model decision with no label in between replaces
-- it), with the cause of the last human label that follows it (label NULL: nobody reviewed
-- it yet; a confirmation through causa_label is a label too). Only p_model_version's
-- decisions when given. Keyset paging: p_after is the {at, id} of the previous page's last
-- row; at most p_limit rows. Each decision is found by decided_at, its labels by number.
-- A JSON array of {id, at, number, status, predicted, confidence, model_version, label,
-- labelled_at}, oldest first.
CREATE OR REPLACE FUNCTION public.causa_live_decisions(
    p_since timestamptz, p_until timestamptz DEFAULT NULL, p_model_version text DEFAULT NULL,
    p_after jsonb DEFAULT NULL, p_limit integer DEFAULT 10000
) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_until timestamptz := coalesce(p_until, clock_timestamp());
    v_at timestamptz;
    v_id bigint;
    v_rows jsonb;
BEGIN
    PERFORM causa.check_range('p_limit', p_limit, 1, 100000);
    IF p_since IS NULL OR p_since > v_until THEN
        RAISE EXCEPTION 'p_since is %, not the start of a window that ends at %',
                        coalesce(p_since::text, 'NULL'), v_until
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'give a time before p_until (default: now), e.g. now() - interval ''7 days''';
    END IF;
    IF p_after IS NOT NULL AND p_after <> 'null' THEN
        BEGIN
            v_at := (p_after->>'at')::timestamptz;
            v_id := (p_after->>'id')::bigint;
        EXCEPTION WHEN others THEN
            v_at := NULL;
        END;
        IF v_at IS NULL OR v_id IS NULL THEN
            RAISE EXCEPTION 'p_after is %, not a cursor causa gave', causa.shown(p_after)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'give {at, id} of the last row of the previous page';
        END IF;
    END IF;
    SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.at, r.id), '[]'::jsonb) INTO v_rows
      FROM (SELECT d.id, d.decided_at AS at, d.number::text AS number, d.status, d.predicted,
                   d.confidence, d.model_version, h.cause AS label, h.decided_at AS labelled_at
              FROM causa.decisions AS d
              LEFT JOIN LATERAL (SELECT min(n.id) AS id FROM causa.decisions AS n
                                  WHERE n.number = d.number AND n.id > d.id
                                    AND n.source = 'model') AS m ON true
              LEFT JOIN LATERAL (SELECT n.cause, n.decided_at FROM causa.decisions AS n
                                  WHERE n.number = d.number AND n.id > d.id
                                    AND n.status = 'labelled' AND n.source = 'human'
                                    AND (m.id IS NULL OR n.id < m.id)
                                  ORDER BY n.id DESC LIMIT 1) AS h ON true
             WHERE d.decided_at >= p_since AND d.decided_at < v_until
               AND d.status IN ('classified', 'needs_review') AND d.source = 'model'
               AND d.predicted IS NOT NULL
               AND (p_model_version IS NULL OR d.model_version = p_model_version)
               AND (v_at IS NULL OR (d.decided_at, d.id) > (v_at, v_id))
               AND (m.id IS NULL OR h.decided_at IS NOT NULL)
             ORDER BY d.decided_at, d.id
             LIMIT p_limit) AS r;
    RETURN v_rows;
END $$;


-- One row of causa's record: a kind (a word: training, drift, admin, ...) and a JSON object.
CREATE OR REPLACE FUNCTION public.causa_record_event(p_kind text, p_payload jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_event jsonb;
BEGIN
    IF p_kind IS NULL OR p_kind !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'p_kind is %, not the kind of an event',
                        coalesce(quote_literal(left(p_kind, 60)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'give a lowercase word of at most 63 letters, digits and _, e.g. training';
    END IF;
    IF jsonb_typeof(p_payload) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'p_payload is %, not a JSON object',
                        coalesce(causa.shown(p_payload), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'give what happened as {key: value}';
    END IF;
    INSERT INTO causa.events (kind, payload) VALUES (p_kind, p_payload)
    RETURNING jsonb_build_object('id', id, 'at', at) INTO v_event;
    RETURN v_event;
END $$;

-- The newest event of each kind: {kind: {at, payload}}.
CREATE OR REPLACE FUNCTION public.causa_latest_events() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(e.kind, jsonb_build_object('at', e.at, 'payload', e.payload)),
                    '{}'::jsonb)
      FROM (SELECT DISTINCT ON (kind) kind, at, payload FROM causa.events
             ORDER BY kind, at DESC, id DESC) AS e
$$;


-- Events of some kinds (a JSON array of kinds) since a time, oldest first: [{kind, at, payload}] (the dashboard's
-- drift and model timelines). At most p_limit, the newest ones.
CREATE OR REPLACE FUNCTION public.causa_event_history(
    p_kinds jsonb, p_since timestamptz, p_limit integer DEFAULT 1000
) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT causa.check_range('p_limit', p_limit, 1, 10000);
    SELECT coalesce(jsonb_agg(jsonb_build_object('kind', e.kind, 'at', e.at, 'payload', e.payload)
                              ORDER BY e.at, e.id), '[]'::jsonb)
      FROM (SELECT id, kind, at, payload FROM causa.events
             WHERE kind IN (SELECT jsonb_array_elements_text(p_kinds)) AND at >= p_since
             ORDER BY at DESC, id DESC
             LIMIT p_limit) AS e
$$;

-- What the review desk's dashboard draws, over the last p_days days (1 to 90), by hour:
-- decisions by status, the backlog at the end of each hour, the decided cause of each
-- decision by day, and the model's confidence in 20 bins by verdict. It reads the window's
-- decisions (decisions_at_idx) and the queue, never the ticket table.
-- The backlog of an hour: work items received by its end and not decided by then, counted
-- as arrivals (+1, from the window's start) less departures (-1, each decision that removed
-- a work item: it carries the item's received_at), summed over the hours.
CREATE OR REPLACE FUNCTION public.causa_dashboard(p_days integer DEFAULT 7) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_since timestamptz;
    v_out jsonb;
BEGIN
    PERFORM causa.check_range('p_days', p_days, 1, 90);
    v_since := date_trunc('hour', v_now) - make_interval(days => p_days);
    WITH d AS (
        SELECT status, source, coalesce(cause, predicted) AS cause, confidence, received_at,
               decided_at
          FROM causa.decisions WHERE decided_at >= v_since
    ), moves AS (
        SELECT greatest(date_trunc('hour', received_at), v_since) AS hour, 1 AS n
          FROM d WHERE received_at IS NOT NULL
        UNION ALL
        SELECT date_trunc('hour', decided_at), -1 FROM d WHERE received_at IS NOT NULL
        UNION ALL
        SELECT greatest(date_trunc('hour', w.received_at), v_since), 1 FROM causa.work AS w
    ), backlog AS (
        SELECT h.hour, sum(coalesce(m.n, 0)) OVER (ORDER BY h.hour) AS n
          FROM generate_series(v_since, date_trunc('hour', v_now), interval '1 hour') AS h(hour)
          LEFT JOIN (SELECT hour, sum(n) AS n FROM moves GROUP BY hour) AS m ON m.hour = h.hour
    )
    SELECT jsonb_build_object(
        'since', v_since,
        'now', v_now,
        'hourly', (SELECT coalesce(jsonb_agg(jsonb_build_object('hour', x.hour, 'status', x.status,
                                                                'n', x.n) ORDER BY x.hour, x.status),
                                   '[]'::jsonb)
                     FROM (SELECT date_trunc('hour', decided_at) AS hour, status, count(*) AS n
                             FROM d GROUP BY 1, 2) AS x),
        'backlog', (SELECT jsonb_agg(jsonb_build_object('hour', b.hour, 'n', b.n) ORDER BY b.hour)
                      FROM backlog AS b),
        'causes', (SELECT coalesce(jsonb_agg(jsonb_build_object('day', x.day, 'cause', x.cause,
                                                                'n', x.n) ORDER BY x.day, x.cause),
                                   '[]'::jsonb)
                     FROM (SELECT date_trunc('day', decided_at) AS day, cause, count(*) AS n
                             FROM d WHERE cause IS NOT NULL AND status <> 'failed'
                            GROUP BY 1, 2) AS x),
        'confidence', (SELECT coalesce(jsonb_agg(jsonb_build_object('bin', x.bin, 'status', x.status,
                                                                    'n', x.n) ORDER BY x.bin, x.status),
                                       '[]'::jsonb)
                         FROM (SELECT least(floor(confidence * 20), 19)::integer AS bin, status,
                                      count(*) AS n
                                 FROM d
                                WHERE source = 'model' AND confidence IS NOT NULL
                                  AND status IN ('classified', 'needs_review')
                                GROUP BY 1, 2) AS x)
    ) INTO v_out;
    RETURN v_out;
END $$;


-- Retention, one small batch per call (the periodic task calls it until nothing is left):
-- decisions older than p_decision_days, events older than p_event_days except the newest
-- of each kind and the install records, replies to repeated calls older than a day.
-- Returns {decisions, events, requests} deleted.
CREATE OR REPLACE FUNCTION public.causa_retain(
    p_decision_days integer DEFAULT 180,
    p_event_days integer DEFAULT 180,
    p_batch integer DEFAULT 5000
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_decisions integer;
    v_events integer;
    v_requests integer;
BEGIN
    -- 0 or fewer days would delete today's decisions: refused, not obeyed. At most a century
    -- (2^31 days back is no date: an error that would say nothing of the setting).
    PERFORM causa.check_range('p_decision_days', p_decision_days, 1, 36500);
    PERFORM causa.check_range('p_event_days', p_event_days, 1, 36500);
    PERFORM causa.check_range('p_batch', p_batch, 1);
    DELETE FROM causa.decisions
     WHERE id IN (SELECT id FROM causa.decisions
                   WHERE decided_at < clock_timestamp() - make_interval(days => p_decision_days)
                   ORDER BY decided_at LIMIT p_batch);
    GET DIAGNOSTICS v_decisions = ROW_COUNT;
    DELETE FROM causa.events AS e
     WHERE e.id IN (SELECT id FROM causa.events
                     WHERE at < clock_timestamp() - make_interval(days => p_event_days)
                       AND kind <> 'install'
                     ORDER BY at LIMIT p_batch)
       AND e.id <> (SELECT n.id FROM causa.events AS n WHERE n.kind = e.kind
                     ORDER BY n.at DESC, n.id DESC LIMIT 1);
    GET DIAGNOSTICS v_events = ROW_COUNT;
    DELETE FROM causa.requests
     WHERE id IN (SELECT id FROM causa.requests WHERE at < clock_timestamp() - interval '1 day'
                   ORDER BY at LIMIT p_batch);
    GET DIAGNOSTICS v_requests = ROW_COUNT;
    RETURN jsonb_build_object('decisions', v_decisions, 'events', v_events,
                              'requests', v_requests);
END $$;


-- Only the service role may call the entry points or read causa's schema. Supabase's
-- default privileges grant EXECUTE on new functions in `public` to anon and authenticated,
-- so revoking from PUBLIC is not enough: revoke from those roles by name, where they exist
-- (on a plain PostgreSQL they do not).
-- A reviewer's label through causa (the HTTP API), the same as an edit of the ticket: a new
-- cause goes through the label trigger (queue left, human decision, result columns); the
-- cause the ticket already has is a confirmation, recorded the same way without changing it.
-- p_by (the API key's name) is recorded as who decided. {found, changed}.
CREATE OR REPLACE FUNCTION public.causa_label(p_number text, p_cause text, p_by text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_old text;
BEGIN
    PERFORM causa.check_items('p_number', jsonb_build_array(p_number), 'numbers');
    IF coalesce(btrim(p_cause), '') = '' OR length(p_cause) > 200 THEN
        RAISE EXCEPTION 'p_cause is %, not a cause', coalesce(quote_literal(left(p_cause, 60)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'give the cause, 1 to 200 characters';
    END IF;
    PERFORM set_config('causa.labelled_by', coalesce(p_by, ''), true);
    SELECT t."causa" INTO v_old FROM "tickets" AS t
     WHERE t."number" = causa.ticket_number(to_jsonb(p_number)) FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('found', false, 'changed', false);
    END IF;
    IF v_old IS DISTINCT FROM p_cause THEN
        UPDATE "tickets" AS t SET "causa" = p_cause WHERE t."number" = causa.ticket_number(to_jsonb(p_number));
        RETURN jsonb_build_object('found', true, 'changed', true);
    END IF;
    PERFORM causa.record_label(causa.ticket_number(to_jsonb(p_number)), p_cause);
    IF true THEN
        PERFORM set_config('causa.applying', 'on', true);
        UPDATE "tickets" AS t
           SET causa_source = 'human', causa_status = 'labelled', causa_decided_at = clock_timestamp()
         WHERE t."number" = causa.ticket_number(to_jsonb(p_number));
        PERFORM set_config('causa.applying', 'off', true);
    END IF;
    RETURN jsonb_build_object('found', true, 'changed', false);
END $$;


-- Tickets of one state for people to work through, oldest first, p_limit at a time after
-- the cursor p_after ({at, number} of the last one seen): pending from the queue, needs_review
-- and failed from each ticket's latest decision. Each with its text (cut to p_max_chars),
-- cause, prediction, confidence, the next causes and the last error.
CREATE OR REPLACE FUNCTION public.causa_tickets(
    p_status text, p_limit integer DEFAULT 50, p_after jsonb DEFAULT NULL,
    p_max_chars integer DEFAULT 20000
) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_at timestamptz;
    v_number text;
    v_rows jsonb;
BEGIN
    PERFORM causa.check_range('p_limit', p_limit, 1, 1000);
    PERFORM causa.check_range('p_max_chars', p_max_chars, 1);
    IF p_status IS NULL OR p_status NOT IN ('pending', 'needs_review', 'failed') THEN
        RAISE EXCEPTION 'p_status is %, not pending, needs_review or failed',
                        coalesce(quote_literal(left(p_status, 60)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'give pending, needs_review or failed';
    END IF;
    IF p_after IS NOT NULL AND p_after <> 'null' THEN
        BEGIN
            v_at := (p_after->>'at')::timestamptz;
            v_number := p_after->>'number';
        EXCEPTION WHEN others THEN
            v_at := NULL;
        END;
        IF v_at IS NULL OR v_number IS NULL THEN
            RAISE EXCEPTION 'p_after is %, not a cursor causa gave', causa.shown(p_after)
                USING ERRCODE = 'invalid_parameter_value', HINT = 'give the cursor of the last page';
        END IF;
    END IF;
    IF p_status = 'pending' THEN
        SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.at, r.number), '[]'::jsonb) INTO v_rows
          FROM (SELECT w.number::text AS number, w.received_at AS at, w.received_at,
                       left(concat_ws(' ', t."short_description", t."description"), p_max_chars) AS text, t."causa" AS cause,
                       'pending' AS status, NULL::text AS predicted, NULL::real AS confidence,
                       NULL::jsonb AS alternatives, NULL::jsonb AS explanation,
                       NULL::text AS model_version,
                       w.last_error AS error, w.attempts
                  FROM causa.work AS w JOIN "tickets" AS t ON t."number" = w.number
                 WHERE w.claim_token IS NULL
                   AND (v_at IS NULL OR (w.received_at, w.number::text) > (v_at, v_number))
                 ORDER BY w.received_at, w.number
                 LIMIT p_limit) AS r;
    ELSE
        SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.at, r.number), '[]'::jsonb) INTO v_rows
          FROM (SELECT o.number::text AS number, o.decided_at AS at, d.received_at,
                       left(concat_ws(' ', t."short_description", t."description"), p_max_chars) AS text, t."causa" AS cause,
                       o.status, o.predicted, o.confidence, d.alternatives, d.explanation,
                       o.model_version, o.error, NULL::integer AS attempts
                  FROM causa.outcomes AS o
                  JOIN "tickets" AS t ON t."number" = o.number
                  LEFT JOIN LATERAL (SELECT x.alternatives, x.explanation, x.received_at
                                       FROM causa.decisions AS x
                                      WHERE x.number = o.number ORDER BY x.id DESC LIMIT 1) AS d ON true
                 WHERE o.status = p_status
                   AND (v_at IS NULL OR (o.decided_at, o.number::text) > (v_at, v_number))
                 ORDER BY o.decided_at, o.number
                 LIMIT p_limit) AS r;
    END IF;
    RETURN v_rows;
END $$;


-- One ticket as causa_tickets shows it, whatever its state (NULL: no such ticket).
CREATE OR REPLACE FUNCTION public.causa_ticket(p_number text, p_max_chars integer DEFAULT 20000)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_row jsonb;
BEGIN
    PERFORM causa.check_items('p_number', jsonb_build_array(p_number), 'numbers');
    PERFORM causa.check_range('p_max_chars', p_max_chars, 1);
    SELECT to_jsonb(r) INTO v_row
      FROM (SELECT t."number"::text AS number, left(concat_ws(' ', t."short_description", t."description"), p_max_chars) AS text,
                   t."causa" AS cause,
                   CASE WHEN w.number IS NOT NULL
                        THEN CASE WHEN w.claim_token IS NULL THEN 'pending' ELSE 'claimed' END
                        ELSE o.status END AS status,
                   o.predicted, o.confidence, d.alternatives, d.explanation, o.model_version,
                   o.decided_at,
                   coalesce(w.last_error, o.error) AS error
              FROM "tickets" AS t
              LEFT JOIN causa.work AS w ON w.number = t."number"
              LEFT JOIN causa.outcomes AS o ON o.number = t."number"
              LEFT JOIN LATERAL (SELECT x.alternatives, x.explanation FROM causa.decisions AS x
                                  WHERE x.number = t."number" ORDER BY x.id DESC LIMIT 1) AS d ON true
             WHERE t."number" = causa.ticket_number(to_jsonb(p_number))) AS r;
    RETURN v_row;
END $$;


-- API keys: made (only the hash of the key is given), found by prefix (its last use noted
-- at most once a minute), listed (never the hash), revoked (kept, marked).
CREATE OR REPLACE FUNCTION public.causa_api_key_create(
    p_name text, p_prefix text, p_hash text, p_scope text, p_rate_limit text
) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9_.@-]{1,100}$' THEN
        RAISE EXCEPTION 'p_name is %, not a key name', coalesce(quote_literal(left(p_name, 60)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'give 1 to 100 letters, digits and _ . @ -';
    END IF;
    IF EXISTS (SELECT FROM causa.api_keys WHERE name = p_name) THEN
        RAISE EXCEPTION 'an API key named % exists already', quote_literal(p_name)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'choose another name, or revoke that key first';
    END IF;
    INSERT INTO causa.api_keys (name, prefix, hash, scope, rate_limit)
    VALUES (p_name, p_prefix, p_hash, p_scope, p_rate_limit);
    RETURN jsonb_build_object('name', p_name, 'scope', p_scope, 'rate_limit', p_rate_limit);
END $$;

CREATE OR REPLACE FUNCTION public.causa_api_key_find(p_prefix text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_key jsonb;
BEGIN
    UPDATE causa.api_keys SET last_used_at = clock_timestamp()
     WHERE prefix = p_prefix AND revoked_at IS NULL
       AND (last_used_at IS NULL OR last_used_at < clock_timestamp() - interval '1 minute');
    SELECT jsonb_build_object('name', name, 'hash', hash, 'scope', scope,
                              'rate_limit', rate_limit, 'revoked', revoked_at IS NOT NULL)
      INTO v_key FROM causa.api_keys WHERE prefix = p_prefix;
    RETURN v_key;
END $$;

CREATE OR REPLACE FUNCTION public.causa_api_keys() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'name', name, 'scope', scope, 'rate_limit', rate_limit, 'created_at', created_at,
               'last_used_at', last_used_at, 'revoked_at', revoked_at) ORDER BY created_at), '[]')
      FROM causa.api_keys
$$;

CREATE OR REPLACE FUNCTION public.causa_api_key_revoke(p_name text) RETURNS boolean
LANGUAGE sql AS $$
    UPDATE causa.api_keys SET revoked_at = clock_timestamp()
     WHERE name = p_name AND revoked_at IS NULL
    RETURNING true
$$;


-- What became of an admin task: queued (by whoever asked), started, succeeded or failed
-- with a summary or an error. A later state never goes back to an earlier one.
CREATE OR REPLACE FUNCTION public.causa_task_run(
    p_id text, p_name text, p_state text, p_by text DEFAULT NULL,
    p_summary jsonb DEFAULT NULL, p_error text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_id IS NULL OR p_state IS NULL
       OR p_state NOT IN ('queued', 'started', 'succeeded', 'failed') THEN
        RAISE EXCEPTION 'a task run needs an id and a state among queued, started, succeeded,'
                        ' failed; got %, %', coalesce(quote_literal(p_id), 'NULL'),
                        coalesce(quote_literal(p_state), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO causa.task_runs AS r (id, name, state, requested_by, summary, error, started_at,
                                      finished_at)
    VALUES (p_id, p_name, p_state, p_by, p_summary, left(p_error, 2000),
            CASE WHEN p_state <> 'queued' THEN clock_timestamp() END,
            CASE WHEN p_state IN ('succeeded', 'failed') THEN clock_timestamp() END)
    ON CONFLICT (id) DO UPDATE
       SET state = CASE WHEN least(array_position(ARRAY['queued', 'started', 'succeeded'], excluded.state), 3)
                             > least(array_position(ARRAY['queued', 'started', 'succeeded'], r.state), 3)
                        THEN excluded.state ELSE r.state END,
           requested_by = coalesce(r.requested_by, excluded.requested_by),
           summary = coalesce(excluded.summary, r.summary),
           error = coalesce(excluded.error, r.error),
           started_at = coalesce(r.started_at, excluded.started_at),
           finished_at = coalesce(r.finished_at, excluded.finished_at);
END $$;

CREATE OR REPLACE FUNCTION public.causa_task_get(p_id text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT to_jsonb(r) FROM causa.task_runs AS r WHERE r.id = p_id
$$;


DO $$
DECLARE
    f text;
    r text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'public.causa_claim(text, integer, integer, integer, jsonb, timestamptz, text, integer)',
        'public.causa_apply(jsonb, text, text, text, text)',
        'public.causa_fail(jsonb, integer, text, text, text)',
        'public.causa_pending_count(timestamptz, integer)',
        'public.causa_status_counts(integer)',
        'public.causa_labelled(text, integer)',
        'public.causa_requeue(jsonb, jsonb, text)',
        'public.causa_backfill(boolean, timestamptz, integer, timestamptz)',
        'public.causa_activity(integer, timestamptz, integer)',
        'public.causa_recent(timestamptz, integer)',
        'public.causa_live_decisions(timestamptz, timestamptz, text, jsonb, integer)',
        'public.causa_record_event(text, jsonb)',
        'public.causa_latest_events()',
        'public.causa_retain(integer, integer, integer)',
        'public.causa_label(text, text, text)',
        'public.causa_tickets(text, integer, jsonb, integer)',
        'public.causa_ticket(text, integer)',
        'public.causa_api_key_create(text, text, text, text, text)',
        'public.causa_api_key_find(text)',
        'public.causa_api_keys()',
        'public.causa_api_key_revoke(text)',
        'public.causa_task_run(text, text, text, text, jsonb, text)',
        'public.causa_task_get(text)',
        'public.causa_event_history(jsonb, timestamptz, integer)',
        'public.causa_dashboard(integer)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
                EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', f, r);
            END IF;
        END LOOP;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', f);
        END IF;
    END LOOP;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT USAGE ON SCHEMA causa TO service_role;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA causa TO service_role;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA causa TO service_role;
    END IF;
END $$;


-- causa:online
-- On a large live table `causa migrate` builds this index CONCURRENTLY, after the rest.
-- Training reads the labelled tickets by number.
CREATE INDEX IF NOT EXISTS causa_labelled_idx ON "tickets" ("number") WHERE "causa" IS NOT NULL;
