-- packet_services: the clinical services (MED, CMED, SURG, ...) responsible for each admission,
-- in order.
CREATE VIEW packet_services AS
SELECT
    s.hadm_id,
    row_number() OVER (
        PARTITION BY s.hadm_id ORDER BY s.transfertime, s.curr_service
    ) AS row_order,
    greatest(1, date_diff('day', CAST(a.admittime AS DATE), CAST(s.transfertime AS DATE)) + 1)
        AS day,
    strftime(s.transfertime, '%Y-%m-%d %H:%M:%S') AS transfertime,
    s.prev_service,
    s.curr_service
FROM hosp.services s
JOIN hosp.admissions a ON a.hadm_id = s.hadm_id;
