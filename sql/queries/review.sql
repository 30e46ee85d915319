-- What the review queue page and `cli.py samples` read: the `review_queue` view under a filter
-- (blank parameters match anything; the judge bounds are NULL when not given).

-- name: review_queue_entries
-- Every sample of the queue under the filter, in all review states, in order.
SELECT accepted_id, sample_id, review_state
FROM review_queue
WHERE (:recipe = '' OR recipe = :recipe)
  AND (:label = '' OR label = :label)
  AND (:gate = '' OR gate = :gate)
  AND (:judge_min IS NULL OR judge_score >= :judge_min)
  AND (:judge_max IS NULL OR judge_score <= :judge_max)
ORDER BY accepted_id;

-- name: review_queue_rows
-- The queue's rows for a JSON list of sample ids, in queue order, with the sample itself.
SELECT q.*, b.content AS sample_json
FROM review_queue q
JOIN sample_index s ON s.accepted_id = q.accepted_id
LEFT JOIN blobs b ON b.hash = s.sample_blob
WHERE q.sample_id IN (SELECT value FROM json_each(:sample_ids))
ORDER BY q.accepted_id;

-- name: review_queue_choices
-- The values each filter can take, for the queue's drop-downs.
SELECT 'recipe' AS filter, recipe AS value, count(*) AS n FROM review_queue GROUP BY recipe
UNION ALL
SELECT 'label', label, count(*) FROM review_queue WHERE label IS NOT NULL GROUP BY label
UNION ALL
SELECT 'gate', gate, count(*) FROM review_queue WHERE gate IS NOT NULL GROUP BY gate
ORDER BY 1, 2;

-- name: samples_listing
-- The queue under a filter and a review state, oldest first, with the sample (for its summary).
SELECT q.sample_id, q.recipe, q.label, q.review_state, q.gate, q.task_key, q.created_utc,
    b.content AS sample_json
FROM review_queue q
JOIN sample_index s ON s.accepted_id = q.accepted_id
LEFT JOIN blobs b ON b.hash = s.sample_blob
WHERE (:recipe = '' OR q.recipe = :recipe)
  AND (:label = '' OR q.label = :label)
  AND (:state = '' OR q.review_state = :state)
  AND (:gate = '' OR q.gate = :gate)
  AND (:judge_min IS NULL OR q.judge_score >= :judge_min)
  AND (:judge_max IS NULL OR q.judge_score <= :judge_max)
ORDER BY q.accepted_id
LIMIT :limit;

-- name: review_queue_position$
-- Where a sample stands in the queue's order (NULL: not a reviewable sample).
SELECT accepted_id FROM review_queue WHERE sample_id = :sample_id;
