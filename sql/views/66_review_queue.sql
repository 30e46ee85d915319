-- review_queue: every sample a reviewer can judge (its task's current outcome, not a copy of an
-- earlier sample), in the order they were accepted, with its review state (unreviewed, accepted
-- or rejected: rejected samples stay here, unlike in `samples`), the gate it first failed on its
-- way (the failure kind of its task's first failed check, which a repair then fixed; blank when
-- every check passed first time) and its judge score (blank: no recipe has a judge stage yet).
CREATE VIEW review_queue AS
SELECT
    s.sample_id,
    s.recipe,
    s.label,
    CASE s.review_verdict
        WHEN 'accept' THEN 'accepted'
        WHEN 'reject' THEN 'rejected'
        ELSE 'unreviewed'
    END AS review_state,
    s.review_note,
    (
        SELECT c.failure_kind FROM check_failures c
        WHERE c.recipe = s.recipe AND c.task_key = s.task_key AND c.id < s.accepted_id
        ORDER BY c.id, c.error_index
        LIMIT 1
    ) AS gate,
    CAST(NULL AS REAL) AS judge_score,
    s.task_key,
    s.run_id,
    s.created_utc,
    s.accepted_id
FROM sample_index s
WHERE s.is_current AND NOT s.is_copy;
