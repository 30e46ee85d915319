-- packet_procedures: each admission's billed procedures in order (seq_num), with their titles and
-- the hospital day they were charted.
CREATE VIEW packet_procedures AS
SELECT
    p.hadm_id,
    row_number() OVER (PARTITION BY p.hadm_id ORDER BY p.seq_num, p.icd_version, p.icd_code)
        AS row_order,
    greatest(1, date_diff('day', CAST(a.admittime AS DATE), p.chartdate) + 1) AS day,
    p.seq_num,
    strftime(p.chartdate, '%Y-%m-%d') AS chartdate,
    trim(p.icd_code) AS icd_code,
    p.icd_version,
    t.long_title
FROM hosp.procedures_icd p
JOIN hosp.admissions a ON a.hadm_id = p.hadm_id
LEFT JOIN hosp.d_icd_procedures t
    ON trim(t.icd_code) = trim(p.icd_code) AND t.icd_version = p.icd_version;
