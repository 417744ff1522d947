-- Each part's own eye-contact report (JSON, the shape of jobs.gaze's "report"); NULL
-- when eye contact was off or the part was made before parts kept their own. The job's
-- report is made from its parts' (a recut replaces the figures of the parts it makes
-- again; they used to be added to the old report).
ALTER TABLE segments ADD COLUMN gaze TEXT;
-- A job's report from before covers the parts made so far, none of which has its own:
-- kept as "earlier", the report of the parts without figures, which a resumed render
-- adds its parts to (a recut that makes one of those parts again drops it).
UPDATE jobs SET gaze = json_set(gaze, '$.earlier', json(json_extract(gaze, '$.report')))
    WHERE gaze IS NOT NULL AND json_extract(gaze, '$.report') IS NOT NULL;
