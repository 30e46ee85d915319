-- review_verdicts: every reviewer decision on a sample, oldest first; the latest one per sample
-- counts (a reject removes the sample from `samples` and the dataset views).
CREATE VIEW review_verdicts AS
SELECT
    e.id,
    e.event_id,
    json_extract(e.payload_json, '$.sample_id') AS sample_id,
    e.recipe,
    e.task_key,
    json_extract(e.payload_json, '$.verdict') AS verdict,
    json_extract(e.payload_json, '$.reviewer') AS reviewer,
    json_extract(e.payload_json, '$.note') AS note,
    e.created_utc
FROM events e
WHERE e.event_type = 'review_verdict';
