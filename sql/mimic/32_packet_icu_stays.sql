-- packet_icu_stays: the ICU stays within each admission, in order, with their length in days.
CREATE VIEW packet_icu_stays AS
SELECT
    i.hadm_id,
    row_number() OVER (PARTITION BY i.hadm_id ORDER BY i.intime, i.stay_id) AS row_order,
    greatest(1, date_diff('day', CAST(a.admittime AS DATE), CAST(i.intime AS DATE)) + 1) AS day,
    i.stay_id,
    i.first_careunit,
    i.last_careunit,
    strftime(i.intime, '%Y-%m-%d %H:%M:%S') AS intime,
    strftime(i.outtime, '%Y-%m-%d %H:%M:%S') AS outtime,
    round(i.los, 2) AS los_days
FROM icu.icustays i
JOIN hosp.admissions a ON a.hadm_id = i.hadm_id;
