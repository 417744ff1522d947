-- The job's speech as words (JSON: {"language", "words": [{"word", "start", "end",
-- "confidence"}]}, times in seconds on the source's clock); NULL until transcribed.
ALTER TABLE jobs ADD COLUMN transcript TEXT;
