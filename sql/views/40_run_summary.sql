-- run_summary: one row per run with its outcome, task counts, calls, tokens, cost and failures
-- grouped by reason. The sums are kept as events land by the writer in `run_totals` and
-- `run_failures` (migration m005, medstore/warehouse/projections.py), so this reads one row per
-- run, not every event.
CREATE VIEW run_summary AS
SELECT
    t.run_id,
    t.recipe,
    t.started_utc,
    t.finished_utc,
    coalesce(t.status, 'running or crashed') AS status,
    t.tasks_started,
    t.accepted,
    t.rejected,
    t.failed,
    t.source_skipped,
    t.llm_requests,
    t.llm_responses,
    t.cache_replays,
    t.llm_errors,
    t.repairs,
    t.input_tokens,
    t.output_tokens,
    round(t.cost_usd, 6) AS cost_usd,
    (
        SELECT json_group_object(reason, n) FROM (
            SELECT f.reason, f.n FROM run_failures f WHERE f.run_id = t.run_id ORDER BY f.reason
        )
    ) AS failures_by_reason_json
FROM run_totals t;
