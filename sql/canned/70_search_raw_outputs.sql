-- Search raw outputs
-- Full-text search (SQLite FTS5) across every raw teacher output, best matches first. The
-- index `raw_output_fts` is derived from the log by `serve` and kept up to date while it runs.
SELECT
    f.recipe,
    f.stage,
    f.task_key,
    snippet(raw_output_fts, 0, '[', ']', ' … ', 24) AS excerpt,
    (
        SELECT json_extract(s.payload_json, '$.sample_id') FROM events s
        WHERE s.recipe = f.recipe AND s.task_key = f.task_key AND s.event_type = 'sample_accepted'
        ORDER BY s.id DESC LIMIT 1
    ) AS sample_id,
    f.event_id
FROM raw_output_fts f
-- An empty search matches nothing ('""' is FTS5's empty phrase) instead of failing.
WHERE raw_output_fts MATCH coalesce(nullif(escape_fts(:text), ''), '""')
ORDER BY rank
LIMIT 100
