-- task_state: the latest state of every task (accepted, rejected, failed or pending). Resume
-- skips accepted and rejected tasks; failed and pending ones (in flight at a crash) are redone.
-- The latest verdict decides, whether a run or `revalidate` recorded it.
-- One row per task of `task_heads` (m008), which the writer keeps in step with the log: reading
-- it costs nothing per event, and one task's state is a primary-key lookup.
CREATE VIEW task_state AS
SELECT
    recipe,
    task_key,
    state,
    reason,
    sample_id,
    validator_version,  -- the validator set that judged a finished task
    run_id AS last_run_id,
    updated_utc
FROM task_heads;
