-- sample_membership: every accepted sample and whether it is in the dataset now, and if not,
-- why: a later outcome of its task replaced it (superseded), it repeats the content of an
-- earlier current sample of its recipe (duplicate_of), or a reviewer rejected it. This is the one
-- statement of the rule: `samples` is the rows with in_dataset, the provenance page shows the
-- reasons. It reads `sample_index` (m003), which the writer keeps in step with the log.
CREATE VIEW sample_membership AS
SELECT
    s.sample_id,
    s.recipe,
    s.task_key,
    s.label,
    s.run_id,
    s.accepted_id,
    s.accepted_event_id,
    s.created_utc,
    s.content_hash,
    s.sample_blob,
    s.review_verdict,
    s.review_note,
    NOT s.is_current AS superseded,
    CASE WHEN s.is_copy THEN (
        SELECT head.sample_id FROM sample_index head
        WHERE head.is_current AND NOT head.is_copy
          AND head.recipe = s.recipe AND head.content_hash = s.content_hash
    ) END AS duplicate_of,
    coalesce(s.review_verdict = 'reject', 0) AS reviewer_rejected,
    s.is_current AND NOT s.is_copy AND coalesce(s.review_verdict, '') != 'reject' AS in_dataset
FROM sample_index s;
