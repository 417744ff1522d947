-- Connected platform accounts and the publications of parts to them. A publication row
-- holds every remote id a platform gave it (`remote`), written before the next step, so
-- a restart resumes or looks up instead of posting twice.
CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    platform        TEXT NOT NULL CHECK (platform IN ('tiktok', 'instagram', 'youtube')),
    remote_id       TEXT NOT NULL,           -- open_id / Instagram user id / channel id
    name            TEXT NOT NULL,
    sandbox         INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL CHECK (state IN ('connected', 'reconnect_needed', 'disconnected')),
    state_reason    TEXT,
    tokens          TEXT,                    -- sealed JSON (vidprod.vault); NULL once disconnected
    expires_at      REAL,                    -- access token expiry, unix seconds
    blocked_until   REAL,                    -- a cap or throttle: nothing is sent before this
    blocked_reason  TEXT,
    profile         TEXT NOT NULL DEFAULT '{}',  -- JSON: TikTok creator_info and the like
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (platform, remote_id, sandbox)
);

-- An OAuth flow in progress: the state parameter and its PKCE verifier, single use.
CREATE TABLE oauth_flows (
    state         TEXT PRIMARY KEY,
    platform      TEXT NOT NULL,
    code_verifier TEXT,
    created_at    REAL NOT NULL
);

CREATE TABLE publications (
    id              TEXT PRIMARY KEY,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    segment_idx     INTEGER NOT NULL,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    platform        TEXT NOT NULL,
    title           TEXT NOT NULL,
    caption         TEXT NOT NULL,
    privacy         TEXT NOT NULL,
    options         TEXT NOT NULL DEFAULT '{}',   -- JSON: made_for_kids, disable_comment, ...
    state           TEXT NOT NULL CHECK (state IN
                    ('scheduled', 'publishing', 'waiting', 'published', 'dead', 'cancelled')),
    due_at          REAL NOT NULL,                -- when the creator wants it out
    next_attempt_at REAL NOT NULL,                -- due_at, or later after a failure or cap
    attempts        INTEGER NOT NULL DEFAULT 0,   -- tries that failed or are running
    reschedules     INTEGER NOT NULL DEFAULT 0,   -- moved past a cap or block (not tries)
    remote          TEXT NOT NULL DEFAULT '{}',   -- JSON: each step's remote ids
    post_id         TEXT,
    post_url        TEXT,
    error_code      TEXT,
    error_message   TEXT,
    trace_id        TEXT,
    published_at    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
-- A part goes to an account once, unless earlier tries were cancelled or given up.
CREATE UNIQUE INDEX publications_once ON publications (job_id, segment_idx, account_id)
    WHERE state NOT IN ('cancelled', 'dead');
CREATE INDEX publications_due ON publications (state, next_attempt_at);
CREATE INDEX publications_by_job ON publications (job_id, segment_idx);
CREATE INDEX publications_by_account ON publications (account_id, state);

-- Posts (and upload calls) made per account, for rolling 24 h caps that survive restarts.
CREATE TABLE platform_usage (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    platform   TEXT NOT NULL,
    kind       TEXT NOT NULL,   -- 'post' or 'insert' (YouTube's quota bucket)
    at         REAL NOT NULL
);
CREATE INDEX platform_usage_by_account ON platform_usage (account_id, kind, at);
CREATE INDEX platform_usage_by_platform ON platform_usage (platform, kind, at);
