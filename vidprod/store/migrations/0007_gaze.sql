-- The eye-contact record of a job's last render (JSON: its report and the file names of
-- its before/after stills); NULL when eye contact was off.
ALTER TABLE jobs ADD COLUMN gaze TEXT;
