-- What `serve` reads and writes: the provenance page, the charts, the metadata, the derived
-- search index, and how the Datasette plugin recognises a warehouse.

-- Recognising a warehouse ----------------------------------------------------------------------

-- name: serve_has_view$
-- Whether a view is installed, in the file or (for a read-only reader) as a TEMP view.
SELECT count(*) > 0 FROM (
    SELECT name, type FROM sqlite_master UNION ALL SELECT name, type FROM sqlite_temp_master
) WHERE type = 'view' AND name = :view;

-- Provenance page ------------------------------------------------------------------------------

-- name: serve_sample_tasks
-- The task (normally one) that accepted a sample id.
SELECT DISTINCT recipe, task_key FROM sample_index WHERE sample_id = :sample_id;

-- name: serve_task_events
-- Every event of one task in log order, without the hash chain's columns, and without the
-- claims runs make to share the work (coordination, not the sample's story).
SELECT
    id, event_id, run_id, recipe, task_key, stage, attempt, event_type, parent_event_id,
    created_utc, payload_json
FROM events
WHERE recipe = :recipe AND task_key = :task_key AND event_type != 'task_claimed'
ORDER BY id;

-- name: serve_sample_exports
-- The exports that contain a sample.
SELECT export_event_id, export_id FROM sample_exports WHERE sample_id = :sample_id;

-- name: serve_lineage_events
-- Every export, training and eval event: the page keeps those linked to the sample's exports.
SELECT * FROM events
WHERE event_type IN ('export_written', 'training_started', 'training_finished', 'eval_result')
ORDER BY id;

-- Charts ---------------------------------------------------------------------------------------

-- name: serve_recent_runs
-- The latest runs, newest first, with their recipe and when each started.
SELECT run_id, recipe, created_utc FROM events
WHERE event_type = 'run_started'
ORDER BY id DESC
LIMIT :limit;

-- name: serve_run_id_range^
-- The first and last log id of a run's events (from the events_run index).
SELECT min(id) AS first_id, max(id) AS last_id FROM events WHERE run_id = :run_id;

-- name: serve_run_event_buckets
-- A run's events counted in buckets of :width consecutive log ids, each with its last id.
SELECT count(*) AS events, max(id) AS last_id
FROM events
WHERE run_id = :run_id
GROUP BY (id - :first_id) / :width
ORDER BY last_id;

-- name: serve_event_created$
-- When one event (by log id) was written.
SELECT created_utc FROM events WHERE id = :id;

-- name: serve_failures_by_reason
-- The 20 most common reasons tasks are rejected or failed, per recipe.
SELECT recipe || ': ' || coalesce(reason, '(no reason)') AS label, count(*) AS tasks
FROM task_state
WHERE state IN ('rejected', 'failed')
GROUP BY recipe, reason
ORDER BY tasks DESC
LIMIT 20;

-- name: serve_label_balance
-- Samples in the dataset per recipe and label.
SELECT recipe, coalesce(label, '(none)') AS label, count(*) AS samples
FROM samples
GROUP BY recipe, label
ORDER BY recipe, samples DESC;

-- name: serve_task_outcome_times
-- Every finished task's outcome, when it ended and its failure kind (see task_outcomes).
SELECT updated_utc, state, failure_kind FROM task_outcomes
WHERE state IN ('accepted', 'rejected', 'failed');

-- name: serve_run_costs
-- Tokens, calls and cost of the latest runs (from the derived run_totals), newest first.
SELECT run_id, recipe, started_utc, input_tokens, output_tokens, llm_requests, cost_usd
FROM run_summary
ORDER BY started_utc DESC
LIMIT :limit;

-- name: serve_stage_costs
-- Answered calls, tokens and cost per recipe stage over the latest runs' responses (read
-- through the events_run index); priced says whether any of them had a known price.
SELECT
    recipe,
    stage,
    count(*) AS calls,
    coalesce(sum(json_extract(payload_json, '$.input_tokens')), 0) AS input_tokens,
    coalesce(sum(json_extract(payload_json, '$.output_tokens')), 0) AS output_tokens,
    sum(json_extract(payload_json, '$.cost_usd')) AS cost_usd,
    count(json_extract(payload_json, '$.cost_usd')) > 0 AS priced
