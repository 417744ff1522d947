-- When housekeeping removed a finished job's source and parts (the rows stay).
ALTER TABLE jobs ADD COLUMN files_removed_at TEXT;
