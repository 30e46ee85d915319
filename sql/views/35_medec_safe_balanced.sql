-- medec_safe_balanced: the medec-safe dataset with exactly as many CORRECT as INCORRECT samples,
-- the rows export takes. Pairs whose CORRECT paraphrase and INCORRECT note were both accepted are
-- kept whole. The halves left single (a rejected paraphrase or reasoning, or an unflagged note's
-- paraphrase) are matched CORRECT to INCORRECT in a fixed order, by sample_id (a hash of the task
-- key and content), up to the smaller count; the rest is left out and `report` lists it.
CREATE VIEW medec_safe_balanced AS
WITH safe AS (
    SELECT s.*, json_extract(s.sample_json, '$.original_note_id') AS original_note_id
    FROM samples s
    WHERE s.recipe = 'medec-safe' AND s.label IN ('CORRECT', 'INCORRECT')
),
whole_pairs AS (
    SELECT original_note_id
    FROM safe
    GROUP BY original_note_id
    HAVING sum(label = 'CORRECT') = 1 AND sum(label = 'INCORRECT') = 1
),
singles AS (
    SELECT safe.*, row_number() OVER (PARTITION BY label ORDER BY sample_id) AS turn
    FROM safe
    WHERE original_note_id NOT IN (SELECT original_note_id FROM whole_pairs)
),
quota AS (
    SELECT min(sum(label = 'CORRECT'), sum(label = 'INCORRECT')) AS n FROM singles
)
SELECT
    sample_id, recipe, task_key, label, run_id, accepted_event_id, created_utc, content_hash,
    review_verdict, review_note, sample_json
FROM safe
WHERE original_note_id IN (SELECT original_note_id FROM whole_pairs)
UNION ALL
SELECT
    sample_id, recipe, task_key, label, run_id, accepted_event_id, created_utc, content_hash,
    review_verdict, review_note, sample_json
FROM singles
WHERE turn <= (SELECT coalesce(n, 0) FROM quota);
