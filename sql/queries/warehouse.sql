-- The event log's own reads and writes: appends, the chain head, resume, the request cache.

-- name: chain_head^
-- The last link of the hash chain, how many events it covers, and its signature (m007; a
-- warehouse not yet migrated has no signature column).
SELECT * FROM chain_head;

-- name: set_chain_head!
UPDATE chain_head SET
    last_id = :last_id, last_hash = :last_hash, event_count = :event_count, signature = :signature;

-- name: set_unsigned_chain_head!
-- The same, on a warehouse from before m007.
UPDATE chain_head SET last_id = :last_id, last_hash = :last_hash, event_count = :event_count;

-- name: last_event_id$
SELECT max(id) FROM events;

-- name: insert_blobs*!
-- Content-addressed: a text already stored under its hash is not stored again.
INSERT OR IGNORE INTO blobs (hash, content, size) VALUES (?, ?, ?);

-- name: insert_events*!
INSERT INTO events (
    event_id, run_id, recipe, task_key, stage, attempt, event_type, parent_event_id,
    payload_json, created_utc, prev_hash, hash
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: blob$
SELECT content FROM blobs WHERE hash = :hash;

-- name: finished_tasks
-- Which of these tasks (a JSON list of keys) are finished, their latest state accepted or
-- rejected, with the validator version of that verdict: resume skips them (and says when the
-- version differs from the current one: options or validators changed since the task ended). One primary-key lookup in task_heads per key asked, so resume's
-- start-up grows with its source, not with the warehouse.
-- CROSS JOIN keeps the keys the outer loop, whatever statistics ANALYZE gathered.
SELECT h.task_key, h.validator_version FROM json_each(:task_keys) k
CROSS JOIN task_heads h ON h.recipe = :recipe AND h.task_key = k.value
WHERE +h.state IN ('accepted', 'rejected');

-- name: answered_request_hashes
-- Every request the log holds an answer to (the request cache's index; see projections).
SELECT request_hash FROM answered_requests;

-- name: cached_response^
-- The latest successful response to an identical request (an answer or a replay of one).
SELECT event_id, payload_json FROM events
WHERE event_type IN ('llm_response', 'cache_replay')
  AND json_extract(payload_json, '$.request_hash') = :request_hash
ORDER BY id DESC
LIMIT 1;

-- name: chain_rows
-- Every event with the fields its hash covers, in log order (what verify recomputes).
SELECT
    id, event_id, run_id, recipe, task_key, stage, attempt, event_type, parent_event_id,
    payload_json, created_utc, prev_hash, hash
FROM events
ORDER BY id;

-- name: all_blobs
SELECT hash, content FROM blobs;

-- name: task_events
-- Every event of one task, in log order.
SELECT * FROM events WHERE recipe = :recipe AND task_key = :task_key ORDER BY id;

-- name: sample_membership^
-- Whether one sample is in the dataset now, and if not, why (see the view).
SELECT * FROM sample_membership WHERE sample_id = :sample_id ORDER BY accepted_id DESC LIMIT 1;

-- name: status_task_states
-- Tasks per recipe, state and reason: counted as they change (status_counts, m009), so this
-- reads a few rows whatever the warehouse's size.
SELECT recipe, what AS state, nullif(reason, '') AS reason, n FROM status_counts
WHERE what != 'samples'
ORDER BY recipe;

-- name: status_samples_per_recipe
SELECT recipe, n FROM status_counts WHERE what = 'samples';

-- name: status_skipped_in_latest_runs
-- Source records skipped by each recipe's latest run, by reason.
SELECT e.recipe, json_extract(e.payload_json, '$.reason') AS reason, count(*) AS n
FROM events e
WHERE e.event_type = 'source_skipped' AND e.run_id = (
    SELECT run_id FROM events r WHERE r.event_type = 'run_started' AND r.recipe = e.recipe
    ORDER BY r.id DESC LIMIT 1)
GROUP BY 1, 2;

-- name: status_gate_rejections
-- Rejected tasks per recipe and content gate they failed (medstore/checks/gates.py), each task
-- once per gate, from the kept counts (m012; sql/derived/task_gate_failures.sql says which).
SELECT recipe, gate, n
FROM gate_rejections
ORDER BY n DESC, 1, 2;

-- name: status_recent_runs
SELECT * FROM run_summary ORDER BY started_utc DESC LIMIT :limit;

-- name: status_sizes^
-- Without counting rows (a pass over 10M index entries): the chain head counts the events, and
-- blobs, never deleted (a trigger refuses it), are numbered 1, 2, 3, … so max(rowid) is their
-- count (found at the end of the b-tree).
SELECT (SELECT event_count FROM chain_head) AS events,
       (SELECT coalesce(max(rowid), 0) FROM blobs) AS blobs;

-- name: sample_acceptance_events
-- The events that name a sample id (its acceptance and its reviews), oldest first. The IN list
-- repeats the partial index's WHERE clause word for word: SQLite uses a partial index only when
-- the query states its condition, and this lookup must stay O(log n).
SELECT event_id, recipe, task_key, event_type FROM events
WHERE event_type IN ('sample_accepted', 'review_verdict')
  AND json_extract(payload_json, '$.sample_id') = :sample_id
ORDER BY id;

-- name: sample_provenance
-- Every event of a sample's task in log order (the provenance view's rows for one sample).
SELECT * FROM provenance WHERE sample_id = :sample_id ORDER BY id;

-- name: lease_state^
-- Who may work on a task now: its latest deciding event (finished if accepted or rejected; its
-- validator version, for `run --redo`) and its latest claim, with whether the task ended (or failed) after that claim.
WITH claim AS (
    SELECT
        id,
        json_extract(payload_json, '$.owner') AS owner,
        json_extract(payload_json, '$.expires_utc') AS expires_utc,
        json_extract(payload_json, '$.host') AS host,
        json_extract(payload_json, '$.pid') AS pid
    FROM events
    -- "+event_type": by the task's index (recipe, task_key, id), newest first; the index on
    -- (event_type, recipe) would scan every claim of the recipe, a cost that grows with the log.
    WHERE recipe = :recipe AND task_key = :task_key AND +event_type = 'task_claimed'
    ORDER BY id DESC
    LIMIT 1
)
SELECT
    (
        SELECT event_type FROM events
        WHERE recipe = :recipe AND task_key = :task_key
          AND event_type IN ('task_started', 'sample_accepted', 'sample_rejected', 'task_failed')
        ORDER BY id DESC
        LIMIT 1
    ) AS head_type,
    (
        SELECT json_extract(payload_json, '$.validator_version') FROM events
        WHERE recipe = :recipe AND task_key = :task_key
          AND event_type IN ('task_started', 'sample_accepted', 'sample_rejected', 'task_failed')
        ORDER BY id DESC
        LIMIT 1
    ) AS head_version,
    claim.owner,
    claim.expires_utc,
    claim.host,
    claim.pid,
    EXISTS (
        SELECT 1 FROM events e
        WHERE e.recipe = :recipe AND e.task_key = :task_key AND e.id > claim.id
          AND e.event_type IN ('sample_accepted', 'sample_rejected', 'task_failed')
    ) AS closed
FROM (SELECT 1)
LEFT JOIN claim;

-- name: holds_credentialed_data$
-- Whether a credentialed source (MIMIC) was ever decided on in this warehouse.
SELECT EXISTS (SELECT 1 FROM events WHERE event_type = 'data_use_decision');
