-- packet_radiology: radiology reports linked to an admission by hadm_id, in time order; a row
-- cap keeps the earliest.
CREATE VIEW packet_radiology AS
SELECT
    r.hadm_id,
    row_number() OVER (PARTITION BY r.hadm_id ORDER BY r.charttime, r.note_seq, r.note_id)
        AS row_order,
    row_number() OVER (PARTITION BY r.hadm_id ORDER BY r.charttime, r.note_seq, r.note_id)
        AS cap_rank,
    count(*) OVER (PARTITION BY r.hadm_id) AS section_total,
    greatest(1, date_diff('day', CAST(a.admittime AS DATE), CAST(r.charttime AS DATE)) + 1)
        AS day,
    r.note_id,
    r.note_type,
    r.note_seq,
    strftime(r.charttime, '%Y-%m-%d %H:%M:%S') AS charttime,
    r.text
FROM note.radiology r
JOIN hosp.admissions a ON a.hadm_id = r.hadm_id;
