-- Rejected by reviewers
-- Samples whose latest reviewer verdict is a reject: they are out of the dataset views and
-- exports until a reviewer accepts them again.
SELECT sample_id, recipe, task_key, reviewer, note, created_utc
FROM (
    SELECT *, row_number() OVER (PARTITION BY sample_id ORDER BY id DESC) AS recency
    FROM review_verdicts
)
WHERE recency = 1 AND verdict = 'reject'
ORDER BY created_utc DESC
