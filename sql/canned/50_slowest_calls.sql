-- Slowest teacher calls
-- The 100 answered calls that took longest, with their stage, model and token counts.
SELECT
    e.created_utc,
    e.recipe,
    e.task_key,
    e.stage,
    e.attempt,
    json_extract(e.payload_json, '$.latency_ms') AS latency_ms,
    json_extract(e.payload_json, '$.input_tokens') AS input_tokens,
    json_extract(e.payload_json, '$.output_tokens') AS output_tokens,
    json_extract(e.payload_json, '$.finish_reason') AS finish_reason,
    json_extract(e.payload_json, '$.model_reported') AS model,
    e.run_id,
    e.event_id
FROM events e
WHERE e.event_type = 'llm_response'
ORDER BY json_extract(e.payload_json, '$.latency_ms') DESC
LIMIT 100
