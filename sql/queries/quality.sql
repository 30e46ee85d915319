-- Near-duplicates and contamination (medstore/quality): what a scan reads, and what exports
-- and reports read of the latest scan.

-- name: quality_samples
-- The samples of a recipe's dataset, earliest accepted first (the first of a cluster is kept).
SELECT m.sample_id, m.task_key, b.content AS sample_json
FROM sample_membership m
JOIN blobs b ON b.hash = m.sample_blob
WHERE m.in_dataset AND m.recipe = :recipe
ORDER BY m.accepted_id;

-- name: quality_sample_ids
-- The ids of a recipe's dataset in scan order (their hash tells whether a scan is stale).
SELECT sample_id FROM sample_membership
WHERE in_dataset AND recipe = :recipe
ORDER BY accepted_id;

-- name: quality_latest_scan^
-- A recipe's latest quality scan: its payload (settings, eval sets, counts, sample set hash).
SELECT event_id, run_id, created_utc, payload_json FROM events
WHERE event_type = 'quality_scan' AND recipe = :recipe
ORDER BY id DESC
LIMIT 1;

-- name: quality_exclusions
-- The samples an export leaves out, and why: duplicates (one of each cluster is kept) and
-- contaminated rows, unless kept with --keep-duplicates / --keep-contaminated.
SELECT sample_id, min(kind) AS kind FROM quality_flags
WHERE recipe = :recipe
  AND (
      (kind IN ('near_duplicate', 'semantic_duplicate') AND NOT :keep_duplicates)
      OR (kind = 'contaminated' AND NOT :keep_contaminated)
  )
GROUP BY sample_id;

-- name: quality_report_counts
-- Per kind of flag in a recipe's latest scan: flagged samples and clusters.
SELECT kind, count(DISTINCT sample_id) AS samples, count(DISTINCT cluster_id) AS clusters
FROM quality_flags
WHERE recipe = :recipe
GROUP BY kind
ORDER BY kind;

-- name: quality_report_hits
-- A recipe's contamination hits in its latest scan, most overlapping first.
SELECT sample_id, eval_set, eval_id, overlap_ngrams, similarity FROM quality_flags
WHERE recipe = :recipe AND kind = 'contaminated'
ORDER BY coalesce(overlap_ngrams, 0) DESC, coalesce(similarity, 0) DESC, sample_id
LIMIT :limit;
