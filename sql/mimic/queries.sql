-- Named queries over the MIMIC cache's materialised packet tables (the numbered files beside
-- this one define them). aiosql's format; medstore/sources/mimic/queries.py runs them.

-- name: subject_admissions
-- A patient's admissions in the order the stays happened (admittime, then hadm_id).
SELECT * FROM packet.patient_admissions WHERE subject_id = :subject_id ORDER BY admission_seq;

-- name: admissions_by_id
-- The admissions (with the patient's demographics) among a list of hadm_ids.
SELECT * FROM packet.patient_admissions WHERE list_contains(:hadm_ids, hadm_id);

-- name: cohort
-- The top patients by admission count, most first (ties: lower subject_id first).
SELECT * FROM packet.cohort_by_admission_count WHERE cohort_rank <= :cohort_size
ORDER BY cohort_rank;
