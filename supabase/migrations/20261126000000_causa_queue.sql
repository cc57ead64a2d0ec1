-- causa 0.x kept its queue in the ticket table; this migration did that. It is superseded by
-- 20261130000000_causa_queue.sql (the queue in causa's own schema), which also upgrades a
-- database this one was applied to. Kept, empty, so that `supabase db push` still finds
-- every migration a project has applied; a fresh project gets only the newer one.
SELECT 1;
