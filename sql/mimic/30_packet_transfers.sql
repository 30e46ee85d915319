-- packet_transfers: the ward and unit movements of each admission, in order, with the hospital
-- day each began (day 1 = the day of admission).
CREATE VIEW packet_transfers AS
SELECT
    t.hadm_id,
    row_number() OVER (PARTITION BY t.hadm_id ORDER BY t.intime, t.transfer_id) AS row_order,
    greatest(1, date_diff('day', CAST(a.admittime AS DATE), CAST(t.intime AS DATE)) + 1) AS day,
    t.transfer_id,
    t.eventtype,
    t.careunit,
    strftime(t.intime, '%Y-%m-%d %H:%M:%S') AS intime,
    strftime(t.outtime, '%Y-%m-%d %H:%M:%S') AS outtime
FROM hosp.transfers t
JOIN hosp.admissions a ON a.hadm_id = t.hadm_id;
