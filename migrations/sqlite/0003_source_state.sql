-- What each pulled source last reported firing, so an alert that left its source while the
-- engine was down (or while another engine led) still resolves.
CREATE TABLE source_state (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
