-- run_summary: one row per run with its outcome, task counts, calls, tokens, cost and failures
-- grouped by reason.
CREATE VIEW run_summary AS
SELECT
    e.run_id,
    max(CASE WHEN e.event_type = 'run_started' THEN e.recipe END) AS recipe,
    min(e.created_utc) AS started_utc,
    max(CASE WHEN e.event_type = 'run_finished' THEN e.created_utc END) AS finished_utc,
    coalesce(
        max(CASE WHEN e.event_type = 'run_finished' THEN json_extract(e.payload_json, '$.status') END),
        'running or crashed'
    ) AS status,
    sum(e.event_type = 'task_started') AS tasks_started,
    sum(e.event_type = 'sample_accepted') AS accepted,
    sum(e.event_type = 'sample_rejected') AS rejected,
    sum(e.event_type = 'task_failed') AS failed,
    sum(e.event_type = 'source_skipped') AS source_skipped,
    sum(e.event_type = 'llm_request') AS llm_requests,
    sum(e.event_type = 'llm_response') AS llm_responses,
    sum(e.event_type = 'cache_replay') AS cache_replays,
    sum(e.event_type = 'llm_error') AS llm_errors,
    sum(e.event_type = 'repair_requested') AS repairs,
    coalesce(sum(CASE WHEN e.event_type = 'llm_response'
        THEN json_extract(e.payload_json, '$.input_tokens') END), 0) AS input_tokens,
    coalesce(sum(CASE WHEN e.event_type = 'llm_response'
        THEN json_extract(e.payload_json, '$.output_tokens') END), 0) AS output_tokens,
    round(coalesce(sum(CASE WHEN e.event_type = 'llm_response'
        THEN json_extract(e.payload_json, '$.cost_usd') END), 0), 6) AS cost_usd,
    (
        SELECT json_group_object(reason, n) FROM (
            SELECT json_extract(f.payload_json, '$.reason') AS reason, count(*) AS n
            FROM events f
            WHERE f.run_id = e.run_id
              AND f.event_type IN ('sample_rejected', 'task_failed', 'source_skipped')
            GROUP BY 1
        )
    ) AS failures_by_reason_json
FROM events e
WHERE e.run_id IS NOT NULL
GROUP BY e.run_id;
