-- packet_diagnoses: each admission's billed diagnoses in priority order (seq_num), with their
-- ICD-9 or ICD-10 titles.
CREATE VIEW packet_diagnoses AS
SELECT
    d.hadm_id,
    row_number() OVER (PARTITION BY d.hadm_id ORDER BY d.seq_num, d.icd_version, d.icd_code)
        AS row_order,
    d.seq_num,
    trim(d.icd_code) AS icd_code,
    d.icd_version,
    t.long_title
FROM hosp.diagnoses_icd d
LEFT JOIN hosp.d_icd_diagnoses t
    ON trim(t.icd_code) = trim(d.icd_code) AND t.icd_version = d.icd_version;
