-- Each post's own hashtags (JSON list, without '#'), kept apart from its caption so the
-- creator edits them per part and platform; the caption sent is the caption followed by
-- the hashtags it does not carry yet. Rows from before keep theirs inside the caption.
-- The cover frame stays in options (cover_ms: milliseconds into the part).
ALTER TABLE publications ADD COLUMN hashtags TEXT NOT NULL DEFAULT '[]';
