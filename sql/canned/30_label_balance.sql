-- Label balance
-- Samples in the dataset (accepted, deduplicated, not rejected by a reviewer) per recipe and
-- label, with each label's share of its recipe.
SELECT
    recipe,
    coalesce(label, '(none)') AS label,
    count(*) AS samples,
    round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY recipe), 1) AS share_pct
FROM samples
GROUP BY recipe, label
ORDER BY recipe, samples DESC
