-- samples: the current accepted sample of every task. A task's latest verdict must be an
-- acceptance; exact duplicates (same content hash within a recipe) keep only the earliest; samples
-- a reviewer rejected are left out.
CREATE VIEW samples AS
WITH terminal AS (
    SELECT
        id,
        event_id,
        run_id,
        recipe,
        task_key,
        event_type,
        created_utc,
        payload_json,
        row_number() OVER (PARTITION BY recipe, task_key ORDER BY id DESC) AS recency
    FROM events
    WHERE event_type IN ('sample_accepted', 'sample_rejected')
),
current AS (
    SELECT
        id,
        event_id,
        run_id,
        recipe,
        task_key,
        created_utc,
        json_extract(payload_json, '$.sample_id') AS sample_id,
        json_extract(payload_json, '$.content_hash') AS content_hash,
        json_extract(payload_json, '$.label') AS label,
        json_extract(payload_json, '$.sample_blob') AS sample_blob,
        row_number() OVER (
            PARTITION BY recipe, json_extract(payload_json, '$.content_hash') ORDER BY id
        ) AS copy_number
    FROM terminal
    WHERE recency = 1 AND event_type = 'sample_accepted'
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
    c.sample_id,
    c.recipe,
    c.task_key,
    c.label,
    c.run_id,
    c.event_id AS accepted_event_id,
    c.created_utc,
    c.content_hash,
    r.verdict AS review_verdict,
    r.note AS review_note,
    b.content AS sample_json
FROM current c
JOIN blobs b ON b.hash = c.sample_blob
LEFT JOIN reviews r ON r.sample_id = c.sample_id
WHERE c.copy_number = 1 AND (r.verdict IS NULL OR r.verdict != 'reject');
