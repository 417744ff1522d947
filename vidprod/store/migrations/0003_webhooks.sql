-- Webhook endpoints and the delivery outbox. A delivery row is written in the same
-- transaction as its event, so no event can be committed without its deliveries; the
-- rows (not the queue) say what is still to be sent.
ALTER TABLE events ADD COLUMN uid TEXT;  -- the webhook-id: stable across retries

CREATE TABLE webhook_endpoints (
    id                  TEXT PRIMARY KEY,
    url                 TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    event_types         TEXT,            -- JSON list; NULL = every type except opt-in ones
    enabled             INTEGER NOT NULL DEFAULT 1,
    disabled_reason     TEXT,
    secret              TEXT NOT NULL,
    previous_secret     TEXT,            -- still signs until previous_expires_at
    previous_expires_at REAL,
    job_id              TEXT,            -- set: a job's own webhook_url, only its events
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_by_job ON webhook_endpoints (job_id);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    step            INTEGER NOT NULL DEFAULT 0,  -- attempts made since the last (re)send
    next_attempt_at REAL NOT NULL,               -- unix seconds
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
-- The head of each endpoint's queue: its oldest pending event.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, state, event_id);

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at TEXT NOT NULL,
    status       INTEGER,          -- NULL when no answer came
    latency_ms   INTEGER NOT NULL,
    response     TEXT,             -- the first 1 KB of the answer
    error        TEXT
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);
