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
-- How many tickets of labelled history the table has: causes people set, not the model's.
SELECT count(*) FROM tickets AS t
 WHERE t.causa IS NOT NULL
   AND NOT EXISTS (SELECT FROM causa.outcomes AS o
                    WHERE o.number = t.number AND o.source = 'model' AND o.status = 'classified')

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
-- A run's tickets per state: queued (pending, claimed), else their latest decision (%s: the run).
SELECT CASE WHEN w.number IS NOT NULL
            THEN CASE WHEN w.claim_token IS NULL THEN 'pending' ELSE 'claimed' END
            ELSE o.status END,
       count(*)
  FROM causa_demo_truth AS d
  LEFT JOIN causa.work AS w ON w.number = d.number
  LEFT JOIN causa.outcomes AS o ON o.number = d.number
 WHERE d.run = %s
 GROUP BY 1

-- name: run_causes
-- A run's tickets per predicted cause, most frequent first (%s: the run).
SELECT coalesce(o.predicted, '(none)'), count(*)
  FROM causa_demo_truth AS d
  LEFT JOIN causa.outcomes AS o ON o.number = d.number
 WHERE d.run = %s
 GROUP BY 1 ORDER BY 2 DESC

-- name: run_summary
-- A run's tickets, accuracy, duration, insert-to-decision latency from causa.decisions (%s: run).
SELECT count(*) AS tickets,
       count(*) FILTER (WHERE o.predicted = d.cause)::float
           / nullif(count(*) FILTER (WHERE o.predicted IS NOT NULL), 0) AS accuracy,
       extract(epoch FROM max(x.decided_at) - min(x.received_at)) AS seconds,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM x.decided_at - x.received_at) * 1000) AS latency_ms
  FROM causa_demo_truth AS d
  LEFT JOIN causa.outcomes AS o ON o.number = d.number
  -- the model's latest decision of the ticket: received_at is when it entered the queue
  LEFT JOIN LATERAL (SELECT e.received_at, e.decided_at FROM causa.decisions AS e
                      WHERE e.number = d.number AND e.source = 'model'
                        AND e.received_at IS NOT NULL
                      ORDER BY e.id DESC LIMIT 1) AS x ON true
 WHERE d.run = %s
