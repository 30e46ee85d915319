-- quality_flags: the verdicts of each recipe's latest quality scan (medstore/quality/scan.py),
-- one row per flagged sample and kind: a near_duplicate or semantic_duplicate names its cluster
-- and the representative kept in exports; a contaminated sample names the evaluation set and
-- document it matched (13-gram overlap or near-duplicate). Exports leave these rows out
-- unless `export --keep-duplicates` / `--keep-contaminated`.
CREATE VIEW quality_flags AS
WITH latest AS (
    SELECT recipe, max(id) AS id FROM events WHERE event_type = 'quality_scan' GROUP BY recipe
)
SELECT
    e.recipe,
    e.event_id AS scan_event_id,
    e.run_id AS scan_run_id,
    e.created_utc AS scanned_utc,
    json_extract(f.value, '$.sample_id') AS sample_id,
    json_extract(f.value, '$.kind') AS kind,
    json_extract(f.value, '$.cluster_id') AS cluster_id,
    json_extract(f.value, '$.representative') AS representative,
    json_extract(f.value, '$.eval_set') AS eval_set,
    json_extract(f.value, '$.eval_id') AS eval_id,
    json_extract(f.value, '$.overlap_ngrams') AS overlap_ngrams,
    json_extract(f.value, '$.similarity') AS similarity
FROM latest l
JOIN events e ON e.id = l.id
JOIN blobs b ON b.hash = json_extract(e.payload_json, '$.flags_blob')
JOIN json_each(b.content) f;
