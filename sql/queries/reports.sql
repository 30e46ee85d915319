-- What `cli.py report` reads: each recipe's figures (medstore/recipes/*.report).

-- name: report_task_states
-- Tasks of a recipe per latest state.
SELECT state, count(*) AS n FROM task_state WHERE recipe = :recipe GROUP BY state;

-- name: report_task_state_by_key
-- Every task of a recipe with its latest state.
SELECT task_key, state FROM task_state WHERE recipe = :recipe;

-- name: report_labels
-- Samples in the dataset per label.
SELECT coalesce(label, '(none)') AS label, count(*) AS n
FROM samples
WHERE recipe = :recipe
GROUP BY 1
ORDER BY 1;

-- name: report_rejection_reasons
-- Why tasks were rejected or failed, most common first.
SELECT reason, count(*) AS n
FROM task_state
WHERE recipe = :recipe AND state IN ('rejected', 'failed')
GROUP BY reason
ORDER BY n DESC;

-- name: report_samples
-- The samples in the dataset, as JSON, by task.
SELECT sample_json FROM samples WHERE recipe = :recipe ORDER BY task_key;

-- name: report_latest_rejections
-- The rejection of every task whose latest state is rejected, by task.
SELECT e.task_key, e.payload_json
FROM events e
JOIN task_state t ON t.recipe = e.recipe AND t.task_key = e.task_key
WHERE e.recipe = :recipe AND e.event_type = 'sample_rejected' AND t.state = 'rejected'
  AND e.id = (
      SELECT max(id) FROM events x
      WHERE x.recipe = e.recipe AND x.task_key = e.task_key AND x.event_type = 'sample_rejected'
  )
ORDER BY e.task_key;

-- name: report_accepted_after_repair^
-- How many accepted tasks needed at least one repair.
SELECT count(DISTINCT t.task_key) AS n
FROM task_state t
JOIN events e ON e.recipe = t.recipe AND e.task_key = t.task_key
WHERE t.recipe = :recipe AND t.state = 'accepted' AND e.event_type = 'repair_requested';

-- name: report_source_skipped
-- Source rows the latest run of the recipe skipped, by reason.
SELECT json_extract(payload_json, '$.reason') AS reason, count(*) AS n
FROM events
WHERE event_type = 'source_skipped' AND run_id = (
    SELECT run_id FROM events WHERE event_type = 'run_started' AND recipe = :recipe
    ORDER BY id DESC LIMIT 1
)
GROUP BY 1
ORDER BY n DESC;

-- name: report_data_use_decisions
-- The data-use rules a recipe's runs were decided under, and how often.
SELECT json_extract(payload_json, '$.rule') AS rule, count(*) AS n
FROM events
WHERE event_type = 'data_use_decision' AND recipe = :recipe
GROUP BY 1
ORDER BY 1;

-- name: report_hierarchical_fallbacks
-- Fallback rows (rejected conversions kept with the original answer) per label.
SELECT label, count(*) AS n FROM hierarchical_fallbacks WHERE recipe = :recipe GROUP BY label;

-- name: report_medec_safe_sources
-- Every medec-safe sample with where its note came from (see the view).
SELECT * FROM medec_safe_sources ORDER BY note_id;

-- name: report_medec_safe_balanced_labels
-- The balanced medec-safe dataset per label.
SELECT label, count(*) AS n FROM medec_safe_balanced GROUP BY label ORDER BY label;

-- name: report_gates
-- Acceptance by content gate (medstore/checks/gates.py): per gate, how many tasks failed it at
-- least once, how many of those ended rejected and how many a repair rescued, of all tasks.
WITH hits AS (
    SELECT DISTINCT e.task_key, json_extract(g.value, '$.gate') AS gate
    FROM events e, json_each(e.payload_json, '$.gates') g
    WHERE e.event_type = 'validation_verdict' AND e.recipe = :recipe
)
SELECT
    h.gate,
    count(*) AS tasks_failed,
    sum(t.state = 'rejected') AS rejected,
    sum(t.state = 'accepted') AS repaired,
    (SELECT count(*) FROM task_state WHERE recipe = :recipe) AS tasks
FROM hits h
JOIN task_state t ON t.recipe = :recipe AND t.task_key = h.task_key
GROUP BY h.gate
ORDER BY tasks_failed DESC, h.gate;

-- name: report_gate_worst
-- The worst examples of each gate: the tasks that failed it most often (every attempt and
-- field counts), at most :n per gate, with one of their errors.
SELECT gate, task_key, failures, example
FROM (
    SELECT
        gate,
        task_key,
        count(*) AS failures,
        min(error) AS example,
        row_number() OVER (PARTITION BY gate ORDER BY count(*) DESC, task_key) AS rank
    FROM (
        SELECT
            e.task_key,
            json_extract(g.value, '$.gate') AS gate,
            json_extract(g.value, '$.error') AS error
        FROM events e, json_each(e.payload_json, '$.gates') g
        WHERE e.event_type = 'validation_verdict' AND e.recipe = :recipe
    )
    GROUP BY gate, task_key
)
WHERE rank <= :n
ORDER BY gate, rank;

-- name: run_gate_failures
-- One run's failed gates by stage: how many tasks failed each (at least once), and an example.
SELECT
    e.stage,
    json_extract(g.value, '$.gate') AS gate,
    count(DISTINCT e.task_key) AS tasks,
    min(json_extract(g.value, '$.error')) AS example
FROM events e, json_each(e.payload_json, '$.gates') g
WHERE e.run_id = :run_id AND e.event_type = 'validation_verdict'
GROUP BY 1, 2
ORDER BY tasks DESC, e.stage, gate
LIMIT :n;

-- name: run_rejected_by_gates^
-- Of one run's rejected tasks, how many failed a content gate in that run.
SELECT count(DISTINCT r.task_key) AS n
FROM events r
WHERE r.run_id = :run_id AND r.event_type = 'sample_rejected'
  AND EXISTS (
      SELECT 1 FROM events v
      WHERE v.run_id = r.run_id AND v.event_type = 'validation_verdict'
        AND v.recipe = r.recipe AND v.task_key = r.task_key
        AND json_array_length(v.payload_json, '$.gates') > 0
  );

-- name: report_judge_scores
-- The judge's overall scores (medstore/pipeline/judge.py): how many candidates got each, and
-- how many of those passed --min-judge-score; each task's latest judge verdict (a revalidation
-- under another threshold judges again with the same score).
WITH latest AS (
    SELECT max(id) AS id
    FROM events
    WHERE event_type = 'validation_verdict' AND recipe = :recipe AND stage = 'judge_score'
    GROUP BY task_key
)
SELECT
    json_extract(e.payload_json, '$.metrics.judge_score') AS score,
    count(*) AS n,
    sum(json_extract(e.payload_json, '$.passed')) AS passed
FROM events e
JOIN latest ON latest.id = e.id
GROUP BY 1
ORDER BY 1;
