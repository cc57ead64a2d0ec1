-- causa demo: the SQL of `causa demo` (worker/demo.py), by name (shared.queries).
-- The demo's table has causa's default names (tickets.sql); %s are query parameters.

-- name: truth_table
-- The demo's hidden truth, kept apart so that the worker can never see it.
CREATE TABLE IF NOT EXISTS causa_demo_truth (
    number text PRIMARY KEY,
    cause text NOT NULL,
    run text NOT NULL
);

-- name: history_count
-- How many tickets of labelled history the table already has.
SELECT count(*) FROM tickets WHERE causa_source = 'human'

-- name: insert_history
-- One labelled ticket of history, unless its number is taken (%s: number, texts, cause).
INSERT INTO tickets (number, short_description, description, causa)
VALUES (%s, %s, %s, %s) ON CONFLICT (number) DO NOTHING

-- name: insert_truth
-- The true cause of one of a run's tickets (%s: number, cause, run).
INSERT INTO causa_demo_truth VALUES (%s, %s, %s)

-- name: insert_tickets
-- New pending tickets in one statement (%s: arrays of numbers, short descriptions, descriptions).
INSERT INTO tickets (number, short_description, description)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])

-- name: run_statuses
-- A run's tickets per classification status (%s: the run).
SELECT t.classification_status, count(*) FROM tickets t
  JOIN causa_demo_truth d USING (number) WHERE d.run = %s GROUP BY 1

-- name: run_causes
-- A run's tickets per predicted cause, most frequent first (%s: the run).
SELECT coalesce(t.causa_predicted, '(none)'), count(*) FROM tickets t
  JOIN causa_demo_truth d USING (number) WHERE d.run = %s GROUP BY 1 ORDER BY 2 DESC

-- name: run_summary
-- A run's tickets, accuracy against the truth, duration, insert-to-classified latency (%s: run).
SELECT count(*) AS tickets,
       count(*) FILTER (WHERE t.causa_predicted = d.cause)::float
           / nullif(count(*) FILTER (WHERE t.causa_predicted IS NOT NULL), 0) AS accuracy,
       extract(epoch FROM max(t.classified_at) - min(t.received_at)) AS seconds,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM t.classified_at - t.received_at) * 1000) AS latency_ms
  FROM tickets t JOIN causa_demo_truth d USING (number)
 WHERE d.run = %s
