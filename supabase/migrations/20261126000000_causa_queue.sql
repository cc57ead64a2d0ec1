-- causa: the queue on the ticket table.
--
-- shared/sql/schema.sql is a template: `causa migrate` fills its double-braced placeholders
-- (table, number, cause, text, number_key) with the configured, quoted names and applies
-- it; `causa migrate --print` writes the rendered SQL. supabase/migrations/ holds it
-- rendered for the default names (tickets, number, short_description + description, causa).
-- Applying it twice is harmless. PostgreSQL 15 or newer.
--
-- Statuses: pending -> claimed -> classified | needs_review | failed; labelled when a
-- person set the cause (final). The database is the queue and the source of truth.

-- Columns: all nullable or with a constant default, so adding them rewrites nothing and
-- existing writers keep working.
ALTER TABLE "tickets"
    ADD COLUMN IF NOT EXISTS causa_source text,              -- 'model' | 'human'
    ADD COLUMN IF NOT EXISTS causa_predicted text,
    ADD COLUMN IF NOT EXISTS causa_confidence real,
    ADD COLUMN IF NOT EXISTS model_version text,
    ADD COLUMN IF NOT EXISTS classified_at timestamptz,
    ADD COLUMN IF NOT EXISTS classification_status text DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS claimed_by text,
    ADD COLUMN IF NOT EXISTS claim_token uuid,
    ADD COLUMN IF NOT EXISTS claimed_until timestamptz,
    ADD COLUMN IF NOT EXISTS last_error text,
    ADD COLUMN IF NOT EXISTS received_at timestamptz;        -- NULL: there before causa

-- A separate step so that existing rows keep NULL (no rewrite) and new rows get the time.
ALTER TABLE "tickets" ALTER COLUMN received_at SET DEFAULT clock_timestamp();

-- The cut-off: only tickets received since it are work. Recorded by the first migration (its
-- time) and never moved by a later one; CAUSA_CLASSIFY_SINCE overrides it (p_since). Rows
-- there before causa (received_at NULL) are never work: `causa backfill` queues them on
-- purpose. Where causa was installed before this table existed (its claim function does),
-- every ticket it received stays work: -infinity. Row level security with no policy.
CREATE TABLE IF NOT EXISTS causa_meta (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    classify_since timestamptz NOT NULL
);
ALTER TABLE causa_meta ENABLE ROW LEVEL SECURITY;
INSERT INTO causa_meta (classify_since)
SELECT CASE WHEN EXISTS (SELECT FROM pg_proc WHERE proname = 'causa_claim')
            THEN '-infinity' ELSE clock_timestamp() END
ON CONFLICT (id) DO NOTHING;

-- causa:online-start
-- On a large live table `causa migrate` runs this part after the rest, outside one
-- transaction: the backfill in batches of a few thousand rows, each index CONCURRENTLY.
-- Until the backfill is done, claims skip pending rows that have a cause anyway.

-- Rows that already have a cause were labelled by people: they are training data, never work.
UPDATE "tickets"
   SET causa_source = 'human', classification_status = 'labelled'
 WHERE "causa" IS NOT NULL AND causa_source IS NULL;

-- The queue: only pending and claimed rows, oldest first.
CREATE INDEX IF NOT EXISTS causa_queue_idx ON "tickets" (received_at)
    WHERE classification_status IN ('pending', 'claimed');
-- Training reads the labelled rows.
CREATE INDEX IF NOT EXISTS causa_labelled_idx ON "tickets" (classification_status)
    WHERE causa_source = 'human';
-- causa:online-end


-- A ticket inserted with a cause is a human label, not work.
CREATE OR REPLACE FUNCTION causa_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.causa_source := 'human';
    NEW.classification_status := 'labelled';
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER causa_on_insert
    BEFORE INSERT ON "tickets"
    FOR EACH ROW WHEN (NEW."causa" IS NOT NULL)
    EXECUTE FUNCTION causa_on_insert();


-- One notification per INSERT statement, carrying how many pending rows it added, so a bulk
-- insert of 5,000 rows asks for enough batches instead of one. Notifications are hints:
-- beat's poll is the safety net.
CREATE OR REPLACE FUNCTION causa_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_count bigint;
BEGIN
    SELECT count(*) INTO v_count FROM causa_inserted WHERE classification_status = 'pending';
    IF v_count > 0 THEN
        PERFORM pg_notify('causa_pending', v_count::text);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER causa_notify
    AFTER INSERT ON "tickets"
    REFERENCING NEW TABLE AS causa_inserted
    FOR EACH STATEMENT EXECUTE FUNCTION causa_notify();


