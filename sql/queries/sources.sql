-- Reads of the event log by readers and backends outside the warehouse: mimic-dialogue's
-- artifacts and the Batch API backend's jobs.

-- name: accepted_samples_like
-- Accepted samples of a recipe whose task key matches a LIKE pattern, oldest acceptance first
-- (mimic artifacts: every accepted conversation of one subject).
SELECT sample_id, task_key, run_id, accepted_event_id, sample_json FROM samples
WHERE recipe = :recipe AND task_key LIKE :task_key_pattern
ORDER BY accepted_event_id;

-- name: task_events
-- One task's events in one run, in log order (mimic artifacts: calls, answers and verdicts).
SELECT * FROM events
WHERE recipe = :recipe AND task_key = :task_key AND run_id = :run_id
ORDER BY id;

-- name: data_use_decisions
-- The data-use decision a run recorded before its first model call.
SELECT payload_json FROM events WHERE event_type = 'data_use_decision' AND run_id = :run_id;

-- name: submitted_batches
-- Every Batch API job submitted to one server, with the blob listing its requests, in order.
SELECT
    json_extract(payload_json, '$.batch_id') AS batch_id,
    json_extract(payload_json, '$.custom_ids_blob') AS custom_ids_blob
FROM events
WHERE event_type = 'batch_submitted' AND json_extract(payload_json, '$.base_url') IS :base_url
ORDER BY id;
