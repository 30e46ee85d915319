-- packet_labs: each admission's lab results with names, units, reference ranges and flags, in
-- time order (row_order). cap_rank says which rows a row cap keeps first: abnormal results, then
-- the first result of every test before repeats, then the earliest.
CREATE VIEW packet_labs AS
WITH labs AS (
    SELECT
        l.*,
        row_number() OVER (
            PARTITION BY l.hadm_id, l.itemid ORDER BY l.charttime, l.labevent_id
        ) AS item_occurrence
    FROM hosp.labevents l
    WHERE l.hadm_id IS NOT NULL
)
SELECT
    l.hadm_id,
    row_number() OVER (
        PARTITION BY l.hadm_id ORDER BY l.charttime, l.itemid, l.labevent_id
    ) AS row_order,
    row_number() OVER (
        PARTITION BY l.hadm_id
        ORDER BY coalesce(l.flag, '') <> 'abnormal', l.item_occurrence, l.charttime,
            l.itemid, l.labevent_id
    ) AS cap_rank,
    count(*) OVER (PARTITION BY l.hadm_id) AS section_total,
    greatest(1, date_diff('day', CAST(a.admittime AS DATE), CAST(l.charttime AS DATE)) + 1)
        AS day,
    strftime(l.charttime, '%Y-%m-%d %H:%M:%S') AS charttime,
    l.itemid,
    d.label,
    d.fluid,
    d.category,
    l.value,
    l.valuenum,
    l.valueuom,
    l.ref_range_lower,
    l.ref_range_upper,
    l.flag,
    l.priority
FROM labs l
JOIN hosp.admissions a ON a.hadm_id = l.hadm_id
LEFT JOIN hosp.d_labitems d ON d.itemid = l.itemid;
