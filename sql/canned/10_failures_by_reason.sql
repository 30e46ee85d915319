-- Failures by reason per recipe
-- Tasks whose latest state is rejected (invalid after repairs) or failed (the teacher kept
-- erroring), and source records skipped before they became tasks, counted by reason.
SELECT recipe, state AS outcome, reason, count(*) AS tasks
FROM task_state
WHERE state IN ('rejected', 'failed')
GROUP BY recipe, state, reason
UNION ALL
SELECT
    recipe,
    'source_skipped' AS outcome,
    json_extract(payload_json, '$.reason') AS reason,
    count(DISTINCT json_extract(payload_json, '$.source_id')) AS tasks
FROM events
WHERE event_type = 'source_skipped'
GROUP BY recipe, reason
ORDER BY recipe, tasks DESC
