-- cohort_by_admission_count: patients ranked by their number of admissions, most first; ties
-- broken by subject_id so the ranking is the same on every run.
CREATE VIEW cohort_by_admission_count AS
SELECT
    row_number() OVER (ORDER BY count(*) DESC, subject_id) AS cohort_rank,
    subject_id,
    count(*) AS admission_count,
    strftime(min(admittime), '%Y-%m-%d %H:%M:%S') AS first_admittime,
    strftime(max(admittime), '%Y-%m-%d %H:%M:%S') AS last_admittime
FROM hosp.admissions
GROUP BY subject_id;
