-- packet_prescriptions: each admission's medication orders (main drugs, additives and base
-- solutions) in start-time order.
CREATE VIEW packet_prescriptions AS
SELECT
    p.hadm_id,
    row_number() OVER (
        PARTITION BY p.hadm_id
        ORDER BY p.starttime NULLS LAST, p.drug NULLS LAST, p.pharmacy_id, p.poe_id
    ) AS row_order,
    greatest(1, date_diff('day', CAST(a.admittime AS DATE), CAST(p.starttime AS DATE)) + 1)
        AS day,
    strftime(p.starttime, '%Y-%m-%d %H:%M:%S') AS starttime,
    strftime(p.stoptime, '%Y-%m-%d %H:%M:%S') AS stoptime,
    p.drug_type,
    p.drug,
    p.prod_strength,
    p.dose_val_rx,
    p.dose_unit_rx,
    p.route,
    p.doses_per_24_hrs
FROM hosp.prescriptions p
JOIN hosp.admissions a ON a.hadm_id = p.hadm_id;
