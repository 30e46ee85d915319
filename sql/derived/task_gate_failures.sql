-- task_gate_failures, rebuilt from task_heads (which verify checks against the log) and the log:
-- for each task whose head is a rejection, every content gate its verdict events name (what
-- `status` counts per recipe and gate). Triggers on task_heads keep it in step (m012). The
-- `+` keeps SQLite on the task index (one task's events) rather than every verdict's.
SELECT DISTINCT t.recipe, t.task_key, json_extract(g.value, '$.gate')
FROM task_heads t
JOIN events e
    ON e.recipe = t.recipe AND e.task_key = t.task_key AND +e.event_type = 'validation_verdict'
, json_each(e.payload_json, '$.gates') g
WHERE t.state = 'rejected' AND json_extract(g.value, '$.gate') IS NOT NULL;
