-- answered_requests, rebuilt from the log: every request hash the log holds an answer to.
SELECT DISTINCT json_extract(payload_json, '$.request_hash')
FROM events
WHERE event_type IN ('llm_response', 'cache_replay')
  AND json_extract(payload_json, '$.request_hash') IS NOT NULL;
