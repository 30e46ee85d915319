-- Samples awaiting review
-- Samples in the dataset that no reviewer has judged yet, oldest first, optionally for one
-- recipe (leave blank for all). Each sample id links to its provenance page, where the
-- verdict is given.
SELECT sample_id, recipe, label, task_key, created_utc, run_id
FROM samples
WHERE review_verdict IS NULL AND (:recipe = '' OR recipe = :recipe)
ORDER BY created_utc
LIMIT 1000
