-- sample_exports: every export each sample went into (one row per sample and export), so a
-- sample's provenance can show the datasets, and through them the trained models, that used it.
CREATE VIEW sample_exports AS
SELECT
    j.value AS sample_id,
    e.event_id AS export_event_id,
    json_extract(e.payload_json, '$.export_id') AS export_id,
    e.recipe,
    json_extract(e.payload_json, '$.format') AS format,
    json_extract(e.payload_json, '$.out_dir') AS out_dir,
    json_extract(e.payload_json, '$.manifest_hash') AS manifest_hash,
    e.created_utc
FROM events e
JOIN blobs b ON b.hash = json_extract(e.payload_json, '$.sample_ids_blob')
JOIN json_each(b.content) j
WHERE e.event_type = 'export_written';
