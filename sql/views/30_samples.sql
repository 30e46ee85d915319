-- samples: the current accepted sample of every task: the rows of `sample_membership` that are
-- in the dataset. A task's latest verdict must be an acceptance; exact duplicates (same content
-- hash within a recipe) keep only the earliest; samples a reviewer rejected are left out (so
-- review states across every sample, rejected ones included, are in `review_queue`).
CREATE VIEW samples AS
SELECT
    m.sample_id,
    m.recipe,
    m.task_key,
    m.label,
    m.run_id,
    m.accepted_event_id,
    m.created_utc,
    m.content_hash,
    m.review_verdict,
    m.review_note,
    -- A subquery rather than a join: counts and facets, which read no sample text, skip it.
    (SELECT b.content FROM blobs b WHERE b.hash = m.sample_blob) AS sample_json
FROM sample_membership m
WHERE m.in_dataset;
