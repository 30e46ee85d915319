-- gate_rejections, rebuilt from task_gate_failures (checked against the log by verify):
-- rejected tasks per recipe and content gate they failed, each task once per gate, what
-- `status` shows. Triggers on task_gate_failures keep it in step (m012).
SELECT recipe, gate, count(*)
FROM task_gate_failures
GROUP BY 1, 2;
