-- packet_emar: each admission's bedside medication administrations (eMAR) in time order.
-- cap_rank keeps the first administration of every medication before repeats, then the earliest.
CREATE VIEW packet_emar AS
WITH emar AS (
    SELECT
        e.*,
        row_number() OVER (
            PARTITION BY e.hadm_id, e.medication ORDER BY e.charttime, e.emar_id
        ) AS medication_occurrence
    FROM hosp.emar e
    WHERE e.hadm_id IS NOT NULL
)
SELECT
    e.hadm_id,
    row_number() OVER (PARTITION BY e.hadm_id ORDER BY e.charttime, e.emar_id, e.emar_seq)
        AS row_order,
    row_number() OVER (
        PARTITION BY e.hadm_id
        ORDER BY e.medication_occurrence, e.charttime, e.emar_id, e.emar_seq
    ) AS cap_rank,
    count(*) OVER (PARTITION BY e.hadm_id) AS section_total,
    greatest(1, date_diff('day', CAST(a.admittime AS DATE), CAST(e.charttime AS DATE)) + 1)
        AS day,
    strftime(e.charttime, '%Y-%m-%d %H:%M:%S') AS charttime,
    e.emar_id,
    e.medication,
    e.event_txt,
    strftime(e.scheduletime, '%Y-%m-%d %H:%M:%S') AS scheduletime
FROM emar e
JOIN hosp.admissions a ON a.hadm_id = e.hadm_id;
