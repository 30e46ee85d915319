-- sample_index, rebuilt from the log: every accepted sample with whether it is its task's
-- current outcome, a copy of an earlier current sample, and its latest review. Used by
-- migration m003 and by a rebuild; the writer keeps it in step incrementally
-- (sql/queries/projections.sql).
WITH accepted AS (
    SELECT
        id,
        event_id,
        json_extract(payload_json, '$.sample_id') AS sample_id,
        recipe,
        task_key,
        json_extract(payload_json, '$.label') AS label,
        run_id,
        created_utc,
        json_extract(payload_json, '$.content_hash') AS content_hash,
        json_extract(payload_json, '$.sample_blob') AS sample_blob,
        NOT EXISTS (
            SELECT 1 FROM events later
            WHERE later.recipe = e.recipe AND later.task_key = e.task_key
              AND later.id > e.id
              AND later.event_type IN ('sample_accepted', 'sample_rejected')
        ) AS is_current
    FROM events e
    WHERE event_type = 'sample_accepted'
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
    a.id, a.event_id, a.sample_id, a.recipe, a.task_key, a.label, a.run_id,
    a.created_utc, a.content_hash, a.sample_blob, a.is_current,
    a.is_current AND row_number() OVER (
        PARTITION BY a.recipe, a.is_current, a.content_hash ORDER BY a.id
    ) > 1,
    r.verdict,
    r.note
FROM accepted a
LEFT JOIN reviews r ON r.sample_id = a.sample_id;