-- Any change of the cause that does not come from causa_apply is a person's: it becomes a
-- training label and no model write can overwrite it (its claim token is cleared). A cause
-- set back to NULL asks for a new classification.
CREATE OR REPLACE FUNCTION causa_on_label() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('causa.applying', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW."causa" IS NULL THEN
        NEW.causa_source := NULL;
        NEW.classification_status := 'pending';
        NEW.attempts := 0;
        NEW.received_at := coalesce(NEW.received_at, clock_timestamp());  -- a row from before causa
    ELSE
        NEW.causa_source := 'human';
        NEW.classification_status := 'labelled';
    END IF;
    NEW.claim_token := NULL;
    NEW.claimed_until := NULL;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER causa_on_label
    BEFORE UPDATE OF "causa" ON "tickets"
    FOR EACH ROW WHEN (OLD."causa" IS DISTINCT FROM NEW."causa")
    EXECUTE FUNCTION causa_on_label();


-- Claim up to p_batch tickets for p_lease_seconds. A ticket that was claimed before
-- (attempts > 0: its worker died, timed out or failed on it) is claimed alone, so a poison
-- ticket uses up only its own attempts; an expired lease that already used the last attempt
-- goes to the dead letter (failed). Only among p_numbers when given (a JSON array), only
-- tickets received since p_since, or since the recorded cut-off (causa_meta) when p_since is
-- NULL. Returns a JSON array of {number, text, attempts, claim_token}.
CREATE OR REPLACE FUNCTION causa_claim(
    p_worker text,
    p_batch integer,
    p_lease_seconds integer,
    p_max_attempts integer DEFAULT 3,
    p_numbers jsonb DEFAULT NULL,
    p_since timestamptz DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_since timestamptz := coalesce(p_since, (SELECT classify_since FROM causa_meta), '-infinity');
    v_claimed jsonb;
    v_ctids tid[];
BEGIN
    UPDATE "tickets" AS t
       SET classification_status = 'failed', claim_token = NULL, claimed_until = NULL,
           classified_at = v_now,
           last_error = format('the lease expired %s times: the worker died or timed out on this'
                               ' ticket every time', t.attempts)
     WHERE t.ctid IN (SELECT s.ctid FROM "tickets" AS s
                       WHERE s.classification_status = 'claimed' AND s.claimed_until < v_now
                         AND s.attempts >= p_max_attempts
                         FOR UPDATE SKIP LOCKED);

    SELECT ARRAY[s.ctid] INTO v_ctids FROM "tickets" AS s
     WHERE (s.classification_status = 'pending'
            OR (s.classification_status = 'claimed' AND s.claimed_until < v_now))
       AND s.attempts > 0
       AND s."causa" IS NULL
       AND (p_numbers IS NULL OR s."number"::text IN (SELECT jsonb_array_elements_text(p_numbers)))
       AND s.received_at >= v_since
     ORDER BY s.received_at
     LIMIT 1
       FOR UPDATE SKIP LOCKED;

    IF v_ctids IS NULL THEN
        SELECT array_agg(f.ctid) INTO v_ctids
          FROM (SELECT s.ctid FROM "tickets" AS s
                 WHERE s.classification_status = 'pending' AND s.attempts = 0
                   AND s."causa" IS NULL
                   AND (p_numbers IS NULL OR s."number"::text IN (SELECT jsonb_array_elements_text(p_numbers)))
                   AND s.received_at >= v_since
                 ORDER BY s.received_at
                 LIMIT p_batch
                   FOR UPDATE SKIP LOCKED) AS f;
    END IF;

    WITH claimed AS (
        UPDATE "tickets" AS t
           SET classification_status = 'claimed', attempts = t.attempts + 1,
               claimed_by = p_worker, claim_token = gen_random_uuid(),
               claimed_until = v_now + make_interval(secs => p_lease_seconds)
         WHERE t.ctid = ANY(v_ctids)
        RETURNING t."number"::text AS number, concat_ws(' ', t."short_description", t."description") AS text, t.attempts, t.claim_token
    )
    SELECT coalesce(jsonb_agg(to_jsonb(claimed)), '[]'::jsonb) INTO v_claimed FROM claimed;
    RETURN v_claimed;
END $$;


-- Write results: a JSON array of {number, claim_token, status ('classified' or
-- 'needs_review'), predicted, confidence, model_version, error}. Only rows still claimed with
-- that token are written, so a late, duplicated or replayed write changes nothing and is
-- counted as stale. 'classified' writes the cause (unless p_mode = 'suggest');
-- 'needs_review' writes only causa_predicted. Returns {applied, stale}.
CREATE OR REPLACE FUNCTION causa_apply(p_results jsonb, p_mode text DEFAULT 'apply')
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_applied integer;
BEGIN
    PERFORM set_config('causa.applying', 'on', true);
    WITH r AS (
        SELECT (jsonb_populate_record(NULL::"tickets",
                    jsonb_build_object('number', x->'number')))."number" AS number,
               (x->>'claim_token')::uuid AS claim_token,
               x->>'status' AS status,
               x->>'predicted' AS predicted,
               (x->>'confidence')::real AS confidence,
               x->>'model_version' AS model_version,
               x->>'error' AS error
          FROM jsonb_array_elements(p_results) AS x
    )
    UPDATE "tickets" AS t
       SET "causa" = CASE WHEN r.status = 'classified' AND p_mode = 'apply'
                            THEN r.predicted ELSE t."causa" END,
           causa_source = CASE WHEN r.status = 'classified' AND p_mode = 'apply'
                               THEN 'model' ELSE t.causa_source END,
           causa_predicted = r.predicted,
           causa_confidence = r.confidence,
           model_version = r.model_version,
           classification_status = r.status,
           classified_at = clock_timestamp(),
           last_error = r.error,
           claimed_until = NULL
      FROM r
     WHERE t."number" = r.number
       AND t.claim_token = r.claim_token
       AND t.classification_status = 'claimed'
       AND r.status IN ('classified', 'needs_review');
    GET DIAGNOSTICS v_applied = ROW_COUNT;
    PERFORM set_config('causa.applying', 'off', true);
    RETURN jsonb_build_object('applied', v_applied,
                              'stale', jsonb_array_length(p_results) - v_applied);
END $$;


-- Record failures: a JSON array of {number, claim_token, error}. A ticket goes back to
-- pending, or to failed (the dead letter) once its attempts reach p_max_attempts.
-- Returns {retrying, failed, stale}.
CREATE OR REPLACE FUNCTION causa_fail(p_failures jsonb, p_max_attempts integer DEFAULT 3)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_retrying integer;
    v_failed integer;
BEGIN
    WITH r AS (
        SELECT (jsonb_populate_record(NULL::"tickets",
                    jsonb_build_object('number', x->'number')))."number" AS number,
               (x->>'claim_token')::uuid AS claim_token,
               left(x->>'error', 2000) AS error
          FROM jsonb_array_elements(p_failures) AS x
    ), written AS (
        UPDATE "tickets" AS t
           SET classification_status = CASE WHEN t.attempts >= p_max_attempts
                                            THEN 'failed' ELSE 'pending' END,
               classified_at = CASE WHEN t.attempts >= p_max_attempts
                                    THEN clock_timestamp() END,
               last_error = r.error,
               claim_token = NULL,
               claimed_until = NULL
          FROM r
         WHERE t."number" = r.number
           AND t.claim_token = r.claim_token
           AND t.classification_status = 'claimed'
        RETURNING t.classification_status
    )
    SELECT count(*) FILTER (WHERE classification_status = 'pending'),
           count(*) FILTER (WHERE classification_status = 'failed')
      INTO v_retrying, v_failed
      FROM written;
    RETURN jsonb_build_object('retrying', v_retrying, 'failed', v_failed,
                              'stale', jsonb_array_length(p_failures) - v_retrying - v_failed);
END $$;


-- The work still to do: fresh pending tickets (claimed in batches), tickets to retry one at
-- a time (pending again after a failure, or whose lease expired), and leases still running;
-- only tickets received since p_since, or since the recorded cut-off when p_since is NULL.
CREATE OR REPLACE FUNCTION causa_pending_count(p_since timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'pending', count(*) FILTER (WHERE classification_status = 'pending' AND attempts = 0),
        'retry', count(*) FILTER (WHERE attempts > 0 AND (classification_status = 'pending'
                                  OR claimed_until < clock_timestamp())),
        'claimed', count(*) FILTER (WHERE classification_status = 'claimed'
                                    AND claimed_until >= clock_timestamp()))
      FROM "tickets"
     WHERE classification_status IN ('pending', 'claimed')
       AND received_at >= coalesce(p_since, (SELECT classify_since FROM causa_meta), '-infinity')
$$;


-- Every status with its count, for `causa status`.
CREATE OR REPLACE FUNCTION causa_status_counts() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(coalesce(classification_status, 'none'), n), '{}'::jsonb)
      FROM (SELECT classification_status, count(*) AS n FROM "tickets"
             GROUP BY classification_status) AS c
$$;


-- Labelled tickets for training: only causes people set, never the model's guesses.
CREATE OR REPLACE FUNCTION causa_labelled(p_after text DEFAULT NULL, p_limit integer DEFAULT 10000)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(to_jsonb(l) ORDER BY l.number), '[]'::jsonb)
      FROM (SELECT t."number"::text AS number, concat_ws(' ', t."short_description", t."description") AS text, t."causa" AS cause
              FROM "tickets" AS t
             WHERE t.causa_source = 'human' AND t."causa" IS NOT NULL
               AND (p_after IS NULL OR t."number"::text > p_after)
             ORDER BY t."number"::text
             LIMIT p_limit) AS l
