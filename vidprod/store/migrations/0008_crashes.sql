-- in_flight: set while a render runs in a process, cleared however it ends (done, failed,
-- cancelled, paused by shutdown). A start that finds it set knows the process died under
-- the job (out of memory, a crash) and counts it in crashes.
ALTER TABLE jobs ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;
