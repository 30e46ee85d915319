-- check_failures: every error of every failed check (an unparseable output or a failed
-- validation), one row per error, with its failure kind: the stage and what failed. For schema
-- and validator errors ("field.path: message") that is the field path with list positions
-- dropped ("expert: differential_diagnosis.icd10_code"); for any other message, its text up to
-- the first colon. Kinds facet well; the message beside each is the full text.
CREATE VIEW check_failures AS
SELECT
    id,
    event_id,
    run_id,
    recipe,
    task_key,
    stage,
    attempt,
    created_utc,
    event_type,
    error_index,
    coalesce(stage, '(no stage)') || ': ' || CASE
        WHEN head GLOB '*[ ]*' OR instr(head, '.') = 0 THEN head
        ELSE substr(head, 1, instr(head, '.') - 1)
            || CASE WHEN leaf = '' OR leaf GLOB '[0-9]*' THEN '' ELSE '.' || leaf END
    END AS failure_kind,
    message
FROM (
    SELECT
        *,
        -- What follows the path's last dot: rtrim drops every trailing non-dot character.
        replace(head, rtrim(head, replace(head, '.', '')), '') AS leaf
    FROM (
        SELECT
            e.id,
            e.event_id,
            e.run_id,
            e.recipe,
            e.task_key,
            e.stage,
            e.attempt,
            e.created_utc,
            e.event_type,
            err.key AS error_index,
            err.value AS message,
            trim(substr(
                CASE
                    WHEN instr(err.value, ': ') > 1
                    THEN substr(err.value, 1, instr(err.value, ': ') - 1)
                    ELSE err.value
                END,
                1,
                60
            )) AS head
        FROM events e, json_each(e.payload_json, '$.errors') err
        WHERE e.event_type IN ('validation_verdict', 'parse_failed')
    )
);
