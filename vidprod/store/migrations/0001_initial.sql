-- Jobs, their parts and every state change as an event row.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    state            TEXT NOT NULL
                     CHECK (state IN ('queued', 'processing', 'done', 'failed', 'cancelled')),
    stage            TEXT,
    progress         REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    source_name      TEXT NOT NULL,
    source_path      TEXT NOT NULL,
    source_size      INTEGER NOT NULL,
    source_info      TEXT,            -- JSON: what the probe found
    options          TEXT NOT NULL DEFAULT '{}',  -- JSON: per-job settings
    plan             TEXT,            -- JSON: cut times (rationals) and why
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
);
CREATE INDEX jobs_by_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_by_state ON jobs (state);

CREATE TABLE segments (
    job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL CHECK (idx >= 0),
    start_seconds    REAL NOT NULL,
    end_seconds      REAL NOT NULL,
    duration_seconds REAL NOT NULL,
    path             TEXT NOT NULL,   -- relative to the media dir
    size_bytes       INTEGER NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    has_audio        INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT,                  -- no foreign key: the log outlives a deleted job
    type       TEXT NOT NULL,
    data       TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX events_by_job ON events (job_id, id);

-- One row, rewritten by /health to prove the database takes writes.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
);
