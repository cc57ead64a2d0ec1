-- The ticket table with causa's default names, as the demo, the benchmarks and the tests
-- create it (a real deployment brings its own table).
CREATE TABLE IF NOT EXISTS tickets (
    number text PRIMARY KEY,
    short_description text,
    description text,
    causa text
);
