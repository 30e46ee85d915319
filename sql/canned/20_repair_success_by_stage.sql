-- Repair success rate per stage
-- For every recipe stage: how many stage runs needed a repair (their first output was
-- unparseable or failed validation) and how many of those then passed.
WITH stage_runs AS (
    SELECT
        recipe,
        task_key,
        run_id,
        stage,
        max(event_type = 'repair_requested') AS repaired,
        max(event_type = 'validation_verdict' AND json_extract(payload_json, '$.passed')) AS passed,
        sum(event_type = 'repair_requested') AS repairs
    FROM events
    WHERE event_type IN ('validation_verdict', 'parse_failed', 'repair_requested')
    GROUP BY recipe, task_key, run_id, stage
)
SELECT
    recipe,
    stage,
    count(*) AS stage_runs,
    sum(repaired) AS needed_repair,
    sum(repaired AND passed) AS repaired_then_passed,
    round(100.0 * sum(repaired AND passed) / nullif(sum(repaired), 0), 1) AS repair_success_pct,
    sum(repairs) AS repair_attempts,
    round(100.0 * sum(passed) / count(*), 1) AS stage_pass_pct
FROM stage_runs
GROUP BY recipe, stage
ORDER BY recipe, stage
