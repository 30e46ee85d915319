-- The training area's reads: what an export is made of (dataset views, lineage, teachers).

-- name: export_relation_exists$
-- Whether a view or table of this name exists (a recipe's dataset view, checked before use).
SELECT 1 FROM sqlite_master WHERE type IN ('view', 'table') AND name = :relation;

-- name: export_relation_columns
-- The column names of a view or table.
SELECT name FROM pragma_table_info(:relation);

-- name: export_task_events
-- Every event of a recipe's tasks, by task then in log order, with the payload of each
-- llm_request: the lineage of an export's rows and the teachers behind them.
SELECT task_key, event_id, event_type,
       CASE WHEN event_type = 'llm_request' THEN payload_json END AS request_json
FROM events
WHERE recipe = :recipe AND task_key IS NOT NULL
ORDER BY task_key, id;

-- name: eval_answers
-- The answers an endpoint eval has: the accepted sample of each of its tasks, with what the
-- task's answered calls cost and their tokens (over every run that made them).
SELECT s.task_key, s.sample_json,
       (SELECT sum(c.cost_usd) FROM llm_calls c
        WHERE c.recipe = s.recipe AND c.task_key = s.task_key AND c.outcome = 'response')
           AS cost_usd,
       (SELECT sum(coalesce(c.input_tokens, 0) + coalesce(c.output_tokens, 0)) FROM llm_calls c
        WHERE c.recipe = s.recipe AND c.task_key = s.task_key AND c.outcome = 'response')
           AS tokens
FROM samples s
WHERE s.recipe = :recipe;

-- name: export_rejected_outputs
-- Every stage output of a recipe's tasks that failed validation (schema or validator errors),
-- with its raw text, the errors and the id of the response (or cache replay) event: the
-- rejected answers of preference pairs.
SELECT v.task_key, v.stage, v.attempt, r.event_id AS response_event_id,
       json_extract(v.payload_json, '$.errors') AS errors_json, b.content AS raw_output
FROM events v
JOIN events r
    ON r.run_id = v.run_id AND r.task_key = v.task_key AND r.stage = v.stage
    AND r.attempt = v.attempt AND r.event_type IN ('llm_response', 'cache_replay') AND r.id < v.id
JOIN blobs b ON b.hash = json_extract(r.payload_json, '$.raw_output_blob')
WHERE v.recipe = :recipe AND v.event_type = 'validation_verdict'
    AND NOT json_extract(v.payload_json, '$.passed')
ORDER BY v.task_key, v.id;

-- name: lineage_training_events
-- A training run's start, finish and the evals of its model, in log order (`cli.py lineage`).
SELECT event_id, event_type, created_utc, payload_json
FROM events
WHERE event_type IN ('training_started', 'training_finished', 'eval_result')
    AND json_extract(payload_json, '$.training_run_id') = :training_run_id
ORDER BY id;

-- name: lineage_exports
-- The export_written events of an export id, latest last.
SELECT event_id, created_utc, payload_json
FROM events
WHERE event_type = 'export_written' AND json_extract(payload_json, '$.export_id') = :export_id
ORDER BY id;

-- name: lineage_export_samples
-- The samples one export_written event names, by recipe and label, with how many are still in
-- the dataset now (not superseded, not a duplicate, not rejected by a reviewer).
SELECT m.recipe, m.label, count(*) AS n, sum(m.in_dataset) AS in_dataset
FROM sample_exports x
JOIN sample_membership m ON m.sample_id = x.sample_id
WHERE x.export_event_id = :export_event_id
GROUP BY m.recipe, m.label
ORDER BY m.recipe, m.label;

-- name: lineage_sample_in_export$
-- Whether one export_written event names the sample.
SELECT count(*) FROM sample_exports
WHERE export_event_id = :export_event_id AND sample_id = :sample_id;
