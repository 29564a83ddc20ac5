-- How the store finds an incident's impacts: a row per incident and batch that linked
-- impacts to it (new ones, and those a merge moved), their ids as a JSON array. It replaces
-- the index on impacts (incident_id), where each new impact put an entry at its incident's
-- place: every commit wrote a page of that index for each incident that took impacts.
-- Impacts keep their incident_id: a link whose impact went on to another incident (a
-- merge) is not that incident's any more.
CREATE TABLE incident_impacts (
    id INTEGER PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    impact_ids TEXT NOT NULL
);
INSERT INTO incident_impacts (incident_id, impact_ids)
    SELECT incident_id, '[' || group_concat(id, ',') || ']' FROM impacts GROUP BY incident_id;
CREATE INDEX incident_impacts_incident ON incident_impacts (incident_id);
DROP INDEX impacts_incident;
