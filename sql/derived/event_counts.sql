-- event_counts, rebuilt from the log: events per recipe and type, what `serve` facets the
-- `events` page from. The writer keeps it in step (projection_count_events, m011).
SELECT recipe, event_type, count(*)
FROM events
GROUP BY 1, 2;
