-- Support cases (service requests): whole records are JSON in `data`, as incidents are.
CREATE TABLE cases (
    id BIGINT PRIMARY KEY,
    status TEXT NOT NULL,
    customer TEXT NOT NULL,
    -- The linked incident; 0 while there is none.
    incident_id BIGINT NOT NULL DEFAULT 0,
    opened_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX cases_status ON cases (status, id);
CREATE INDEX cases_incident ON cases (incident_id);

CREATE TABLE case_timeline (
    id BIGSERIAL PRIMARY KEY,
    case_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX case_timeline_case ON case_timeline (case_id, id);
