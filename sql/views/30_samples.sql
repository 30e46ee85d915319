-- samples: the current accepted sample of every task. A task's latest verdict must be an
-- acceptance; exact duplicates (same content hash within a recipe) keep only the earliest; samples
-- a reviewer rejected are left out. The work is done as events land, by the writer that keeps
-- `sample_index` (migration m003, medstore/projections.py), so reading the whole dataset costs one scan of a small table.
CREATE VIEW samples AS
SELECT
    s.sample_id,
    s.recipe,
    s.task_key,
    s.label,
    s.run_id,
    s.accepted_event_id,
    s.created_utc,
    s.content_hash,
    s.review_verdict,
    s.review_note,
    -- A subquery rather than a join: counts and facets, which read no sample text, skip it.
    (SELECT b.content FROM blobs b WHERE b.hash = s.sample_blob) AS sample_json
FROM sample_index s
WHERE s.is_current AND NOT s.is_copy AND (s.review_verdict IS NULL OR s.review_verdict != 'reject');
