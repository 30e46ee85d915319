-- patient_admissions: every admission with its patient's demographics, the age at admission
-- computed the MIMIC way (anchor_age + year(admittime) - anchor_year; an anchor_age of 91 means
-- "over 89"), its rank among the patient's admissions (admittime, then hadm_id), its number of
-- hospital days, and whether a discharge note exists for it.
CREATE VIEW patient_admissions AS
SELECT
    a.subject_id,
    a.hadm_id,
    row_number() OVER (PARTITION BY a.subject_id ORDER BY a.admittime, a.hadm_id)
        AS admission_seq,
    strftime(a.admittime, '%Y-%m-%d %H:%M:%S') AS admittime,
    strftime(a.dischtime, '%Y-%m-%d %H:%M:%S') AS dischtime,
    strftime(a.deathtime, '%Y-%m-%d %H:%M:%S') AS deathtime,
    a.admission_type,
    a.admission_location,
    a.discharge_location,
    a.insurance,
    a.language,
    a.marital_status,
    a.race,
    strftime(a.edregtime, '%Y-%m-%d %H:%M:%S') AS edregtime,
    strftime(a.edouttime, '%Y-%m-%d %H:%M:%S') AS edouttime,
    a.hospital_expire_flag,
    p.gender,
    p.anchor_age,
    p.anchor_year,
    p.anchor_year_group,
    strftime(p.dod, '%Y-%m-%d') AS dod,
    p.anchor_age + year(a.admittime) - p.anchor_year AS age_at_admission,
    p.anchor_age >= 91 AS age_is_capped,
    date_diff('day', CAST(a.admittime AS DATE), CAST(a.dischtime AS DATE)) + 1 AS hospital_days,
    EXISTS (SELECT 1 FROM note.discharge d WHERE d.hadm_id = a.hadm_id) AS has_discharge_note
FROM hosp.admissions a
LEFT JOIN hosp.patients p ON p.subject_id = a.subject_id;
