-- status_counts, rebuilt from the two derived tables it counts (each checked against the log by
-- verify): tasks per recipe, state and reason, and the samples in the dataset per recipe (the
-- rule of sample_membership.in_dataset). Triggers on those tables keep it in step (m009).
SELECT recipe, state, coalesce(reason, ''), count(*)
FROM task_heads
GROUP BY 1, 2, 3
UNION ALL
SELECT coalesce(recipe, ''), 'samples', '', count(*)
FROM sample_index
WHERE is_current AND NOT is_copy AND coalesce(review_verdict, '') != 'reject'
GROUP BY 1;
