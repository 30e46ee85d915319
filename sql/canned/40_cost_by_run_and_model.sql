-- Cost and tokens by run and model
-- Teacher calls per run, backend and model: answered, replayed from the log, errored; tokens
-- in and out; cost in USD (blank when the model has no known price); mean latency.
SELECT
    run_id,
    recipe,
    backend,
    model,
    count(*) AS calls,
    sum(outcome = 'response') AS answered,
    sum(outcome = 'cache_replay') AS cache_replays,
    sum(errors) AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    round(sum(cost_usd), 6) AS cost_usd,
    round(avg(latency_ms)) AS mean_latency_ms
FROM llm_calls
GROUP BY run_id, recipe, backend, model
ORDER BY min(id) DESC
