-- Each part's thumbnail picture (relative to the media dir); NULL when none was made.
ALTER TABLE segments ADD COLUMN thumbnail_path TEXT;
