-- Silences and on-call overrides made at run time (the API, amtool, the CLI). Every
-- engine on the store reads them; the leader applies them.
CREATE TABLE silences (
    id TEXT PRIMARY KEY,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX silences_by_end ON silences (ends_at);

CREATE TABLE schedule_overrides (
    id TEXT PRIMARY KEY,
    schedule TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX schedule_overrides_by_schedule ON schedule_overrides (schedule, starts_at);
