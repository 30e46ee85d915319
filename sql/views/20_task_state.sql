-- task_state: the latest state of every task (accepted, rejected, failed or pending). Resume
-- skips accepted and rejected tasks; failed and pending ones (in flight at a crash) are redone.
CREATE VIEW task_state AS
WITH ranked AS (
    SELECT
        recipe,
        task_key,
        id,
        run_id,
        event_type,
        created_utc,
        json_extract(payload_json, '$.reason') AS reason,
        json_extract(payload_json, '$.sample_id') AS sample_id,
        row_number() OVER (PARTITION BY recipe, task_key ORDER BY id DESC) AS recency
    FROM events
    WHERE event_type IN ('task_started', 'sample_accepted', 'sample_rejected', 'task_failed')
)
SELECT
    recipe,
    task_key,
    CASE event_type
        WHEN 'sample_accepted' THEN 'accepted'
        WHEN 'sample_rejected' THEN 'rejected'
        WHEN 'task_failed' THEN 'failed'
        ELSE 'pending'
    END AS state,
    reason,
    sample_id,
    run_id AS last_run_id,
    created_utc AS updated_utc
FROM ranked
WHERE recency = 1;
