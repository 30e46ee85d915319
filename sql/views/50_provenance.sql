-- provenance: for every accepted sample, every event of its task in order (claims aside):
-- source record, prompts, raw outputs, errors, repairs, verdicts, the acceptance, and later
-- reviews.
CREATE VIEW provenance AS
SELECT
    s.sample_id,
    e.id,
    e.event_id,
    e.run_id,
    e.recipe,
    e.task_key,
    e.stage,
    e.attempt,
    e.event_type,
    e.parent_event_id,
    e.created_utc,
    e.payload_json
FROM (
    -- sample_index (m003) holds one row per sample_accepted event, indexed by sample_id, so
    -- one sample's provenance reads its task's events only, not every accepted payload.
    SELECT DISTINCT sample_id, recipe, task_key FROM sample_index
) s
JOIN events e ON e.recipe = s.recipe AND e.task_key = s.task_key
-- Claims (runs sharing the work) are coordination, not part of a sample's story.
WHERE e.event_type != 'task_claimed';