$$;


-- Operator replay: put tickets back in the queue. Only tickets the model decided or gave up
-- on (classified, needs_review, failed; never a person's label, never one in flight), among
-- p_statuses (a JSON array), only p_numbers when given, only those written by
-- p_model_version when given. A cause the model wrote is cleared; attempts start again.
-- Running it twice requeues nothing more. Returns {requeued}.
CREATE OR REPLACE FUNCTION causa_requeue(
    p_statuses jsonb,
    p_numbers jsonb DEFAULT NULL,
    p_model_version text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_requeued integer;
BEGIN
    PERFORM set_config('causa.applying', 'on', true);
    UPDATE "tickets" AS t
       SET "causa" = CASE WHEN t.causa_source = 'model' THEN NULL ELSE t."causa" END,
           causa_source = NULL,
           classification_status = 'pending',
           attempts = 0,
           claim_token = NULL,
           claimed_until = NULL,
           classified_at = NULL,
           received_at = coalesce(t.received_at, clock_timestamp())  -- a row from before causa
     WHERE t.classification_status IN (SELECT jsonb_array_elements_text(p_statuses))
       AND t.classification_status IN ('classified', 'needs_review', 'failed')
       AND t.causa_source IS DISTINCT FROM 'human'
       AND (p_numbers IS NULL OR t."number"::text IN (SELECT jsonb_array_elements_text(p_numbers)))
       AND (p_model_version IS NULL OR t.model_version = p_model_version);
    GET DIAGNOSTICS v_requeued = ROW_COUNT;
    PERFORM set_config('causa.applying', 'off', true);
    RETURN jsonb_build_object('requeued', v_requeued);
END $$;


-- History on purpose (`causa backfill`): pending tickets without a cause that the cut-off
-- leaves alone (received before it, or there before causa: received_at NULL), only those
-- received since p_since when given (a row from before causa has no received time: p_since
-- leaves it out), newest first, at most p_limit. Without p_apply they are only counted; with
-- it they get received_at now, so the claim and the stall alarm see them (nothing is
-- enqueued: beat's poll finds them). p_classify_since: CAUSA_CLASSIFY_SINCE.
-- Returns {tickets, cutoff}.
CREATE OR REPLACE FUNCTION causa_backfill(
    p_apply boolean DEFAULT false,
    p_since timestamptz DEFAULT NULL,
    p_limit integer DEFAULT NULL,
    p_classify_since timestamptz DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_cutoff timestamptz :=
        coalesce(p_classify_since, (SELECT classify_since FROM causa_meta), '-infinity');
    v_tickets integer;
BEGIN
    IF p_apply THEN
        UPDATE "tickets" AS t
           SET received_at = clock_timestamp(), attempts = 0, last_error = NULL
         WHERE t.ctid IN (SELECT s.ctid FROM "tickets" AS s
                           WHERE s.classification_status = 'pending' AND s."causa" IS NULL
                             AND (s.received_at IS NULL OR s.received_at < v_cutoff)
                             AND (p_since IS NULL OR s.received_at >= p_since)
                           ORDER BY s.received_at DESC NULLS LAST, s."number" DESC
                           LIMIT p_limit
                             FOR UPDATE SKIP LOCKED);
        GET DIAGNOSTICS v_tickets = ROW_COUNT;
    ELSE
        SELECT count(*) INTO v_tickets
          FROM (SELECT FROM "tickets" AS s
                 WHERE s.classification_status = 'pending' AND s."causa" IS NULL
                   AND (s.received_at IS NULL OR s.received_at < v_cutoff)
                   AND (p_since IS NULL OR s.received_at >= p_since)
                 LIMIT p_limit) AS h;
    END IF;
    RETURN jsonb_build_object('tickets', v_tickets, 'cutoff', v_cutoff);
END $$;


-- What `causa status` and the watch task need beyond the counts: the age of the oldest
-- pending ticket (the alarm that catches every stall), decisions in the last p_window
-- seconds, and the tickets dead-lettered since p_failed_since (count and a few examples).
CREATE OR REPLACE FUNCTION causa_activity(
    p_window integer DEFAULT 300,
    p_failed_since timestamptz DEFAULT NULL
) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'oldest_pending_s',
            (SELECT extract(epoch FROM clock_timestamp() - min(received_at))::real
               FROM "tickets" WHERE classification_status IN ('pending', 'claimed')),
        'decided_recently',
            (SELECT count(*) FROM "tickets"
              WHERE classification_status IN ('classified', 'needs_review')
                AND classified_at >= clock_timestamp() - make_interval(secs => p_window)),
        'dead_lettered',
            (SELECT count(*) FROM "tickets"
              WHERE classification_status = 'failed'
                AND classified_at >= coalesce(p_failed_since, '-infinity')),
        'dead_letter_examples',
            (SELECT coalesce(jsonb_agg(jsonb_build_object('number', f.number, 'error', f.error)),
                             '[]'::jsonb)
               FROM (SELECT "number"::text AS number, last_error AS error FROM "tickets"
                      WHERE classification_status = 'failed'
                        AND classified_at >= coalesce(p_failed_since, '-infinity')
                      ORDER BY classified_at DESC LIMIT 5) AS f))
$$;


-- The model's recent decisions, newest first, for the drift report: text, predicted cause,
-- confidence and status of tickets decided since p_since.
CREATE OR REPLACE FUNCTION causa_recent(p_since timestamptz, p_limit integer DEFAULT 10000)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]'::jsonb)
      FROM (SELECT concat_ws(' ', t."short_description", t."description") AS text, t.causa_predicted AS predicted,
                   t.causa_confidence AS confidence, t.classification_status AS status,
                   t.model_version
              FROM "tickets" AS t
             WHERE t.classification_status IN ('classified', 'needs_review')
               AND t.classified_at >= p_since
             ORDER BY t.classified_at DESC
             LIMIT p_limit) AS r
$$;


-- causa's own record of what happened: training decisions, drift reports, admin actions.
-- Row level security with no policy: only the service role (and the owner) can read it.
CREATE TABLE IF NOT EXISTS causa_events (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS causa_events_kind_idx ON causa_events (kind, at DESC);
ALTER TABLE causa_events ENABLE ROW LEVEL SECURITY;

CREATE OR REPLACE FUNCTION causa_record_event(p_kind text, p_payload jsonb)
RETURNS jsonb
LANGUAGE sql AS $$
    INSERT INTO causa_events (kind, payload) VALUES (p_kind, p_payload)
    RETURNING jsonb_build_object('id', id, 'at', at)
$$;

-- The newest event of each kind: {kind: {at, payload}}.
CREATE OR REPLACE FUNCTION causa_latest_events() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(e.kind, jsonb_build_object('at', e.at, 'payload', e.payload)),
                    '{}'::jsonb)
      FROM (SELECT DISTINCT ON (kind) kind, at, payload FROM causa_events
             ORDER BY kind, at DESC, id DESC) AS e
$$;


-- Only the service role may call the queue functions. Supabase's default privileges grant
-- EXECUTE on new functions to anon and authenticated, so revoking from PUBLIC is not enough:
-- revoke from those roles by name, where they exist (on a plain PostgreSQL they do not).
DO $$
DECLARE
    f text;
    r text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'causa_claim(text, integer, integer, integer, jsonb, timestamptz)',
        'causa_apply(jsonb, text)',
        'causa_fail(jsonb, integer)',
        'causa_pending_count(timestamptz)',
        'causa_status_counts()',
        'causa_labelled(text, integer)',
        'causa_requeue(jsonb, jsonb, text)',
        'causa_backfill(boolean, timestamptz, integer, timestamptz)',
        'causa_activity(integer, timestamptz)',
        'causa_recent(timestamptz, integer)',
        'causa_record_event(text, jsonb)',
        'causa_latest_events()'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
                EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', f, r);
            END IF;
        END LOOP;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', f);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT ON causa_meta TO service_role;  -- the claim and the counts read the cut-off
    END IF;
END $$;
