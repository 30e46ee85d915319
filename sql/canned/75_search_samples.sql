-- Search samples
-- Full-text search (SQLite FTS5 with stemming) across the text of every accepted sample, best
-- matches first, with whether each is in the dataset now. The index `sample_fts` is derived
-- from the log by `serve` and kept up to date while it runs.
SELECT
    f.sample_id,
    f.recipe,
    f.label,
    snippet(sample_fts, 0, '[', ']', ' … ', 24) AS excerpt,
    (SELECT m.in_dataset FROM sample_membership m WHERE m.accepted_id = f.rowid) AS in_dataset
FROM sample_fts f
-- An empty search matches nothing ('""' is FTS5's empty phrase) instead of failing.
WHERE sample_fts MATCH coalesce(nullif(escape_fts(:text), ''), '""')
ORDER BY rank
LIMIT 100
