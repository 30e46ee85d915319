-- run_failures, rebuilt from the log: rejections, failures and skips per run and reason.
SELECT run_id, coalesce(json_extract(payload_json, '$.reason'), ''), count(*)
FROM events
WHERE run_id IS NOT NULL
  AND event_type IN ('sample_rejected', 'task_failed', 'source_skipped')
GROUP BY 1, 2;
