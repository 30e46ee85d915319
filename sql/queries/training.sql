-- The training area's reads: what an export is made of (dataset views, lineage, teachers).

-- name: export_relation_exists$
-- Whether a view or table of this name exists (a recipe's dataset view, checked before use).
SELECT 1 FROM sqlite_master WHERE type IN ('view', 'table') AND name = :relation;

-- name: export_relation_columns
-- The column names of a view or table.
SELECT name FROM pragma_table_info(:relation);

-- name: export_task_events
-- Every event of a recipe's tasks, by task then in log order, with the payload of each
-- llm_request: the lineage of an export's rows and the teachers behind them.
SELECT task_key, event_id, event_type,
       CASE WHEN event_type = 'llm_request' THEN payload_json END AS request_json
FROM events
WHERE recipe = :recipe AND task_key IS NOT NULL
ORDER BY task_key, id;

-- name: eval_answers
-- The answers an endpoint eval has: the accepted sample of each of its tasks, with what the
-- task's answered calls cost and their tokens (over every run that made them).
SELECT s.task_key, s.sample_json,
       (SELECT sum(c.cost_usd) FROM llm_calls c
        WHERE c.recipe = s.recipe AND c.task_key = s.task_key AND c.outcome = 'response')
           AS cost_usd,
       (SELECT sum(coalesce(c.input_tokens, 0) + coalesce(c.output_tokens, 0)) FROM llm_calls c
        WHERE c.recipe = s.recipe AND c.task_key = s.task_key AND c.outcome = 'response')
           AS tokens
FROM samples s
WHERE s.recipe = :recipe;
