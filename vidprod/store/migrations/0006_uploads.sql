-- Resumable (tus) uploads: how far each has got, so an upload survives a restart.
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    length        INTEGER NOT NULL CHECK (length > 0),
    received      INTEGER NOT NULL DEFAULT 0 CHECK (received BETWEEN 0 AND length),
                  -- bytes surely on disk: the file is fsynced before this is raised
    metadata      TEXT NOT NULL DEFAULT '',  -- the Upload-Metadata header as sent
    state         TEXT NOT NULL DEFAULT 'receiving'
                  CHECK (state IN ('receiving', 'done', 'failed')),
    job_id        TEXT,                      -- the job it became (done)
    error_status  INTEGER,                   -- why it was refused (failed)
    error         TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL              -- last activity + VIDPROD_UPLOAD_EXPIRE_HOURS
);
CREATE INDEX uploads_by_expiry ON uploads (expires_at);
