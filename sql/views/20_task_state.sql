-- task_state: the latest state of every task (accepted, rejected, failed or pending). Resume
-- skips accepted and rejected tasks; failed and pending ones (in flight at a crash) are redone.
-- The latest verdict decides, whether a run or `revalidate` recorded it.
-- The latest deciding event per task comes from the covering index events_task_head (m004):
-- a max(id) per task over the index, then one row read per task.
CREATE VIEW task_state AS
WITH heads AS (
    SELECT recipe, task_key, max(id) AS id
    FROM events
    WHERE event_type IN ('task_started', 'sample_accepted', 'sample_rejected', 'task_failed')
    GROUP BY recipe, task_key
)
SELECT
    e.recipe,
    e.task_key,
    CASE e.event_type
        WHEN 'sample_accepted' THEN 'accepted'
        WHEN 'sample_rejected' THEN 'rejected'
        WHEN 'task_failed' THEN 'failed'
        ELSE 'pending'
    END AS state,
    json_extract(e.payload_json, '$.reason') AS reason,
    json_extract(e.payload_json, '$.sample_id') AS sample_id,
    -- The validator set that judged a finished task (null before versions were recorded).
    json_extract(e.payload_json, '$.validator_version') AS validator_version,
    e.run_id AS last_run_id,
    e.created_utc AS updated_utc
FROM heads h
JOIN events e ON e.id = h.id;
