-- The writer's upkeep of the derived tables, in the transaction of each batch it appends
-- (medstore/warehouse/projections.py). The full rebuilds live in sql/derived/.

-- name: projection_add_answered*!
-- A request the log now holds an answer to (the request cache's index).
INSERT OR IGNORE INTO answered_requests VALUES (?);

-- name: projection_add_run_totals*!
-- Add one batch's counts to each run's totals (the run_summary view reads them).
INSERT INTO run_totals (
    run_id, recipe, started_utc, finished_utc, status,
    tasks_started, accepted, rejected, failed, source_skipped, llm_requests, llm_responses,
    cache_replays, llm_errors, repairs, input_tokens, output_tokens, cost_usd
) VALUES (
    :run_id, :recipe, :started_utc, :finished_utc, :status,
    :tasks_started, :accepted, :rejected, :failed, :source_skipped, :llm_requests,
    :llm_responses, :cache_replays, :llm_errors, :repairs, :input_tokens, :output_tokens,
    :cost_usd
)
ON CONFLICT (run_id) DO UPDATE SET
    recipe = coalesce(max(recipe, excluded.recipe), recipe, excluded.recipe),
    started_utc = min(started_utc, excluded.started_utc),
    finished_utc = coalesce(
        max(finished_utc, excluded.finished_utc), finished_utc, excluded.finished_utc
    ),
    status = coalesce(max(status, excluded.status), status, excluded.status),
    tasks_started = tasks_started + excluded.tasks_started,
    accepted = accepted + excluded.accepted,
    rejected = rejected + excluded.rejected,
    failed = failed + excluded.failed,
    source_skipped = source_skipped + excluded.source_skipped,
    llm_requests = llm_requests + excluded.llm_requests,
    llm_responses = llm_responses + excluded.llm_responses,
    cache_replays = cache_replays + excluded.cache_replays,
    llm_errors = llm_errors + excluded.llm_errors,
    repairs = repairs + excluded.repairs,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cost_usd = cost_usd + excluded.cost_usd;

-- name: projection_add_run_failures*!
-- Add one batch's rejections, failures and skips per run and reason.
INSERT INTO run_failures VALUES (?, ?, ?)
ON CONFLICT (run_id, reason) DO UPDATE SET n = n + excluded.n;

-- name: projection_promote_next_copy!
-- A task has a new outcome: if its current sample headed a group of exact copies, the next
-- copy of the group becomes the one in the dataset.
UPDATE sample_index SET is_copy = 0
WHERE accepted_id = (
    SELECT min(copy.accepted_id)
    FROM sample_index leaving
    JOIN sample_index copy
      ON copy.is_current AND copy.recipe = leaving.recipe
     AND copy.content_hash = leaving.content_hash
     AND copy.accepted_id != leaving.accepted_id
    WHERE leaving.is_current AND NOT leaving.is_copy
      AND leaving.recipe = :recipe AND leaving.task_key = :task_key
);

-- name: projection_retire_current!
-- A task has a new outcome: its current sample is no longer current.
UPDATE sample_index SET is_current = 0
WHERE is_current AND recipe = :recipe AND task_key = :task_key;

-- name: projection_sample_arrives!
-- A task's new accepted sample: current, a copy if a current sample has the same content,
-- and carrying any review its sample id already had.
INSERT INTO sample_index
SELECT
    (SELECT id FROM events WHERE event_id = :event_id), :event_id, :sample_id, :recipe,
    :task_key, :label, :run_id, :created_utc, :content_hash, :sample_blob,
    1,
    EXISTS (
        SELECT 1 FROM sample_index copy
        WHERE copy.is_current AND copy.recipe = :recipe AND copy.content_hash = :content_hash
    ),
    json_extract(review.payload_json, '$.verdict'),
    json_extract(review.payload_json, '$.note')
FROM (SELECT 1)
LEFT JOIN (
    SELECT payload_json FROM events
    WHERE event_type IN ('sample_accepted', 'review_verdict')
      AND json_extract(payload_json, '$.sample_id') = :sample_id
      AND event_type = 'review_verdict'
    ORDER BY id DESC
    LIMIT 1
) review;

-- name: projection_sample_reviewed!
-- A reviewer's verdict on a sample id: its latest review.
UPDATE sample_index SET review_verdict = :verdict, review_note = :note
WHERE sample_id = :sample_id;

-- name: projection_task_head*!
-- A task's new deciding event (started, accepted, rejected, failed), given its event id:
-- the task's head now, unless a later one is already there.
INSERT INTO task_heads
SELECT
    recipe, task_key, id,
    CASE event_type
        WHEN 'sample_accepted' THEN 'accepted'
        WHEN 'sample_rejected' THEN 'rejected'
        WHEN 'task_failed' THEN 'failed'
        ELSE 'pending'
    END,
    json_extract(payload_json, '$.reason'),
    json_extract(payload_json, '$.sample_id'),
    run_id,
    created_utc,
    json_extract(payload_json, '$.validator_version')
FROM events
WHERE event_id = ? AND recipe IS NOT NULL AND task_key IS NOT NULL
ON CONFLICT (recipe, task_key) DO UPDATE SET
    head_id = excluded.head_id,
    state = excluded.state,
    reason = excluded.reason,
    sample_id = excluded.sample_id,
    run_id = excluded.run_id,
    updated_utc = excluded.updated_utc,
    validator_version = excluded.validator_version
WHERE excluded.head_id > task_heads.head_id;

-- name: projection_count_events*!
-- Add one batch's events per recipe ('' for none) and type to `event_counts` (m011).
INSERT INTO event_counts VALUES (coalesce(:recipe, ''), :event_type, :n)
ON CONFLICT (recipe, event_type) DO UPDATE SET n = n + excluded.n;
