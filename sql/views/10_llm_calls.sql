-- llm_calls: every request to a teacher with what answered it (a response, a cache replay, or
-- only errors), its tokens, latency and cost. One row per llm_request event. latency_ms is the
-- time on the wire (send to last byte), queue_ms the wait for a rate-limit slot before it,
-- server_ms the server's own figure when it reports one; structured_output is the dialect a
-- JSON stage was sent in (blank for text stages and the embedded model).
CREATE VIEW llm_calls AS
SELECT
    q.id,
    q.event_id AS request_event_id,
    q.run_id,
    q.recipe,
    q.task_key,
    q.stage,
    q.attempt,
    q.created_utc,
    json_extract(q.payload_json, '$.backend') AS backend,
    json_extract(q.payload_json, '$.base_url') AS base_url,
    json_extract(q.payload_json, '$.model') AS model,
    json_extract(q.payload_json, '$.request_hash') AS request_hash,
    json_extract(q.payload_json, '$.prompt_template') AS prompt_template,
    json_extract(q.payload_json, '$.params') AS params_json,
    CASE
        WHEN r.event_type = 'llm_response' THEN 'response'
        WHEN r.event_type = 'cache_replay' THEN 'cache_replay'
        WHEN (SELECT count(*) FROM events e WHERE e.parent_event_id = q.event_id
              AND e.event_type = 'llm_error') > 0 THEN 'error'
        ELSE 'pending'
    END AS outcome,
    r.event_id AS response_event_id,
    json_extract(r.payload_json, '$.input_tokens') AS input_tokens,
    json_extract(r.payload_json, '$.output_tokens') AS output_tokens,
    json_extract(r.payload_json, '$.latency_ms') AS latency_ms,
    json_extract(r.payload_json, '$.finish_reason') AS finish_reason,
    json_extract(r.payload_json, '$.cost_usd') AS cost_usd,
    json_extract(r.payload_json, '$.raw_output_blob') AS raw_output_blob,
    (SELECT count(*) FROM events e WHERE e.parent_event_id = q.event_id
     AND e.event_type = 'llm_error') AS errors,
    json_extract(q.payload_json, '$.params.structured_output') AS structured_output,
    json_extract(r.payload_json, '$.queue_ms') AS queue_ms,
    json_extract(r.payload_json, '$.server_ms') AS server_ms
FROM events q
LEFT JOIN events r
    ON r.parent_event_id = q.event_id AND r.event_type IN ('llm_response', 'cache_replay')
WHERE q.event_type = 'llm_request';
