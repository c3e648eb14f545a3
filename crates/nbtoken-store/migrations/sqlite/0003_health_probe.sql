-- One row that health checks rewrite: a write probe proving that the database
-- can still commit (a full disk or a read-only file fails it while reads work).
CREATE TABLE nbtoken_health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at TEXT NOT NULL
);