FROM events
WHERE event_type = 'llm_response' AND run_id IN (
    SELECT run_id FROM run_totals ORDER BY started_utc DESC LIMIT :limit
)
GROUP BY recipe, stage
ORDER BY input_tokens + output_tokens DESC;

-- name: serve_judge_scores
-- Samples per recipe and judge score (one decimal), where a judge stage gave scores.
SELECT recipe, round(judge_score, 1) AS score, count(*) AS samples
FROM review_queue
WHERE judge_score IS NOT NULL
GROUP BY recipe, score
ORDER BY recipe, score;

-- name: serve_training_logged
-- Every logged training step, in log order (the loss curves).
SELECT run_id, payload_json FROM events WHERE event_type = 'training_logged' ORDER BY id;

-- Metadata -------------------------------------------------------------------------------------

-- name: serve_tables_and_views
-- Every table and view Datasette lists, without SQLite's own and the search index's shadow tables.
SELECT name, type FROM sqlite_master
WHERE type IN ('table', 'view')
  AND name NOT LIKE 'sqlite_%'
  AND name NOT LIKE 'raw_output_fts_%'
  AND name NOT LIKE 'sample_fts_%'
ORDER BY name;

-- name: serve_table_columns
-- The column names of one table or view, in order.
SELECT name FROM pragma_table_info(:table);

-- Search index (derived; see medstore/serve/search.py) -----------------------------------------

-- name: serve_create_search_index!
-- The full-text index over raw outputs: one row per llm_response event, rowid = its log id.
CREATE VIRTUAL TABLE IF NOT EXISTS raw_output_fts USING fts5(
    raw_output,
    recipe UNINDEXED,
    stage UNINDEXED,
    task_key UNINDEXED,
    event_id UNINDEXED,
    tokenize = 'porter unicode61'
);

-- name: serve_newest_event_id$
-- The log's last id (0 when empty): how far the index has to catch up.
SELECT coalesce(max(id), 0) FROM events;

-- name: serve_last_indexed_id$
-- The last response indexed. ORDER BY rowid DESC LIMIT 1 is answered from the FTS index;
-- max(rowid) would scan it.
SELECT rowid FROM raw_output_fts ORDER BY rowid DESC LIMIT 1;

-- name: serve_index_raw_outputs!
-- Index the raw output of every response with a log id in (:start, :stop].
INSERT INTO raw_output_fts (rowid, raw_output, recipe, stage, task_key, event_id)
SELECT e.id, b.content, e.recipe, e.stage, e.task_key, e.event_id
FROM events e
JOIN blobs b ON b.hash = json_extract(e.payload_json, '$.raw_output_blob')
WHERE e.id > :start AND e.id <= :stop AND e.event_type = 'llm_response';

-- name: serve_create_sample_index!
-- The full-text index over samples: one row per sample_accepted event, rowid = its log id
-- (= sample_index.accepted_id), holding the text of every string in the sample.
CREATE VIRTUAL TABLE IF NOT EXISTS sample_fts USING fts5(
    sample_text,
    sample_id UNINDEXED,
    recipe UNINDEXED,
    label UNINDEXED,
    tokenize = 'porter unicode61'
);

-- name: serve_last_indexed_sample_id$
-- The last sample indexed (answered from the FTS index, as for raw outputs).
SELECT rowid FROM sample_fts ORDER BY rowid DESC LIMIT 1;

-- name: serve_index_samples!
-- Index the strings of every sample accepted with a log id in (:start, :stop]; the JSON keys
-- are left out, so that "speaker" or "text" match nothing.
INSERT INTO sample_fts (rowid, sample_text, sample_id, recipe, label)
SELECT
    e.id,
    (SELECT group_concat(t.value, ' ') FROM json_tree(b.content) t WHERE t.type = 'text'),
    json_extract(e.payload_json, '$.sample_id'),
    e.recipe,
    json_extract(e.payload_json, '$.label')
FROM events e
JOIN blobs b ON b.hash = json_extract(e.payload_json, '$.sample_blob')
WHERE e.id > :start AND e.id <= :stop AND e.event_type = 'sample_accepted';

