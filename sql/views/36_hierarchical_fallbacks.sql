-- hierarchical_fallbacks: for every `hierarchical` task whose latest verdict is a rejection, the
-- fallback sample it left (the doctor's original answer, _conversion_success false), in the
-- columns of `samples`, so `export --include-fallbacks` can add the rows a user chooses to keep.
-- accepted_event_id is the sample_rejected event that carried the fallback; content_hash is the
-- hash of its blob; a reviewer's reject removes a fallback too.
CREATE VIEW hierarchical_fallbacks AS
WITH terminal AS (
    SELECT
        id,
        event_id,
        run_id,
        recipe,
        task_key,
        event_type,
        created_utc,
        json_extract(payload_json, '$.fallback_sample_blob') AS fallback_blob,
        row_number() OVER (PARTITION BY recipe, task_key ORDER BY id DESC) AS recency
    FROM events
    WHERE recipe = 'hierarchical' AND event_type IN ('sample_accepted', 'sample_rejected')
),
current AS (
    SELECT t.*, b.content AS sample_json
    FROM terminal t
    JOIN blobs b ON b.hash = t.fallback_blob
    WHERE t.recency = 1 AND t.event_type = 'sample_rejected'
),
reviews AS (
    SELECT sample_id, verdict, note
    FROM (
        SELECT
            json_extract(payload_json, '$.sample_id') AS sample_id,
            json_extract(payload_json, '$.verdict') AS verdict,
            json_extract(payload_json, '$.note') AS note,
            row_number() OVER (
                PARTITION BY json_extract(payload_json, '$.sample_id') ORDER BY id DESC
            ) AS recency
        FROM events
        WHERE event_type = 'review_verdict'
    )
    WHERE recency = 1
)
SELECT
    json_extract(c.sample_json, '$.sample_id') AS sample_id,
    c.recipe,
    c.task_key,
    -- the same rule as recipes/hierarchical.py severity()
    CASE lower(trim(json_extract(c.sample_json, '$.Status')))
        WHEN 'low' THEN 'low'
        WHEN 'low severity' THEN 'low'
        WHEN 'medium' THEN 'medium'
        WHEN 'medium severity' THEN 'medium'
        WHEN 'high' THEN 'high'
        WHEN 'high severity' THEN 'high'
    END AS label,
    c.run_id,
    c.event_id AS accepted_event_id,
    c.created_utc,
    c.fallback_blob AS content_hash,
    r.verdict AS review_verdict,
    r.note AS review_note,
    c.sample_json
FROM current c
LEFT JOIN reviews r ON r.sample_id = json_extract(c.sample_json, '$.sample_id')
WHERE r.verdict IS NULL OR r.verdict != 'reject';
