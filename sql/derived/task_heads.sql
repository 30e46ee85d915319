-- task_heads, rebuilt from the log: each task's latest deciding event (what task_state shows).
-- The writer keeps it in step incrementally (projection_task_head in sql/queries/projections.sql).
WITH heads AS (
    SELECT recipe, task_key, max(id) AS id
    FROM events
    WHERE event_type IN ('task_started', 'sample_accepted', 'sample_rejected', 'task_failed')
      AND recipe IS NOT NULL AND task_key IS NOT NULL
    GROUP BY recipe, task_key
)
SELECT
    h.recipe,
    h.task_key,
    e.id,
    CASE e.event_type
        WHEN 'sample_accepted' THEN 'accepted'
        WHEN 'sample_rejected' THEN 'rejected'
        WHEN 'task_failed' THEN 'failed'
        ELSE 'pending'
    END,
    json_extract(e.payload_json, '$.reason'),
    json_extract(e.payload_json, '$.sample_id'),
    e.run_id,
    e.created_utc,
    json_extract(e.payload_json, '$.validator_version')
FROM heads h
JOIN events e ON e.id = h.id;
