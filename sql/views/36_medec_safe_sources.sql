-- medec_safe_sources: where the note of every medec-safe sample came from. An INCORRECT note must
-- be MEDEC's text, which its task's source record holds, and no model call may have written it:
-- note_llm_requests counts its task's calls outside the reasoning stage (must be 0) and
-- note_is_llm_output says whether any model output recorded for the task equals the note (must
-- be 0). A CORRECT note must be a paraphrase: one of its task's outputs (note_is_llm_output 1).
CREATE VIEW medec_safe_sources AS
SELECT
    s.sample_id,
    s.task_key,
    s.label,
    json_extract(s.sample_json, '$.note_id') AS note_id,
    json_extract(s.sample_json, '$.original_note_id') AS original_note_id,
    json_extract(s.sample_json, '$.source') AS source,
    json_extract(s.sample_json, '$.note') AS note,
    (
        SELECT b.content
        FROM events e
        JOIN blobs b ON b.hash = json_extract(e.payload_json, '$.source_record_blob')
        WHERE e.recipe = s.recipe AND e.task_key = s.task_key AND e.event_type = 'task_started'
        ORDER BY e.id DESC
        LIMIT 1
    ) AS source_record_json,
    (
        SELECT count(*)
        FROM events e
        WHERE e.recipe = s.recipe AND e.task_key = s.task_key AND e.event_type = 'llm_request'
          AND coalesce(e.stage, '') != 'reasoning'
    ) AS note_llm_requests,
    (
        SELECT count(*)
        FROM events e
        WHERE e.recipe = s.recipe AND e.task_key = s.task_key AND e.event_type = 'llm_request'
          AND e.stage = 'reasoning'
    ) AS reasoning_llm_requests,
    EXISTS (
        SELECT 1
        FROM events e
        JOIN blobs b ON b.hash = json_extract(e.payload_json, '$.raw_output_blob')
        WHERE e.recipe = s.recipe AND e.task_key = s.task_key
          AND e.event_type IN ('llm_response', 'cache_replay')
          AND trim(b.content, ' ' || char(9, 10, 13)) = json_extract(s.sample_json, '$.note')
    ) AS note_is_llm_output
FROM samples s
WHERE s.recipe = 'medec-safe';
