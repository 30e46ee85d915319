-- packet_microbiology: each admission's cultures and susceptibilities, one row per specimen,
-- test, organism and antibiotic, in time order.
CREATE VIEW packet_microbiology AS
SELECT
    m.hadm_id,
    row_number() OVER (
        PARTITION BY m.hadm_id
        ORDER BY coalesce(m.charttime, m.chartdate), m.micro_specimen_id, m.test_seq,
            m.isolate_num NULLS FIRST, m.ab_name NULLS FIRST, m.microevent_id
    ) AS row_order,
    greatest(1, date_diff(
        'day', CAST(a.admittime AS DATE), CAST(coalesce(m.charttime, m.chartdate) AS DATE)
    ) + 1) AS day,
    strftime(coalesce(m.charttime, m.chartdate), '%Y-%m-%d %H:%M:%S') AS charttime,
    m.micro_specimen_id,
    m.spec_type_desc,
    m.test_name,
    m.org_name,
    m.isolate_num,
    m.ab_name,
    m.dilution_text,
    m.interpretation,
    m.comments
FROM hosp.microbiologyevents m
JOIN hosp.admissions a ON a.hadm_id = m.hadm_id;
