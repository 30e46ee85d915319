-- packet_unlinked_radiology: radiology reports with no hadm_id (the real data has many) whose
-- charttime falls within one of the same patient's stays. They are matched by subject and time
-- only, so the packet keeps them apart from the linked reports.
CREATE VIEW packet_unlinked_radiology AS
SELECT
    a.hadm_id,
    row_number() OVER (PARTITION BY a.hadm_id ORDER BY r.charttime, r.note_seq, r.note_id)
        AS row_order,
    row_number() OVER (PARTITION BY a.hadm_id ORDER BY r.charttime, r.note_seq, r.note_id)
        AS cap_rank,
    count(*) OVER (PARTITION BY a.hadm_id) AS section_total,
    greatest(1, date_diff('day', CAST(a.admittime AS DATE), CAST(r.charttime AS DATE)) + 1)
        AS day,
    r.note_id,
    r.note_type,
    r.note_seq,
    strftime(r.charttime, '%Y-%m-%d %H:%M:%S') AS charttime,
    r.text
FROM note.radiology r
JOIN hosp.admissions a
    ON a.subject_id = r.subject_id
    AND r.charttime BETWEEN a.admittime AND coalesce(a.dischtime, a.admittime)
WHERE r.hadm_id IS NULL;
