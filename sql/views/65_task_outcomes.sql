-- task_outcomes: every task (accepted, rejected, failed or still in flight) with why it ended
-- as it did: a short failure kind that facets well (for a rejection, the kind of its last failed
-- check, see check_failures; for a failure, the transport error's reason) and the full message
-- beside it. Each task key opens the task's page, its whole story in order.
CREATE VIEW task_outcomes AS
SELECT
    t.task_key,
    t.recipe,
    t.state,
    CASE t.state
        WHEN 'rejected' THEN coalesce(
            (
                SELECT c.failure_kind FROM check_failures c
                WHERE c.recipe = t.recipe AND c.task_key = t.task_key
                ORDER BY c.id DESC, c.error_index
                LIMIT 1
            ),
            t.reason
        )
        WHEN 'failed' THEN t.reason
    END AS failure_kind,
    CASE WHEN t.state IN ('rejected', 'failed') THEN (
        SELECT coalesce(
            json_extract(e.payload_json, '$.errors[0]'), json_extract(e.payload_json, '$.message')
        )
        FROM events e
        WHERE e.recipe = t.recipe AND e.task_key = t.task_key
          AND e.event_type IN ('sample_rejected', 'task_failed')
        ORDER BY e.id DESC
        LIMIT 1
    ) END AS message,
    t.reason,
    t.sample_id,
    t.last_run_id,
    t.updated_utc
FROM task_state t;
