-- event_counts, rebuilt from the log: events per recipe and type, what `serve` facets the
-- `events` page from ('' for no recipe, as in status_counts). The writer keeps it in step (projection_count_events, m011).
SELECT coalesce(recipe, ''), event_type, count(*)
FROM events
GROUP BY 1, 2;
