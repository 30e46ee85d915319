-- sample_counts, rebuilt from sample_index (which verify checks against the log): the samples in
-- the dataset (the rule of sample_membership.in_dataset) per recipe, label and review verdict,
-- what `serve` counts and facets the `samples` page from. Triggers keep it in step (m011).
SELECT recipe, label, review_verdict, count(*)
FROM sample_index
WHERE is_current AND NOT is_copy AND coalesce(review_verdict, '') != 'reject'
GROUP BY 1, 2, 3;
