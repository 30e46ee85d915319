-- packet_discharge_notes: the discharge summaries (and addenda) of each admission, in order.
CREATE VIEW packet_discharge_notes AS
SELECT
    d.hadm_id,
    row_number() OVER (PARTITION BY d.hadm_id ORDER BY d.charttime, d.note_seq, d.note_id)
        AS row_order,
    d.note_id,
    d.note_type,
    d.note_seq,
    strftime(d.charttime, '%Y-%m-%d %H:%M:%S') AS charttime,
    d.text
FROM note.discharge d;
