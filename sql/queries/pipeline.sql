-- What a run reads before it starts.

-- name: estimate_history^
-- Per-task averages (calls, input and output tokens) over a recipe's finished tasks that the
-- network answered (tasks replayed from the cache would understate them), for --dry-run.
WITH finished AS (
    SELECT recipe, task_key FROM task_state WHERE recipe = :recipe AND state IN ('accepted', 'rejected')
),
per_task AS (
    SELECT
        e.task_key,
        sum(e.event_type = 'llm_request') AS calls,
        sum(e.event_type = 'llm_response') AS responses,
        sum(e.event_type = 'cache_replay') AS replays,
        sum(CASE WHEN e.event_type = 'llm_response'
            THEN coalesce(json_extract(e.payload_json, '$.input_tokens'), 0) END) AS input_tokens,
        sum(CASE WHEN e.event_type = 'llm_response'
            THEN coalesce(json_extract(e.payload_json, '$.output_tokens'), 0) END) AS output_tokens
    FROM finished f
    JOIN events e ON e.recipe = f.recipe AND e.task_key = f.task_key
    WHERE e.event_type IN ('llm_request', 'llm_response', 'cache_replay')
    GROUP BY e.task_key
)
SELECT count(*) AS tasks, avg(calls) AS calls, avg(input_tokens) AS input_tokens,
       avg(output_tokens) AS output_tokens
FROM per_task
WHERE replays = 0 AND responses > 0;

-- name: revalidation_tasks
-- Finished tasks of a recipe for `revalidate`: the state and validator version of the latest
-- verdict, and the source record its latest attempt started from.
SELECT
    t.task_key,
    t.state,
    t.sample_id,
    t.validator_version,
    json_extract(s.payload_json, '$.source_id') AS source_id,
    json_extract(s.payload_json, '$.source_record_blob') AS source_record_blob
FROM task_state t
JOIN events s ON s.id = (
    SELECT max(x.id) FROM events x
    WHERE x.recipe = t.recipe AND x.task_key = t.task_key AND x.event_type = 'task_started'
)
WHERE t.recipe = :recipe AND t.state IN ('accepted', 'rejected')
ORDER BY t.task_key;

-- name: revalidation_answers
-- Every recorded answer (a response or a cache replay) to a task's requests, oldest first,
-- with the request's stage, repair attempt, messages (content blob hashes) and model.
SELECT
    q.stage,
    q.attempt,
    json_extract(q.payload_json, '$.messages') AS messages,
    json_extract(q.payload_json, '$.model') AS model,
    json_extract(a.payload_json, '$.raw_output_blob') AS raw_output_blob
FROM events q
JOIN events a ON a.parent_event_id = q.event_id
WHERE q.recipe = :recipe AND q.task_key = :task_key AND q.event_type = 'llm_request'
  AND a.event_type IN ('llm_response', 'cache_replay')
ORDER BY a.id;

-- name: revalidation_judge_model
-- The model of a recipe's latest judge call: whose recorded scores `revalidate
-- --min-judge-score` applies when no --judge-model is given.
SELECT json_extract(payload_json, '$.model') AS model
FROM events
WHERE recipe = :recipe AND event_type = 'llm_request' AND stage = 'judge'
ORDER BY id DESC
LIMIT 1;

-- name: revalidation_recipes
-- The recipes with finished tasks in the warehouse (what `revalidate` without --recipe judges).
SELECT DISTINCT recipe FROM task_state
WHERE state IN ('accepted', 'rejected') AND recipe IS NOT NULL
ORDER BY recipe;

-- name: claims_of_unfinished_runs
-- Tasks whose latest claim is still live and belongs to a run that never finished: in a shard
-- log of a Ray run (one worker at a time writes it), the claims of a worker that died.
WITH latest AS (
    SELECT recipe, task_key, max(id) AS id
    FROM events
    WHERE event_type = 'task_claimed'
    GROUP BY recipe, task_key
),
claim AS (
    SELECT
        latest.recipe,
        latest.task_key,
        json_extract(e.payload_json, '$.owner') AS owner,
        json_extract(e.payload_json, '$.expires_utc') AS expires_utc
    FROM latest
    JOIN events e ON e.id = latest.id
)
SELECT recipe, task_key, owner
FROM claim
WHERE expires_utc > :now
  AND NOT EXISTS (
      SELECT 1 FROM events f WHERE f.event_type = 'run_finished' AND f.run_id = claim.owner
  )
ORDER BY recipe, task_key;

-- name: revalidation_source$
-- The source the latest `run` of a recipe read its tasks from (its run_started config).
SELECT json_extract(payload_json, '$.config.source') FROM events
WHERE event_type = 'run_started' AND recipe = :recipe
  AND json_extract(payload_json, '$.command') = 'run'
ORDER BY id DESC
LIMIT 1;
