-- Browser sign-ins, so signing out revokes the cookie (issue 20). Only a hash of the
-- session id is kept; the id itself travels in the encrypted session cookie.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    expires_at  REAL NOT NULL  -- unix seconds; a fixed 30 days, not renewed by use
);