-- Task page ------------------------------------------------------------------------------------

-- name: serve_task_check_failures
-- The failed checks of one task, one row per error, with its failure kind (see check_failures).
SELECT event_id, error_index, failure_kind, message
FROM check_failures
WHERE recipe = :recipe AND task_key = :task_key
ORDER BY id, error_index;

-- name: serve_task_samples
-- The samples a task was accepted as, with whether each is in the dataset now.
SELECT sample_id, in_dataset, review_verdict
FROM sample_membership
WHERE recipe = :recipe AND task_key = :task_key
ORDER BY accepted_id;

-- name: serve_kept_samples_count$
-- How many rows the `samples` view has (with equality filters on recipe, label and
-- review_verdict; a NULL parameter is no filter), from the kept counts (m011) instead of a
-- pass over the view.
SELECT coalesce(sum(n), 0) AS "count(*)"
FROM sample_counts
WHERE (:recipe IS NULL OR recipe = :recipe)
  AND (:label IS NULL OR label = :label)
  AND (:review_verdict IS NULL OR review_verdict = :review_verdict);

-- name: serve_kept_samples_facet
-- A facet of the `samples` view on :column, with the same filters: what Datasette's column
-- facet computes, in its order, from the kept counts.
SELECT value, sum(n) AS count
FROM (
    SELECT CASE :column
        WHEN 'recipe' THEN recipe WHEN 'label' THEN label WHEN 'review_verdict' THEN review_verdict
    END AS value, n
    FROM sample_counts
    WHERE (:recipe IS NULL OR recipe = :recipe)
      AND (:label IS NULL OR label = :label)
      AND (:review_verdict IS NULL OR review_verdict = :review_verdict)
)
WHERE value IS NOT NULL
GROUP BY value
ORDER BY count DESC, value
LIMIT :limit;

-- name: serve_kept_task_state_count$
-- How many rows the `task_state` view has (filters on recipe, state and reason), from
-- status_counts (m009), which keeps a NULL reason as '' (a task's reason is never empty).
SELECT coalesce(sum(n), 0) AS "count(*)"
FROM status_counts
WHERE what != 'samples'
  AND (:recipe IS NULL OR recipe = :recipe)
  AND (:state IS NULL OR what = :state)
  AND (:reason IS NULL OR (reason = :reason AND :reason != ''));

-- name: serve_kept_task_state_facet
-- A facet of the `task_state` view on :column, with the same filters, from status_counts.
SELECT value, sum(n) AS count
FROM (
    SELECT CASE :column
        WHEN 'recipe' THEN recipe WHEN 'state' THEN what WHEN 'reason' THEN nullif(reason, '')
    END AS value, n
    FROM status_counts
    WHERE what != 'samples'
      AND (:recipe IS NULL OR recipe = :recipe)
      AND (:state IS NULL OR what = :state)
      AND (:reason IS NULL OR (reason = :reason AND :reason != ''))
)
WHERE value IS NOT NULL
GROUP BY value
ORDER BY count DESC, value
LIMIT :limit;

-- name: serve_kept_events_count$
-- How many events the log holds (filters on recipe and event_type), from event_counts (m011),
-- which keeps a NULL recipe as '' (no recipe is named '').
SELECT coalesce(sum(n), 0) AS "count(*)"
FROM event_counts
WHERE (:recipe IS NULL OR (recipe = :recipe AND :recipe != ''))
  AND (:event_type IS NULL OR event_type = :event_type);

-- name: serve_kept_events_facet
-- A facet of the `events` table on :column, with the same filters, from event_counts.
SELECT value, sum(n) AS count
FROM (
    SELECT CASE :column
        WHEN 'recipe' THEN nullif(recipe, '') WHEN 'event_type' THEN event_type
    END AS value, n
    FROM event_counts
    WHERE (:recipe IS NULL OR (recipe = :recipe AND :recipe != ''))
      AND (:event_type IS NULL OR event_type = :event_type)
)
WHERE value IS NOT NULL
GROUP BY value
ORDER BY count DESC, value
LIMIT :limit;
