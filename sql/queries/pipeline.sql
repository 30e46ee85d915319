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
