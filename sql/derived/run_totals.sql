-- run_totals, rebuilt from the log: per-run counts, tokens and cost (what run_summary reads).
SELECT
    run_id,
    max(CASE WHEN event_type = 'run_started' THEN recipe END),
    min(created_utc),
    max(CASE WHEN event_type = 'run_finished' THEN created_utc END),
    max(CASE WHEN event_type = 'run_finished'
        THEN json_extract(payload_json, '$.status') END),
    sum(event_type = 'task_started'),
    sum(event_type = 'sample_accepted'),
    sum(event_type = 'sample_rejected'),
    sum(event_type = 'task_failed'),
    sum(event_type = 'source_skipped'),
    sum(event_type = 'llm_request'),
    sum(event_type = 'llm_response'),
    sum(event_type = 'cache_replay'),
    sum(event_type = 'llm_error'),
    sum(event_type = 'repair_requested'),
    coalesce(sum(CASE WHEN event_type = 'llm_response'
        THEN json_extract(payload_json, '$.input_tokens') END), 0),
    coalesce(sum(CASE WHEN event_type = 'llm_response'
        THEN json_extract(payload_json, '$.output_tokens') END), 0),
    coalesce(sum(CASE WHEN event_type = 'llm_response'
        THEN json_extract(payload_json, '$.cost_usd') END), 0)
FROM events
WHERE run_id IS NOT NULL
GROUP BY run_id;
