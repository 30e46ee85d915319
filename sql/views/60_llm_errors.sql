-- llm_errors: every failed call to a teacher (rate limit, server error, timeout, dropped
-- connection, bad response) with its error type, HTTP status, retry number and message.
CREATE VIEW llm_errors AS
SELECT
    e.id,
    e.event_id,
    e.run_id,
    e.recipe,
    e.task_key,
    e.stage,
    e.attempt,
    e.created_utc,
    json_extract(e.payload_json, '$.kind') AS error_type,
    json_extract(e.payload_json, '$.status') AS http_status,
    json_extract(e.payload_json, '$.retry_number') AS retry_number,
    json_extract(e.payload_json, '$.will_retry') AS will_retry,
    json_extract(e.payload_json, '$.retry_after_s') AS retry_after_s,
    json_extract(e.payload_json, '$.message') AS message,
    e.parent_event_id AS request_event_id
FROM events e
WHERE e.event_type = 'llm_error';
