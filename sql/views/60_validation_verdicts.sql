-- validation_verdicts: the checks on every stage output: passed, failed (schema or validator
-- errors) or unparseable, with the first error and its failure kind (see check_failures), per
-- recipe, stage and repair attempt.
CREATE VIEW validation_verdicts AS
SELECT
    e.id,
    e.event_id,
    e.run_id,
    e.recipe,
    e.task_key,
    e.stage,
    e.attempt,
    e.created_utc,
    CASE
        WHEN e.event_type = 'parse_failed' THEN 'unparseable'
        WHEN json_extract(e.payload_json, '$.passed') THEN 'passed'
        ELSE 'failed'
    END AS verdict,
    json_extract(e.payload_json, '$.errors[0]') AS first_error,
    json_array_length(e.payload_json, '$.errors') AS error_count,
    json_extract(e.payload_json, '$.errors') AS errors_json,
    (
        SELECT c.failure_kind FROM check_failures c WHERE c.id = e.id AND c.error_index = 0
    ) AS failure_kind
FROM events e
WHERE e.event_type IN ('validation_verdict', 'parse_failed');
